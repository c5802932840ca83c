//! `Async<T>`: a non-blocking file descriptor registered with the reactor.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use super::scheduled_io::{Direction, ReadyEvent, ScheduledIo, SourceKey};
use crate::executor::Handle;

/// A non-blocking I/O object whose readiness is tracked by the current runtime's reactor.
///
/// `Async` owns `T` (a socket, a pipe, anything with a file descriptor in non-blocking mode),
/// adds its fd to epoll once when created and deletes it when dropped, *before* `T` closes the
/// fd. In between, readiness is cached: [`poll_read_ready`](Self::poll_read_ready) costs one
/// atomic load while the source is known to be readable, and parks the task otherwise.
///
/// The usual pattern is to try the operation and, on `WouldBlock`, clear the readiness that
/// turned out to be stale and wait again; [`poll_read_with`](Self::poll_read_with) and
/// [`read_with`](Self::read_with) do exactly that.
pub struct Async<T: AsFd> {
    /// The source's readiness word and parked wakers, shared with the reactor.
    source: Arc<ScheduledIo>,
    /// The runtime whose reactor holds the registration.
    handle: Handle,
    /// The I/O object.
    ///
    /// # Invariant
    /// `Some` and registered in the reactor for the whole life of `self`; `Drop` and
    /// `into_inner` delete the registration before giving up the object.
    io: Option<T>,
    /// The fd `io` had when it was registered, kept at hand: asking `io` costs a call into its
    /// crate on every read and write. For every I/O type that owns its fd this is `io`'s fd
    /// for the whole life of `self`. A type whose `as_fd` changes its answer keeps getting
    /// readiness for, and the hot-path reads and writes of `net` on, the fd it was registered
    /// with (see `deregister` for its end).
    fd: RawFd,
    /// The registration's key, which names the source in the reactor's re-check of drained
    /// sources.
    key: SourceKey,
}

impl<T: AsFd> Async<T> {
    /// Registers `io` with the current runtime's reactor. `io` must already be in non-blocking
    /// mode, or its reads and writes will block the runtime's thread.
    ///
    /// Fails if called outside a ripple runtime, or if epoll refuses the fd.
    pub fn new(io: T) -> io::Result<Async<T>> {
        let handle = Handle::try_current().ok_or_else(|| {
            io::Error::other(
                "ripple I/O objects must be created inside a ripple runtime \
                 (in block_on, #[ripple::main], or a spawned task)",
            )
        })?;
        // SAFETY: `self.io` keeps the fd open until `Drop` or `into_inner`, both of which delete
        // the registration first. (An I/O type whose `as_fd` changes its answer can break that;
        // `Reactor::add` says why the harm then stays small.)
        let (source, key) = unsafe { handle.shared.reactor.add(io.as_fd())? };
        Ok(Async {
            source,
            handle,
            fd: io.as_fd().as_raw_fd(),
            key,
            io: Some(io),
        })
    }

    /// The I/O object.
    #[inline]
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("Async always holds its I/O object")
    }

    /// Deletes the registration and gives back the I/O object.
    pub fn into_inner(mut self) -> io::Result<T> {
        let io = self.io.take().expect("Async always holds its I/O object");
        self.deregister(&io)?;
        Ok(io)
    }

    /// Deletes the registration of `io`, which `self` held.
    ///
    /// epoll is told only if `io` still answers with the fd that was registered: an I/O type
    /// whose `as_fd` changed its answer would have epoll delete someone else's registration.
    /// Then the old registration stays until its file closes, and its events are ignored.
    fn deregister(&self, io: &T) -> io::Result<()> {
        let fd = io.as_fd();
        let registered = (fd.as_raw_fd() == self.fd).then_some(fd);
        self.handle.shared.reactor.delete(registered, &self.source)
    }

    /// Ready when the reactor last saw the source readable; parks the task until then.
    #[inline]
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.source.poll_ready(cx, Direction::Read)
    }

    /// Ready when the reactor last saw the source writable; parks the task until then.
    #[inline]
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.source.poll_ready(cx, Direction::Write)
    }

    /// Forgets the readiness that `event` reported: call it when an operation returned
    /// `WouldBlock` (or a read came back short, which on a stream socket means it is drained).
    /// Readiness set by a newer event is kept.
    #[inline]
    pub fn clear_readiness(&self, event: ReadyEvent) {
        self.source.clear_readiness(event);
    }

    /// Forgets the read readiness in `event` after a read that came back *short* (fewer bytes
    /// than asked for), which on a stream socket means the receive queue is empty. This saves
    /// the next read a syscall that would only say `WouldBlock`.
    ///
    /// A short read cannot tell whether the peer's FIN arrived in the same edge as the data, and
    /// epoll will not report it again. So the reactor re-checks such sources once, all of them in
    /// one `poll(2)`, before it next waits; a source that turns out readable (or closed) is
    /// marked ready again and its reader woken.
    #[inline]
    pub fn clear_drained(&self, event: ReadyEvent) {
        if self.source.clear_readiness(event) {
            self.handle.shared.recheck_later(self.fd, self.key);
        }
    }

    /// Runs the non-blocking `op` once the source is readable, waiting again while it
    /// returns `WouldBlock`.
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_with(cx, Direction::Read, op)
    }

    /// Runs the non-blocking `op` once the source is writable, waiting again while it
    /// returns `WouldBlock`.
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_with(cx, Direction::Write, op)
    }

    /// The awaitable form of [`poll_read_with`](Self::poll_read_with).
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_read_with(cx, &mut op)).await
    }

    /// The awaitable form of [`poll_write_with`](Self::poll_write_with).
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_write_with(cx, &mut op)).await
    }

    /// Waits until the source is readable.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx).map_ok(drop)).await
    }

    /// Waits until the source is writable.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_ready(cx).map_ok(drop)).await
    }

    /// The loop behind `poll_read_with` and `poll_write_with`.
    fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let event = ready!(self.source.poll_ready(cx, direction))?;
            match op(self.get_ref()) {
                // The cached readiness was stale: forget it, then park (or retry on a newer edge).
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.source.clear_readiness(event);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl<T: AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsFd> AsRawFd for Async<T> {
    /// The I/O object's fd, without a call into its crate: for system calls on the hot path.
    #[inline]
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            // Delete from epoll while the fd is still open; `io` closes it when dropped below.
            let _ = self.deregister(&io);
        }
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish()
    }
}
