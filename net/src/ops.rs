//! The futures behind `read`, `write`, `read_exact` and `write_all` on a [`TcpStream`] and its
//! halves.
//!
//! Each is a small named struct whose `poll` calls [`TcpStream::poll_read`] or
//! [`TcpStream::poll_write`] directly. An `async fn` would do the same job, but wraps it in a
//! state machine that every poll steps through; on the path of every message that is work for
//! nothing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::TcpStream;

/// The future of `read`: how many bytes were read, `0` at end of stream.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Read<'a> {
    /// The stream to read from.
    stream: &'a TcpStream,
    /// Where the bytes go.
    buf: &'a mut [u8],
}

/// The future of `write`: how many bytes were written.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Write<'a> {
    /// The stream to write to.
    stream: &'a TcpStream,
    /// The bytes to write.
    buf: &'a [u8],
}

/// The future of `read_exact`: fills the whole buffer, or fails with `UnexpectedEof`.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ReadExact<'a> {
    /// The stream to read from.
    stream: &'a TcpStream,
    /// The part of the buffer still to fill.
    buf: &'a mut [u8],
}

/// The future of `write_all`: writes the whole buffer, or fails.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAll<'a> {
    /// The stream to write to.
    stream: &'a TcpStream,
    /// The part of the buffer still to write.
    buf: &'a [u8],
}

impl<'a> Read<'a> {
    /// The future of reading into `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a TcpStream, buf: &'a mut [u8]) -> Self {
        Read { stream, buf }
    }
}

impl<'a> Write<'a> {
    /// The future of writing `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a TcpStream, buf: &'a [u8]) -> Self {
        Write { stream, buf }
    }
}

impl<'a> ReadExact<'a> {
    /// The future of filling `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a TcpStream, buf: &'a mut [u8]) -> Self {
        ReadExact { stream, buf }
    }
}

impl<'a> WriteAll<'a> {
    /// The future of writing all of `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a TcpStream, buf: &'a [u8]) -> Self {
        WriteAll { stream, buf }
    }
}

impl Future for Read<'_> {
    type Output = io::Result<usize>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.stream.poll_read(cx, this.buf)
    }
}

impl Future for Write<'_> {
    type Output = io::Result<usize>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.stream.poll_write(cx, this.buf)
    }
}

impl Future for ReadExact<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while !this.buf.is_empty() {
            match ready!(this.stream.poll_read(cx, this.buf))? {
                0 => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                n => this.buf = &mut std::mem::take(&mut this.buf)[n..],
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Future for WriteAll<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while !this.buf.is_empty() {
            match ready!(this.stream.poll_write(cx, this.buf))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => this.buf = &this.buf[n..],
            }
        }
        Poll::Ready(Ok(()))
    }
}
