//! hyper 1.x on ripple: what hyper-util's `TokioIo`, `TokioTimer` and `TokioExecutor` are for
//! tokio (cargo feature `hyper`).
//!
//! hyper does no I/O of its own: it asks its caller for a byte stream ([`hyper::rt::Read`] and
//! [`hyper::rt::Write`]), a timer ([`hyper::rt::Timer`], for `header_read_timeout`) and, for
//! HTTP/2, a way to spawn tasks ([`hyper::rt::Executor`]). This module gives it ripple's.
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use hyper::server::conn::http1;
//! use hyper::service::service_fn;
//! use hyper::{Request, Response};
//!
//! # async fn serve(stream: ripple::net::TcpStream) {
//! let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("Hello, world!")))
//! });
//! let served = http1::Builder::new()
//!     .timer(ripple::hyper::Timer::new())
//!     .serve_connection(ripple::hyper::Io::new(stream), service)
//!     .await;
//! # let _ = served;
//! # }
//! ```

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use crate::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use crate::net::{TcpStream, UnixStream};
use crate::runtime::Handle;

/// A ripple stream as hyper's byte stream: `Io::new(stream)`, for a [`TcpStream`] or a
/// [`UnixStream`]; or one direction of it, for an owned half of `into_split`.
#[derive(Debug)]
pub struct Io<T> {
    /// The stream.
    inner: T,
}

impl<T> Io<T> {
    /// Wraps `stream` for hyper.
    pub fn new(stream: T) -> Io<T> {
        Io { inner: stream }
    }

    /// The stream.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// A ripple stream, or read half, that [`Io`] can give to hyper as [`hyper::rt::Read`]: it
/// reads into uninitialised memory, so that hyper's read buffer is never zero-filled.
///
/// Sealed: `Io` trusts `poll_read_uninit` to initialise the bytes it counts, so only ripple's
/// own streams implement it: [`TcpStream`], [`UnixStream`] and [`OwnedReadHalf`].
pub trait ReadStream: sealed::Sealed + Unpin {
    /// Reads into `buf`; returns `n`, with the first `n` bytes of `buf` then initialised.
    fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>>;
}

/// A ripple stream, or write half, that [`Io`] can give to hyper as [`hyper::rt::Write`]:
/// [`TcpStream`], [`UnixStream`] and [`OwnedWriteHalf`].
pub trait WriteStream: sealed::Sealed + Unpin {
    /// Writes some of `buf`.
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Shuts down the write side.
    fn shutdown_write(&self) -> io::Result<()>;
}

/// The seal of [`ReadStream`] and [`WriteStream`].
mod sealed {
    /// Implemented only here.
    pub trait Sealed {}
    impl Sealed for crate::net::TcpStream {}
    impl Sealed for crate::net::UnixStream {}
    impl Sealed for crate::net::tcp::OwnedReadHalf {}
    impl Sealed for crate::net::tcp::OwnedWriteHalf {}
}

/// Implements [`ReadStream`] for types with an inherent `poll_read_uninit`.
macro_rules! read_stream {
    ($($stream:ty),*) => {$(
        impl ReadStream for $stream {
            #[inline]
            fn poll_read_uninit(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [MaybeUninit<u8>],
            ) -> Poll<io::Result<usize>> {
                <$stream>::poll_read_uninit(self, cx, buf)
            }
        }
    )*};
}

/// Implements [`WriteStream`] for types with an inherent `poll_write`; `$shutdown` shuts the
/// write side down.
macro_rules! write_stream {
    ($($stream:ty => |$this:ident| $shutdown:expr),*) => {$(
        impl WriteStream for $stream {
            #[inline]
            fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                <$stream>::poll_write(self, cx, buf)
            }
            fn shutdown_write(&self) -> io::Result<()> {
                let $this = self;
                $shutdown
            }
        }
    )*};
}

read_stream!(TcpStream, UnixStream, OwnedReadHalf);
write_stream!(
    TcpStream => |stream| stream.shutdown(Shutdown::Write),
    UnixStream => |stream| stream.shutdown(Shutdown::Write),
    OwnedWriteHalf => |half| half.shutdown()
);

impl<T: ReadStream> hyper::rt::Read for Io<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let (n, room) = {
            // SAFETY: `poll_read_uninit` (of ripple's own streams: the trait is sealed) only
            // writes initialised bytes into the slice, never de-initialises any, so the
            // cursor's filled part stays valid.
            let unfilled = unsafe { buf.as_mut() };
            let room = unfilled.len();
            (ready!(self.inner.poll_read_uninit(cx, unfilled))?, room)
        };
        assert!(
            n <= room,
            "a read returned more bytes than it was given room for"
        );
        // SAFETY: the read initialised the first `n` bytes of the unfilled part, and `n` fits.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: WriteStream> hyper::rt::Write for Io<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the kernel: nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown_write())
    }
}

/// ripple's timers for hyper (`header_read_timeout`, keep-alive timeouts).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timer;

impl Timer {
    /// The timer; its sleeps register with the runtime of the task that polls them.
    pub fn new() -> Timer {
        Timer
    }
}

/// A ripple sleep as a hyper sleep.
#[derive(Debug)]
struct Sleep(crate::time::Sleep);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for Sleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(crate::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(crate::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Sleep>() {
            Some(mut ours) => ours.0.reset(deadline),
            None => *sleep = self.sleep_until(deadline),
        }
    }
}

/// Spawns hyper's background tasks (HTTP/2) on a ripple runtime.
#[derive(Debug, Clone)]
pub struct Executor {
    /// The runtime the tasks go to.
    handle: Handle,
}

// No `Default`: `new` reads the current runtime and panics outside one, which a `default()`
// would hide.
#[allow(clippy::new_without_default)]
impl Executor {
    /// An executor for the current runtime; it keeps that runtime's handle, so it also works
    /// when hyper calls it from outside the runtime.
    ///
    /// # Panics
    /// Outside a ripple runtime.
    pub fn new() -> Executor {
        Executor {
            handle: Handle::current(),
        }
    }
}

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        // Detached: hyper watches its own tasks.
        drop(self.handle.spawn(future));
    }
}
