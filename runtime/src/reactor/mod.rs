//! The reactor: one epoll instance and the sources registered in it.
//!
//! This is the seeds' *Poller*, seen from the sockets' side. Every I/O source is added to epoll
//! once, edge-triggered, for both directions, and stays there until it is dropped: there is no
//! `epoll_ctl` per read or write. Each source has a readiness word and a slot for the task
//! parked on it (`ScheduledIo`, in `source.rs`). When a task's read returns `WouldBlock`, the
//! task stores its waker there and returns `Pending`; when the driver (`driver/mod.rs`) waits in
//! epoll and an event comes back, it sets the readiness bit and wakes the task.
//!
//! Each event carries the address of its source and a generation (`key.rs`), so dispatching it
//! takes no lock and no lookup. The reactor never frees a source: a deleted one waits in its
//! registry to be reused by the next registration, under a new generation. So an event that was
//! on its way when its socket closed (or one from a registration that outlived its `delete`)
//! always lands on valid memory, and its old generation tells it apart from the source's new
//! owner, even when that owner got the same fd number.
//!
//! The reactor knows nothing about the scheduler or the timers: a thread that runs tasks makes
//! it current with `Local::enter`, which is how [`Async::new`] finds it.
//!
//! Users reach the reactor through [`Async`], which wraps any non-blocking file descriptor:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//! use ripple_runtime::reactor::Async;
//!
//! ripple_runtime::block_on(async {
//!     let (a, b) = UnixStream::pair()?;
//!     a.set_nonblocking(true)?;
//!     b.set_nonblocking(true)?;
//!     let (a, b) = (Async::new(a)?, Async::new(b)?);
//!     b.write_with(|mut s| s.write(b"ping")).await?;
//!     let mut buf = [0; 4];
//!     let n = a.read_with(|mut s| s.read(&mut buf)).await?;
//!     assert_eq!(&buf[..n], b"ping");
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```

mod epoll;
mod key;
mod source;
mod waker_slot;

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use polling::{Event, PollMode, Poller};

use crate::context::Scoped;
use crate::trace::trace;

pub(crate) use epoll::Events;
pub(crate) use key::SourceKey;
pub use source::{Async, Interest, ReadyEvent};
pub(crate) use source::{ScheduledIo, READABLE, WRITABLE};

/// One epoll instance and the sources registered in it.
#[derive(Debug)]
pub(crate) struct Reactor {
    /// The `polling` poller (epoll on Linux): sources are added to it here, and the driver
    /// waits on its epoll instance (`epoll.rs`).
    ///
    /// # Invariant
    /// Nothing calls `poller.wait` or `poller.notify`: the only wait is [`Reactor::wait`], whose
    /// wake-up is `wake`. (`polling`'s wait would re-arm its own fds and could consume the edge
    /// of a `wake` meant for the driver.)
    poller: Poller,
    /// The eventfd that interrupts the driver's wait.
    wake: epoll::Wake,
    /// The timerfd that ends the driver's wait when a timer's deadline comes.
    alarm: epoll::Alarm,
    /// Every source this reactor has allocated. Locked when a source is added or deleted, and
    /// at shutdown; never per event.
    registry: Mutex<Registry>,
    /// Sources that a short read drained on a thread that does not drive this reactor (one that
    /// does keeps its own list in its [`Local`], with no lock), for the driver to re-check.
    drained: Mutex<Drained>,
    /// Whether `drained` may hold entries, so that a park takes its lock only then.
    has_drained: AtomicBool,
    /// Whether to print a trace line per registration (the runtime's `RIPPLE_TRACE`).
    pub(crate) trace: bool,
}

/// The sources of one reactor.
///
/// # Invariant
/// A source, once allocated, stays in `sources` (so at the same address) until the reactor is
/// dropped. Every key that epoll or a drained list holds is the address of one of them, which
/// is what makes [`Reactor::source`] sound. The memory this keeps is bounded by the most sources
/// ever registered at once.
#[derive(Debug, Default)]
struct Registry {
    /// Every source allocated so far, by slot.
    sources: Vec<Arc<ScheduledIo>>,
    /// Whether the source in each slot is registered now.
    live: Vec<bool>,
    /// Slots whose source was deleted, reused last-deleted-first.
    free: Vec<usize>,
}

/// The sources to re-check before the next wait, because a short read cleared their readiness.
///
/// `polling` does not report `EPOLLRDHUP`, so when a peer's data and its FIN arrive in one
/// edge, the short read that returns the data is the last word epoll says about the socket.
/// One `poll(2)` over all such sources, before the driver next waits, finds the ones whose peer
/// has shut down.
///
/// # Invariant
/// `pollfds[i]` and `keys[i]` describe one source: an fd that was registered under that key
/// when the entry was made. It may have been closed (or its number reused) since: then `poll`
/// reports `POLLNVAL`, or the key's generation is no longer the source's and the result is
/// ignored.
#[derive(Default)]
pub(crate) struct Drained {
    /// `poll`'s argument, built as sources are drained.
    pub(crate) pollfds: Vec<libc::pollfd>,
    /// The key of each entry of `pollfds`.
    pub(crate) keys: Vec<SourceKey>,
}

impl Drained {
    /// Adds the source registered as `fd` under `key`.
    #[inline]
    fn push(&mut self, fd: RawFd, key: SourceKey) {
        // Only a hang-up can hide: new data after the short read raises a fresh edge that epoll
        // reports anyway, so asking for POLLIN here would only report it twice.
        self.pollfds.push(libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        });
        self.keys.push(key);
    }

    /// Whether no source waits for a re-check.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Moves every entry of `other` here.
    fn append(&mut self, other: &mut Drained) {
        self.pollfds.append(&mut other.pollfds);
        self.keys.append(&mut other.keys);
    }

    /// Forgets every entry, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.pollfds.clear();
        self.keys.clear();
    }
}

impl fmt::Debug for Drained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drained")
            .field("sources", &self.keys.len())
            .finish()
    }
}

/// What a thread that runs tasks keeps for a reactor: the reactor itself, so that new I/O
/// objects find it, and the sources its reads drained, so that marking one costs no lock.
#[derive(Debug)]
pub(crate) struct Local {
    /// The reactor.
    reactor: Arc<Reactor>,
    /// Sources a short read on this thread drained since this thread's list was last handed to
    /// the driver ([`Local::take_drained`]).
    drained: RefCell<Drained>,
}

thread_local! {
    /// The reactor of the runtime this thread is running, if any.
    static CURRENT: Scoped<Local> = const { Scoped::new() };
}

impl Local {
    /// A thread's part of `reactor`.
    pub(crate) fn new(reactor: Arc<Reactor>) -> Local {
        Local {
            reactor,
            drained: RefCell::new(Drained::default()),
        }
    }

    /// Runs `f` with this reactor as the one that new I/O objects on this thread register with.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        Scoped::set(&CURRENT, self, f)
    }

    /// The reactor current on this thread, if any.
    pub(crate) fn current() -> Option<Arc<Reactor>> {
        Scoped::with(&CURRENT, |local| local.map(|local| local.reactor.clone()))
    }

    /// Hands this thread's drained sources to whichever thread drives the reactor: this thread
    /// is about to sleep without it, and their re-check must not wait for its return.
    pub(crate) fn flush_drained(&self) {
        let mut local = self.drained.borrow_mut();
        if local.is_empty() {
            return;
        }
        let mut remote = self.reactor.lock_drained();
        remote.append(&mut local);
        self.reactor.has_drained.store(true, Ordering::Release);
        drop(remote);
        drop(local);
        self.reactor.notify();
    }

    /// Moves this thread's drained sources, and those other threads queued, into `into`, which
    /// the driver has emptied since its last re-check.
    #[inline]
    pub(crate) fn take_drained(&self, into: &mut Drained) {
        // Swap the buffers rather than copy the entries: `into` is empty, and this thread's list
        // gets its capacity back for the next round.
        std::mem::swap(into, &mut self.drained.borrow_mut());
        if self.reactor.has_drained.load(Ordering::Acquire) {
            self.reactor.take_remote_drained(into);
        }
    }
}

impl Reactor {
    /// Creates the epoll instance.
    pub(crate) fn new(trace: bool) -> io::Result<Self> {
        let poller = Poller::new()?;
        Ok(Reactor {
            wake: epoll::Wake::new(&poller)?,
            alarm: epoll::Alarm::new(&poller)?,
            poller,
            registry: Mutex::new(Registry::default()),
            drained: Mutex::new(Drained::default()),
            has_drained: AtomicBool::new(false),
            trace,
        })
    }

    /// Adds `fd` to epoll, edge-triggered for both directions, and returns its source and the
    /// source's key.
    ///
    /// # Safety
    /// `fd` must stay open until it is removed with [`Reactor::delete`] (`polling`'s contract for
    /// its `add`). Should it not, memory stays safe, and the harm stays with the broken I/O
    /// object: a file closed first leaves epoll by itself, unless another fd keeps it open, and
    /// then its events keep coming under this registration's key. They land on the source (a
    /// wasted wake), or, once the source is deleted and reused, are told apart by their old
    /// generation and ignored. (Were its fd number meanwhile reused by another registered file,
    /// the eventual `delete` would remove that file's registration instead: so do not close it.)
    pub(crate) unsafe fn add(
        &self,
        fd: BorrowedFd<'_>,
    ) -> io::Result<(Arc<ScheduledIo>, SourceKey)> {
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let io = match registry.free.pop() {
            Some(index) => {
                let io = registry.sources[index].clone();
                io.reuse();
                registry.live[index] = true;
                io
            }
            None => {
                let io = Arc::new(ScheduledIo::new(registry.sources.len(), self.trace));
                registry.sources.push(io.clone());
                registry.live.push(true);
                io
            }
        };
        let added = match io.key() {
            // SAFETY: the caller keeps `fd` open until `delete`, as this function's contract
            // says.
            Some(key) => unsafe {
                self.poller
                    .add_with_mode(fd.as_raw_fd(), Event::all(key.get()), PollMode::Edge)
                    .map(|()| key)
            },
            None => Err(io::Error::other(
                "ripple: a source's address does not fit in the 48 bits of an epoll key",
            )),
        };
        let key = match added {
            Ok(key) => key,
            Err(err) => {
                registry.live[io.index] = false;
                registry.free.push(io.index);
                return Err(err);
            }
        };
        if self.trace {
            trace(format_args!(
                "source {} added: fd {}",
                io.index,
                fd.as_raw_fd()
            ));
        }
        Ok((io, key))
    }

    /// Removes `fd` from epoll (if given) and retires its source. Call before closing the fd.
    ///
    /// The source's memory is kept for the next registration (see [`Registry`]): the driver may
    /// be dispatching an event for it right now, and more may come if epoll still holds the
    /// registration. That happens when `fd` is `None`: the caller no longer has the fd it added
    /// (see `Async`'s `Drop`), and the registration stays until its file is closed.
    pub(crate) fn delete(&self, fd: Option<BorrowedFd<'_>>, io: &ScheduledIo) -> io::Result<()> {
        let deleted = fd.map_or(Ok(()), |fd| self.poller.delete(fd));
        // From here on, events under the old key are ignored.
        io.retire();
        // Nobody can wait on a deleted source, and a waker left in it would keep its task (and
        // so this runtime) alive. Dropped with no lock held: it may run a task's destructors.
        // Should one panic, the slot is freed all the same.
        let _ = catch_unwind(AssertUnwindSafe(|| io.forget_waiters()));
        let mut registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if std::mem::replace(&mut registry.live[io.index], false) {
            registry.free.push(io.index);
        }
        drop(registry);
        if self.trace {
            match fd {
                Some(fd) => trace(format_args!(
                    "source {} deleted: fd {}",
                    io.index,
                    fd.as_raw_fd()
                )),
                None => trace(format_args!(
                    "source {} retired; its I/O object changed fds, so epoll keeps the old one",
                    io.index
                )),
            }
        }
        deleted
    }

    /// The source that `key` names, if the key is its current registration's.
    #[inline]
    pub(crate) fn source(&self, key: SourceKey) -> Option<&ScheduledIo> {
        // SAFETY: a `SourceKey` comes from `ScheduledIo::key` (or back from epoll, which was
        // given one), so its address is that of a source in this reactor's registry, which
        // keeps every source it ever allocated, at the same address, for as long as the reactor
        // lives; `&self` proves it does. (Keys reach only their own reactor: an `Async` and the
        // drained lists belong to one runtime.)
        let io = unsafe { &*(key.address() as *const ScheduledIo) };
        // A stale key: the source was deleted, or deleted and reused by a newer registration.
        io.has_generation_of(key).then_some(io)
    }

    /// Queues a drained source for the driver's re-check before its next wait: in the calling
    /// thread's own list if it runs this reactor, elsewhere in the reactor's locked list.
    #[inline]
    pub(crate) fn recheck_later(&self, fd: RawFd, key: SourceKey) {
        Scoped::with(&CURRENT, |local| match local {
            Some(local) if ptr::eq(&*local.reactor, self) => {
                local.drained.borrow_mut().push(fd, key)
            }
            _ => self.recheck_later_remote(fd, key),
        });
    }

    /// `recheck_later` from a thread that does not run this reactor.
    #[cold]
    fn recheck_later_remote(&self, fd: RawFd, key: SourceKey) {
        let mut drained = self.lock_drained();
        drained.push(fd, key);
        self.has_drained.store(true, Ordering::Release);
        drop(drained);
        // The driver may be asleep in epoll with nothing else to wake it: the re-check must
        // run now, or a FIN that came with the data would leave this reader parked.
        self.notify();
    }

    /// Moves the drained sources that other threads queued into `into`.
    #[cold]
    fn take_remote_drained(&self, into: &mut Drained) {
        let mut remote = self.lock_drained();
        into.append(&mut remote);
        self.has_drained.store(false, Ordering::Release);
    }

    /// The list of sources drained on other threads, locked.
    fn lock_drained(&self) -> MutexGuard<'_, Drained> {
        self.drained.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes a thread blocked in epoll on this reactor (or the next one to wait). Cheap when
    /// already notified.
    pub(crate) fn notify(&self) {
        self.wake.notify();
    }

    /// Waits for events at most `timeout` (`None`: no limit; zero: only look), into `events`.
    /// Fails only if epoll itself does.
    #[inline]
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        epoll::wait(&self.poller, &self.wake, events, timeout)
    }

    /// Makes the driver's current or next wait return at `at` (nanoseconds on
    /// `CLOCK_MONOTONIC`), reporting the alarm ([`Events::alarm`]).
    pub(crate) fn set_alarm(&self, at: u64) {
        self.alarm.set(at);
    }

    /// Fails every registered source: the runtime is going away.
    pub(crate) fn shutdown(&self) {
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let live: Vec<_> = (registry.sources.iter().zip(&registry.live))
            .filter(|(_, &live)| live)
            .map(|(io, _)| io.clone())
            .collect();
        drop(registry);
        // Wake with the lock dropped, as everywhere: a woken task may add or delete sources.
        for io in live {
            io.shutdown();
        }
    }
}

/// Wakes a thread blocked in epoll: the waker that the timers use to say that a sleep's
/// deadline is nearer than the one the parked thread is waiting for.
impl futures_task::ArcWake for Reactor {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::source::Interest;
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    #[test]
    #[cfg_attr(miri, ignore = "builds an epoll instance, which Miri cannot run")]
    fn a_deleted_source_is_kept_and_reused_and_its_old_key_names_nothing() -> io::Result<()> {
        let reactor = Reactor::new(false)?;
        let (a, _peer) = UnixStream::pair()?;
        // SAFETY: `a` outlives its `delete`.
        let (io, old_key) = unsafe { reactor.add(a.as_fd())? };
        let kept = Arc::downgrade(&io);
        assert!(reactor.source(old_key).is_some());
        reactor.delete(Some(a.as_fd()), &io)?;
        drop(io);
        assert!(
            kept.upgrade().is_some(),
            "a deleted source must stay allocated: an event may still name it"
        );
        assert!(
            reactor.source(old_key).is_none(),
            "a deleted source's key names nothing"
        );

        // The next registration reuses the memory under a new generation.
        let (b, _peer) = UnixStream::pair()?;
        // SAFETY: `b` outlives its `delete`.
        let (reused, new_key) = unsafe { reactor.add(b.as_fd())? };
        assert!(Arc::ptr_eq(&reused, &kept.upgrade().expect("kept")));
        assert_ne!(new_key, old_key);
        assert!(
            reactor.source(old_key).is_none(),
            "a stale key must not reach the new owner"
        );
        assert!(reactor.source(new_key).is_some());
        reactor.delete(Some(b.as_fd()), &reused)?;
        Ok(())
    }

    /// A waker that does nothing; its `Arc`'s count says who still holds it.
    struct Parked;

    impl futures_task::ArcWake for Parked {
        fn wake_by_ref(_: &Arc<Self>) {}
    }

    #[test]
    #[cfg_attr(miri, ignore = "builds an epoll instance, which Miri cannot run")]
    fn deleting_a_source_drops_the_wakers_parked_in_it() -> io::Result<()> {
        let reactor = Reactor::new(false)?;
        let (a, _peer) = UnixStream::pair()?;
        // SAFETY: `a` outlives its `delete`.
        let (io, _) = unsafe { reactor.add(a.as_fd())? };
        let task = Arc::new(Parked);
        let waker = futures_task::waker(task.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        // A new source starts out readable: forget that, then park.
        if let std::task::Poll::Ready(Ok(event)) = io.poll_ready(&mut cx, Interest::Read) {
            io.clear_readiness(event);
        }
        assert!(io.poll_ready(&mut cx, Interest::Read).is_pending());
        drop(waker);
        assert_eq!(
            Arc::strong_count(&task),
            2,
            "the source holds the parked waker"
        );
        reactor.delete(Some(a.as_fd()), &io)?;
        assert_eq!(
            Arc::strong_count(&task),
            1,
            "a deleted source, kept for reuse, must not keep its last task alive"
        );
        Ok(())
    }
}
