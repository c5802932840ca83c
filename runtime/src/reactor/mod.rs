//! The reactor: one epoll instance that tells the runtime which sockets became ready.
//!
//! This is the seeds' *Poller thread*, folded into the runtime's own thread. Every I/O source is
//! added to epoll once, edge-triggered, for both directions, and stays there until it is dropped:
//! there is no `epoll_ctl` per read or write. When a task's read returns `WouldBlock`, the task
//! stores its waker in the source's `ScheduledIo` (`scheduled_io.rs`) and returns `Pending`. When
//! the runtime has nothing left to run, it calls `Reactor::wait`; each event sets a readiness bit
//! and wakes the parked task, which the executor then polls again.
//!
//! Each event carries the address of its source's `ScheduledIo`, so dispatching it takes no lock
//! and no lookup. A deleted source stays allocated until the runtime's next wait (see
//! `Reactor::delete`), so an event that was already on its way names a dead source, never freed
//! memory or a newer source that reuses the fd number.
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

use crate::executor::trace::trace;
use crate::slab::Slab;

pub use async_io::Async;
pub use scheduled_io::ReadyEvent;
use scheduled_io::{ScheduledIo, READABLE, WRITABLE};

/// A source's key holds its slab index in the low half and a generation in the high half.
const INDEX_BITS: u32 = usize::BITS / 2;
/// Mask of the slab index in a key.
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// One epoll instance and the sources registered in it.
#[derive(Debug)]
pub(crate) struct Reactor {
    /// The `polling` poller (epoll on Linux).
    poller: Poller,
    /// Every registered source, by slab index, each holding a reference: shutdown reaches them
    /// all through it, and the re-check of drained sources finds the live ones by key. Locked
    /// when a source is added or deleted, and on those rare paths; never per event.
    sources: Mutex<Slab<Arc<ScheduledIo>>>,
    /// Bumped for each registration, so that a reused slab slot gets a new key, and an entry
    /// about a deleted source (in the drained list) matches nothing.
    generation: AtomicUsize,
    /// Sources deleted since the runtime's last wait, kept allocated until its next one: their
    /// address may still be in an epoll batch being dispatched (see `Reactor::delete`).
    released: Mutex<Vec<Arc<ScheduledIo>>>,
    /// Whether `released` may hold sources, so that a wait takes its lock only then.
    has_released: AtomicBool,
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

/// The sources to re-check before the next wait, because a short read cleared their readiness.
///
/// `polling` does not report `EPOLLRDHUP`, so when a peer's data and its FIN arrive in one
/// edge, the short read that returns the data is the last word epoll says about the socket.
/// One `poll(2)` over all such sources finds the ones whose peer has shut down.
///
/// # Invariant
/// `pollfds[i]` and `keys[i]` describe one source: an fd that was registered under that epoll
/// key when the entry was made. It may have been closed (or its number reused) since: then
/// `poll` reports `POLLNVAL`, or the key no longer matches a live source and the result is
/// ignored.
#[derive(Default)]
pub(crate) struct Drained {
    /// `poll`'s argument, built as sources are drained.
    pollfds: Vec<libc::pollfd>,
    /// The epoll key of each entry of `pollfds`.
    keys: Vec<usize>,
}

impl Drained {
    /// Adds the source registered as `fd` under `key`.
    #[inline]
    pub(crate) fn push(&mut self, fd: RawFd, key: usize) {
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
            sources: Mutex::new(Slab::new()),
            generation: AtomicUsize::new(0),
            released: Mutex::new(Vec::new()),
            has_released: AtomicBool::new(false),
            tick: AtomicUsize::new(0),
            drained: Mutex::new(Drained::default()),
            has_drained: AtomicBool::new(false),
            trace,
        })
    }

    /// Adds `fd` to epoll, edge-triggered for both directions.
    ///
    /// # Safety
    /// `fd` must stay open until it is removed with [`Reactor::delete`]; closing it first would let
    /// epoll report events for whatever file later reuses the number.
    pub(crate) unsafe fn add(&self, fd: BorrowedFd<'_>) -> io::Result<Arc<ScheduledIo>> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) & INDEX_MASK;
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        // The key must be in the slab before epoll can report anything for it.
        let io = Arc::new(ScheduledIo::new(
            (generation << INDEX_BITS) | sources.next_index(),
            self.trace,
        ));
        let index = sources.insert(io.clone());
        // SAFETY: the caller keeps `fd` open until `delete`, as this function's contract says.
        let added = unsafe {
            self.poller
                .add_with_mode(fd.as_raw_fd(), Event::all(io.address()), PollMode::Edge)
        };
        if let Err(err) = added {
            sources.remove(index);
            return Err(err);
        }
        if self.trace {
            trace(format_args!("source {index} added: fd {}", fd.as_raw_fd()));
        }
        Ok(io)
    }

    /// Removes `fd` from epoll and forgets its source. Call before closing the fd.
    ///
    /// The source is not freed yet: the runtime's thread may be dispatching an epoll batch that
    /// holds its address right now. The order below makes that safe. epoll forgets the fd first,
    /// so no wait that starts later reports it; only then does the source join `released`; and
    /// a wait frees `released` before it calls epoll, after the previous batch was dispatched.
    /// So every batch that can name the source is done before the source is freed.
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>, io: &ScheduledIo) -> io::Result<()> {
        let deleted = self.poller.delete(fd);
        let removed = self
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(io.key & INDEX_MASK);
        if let Some(removed) = removed {
            // Nobody can wait on a deleted source; a waker left here would keep its task (and
            // so this runtime) alive from inside the runtime until the next wait, or forever
            // once the runtime has stopped waiting.
            removed.forget_waiters();
            let mut released = self.released.lock().unwrap_or_else(PoisonError::into_inner);
            released.push(removed);
            self.has_released.store(true, Ordering::Release);
        }
        if self.trace {
            trace(format_args!(
                "source {} deleted: fd {}",
                io.key & INDEX_MASK,
                fd.as_raw_fd()
            ));
        }
        deleted
    }

    /// Frees the sources deleted since the last wait: no epoll batch can name them any more.
    /// Called by `wait` before it calls epoll, on the runtime's thread.
    fn free_released(&self) {
        if !self.has_released.load(Ordering::Acquire) {
            return;
        }
        let mut released = self.released.lock().unwrap_or_else(PoisonError::into_inner);
        let freed = std::mem::take(&mut *released);
        self.has_released.store(false, Ordering::Release);
        drop(released);
        drop(freed);
    }

    /// Waits for events (at most `timeout`; `None` blocks until one arrives) and wakes the tasks
    /// parked on the sources that became ready. Returns the number of events.
    ///
    /// Only the runtime's own thread calls this, one call at a time: the safety of dispatching
    /// by address rests on it (see `delete`).
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
        // The previous batch is dispatched, and the next is not yet asked for.
        self.free_released();
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
            // SAFETY: the key is the address of a `ScheduledIo` that `add` registered, and it
            // is still allocated: a deleted source is freed only by `free_released` above, at
            // the start of a wait after every batch that could name it (see `delete`). A
            // deleted one is dead but harmless: it has no waiters left to wake.
            let io = unsafe { &*(event.key as *const ScheduledIo) };
            // `polling` reports hang-up and error as both readable and writable, so both
            // directions wake and see the error from their next read or write.
            let ready = (if event.readable { READABLE } else { 0 })
                | (if event.writable { WRITABLE } else { 0 });
            if self.trace {
                trace_event(io.key, ready, "");
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
    pub(crate) fn recheck_later(&self, fd: RawFd, key: usize) {
        let mut drained = self.drained.lock().unwrap_or_else(PoisonError::into_inner);
        drained.push(fd, key);
        self.has_drained.store(true, Ordering::Release);
        drop(drained);
        // The runtime may be asleep in epoll with nothing else to wake it: the re-check must
        // run now, or a FIN that came with the data would leave this reader parked.
        self.notify();
    }

    /// Marks readable (stamped with `tick`) every drained source whose peer `poll(2)` finds shut
    /// down (or hung up, or failed), moving their readers' wakers into `wakers`, and empties
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
        let mut found = Vec::new();
        if polled != 0 {
            let live = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            for (pollfd, &key) in pollfds.iter().zip(local.keys.iter()) {
                // If poll itself failed, treat every source as readable: a spurious wake costs
                // one read, a missed one would hang its task.
                let readable = polled < 0 || pollfd.revents & !libc::POLLNVAL != 0;
                match live.get(key & INDEX_MASK) {
                    Some(io) if readable && io.key == key => found.push(io.clone()),
                    _ => {}
                }
            }
        }
        local.clear();
        // Wake with the lock dropped: a woken task may add or delete sources.
        for io in &found {
            if self.trace {
                trace_event(io.key, READABLE, " (peer shut down, found by poll)");
            }
            io.set_readiness(tick, READABLE);
        }
        found.len()
    }

    /// Wakes a thread blocked in `Reactor::wait`. Cheap when already notified.
    pub(crate) fn notify(&self) {
        // An error here means the eventfd is full, which already guarantees a wake-up.
        let _ = self.poller.notify();
    }

    /// Fails every registered source: the runtime is going away. Also frees the deleted
    /// sources: no wait will come to do it.
    pub(crate) fn shutdown(&self) {
        let live: Vec<_> = self
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        // Wake with the lock dropped, as everywhere.
        for io in live {
            io.shutdown();
        }
        self.free_released();
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

/// Prints the trace line of one event: the source's slab index and which ways it became ready.
#[cold]
#[inline(never)]
fn trace_event(key: usize, ready: usize, why: &str) {
    let read = if ready & READABLE != 0 { " read" } else { "" };
    let write = if ready & WRITABLE != 0 { " write" } else { "" };
    trace(format_args!(
        "source {} ready:{read}{write}{why}",
        key & INDEX_MASK
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    #[test]
    fn a_deleted_source_stays_allocated_until_the_next_wait() -> io::Result<()> {
        let reactor = Reactor::new(false)?;
        let (a, b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        // SAFETY: `a` stays open until after `delete` below.
        let io = unsafe { reactor.add(a.as_fd())? };
        let source = Arc::downgrade(&io);
        // An event for the source is pending when it is deleted.
        std::io::Write::write_all(&mut &b, b"x")?;
        reactor.delete(a.as_fd(), &io)?;
        drop(io);
        assert!(
            source.upgrade().is_some(),
            "freed at delete, while a batch being dispatched may still hold its address"
        );
        let mut events = Events::new();
        reactor.wait(&mut events, Some(Duration::ZERO), &mut Drained::default())?;
        assert_eq!(events.len(), 0, "a deleted fd reports nothing");
        assert!(
            source.upgrade().is_none(),
            "still allocated after the wait that follows its delete"
        );
        Ok(())
    }
}
