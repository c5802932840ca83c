//! One registered source: [`Async<T>`], which its owner holds, and `ScheduledIo`, the readiness
//! word and parked wakers it shares with the driver; and [`Async::poll_io`], the funnel that
//! every I/O operation of every socket type goes through.
//!
//! The source is registered edge-triggered: epoll reports each *change* to readable or writable
//! once, not the state itself. So the source remembers it: an event sets a bit in the readiness
//! word, and the bit stays until an operation returns `WouldBlock` and clears it. Each event also
//! stamps the word with the driver's tick, and a clear only succeeds if the tick is unchanged, so
//! an edge that arrives while a task is in the middle of a read is never lost.
//!
//! The funnel is the seeds' non-blocking loop, written once: look at the readiness word (one
//! atomic load), try the system call, and on `WouldBlock` clear the bit and park the task's
//! waker in the source until the driver sets the bit again.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};

use super::key::SourceKey;
use super::waker_slot::{Registered, WakerSlot};
use super::{Local, Reactor};
use crate::coop;
use crate::trace::trace;

/// A non-blocking I/O object whose readiness is tracked by the current runtime's reactor.
///
/// `Async` owns `T` (a socket, a pipe, anything with a file descriptor in non-blocking mode),
/// adds its fd to epoll once when created and deletes it when dropped, *before* `T` closes the
/// fd. In between, readiness is cached: [`poll_io`](Self::poll_io) costs one atomic load while
/// the source is known to be ready, and parks the task otherwise.
///
/// Every operation goes through [`poll_io`](Self::poll_io); [`read_with`](Self::read_with) and
/// [`write_with`](Self::write_with) are its awaitable forms.
pub struct Async<T: AsFd> {
    /// The source's readiness word and parked wakers, shared with the driver.
    source: Arc<ScheduledIo>,
    /// The reactor that holds the registration.
    reactor: Arc<Reactor>,
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
    /// The registration's key, which names the source in the driver's re-check of drained
    /// sources.
    key: SourceKey,
}

/// Which way an operation moves data, and so which readiness it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Reading, accepting, or receiving: waits until the source is readable.
    Read,
    /// Writing, sending, or finishing a connect: waits until the source is writable.
    Write,
}

impl Interest {
    /// The interest as a verb, for the trace.
    fn verb(self) -> &'static str {
        match self {
            Interest::Read => "read",
            Interest::Write => "write",
        }
    }

    /// The readiness bit this interest waits for.
    fn mask(self) -> usize {
        match self {
            Interest::Read => READABLE,
            Interest::Write => WRITABLE,
        }
    }
}

impl<T: AsFd> Async<T> {
    /// Registers `io` with the current runtime's reactor. `io` must already be in non-blocking
    /// mode, or its reads and writes will block the runtime's thread.
    ///
    /// Fails if called outside a ripple runtime, or if epoll refuses the fd.
    pub fn new(io: T) -> io::Result<Async<T>> {
        let reactor = Local::current().ok_or_else(|| {
            io::Error::other(
                "ripple I/O objects must be created inside a ripple runtime \
                 (in block_on, #[ripple::main], or a spawned task)",
            )
        })?;
        // SAFETY: `self.io` keeps the fd open until `Drop` or `into_inner`, both of which delete
        // the registration first. (An I/O type whose `as_fd` changes its answer can break that;
        // `Reactor::add` says why the harm then stays small.)
        let (source, key) = unsafe { reactor.add(io.as_fd())? };
        Ok(Async {
            source,
            reactor,
            fd: io.as_fd().as_raw_fd(),
            key,
            io: Some(io),
        })
    }

    /// The I/O object.
    #[inline]
    pub fn get_ref(&self) -> &T {
        match &self.io {
            Some(io) => io,
            // SAFETY: by the invariant on `io`, it is `Some` for as long as `self` is usable
            // (`into_inner` and `Drop` take it out only as they end `self`).
            None => unsafe { std::hint::unreachable_unchecked() },
        }
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
        self.reactor.delete(registered, &self.source)
    }

