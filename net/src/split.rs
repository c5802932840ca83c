//! The halves of a `TcpStream` or a `UnixStream`: one side reads while the other writes.
//!
//! The reactor keeps a separate waker per direction for each socket, so a task parked on a read
//! and another parked on a write of the same socket are both woken correctly.

use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::stream::{Read, ReadExact, StreamSocket, Write, WriteAll};

/// The read half of [`TcpStream::split`](crate::TcpStream::split) or
/// [`UnixStream::split`](crate::UnixStream::split).
#[derive(Debug)]
pub struct ReadHalf<'a>(
    /// The stream's socket, borrowed.
    &'a StreamSocket,
);

/// The write half of [`TcpStream::split`](crate::TcpStream::split) or
/// [`UnixStream::split`](crate::UnixStream::split).
#[derive(Debug)]
pub struct WriteHalf<'a>(
    /// The stream's socket, borrowed.
    &'a StreamSocket,
);

/// The read half of [`TcpStream::into_split`](crate::TcpStream::into_split) or
/// [`UnixStream::into_split`](crate::UnixStream::into_split); may move to another task.
#[derive(Debug)]
pub struct OwnedReadHalf(
    /// The stream's socket, shared with the write half.
    Arc<StreamSocket>,
);

/// The write half of [`TcpStream::into_split`](crate::TcpStream::into_split) or
/// [`UnixStream::into_split`](crate::UnixStream::into_split); may move to another task.
/// Dropping it shuts down the write side, so the peer reads end of stream.
#[derive(Debug)]
pub struct OwnedWriteHalf(
    /// The stream's socket, shared with the read half.
    Arc<StreamSocket>,
);

impl<'a> ReadHalf<'a> {
    /// Borrows the read side of `stream`.
    pub(crate) fn new(stream: &'a StreamSocket) -> Self {
        ReadHalf(stream)
    }
}

impl<'a> WriteHalf<'a> {
    /// Borrows the write side of `stream`.
    pub(crate) fn new(stream: &'a StreamSocket) -> Self {
        WriteHalf(stream)
    }
}

impl OwnedReadHalf {
    /// Shares `stream` as its read side.
    pub(crate) fn new(stream: Arc<StreamSocket>) -> Self {
        OwnedReadHalf(stream)
    }
}

impl OwnedWriteHalf {
    /// Shares `stream` as its write side.
    pub(crate) fn new(stream: Arc<StreamSocket>) -> Self {
        OwnedWriteHalf(stream)
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        // The peer may already be gone; there is nobody to report that to.
        let _ = self.0.shutdown(Shutdown::Write);
    }
}

/// Gives a read half its `read`, `read_exact` and `AsyncRead`.
macro_rules! read_half {
    ($($half:ty),*) => {$(
        impl $half {
            /// Reads into `buf`; returns how many bytes were read, `0` at end of stream.
            pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Read<'a> {
                Read::new(&self.0, buf)
            }

            /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends first.
            pub fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadExact<'a> {
                ReadExact::new(&self.0, buf)
            }

            /// The polling form of [`read`](Self::read).
            #[inline]
            pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                self.0.poll_read(cx, buf)
            }

            /// [`poll_read`](Self::poll_read) into a buffer that need not be initialised:
            /// returns `n`, and the first `n` bytes of `buf` are then initialised.
            #[inline]
            pub fn poll_read_uninit(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [MaybeUninit<u8>],
            ) -> Poll<io::Result<usize>> {
                self.0.poll_read_uninit(cx, buf)
            }
        }

        impl futures_io::AsyncRead for $half {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.0.poll_read(cx, buf)
            }
        }
    )*};
}

/// Gives a write half its `write`, `write_all`, `flush`, `shutdown` and `AsyncWrite`.
macro_rules! write_half {
    ($($half:ty),*) => {$(
        impl $half {
            /// Writes some of `buf`; returns how many bytes were written.
            pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> Write<'a> {
                Write::new(&self.0, buf)
            }

            /// Writes all of `buf`.
            pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a> {
                WriteAll::new(&self.0, buf)
            }

            /// The polling form of [`write`](Self::write).
            #[inline]
            pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.0.poll_write(cx, buf)
            }

            /// Does nothing: there is no user-space buffer.
            pub async fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }

            /// Shuts down the write side: the peer reads end of stream.
            pub fn shutdown(&self) -> io::Result<()> {
                self.0.shutdown(Shutdown::Write)
            }
        }

        impl futures_io::AsyncWrite for $half {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.0.poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.0.shutdown(Shutdown::Write))
            }
        }
    )*};
}

read_half!(ReadHalf<'_>, OwnedReadHalf);
write_half!(WriteHalf<'_>, OwnedWriteHalf);
