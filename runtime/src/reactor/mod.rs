//! The reactor: one epoll instance that tells the runtime which sockets became ready.
//!
//! This is the seeds' *Poller thread*, folded into the runtime's own thread. Every I/O source is
//! added to epoll once, edge-triggered, for both directions, and stays there until it is dropped:
//! there is no `epoll_ctl` per read or write. When a task's read returns `WouldBlock`, the task
//! stores its waker in the source's `ScheduledIo` (`scheduled_io.rs`) and returns `Pending`. When
//! the runtime has nothing left to run, it calls `Reactor::wait`; each event sets a readiness bit
//! and wakes the parked task, which the executor then polls again.
//!
//! Each event carries the address of its source's `ScheduledIo` and a generation, so dispatching
//! it takes no lock and no lookup. The reactor never frees a source: a deleted one waits in its
//! registry to be reused by the next registration, under a new generation. So an event that was
//! on its way when its socket closed (or one from a registration that outlived its `delete`)
//! always lands on valid memory, and its old generation tells it apart from the source's new
//! owner, even when that owner got the same fd number.
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

mod async_io;
mod scheduled_io;

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

use crate::executor::trace::trace;

pub use async_io::Async;
pub use scheduled_io::ReadyEvent;
pub(crate) use scheduled_io::SourceKey;
use scheduled_io::{ScheduledIo, READABLE, WRITABLE};

/// One epoll instance and the sources registered in it.
#[derive(Debug)]
pub(crate) struct Reactor {
    /// The `polling` poller (epoll on Linux).
    poller: Poller,
    /// Every source this reactor has allocated. Locked when a source is added or deleted, and
    /// at shutdown; never per event.
    registry: Mutex<Registry>,
    /// Bumped for each `wait`; stamps readiness so that a clear never erases a newer edge.
    tick: AtomicUsize,
    /// Sources whose read readiness a short read cleared since the last wait, on threads other
    /// than the runtime's (which keeps its own list, `Core::drained`, with no lock).
    drained: Mutex<Drained>,
    /// Whether `drained` may hold entries, so that a wait takes its lock only then.
    has_drained: AtomicBool,
    /// Whether to print a trace line per event (the runtime's `RIPPLE_TRACE`).
    trace: bool,
}

/// The sources of one reactor.
///
/// # Invariant
/// A source, once allocated, stays in `sources` (so at the same address) until the reactor is
/// dropped. Every key that epoll or the drained list holds is the address of one of them, which
/// is what makes `Reactor::source` sound. The memory this keeps is bounded by the most sources
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
/// One `poll(2)` over all such sources finds the ones whose peer has shut down.
///
/// # Invariant
/// `pollfds[i]` and `keys[i]` describe one source: an fd that was registered under that key
/// (see [`ScheduledIo::key`]) when the entry was made. It may have been closed (or its number
/// reused) since: then `poll` reports `POLLNVAL`, or the key's generation is no longer the
/// source's and the result is ignored.
#[derive(Default)]
pub(crate) struct Drained {
    /// `poll`'s argument, built as sources are drained.
    pollfds: Vec<libc::pollfd>,
    /// The key of each entry of `pollfds`.
    keys: Vec<SourceKey>,
}