    /// Runs the non-blocking operation `op` once the source is ready for `interest`: the one path
    /// of every I/O operation.
    ///
    /// 1. If the readiness word says the source is not ready, park the task (its waker goes into
    ///    the source) and return `Pending`; the driver wakes it when epoll reports the source
    ///    ready.
    /// 2. Otherwise spend one unit of the task's I/O budget and run `op`.
    /// 3. `WouldBlock` means the readiness was stale: clear it (unless a newer event came
    ///    meanwhile) and go back to 1. `Interrupted` retries at once.
    /// 4. Any other result is returned. When `exhausted` says a successful result emptied the
    ///    kernel's buffer (a *stream* read that returned fewer bytes than asked) or filled it (a
    ///    stream write that took fewer), the readiness is cleared now, saving the next operation
    ///    a system call that would only say `WouldBlock`. Give `|_| false` for anything else: a
    ///    short datagram, say, tells nothing about the datagrams still queued.
    ///
    /// A read that clears the readiness this way cannot tell whether the peer's FIN came with the
    /// data, and epoll will not report it again; so the source is queued for the driver, which
    /// re-checks every such source with one `poll(2)` before it next waits.
    #[inline]
    pub fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut(&T) -> io::Result<R>,
        exhausted: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        let (done, event) = ready!(drive(&self.source, cx, interest, || op(self.get_ref())))?;
        if exhausted(&done) {
            self.clear_exhausted(event, interest);
        }
        Poll::Ready(Ok(done))
    }

    /// [`poll_io`](Self::poll_io) for an operation that needs the I/O object mutably, as
    /// `std::io::Read` and `Write` do; it never clears the readiness early (what a short
    /// transfer means depends on `T`).
    #[inline]
    pub fn poll_io_mut<R>(
        &mut self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let Async { source, io, .. } = self;
        let Some(io) = io.as_mut() else {
            unreachable!("Async always holds its I/O object");
        };
        drive(source, cx, interest, || op(io)).map_ok(|(done, _)| done)
    }

    /// Forgets the readiness that a short stream transfer used up; a drained read side is also
    /// queued for the driver's re-check (see [`poll_io`](Self::poll_io)).
    #[inline]
    fn clear_exhausted(&self, event: ReadyEvent, interest: Interest) {
        if self.source.clear_readiness(event) && interest == Interest::Read {
            self.reactor.recheck_later(self.fd, self.key);
        }
    }

    /// Ready when the reactor last saw the source ready for `interest`; parks the task until
    /// then. The returned event goes back to [`clear_readiness`](Self::clear_readiness) if the
    /// operation then finds it stale.
    #[inline]
    pub fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<ReadyEvent>> {
        self.source.poll_ready(cx, interest)
    }

    /// Ready when the reactor last saw the source readable; parks the task until then.
    #[inline]
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.poll_ready(cx, Interest::Read)
    }

    /// Ready when the reactor last saw the source writable; parks the task until then.
    #[inline]
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyEvent>> {
        self.poll_ready(cx, Interest::Write)
    }

    /// Forgets the read readiness in `event` after a read that came back *short* (fewer bytes
    /// than asked for), which on a stream socket means the receive queue is empty, and queues
    /// the source for the driver's re-check (see [`poll_io`](Self::poll_io), which does this
    /// itself when told).
    #[inline]
    pub fn clear_drained(&self, event: ReadyEvent) {
        self.clear_exhausted(event, Interest::Read);
    }

    /// Forgets the readiness that `event` reported: call it when an operation returned
    /// `WouldBlock`. Readiness set by a newer event is kept.
    #[inline]
    pub fn clear_readiness(&self, event: ReadyEvent) {
        self.source.clear_readiness(event);
    }

    /// Runs the non-blocking `op` once the source is readable, waiting again while it returns
    /// `WouldBlock`: [`poll_io`](Self::poll_io) for an operation that tells nothing about what
    /// is left to read.
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(cx, Interest::Read, op, |_| false)
    }

    /// Runs the non-blocking `op` once the source is writable, waiting again while it returns
    /// `WouldBlock`.
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(cx, Interest::Write, op, |_| false)
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
        poll_fn(|cx| self.poll_ready(cx, Interest::Read).map_ok(drop)).await
    }

    /// Waits until the source is writable.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(cx, Interest::Write).map_ok(drop)).await
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

/// Any non-blocking `std::io::Read` (a pipe, a Unix socket, a device) is an `AsyncRead` once
/// inside `Async`: each read runs through the funnel, parking on `WouldBlock`.
impl<T: AsFd + io::Read + Unpin> futures_io::AsyncRead for Async<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io_mut(cx, Interest::Read, |io| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io_mut(cx, Interest::Read, |io| io.read_vectored(bufs))
    }
}

/// Any non-blocking `std::io::Write` is an `AsyncWrite` once inside `Async`. `close` only
/// flushes: what closing means (a shutdown, a close) is `T`'s business, done by dropping it.
impl<T: AsFd + io::Write + Unpin> futures_io::AsyncWrite for Async<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io_mut(cx, Interest::Write, |io| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_io_mut(cx, Interest::Write, |io| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_io_mut(cx, Interest::Write, |io| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// The loop of the I/O funnel ([`Async::poll_io`]): wait for readiness, run `op`, and on
/// `WouldBlock` forget the stale readiness and wait again (`Interrupted` retries at once).
/// Returns `op`'s success with the readiness event it ran under.
#[inline(always)]
fn drive<R>(
    source: &ScheduledIo,
    cx: &mut Context<'_>,
    interest: Interest,
    mut op: impl FnMut() -> io::Result<R>,
) -> Poll<io::Result<(R, ReadyEvent)>> {
    loop {
        let event = ready!(source.poll_ready(cx, interest))?;
        match op() {
            Ok(done) => return Poll::Ready(Ok((done, event))),
            // The cached readiness was stale: forget it, then park (or retry on a newer edge).
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                source.clear_readiness(event);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Poll::Ready(Err(err)),
        }
    }
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish()
    }
}

/// The source has data to read, a pending connection, EOF, or an error.
pub(crate) const READABLE: usize = 1 << 0;
/// The source has room to write, or an error.
pub(crate) const WRITABLE: usize = 1 << 1;
/// The runtime shut down: every wait on this source now fails.
const SHUTDOWN: usize = 1 << 2;
/// The tick lives above the readiness bits.
const TICK_SHIFT: u32 = 16;
/// The readiness bits of the word.
const READY_MASK: usize = (1 << TICK_SHIFT) - 1;

/// Proof that a source was ready in one interest at one tick; hand it back to
/// [`Async::clear_readiness`] after `WouldBlock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyEvent {
    /// The reactor tick at which the readiness was last set (its low 32 bits: enough to tell
    /// apart any two events that one read can straddle).
    tick: u32,
    /// The readiness bits this event stands for.
    ready: u8,
}

/// The error of any wait on a source whose runtime is gone.
#[cold]
fn shutdown_error() -> io::Error {
    io::Error::other("the ripple runtime that drove this I/O object has shut down")
}

/// Wakes `waker`. A waker that panics is contained, so one misbehaving task cannot take the
/// reactor down.
#[inline]
fn wake(waker: Waker) {
    let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
}

/// One registered source: its readiness word and its waiting tasks.
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    /// The source's slot in the reactor's registry. Fixed: a deleted source keeps its slot and
    /// its memory, and a later registration reuses both (see `Reactor::add`).
    pub(crate) index: usize,
    /// Bumped each time the slot is reused, so that an event meant for an earlier registration
    /// is told apart from the current one's (see [`ScheduledIo::key`]).
    generation: AtomicUsize,
    /// `READABLE | WRITABLE | SHUTDOWN` in the low bits, the tick of the last event above
    /// `TICK_SHIFT`. Set by the reactor, cleared by tasks, always with read-modify-writes.
    readiness: AtomicUsize,
    /// The task parked to read, one slot per interest so that a reader task and a writer task
    /// can share the source. No lock: see [`WakerSlot`].
    reader: WakerSlot,
    /// The task parked to write.
    writer: WakerSlot,
    /// Further tasks waiting through a shared reference while another task holds the slot of
    /// their interest (say, two tasks accepting on one listener). Rare, so they wait here,
    /// behind a lock, and are woken with the slot's task.
    others: Mutex<Vec<(Interest, Waker)>>,
    /// Whether `others` may hold wakers, so that an event looks at the lock only then. Written
    /// only with `others` locked; read without it (see `wake_others` for why that is enough).
    has_others: AtomicBool,
    /// Whether to trace parking and clearing (the runtime's `RIPPLE_TRACE`). Fixed at creation.
    trace: bool,
}

impl ScheduledIo {
    /// A source that is assumed ready both ways: a new socket's first read or write just tries,
    /// and waits only if the kernel answers `WouldBlock` (which then clears the bit).
    pub(crate) fn new(index: usize, trace: bool) -> Self {
        ScheduledIo {
            index,
            generation: AtomicUsize::new(0),
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            reader: WakerSlot::new(),
            writer: WakerSlot::new(),
            others: Mutex::new(Vec::new()),
            has_others: AtomicBool::new(false),
            trace,
        }
    }

    /// The slot of `interest`.
    fn slot(&self, interest: Interest) -> &WakerSlot {
        match interest {
            Interest::Read => &self.reader,
            Interest::Write => &self.writer,
        }
    }