impl Drained {
    /// Adds the source registered as `fd` under `key`.
    #[inline]
    pub(crate) fn push(&mut self, fd: RawFd, key: SourceKey) {
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
    fn clear(&mut self) {
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

impl Reactor {
    /// Creates the epoll instance.
    pub(crate) fn new(trace: bool) -> io::Result<Self> {
        Ok(Reactor {
            poller: Poller::new()?,
            registry: Mutex::new(Registry::default()),
            tick: AtomicUsize::new(0),
            drained: Mutex::new(Drained::default()),
            has_drained: AtomicBool::new(false),
            trace,
        })
    }

    /// Adds `fd` to epoll, edge-triggered for both directions, and returns its source and the
    /// source's key (for [`Drained::push`]).
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
    /// The source's memory is kept for the next registration (see [`Registry`]): the runtime's
    /// thread may be dispatching an event for it right now, and more may come if epoll still
    /// holds the registration. That happens when `fd` is `None`: the caller no longer has the fd
    /// it added (see `Async`'s `Drop`), and the registration stays until its file is closed.
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
    fn source(&self, key: SourceKey) -> Option<&ScheduledIo> {
        // SAFETY: a `SourceKey` comes from `ScheduledIo::key` (or back from epoll, which was
        // given one), so its address is that of a source in this reactor's registry, which
        // keeps every source it ever allocated, at the same address, for as long as the reactor
        // lives; `&self` proves it does. (Keys reach only their own reactor: an `Async` and the
        // drained lists belong to one runtime.)
        let io = unsafe { &*key.address() };
        // A stale key: the source was deleted, or deleted and reused by a newer registration.
        io.has_generation_of(key).then_some(io)
    }

    /// Waits for events (at most `timeout`; `None` blocks until one arrives) and wakes the tasks
    /// parked on the sources that became ready. Returns the number of events.
    pub(crate) fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        drained: &mut Drained,
    ) -> io::Result<usize> {
        // Sources found closed by the re-check are work to do now: do not block. The re-check
        // and the epoll batch each get a tick of their own, so that a clear based on one cannot
        // erase readiness set by the other.
        let timeout = match self.recheck_drained(self.next_tick(), drained) {
            0 => timeout,
            _ => Some(Duration::ZERO),
        };
        events.clear();
        // `polling`'s wait costs five syscalls even when it must not block (it re-arms a
        // timerfd and its eventfd around `epoll_wait`). A busy runtime looks every 61 polls, so
        // first ask the epoll instance itself, with one `poll(2)`, whether anything is ready.
        if timeout != Some(Duration::ZERO) || self.anything_ready() {
            self.poller.wait(events, timeout)?;
            if self.trace {
                trace_wait(timeout, events.len());
            }
        }
        let tick = self.next_tick();
        let mut count = 0;
        for event in events.iter() {
            count += 1;
            // SAFETY: epoll reports only keys this reactor gave it (`add`), and `polling` drops
            // its own; the runtime is not used across a `fork`.
            let key = unsafe { SourceKey::from_epoll(event.key) };
            let Some(io) = self.source(key) else {
                if self.trace {
                    trace_stale(key);
                }
                continue;
            };
            // `polling` reports hang-up and error as both readable and writable, so both
            // directions wake and see the error from their next read or write.
            let ready = (if event.readable { READABLE } else { 0 })
                | (if event.writable { WRITABLE } else { 0 });
            if self.trace {
                trace_event(io.index, ready, "");
            }
            io.set_readiness(tick, ready);
        }
        Ok(count)
    }

    /// Whether the epoll instance has events to report (or `poll` failed, in which case only a
    /// real wait can tell). An epoll fd is itself pollable: readable while its ready list is not
    /// empty, which includes a pending `notify`.
    fn anything_ready(&self) -> bool {
        let mut pollfd = libc::pollfd {
            fd: self.poller.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pollfd` is one valid, exclusively borrowed entry, and a zero timeout makes the
        // call return at once; the poller's fd is open for as long as `self` lives.
        unsafe { libc::poll(&mut pollfd, 1, 0) != 0 }
    }

    /// A fresh tick to stamp readiness with.
    fn next_tick(&self) -> usize {
        self.tick.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// Queues a source for a re-check before the next wait, from a thread that does not run
    /// the runtime (the runtime's own thread uses its lock-free list, passed to `wait`).
    pub(crate) fn recheck_later(&self, fd: RawFd, key: SourceKey) {
        let mut drained = self.drained.lock().unwrap_or_else(PoisonError::into_inner);
        drained.push(fd, key);
        self.has_drained.store(true, Ordering::Release);
        drop(drained);
        // The runtime may be asleep in epoll with nothing else to wake it: the re-check must
        // run now, or a FIN that came with the data would leave this reader parked.
        self.notify();
    }

    /// Marks readable (stamped with `tick`) every drained source whose peer `poll(2)` finds shut
    /// down (or hung up, or failed), waking their readers, and empties
    /// `local` (the runtime thread's list). Returns how many it found.
    fn recheck_drained(&self, tick: usize, local: &mut Drained) -> usize {
        if self.has_drained.load(Ordering::Acquire) {
            let mut remote = self.drained.lock().unwrap_or_else(PoisonError::into_inner);
            local.append(&mut remote);
            self.has_drained.store(false, Ordering::Release);
        }
        if local.is_empty() {
            return 0;
        }
        let pollfds = &mut local.pollfds;
        // SAFETY: `pollfds` is a valid, exclusively borrowed array of `pollfds.len()` entries,
        // and a zero timeout makes the call return at once. Closed fds only yield POLLNVAL.
        let polled = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 0) };
        let mut found = 0;
        if polled != 0 {
            for (pollfd, &key) in pollfds.iter().zip(local.keys.iter()) {
                // If poll itself failed, treat every source as readable: a spurious wake costs
                // one read, a missed one would hang its task.
                let readable = polled < 0 || pollfd.revents & !libc::POLLNVAL != 0;
                if let Some(io) = self.source(key).filter(|_| readable) {
                    if self.trace {
                        trace_event(io.index, READABLE, " (peer shut down, found by poll)");
                    }
                    io.set_readiness(tick, READABLE);
                    found += 1;
                }
            }
        }
        local.clear();
        found
    }

    /// Wakes a thread blocked in `Reactor::wait`. Cheap when already notified.
    pub(crate) fn notify(&self) {
        // An error here means the eventfd is full, which already guarantees a wake-up.
        let _ = self.poller.notify();
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

/// Prints the trace line of one epoll wait. Out of line, so the hot path only tests the flag.
#[cold]
#[inline(never)]
fn trace_wait(timeout: Option<Duration>, n: usize) {
    let s = if n == 1 { "" } else { "s" };
    let timeout = match timeout {
        None => "none".to_string(),
        Some(t) => format!("{}ms", t.as_millis()),
    };
    trace(format_args!(
        "epoll wait (timeout {timeout}) -> {n} event{s}"
    ));
}

/// Prints that an event came for a registration that is no more.
#[cold]
#[inline(never)]
fn trace_stale(key: SourceKey) {
    trace(format_args!(
        "event for a deleted registration (key {:#x}) ignored",
        key.get()
    ));
}

/// Prints the trace line of one event: the source's slot and which ways it became ready.
#[cold]
#[inline(never)]
fn trace_event(index: usize, ready: usize, why: &str) {
    let read = if ready & READABLE != 0 { " read" } else { "" };
    let write = if ready & WRITABLE != 0 { " write" } else { "" };
    trace(format_args!("source {index} ready:{read}{write}{why}"));
}

#[cfg(test)]
mod tests {
    use super::scheduled_io::Direction;
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    #[test]
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
    fn deleting_a_source_drops_the_wakers_parked_in_it() -> io::Result<()> {
        let reactor = Reactor::new(false)?;
        let (a, _peer) = UnixStream::pair()?;
        // SAFETY: `a` outlives its `delete`.
        let (io, _) = unsafe { reactor.add(a.as_fd())? };
        let task = Arc::new(Parked);
        let waker = futures_task::waker(task.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        // A new source starts out readable: forget that, then park.
        if let std::task::Poll::Ready(Ok(event)) = io.poll_ready(&mut cx, Direction::Read) {
            io.clear_readiness(event);
        }
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
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