    /// The key of the current registration, as epoll reports it with each event (see
    /// `key.rs`); `None` if the source's address does not leave room for the generation.
    pub(crate) fn key(&self) -> Option<SourceKey> {
        let address = self as *const ScheduledIo as usize;
        SourceKey::new(address, self.generation.load(Ordering::Acquire))
    }

    /// Whether `key` was made by the current registration (and not an earlier one of this
    /// memory).
    #[inline]
    pub(crate) fn has_generation_of(&self, key: SourceKey) -> bool {
        key.has_generation(self.generation.load(Ordering::Acquire))
    }

    /// Ends the current registration: from now on its key names nothing.
    pub(crate) fn retire(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Gets a retired source ready for a new registration: the optimistic readiness of a new
    /// source. Its waiters were dropped when it was deleted.
    pub(crate) fn reuse(&self) {
        self.readiness.store(READABLE | WRITABLE, Ordering::Release);
    }

    /// Records an event (`ready` bits at reactor tick `tick`) and wakes the tasks it releases.
    ///
    /// The caller holds no lock: waking a task, or dropping the last reference to one, may run
    /// code that adds or deletes sources.
    #[inline]
    pub(crate) fn set_readiness(&self, tick: usize, ready: usize) {
        let tick = (tick << TICK_SHIFT) & !READY_MASK;
        let _ = self
            .readiness
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some((cur & READY_MASK) | ready | tick)
            });
        crate::loom::seqcst_order_for_loom();
        self.wake(ready);
    }

    /// Marks the source dead and wakes every waiter; their next poll returns an error. The
    /// caller holds no lock, as for `set_readiness`.
    pub(crate) fn shutdown(&self) {
        self.readiness.fetch_or(SHUTDOWN, Ordering::SeqCst);
        self.wake(READABLE | WRITABLE);
    }

    /// Drops every parked waker without waking it: the source was deleted and its I/O object
    /// is gone. The reactor keeps the source's memory for a later registration (see
    /// `Reactor::add`), and a waker left in it would keep its task, and so the runtime, alive.
    /// The caller holds no lock: dropping the last reference to a task runs its destructors.
    pub(crate) fn forget_waiters(&self) {
        for slot in [&self.reader, &self.writer] {
            drop(slot.take());
        }
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = std::mem::take(&mut *others);
        self.has_others.store(false, Ordering::SeqCst);
        drop(others);
        drop(dropped);
    }

    /// Wakes the tasks waiting for `ready`. The caller has just published `ready` in the
    /// readiness word.
    #[inline]
    fn wake(&self, ready: usize) {
        if ready & READABLE != 0 {
            if let Some(waker) = self.reader.take() {
                wake(waker);
            }
        }
        if ready & WRITABLE != 0 {
            if let Some(waker) = self.writer.take() {
                wake(waker);
            }
        }
        // A task that parks in `others` sets the flag and then checks readiness; here readiness
        // was set and then the flag is read, all four in one total (SeqCst) order. So either
        // this sees the flag, or that task sees the readiness and does not wait. (The slots'
        // `take` relies on the same argument with the slot's state in place of the flag.)
        if self.has_others.load(Ordering::SeqCst) {
            self.wake_others(ready);
        }
    }

    /// The rare path of `wake`: wakes the waiters in `others` that `ready` releases, after
    /// letting go of their lock (the wakers move out; none is dropped under it).
    #[cold]
    fn wake_others(&self, ready: usize) {
        let mut released = Vec::new();
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let mut i = 0;
        while i < others.len() {
            if ready & others[i].0.mask() != 0 {
                released.push(others.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        if others.is_empty() {
            self.has_others.store(false, Ordering::SeqCst);
        }
        drop(others);
        released.into_iter().for_each(wake);
    }

    /// Ready if the source is ready in `interest`; otherwise parks the task until it is.
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<ReadyEvent>> {
        // Fast path: one atomic load when the source is already known to be ready.
        let ready = match self.check(interest) {
            Some(ready) => ready,
            None => ready!(self.register_waker(cx, interest)),
        };
        if ready.is_ok() {
            // A task that has done its share of I/O for this poll yields, even if the source
            // is ready.
            ready!(coop::consume_budget(cx));
        }
        Poll::Ready(ready)
    }

    /// The slow path of `poll_ready`: store the task's waker, then look once more.
    #[inline]
    fn register_waker(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
    ) -> Poll<io::Result<ReadyEvent>> {
        if self.slot(interest).register(cx.waker()) == Registered::Occupied {
            self.park_with_others(cx.waker(), interest);
        }
        crate::loom::seqcst_order_for_loom();
        // Check again: an event that landed after the first check has either set the bit (seen
        // now) or will take the waker we just stored (the slot's state orders the two).
        match self.check_seqcst(interest) {
            Some(ready) => Poll::Ready(ready),
            None => {
                if self.trace {
                    self.trace_park(interest);
                }
                Poll::Pending
            }
        }
    }

    /// Parks `waker` in `others`, once, while another task holds the slot of `interest`.
    #[cold]
    fn park_with_others(&self, waker: &Waker, interest: Interest) {
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let known = others
            .iter()
            .any(|(d, w)| *d == interest && w.will_wake(waker));
        if !known {
            others.push((interest, waker.clone()));
        }
        self.has_others.store(true, Ordering::SeqCst);
    }

    /// `check` with the load in the total order of `wake` and `WakerSlot::take` (see there).
    #[inline]
    fn check_seqcst(&self, interest: Interest) -> Option<io::Result<ReadyEvent>> {
        Self::ready_in(self.readiness.load(Ordering::SeqCst), interest)
    }

    /// The ready event for `interest`, if the bit is set (or an error after shutdown).
    #[inline]
    fn check(&self, interest: Interest) -> Option<io::Result<ReadyEvent>> {
        Self::ready_in(self.readiness.load(Ordering::Acquire), interest)
    }

    /// The ready event for `interest` in the readiness word `cur`.
    #[inline]
    fn ready_in(cur: usize, interest: Interest) -> Option<io::Result<ReadyEvent>> {
        // One test for the common answers (ready, or not ready and alive), then sort them out.
        if cur & (interest.mask() | SHUTDOWN) == 0 {
            return None;
        }
        if cur & SHUTDOWN != 0 {
            return Some(Err(shutdown_error()));
        }
        Some(Ok(ReadyEvent {
            tick: (cur >> TICK_SHIFT) as u32,
            ready: (cur & interest.mask()) as u8,
        }))
    }

    /// Forgets the readiness in `event`, unless a newer event arrived since it was observed.
    /// Returns whether it did.
    #[inline]
    pub(crate) fn clear_readiness(&self, event: ReadyEvent) -> bool {
        self.readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                // A bit that is already clear "clears" again and says so: the caller may then
                // queue a drained source twice, which costs one more entry in one `poll(2)`.
                // Checking would cost every read a few instructions.
                ((cur >> TICK_SHIFT) as u32 == event.tick)
                    .then_some(cur & !usize::from(event.ready))
            })
            .is_ok()
    }

    /// Prints that a task parks here. Out of line, so the hot path only tests the flag.
    #[cold]
    #[inline(never)]
    fn trace_park(&self, interest: Interest) {
        trace(format_args!(
            "source {} not ready to {}: the task parks its waker there",
            self.index,
            interest.verb()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_task::noop_waker;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::testing::Count;

    #[test]
    fn clear_with_a_stale_tick_keeps_the_newer_edge() {
        let io = ScheduledIo::new(0, false);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok(first)) = io.poll_ready(&mut cx, Interest::Read) else {
            panic!("a new source starts out ready");
        };
        // An edge arrives while the task is reading; the task then sees WouldBlock.
        io.set_readiness(1, READABLE);
        io.clear_readiness(first);
        assert!(io.poll_ready(&mut cx, Interest::Read).is_ready());
        // With no new edge, the clear holds and the task parks.
        let Poll::Ready(Ok(second)) = io.poll_ready(&mut cx, Interest::Read) else {
            unreachable!()
        };
        io.clear_readiness(second);
        assert!(io.poll_ready(&mut cx, Interest::Read).is_pending());
        // Writability is tracked on its own.
        assert!(io.poll_ready(&mut cx, Interest::Write).is_ready());
    }

    #[test]
    fn an_event_releases_only_the_waiter_of_its_direction() {
        let io = ScheduledIo::new(0, false);
        let (reader, writer) = (Arc::new(Count::default()), Arc::new(Count::default()));
        for (direction, count) in [(Interest::Read, &reader), (Interest::Write, &writer)] {
            let waker = futures_task::waker(count.clone());
            let mut cx = Context::from_waker(&waker);
            let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, direction) else {
                unreachable!()
            };
            io.clear_readiness(ev);
            assert!(io.poll_ready(&mut cx, direction).is_pending());
        }
        io.set_readiness(1, WRITABLE);
        assert_eq!((reader.get(), writer.get()), (0, 1));
        let waker = futures_task::waker(reader.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(io.poll_ready(&mut cx, Interest::Read).is_pending());
        io.shutdown();
        assert_eq!(reader.get(), 1, "shutdown releases the reader too");
        assert!(matches!(
            io.poll_ready(&mut cx, Interest::Read),
            Poll::Ready(Err(_))
        ));
    }

    #[test]
    fn a_second_task_on_one_direction_waits_in_others_and_is_woken_too() {
        let io = ScheduledIo::new(0, false);
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let Poll::Ready(Ok(ev)) =
            io.poll_ready(&mut Context::from_waker(&noop_waker()), Interest::Read)
        else {
            unreachable!()
        };
        io.clear_readiness(ev);
        for count in [&first, &second] {
            let waker = futures_task::waker(count.clone());
            assert!(io
                .poll_ready(&mut Context::from_waker(&waker), Interest::Read)
                .is_pending());
        }
        io.set_readiness(1, READABLE);
        assert_eq!((first.get(), second.get()), (1, 1));
    }

    /// The reactor sets readiness and takes the waker on one thread while a task parks on
    /// another, at the same moment, round after round. Each round has exactly one event, so a
    /// lost wake cannot be covered up by the next one: a park must end in a wake, or the park
    /// must find the source ready.
    #[test]
    fn a_park_racing_an_event_is_never_lost() {
        let io = Arc::new(ScheduledIo::new(0, false));
        let count = Arc::new(Count::default());
        let (go, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let rounds = 5_000;
        let reactor = {
            let (io, go, done) = (io.clone(), go.clone(), done.clone());
            std::thread::spawn(move || {
                for round in 1..=rounds {
                    while go.load(Ordering::SeqCst) < round {
                        std::thread::yield_now();
                    }
                    io.set_readiness(round, READABLE);
                    done.store(round, Ordering::SeqCst);
                }
            })
        };
        let waker = futures_task::waker(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut parked = 0;
        for round in 1..=rounds {
            if let Some(Ok(event)) = io.check(Interest::Read) {
                io.clear_readiness(event);
            }
            let before = count.get();
            go.store(round, Ordering::SeqCst);
            if io.poll_ready(&mut cx, Interest::Read).is_pending() {
                parked += 1;
                let deadline = Instant::now() + Duration::from_secs(5);
                while count.get() == before {
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: the wake was lost"
                    );
                    std::thread::yield_now();
                }
            }
            while done.load(Ordering::SeqCst) < round {
                std::thread::yield_now();
            }
        }
        reactor.join().unwrap();
        assert!(parked > 0, "no round parked, so the race was never run");
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::thread;
    use std::sync::Arc;

    use crate::testing::Count;

    /// Task A is parked on a source; the reactor sets readiness and wakes A, which runs at once
    /// and reads the data (clearing the readiness); meanwhile task B parks on the same source.
    /// A must be woken by the event, and B must not be left where no wake can reach it.
    #[test]
    fn loom_a_task_parking_while_the_reactor_wakes_another_is_never_lost() {
        crate::loom::model(|| {
            let io = Arc::new(ScheduledIo::new(0, false));
            let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
            let wake_a = futures_task::waker(a.clone());
            let mut cx_a = Context::from_waker(&wake_a);
            // A new source starts out ready: A reads, finds nothing, clears, parks.
            if let Poll::Ready(Ok(event)) = io.poll_ready(&mut cx_a, Interest::Read) {
                io.clear_readiness(event);
            }
            assert!(io.poll_ready(&mut cx_a, Interest::Read).is_pending());

            let reactor = {
                let (io, a) = (io.clone(), a.clone());
                thread::spawn(move || {
                    io.set_readiness(1, READABLE);
                    if a.get() > 0 {
                        // A ran and read the data.
                        if let Some(Ok(event)) = io.check(Interest::Read) {
                            io.clear_readiness(event);
                        }
                    }
                })
            };
            let wake_b = futures_task::waker(b.clone());
            let b_polled = io.poll_ready(&mut Context::from_waker(&wake_b), Interest::Read);
            reactor.join().unwrap();

            assert!(a.get() >= 1, "the event did not wake A");
            // B either went on, or a later event reaches it.
            io.set_readiness(2, READABLE);
            assert!(
                b_polled.is_ready() || b.get() >= 1,
                "B parked where no wake reaches it"
            );
        });
    }
}
