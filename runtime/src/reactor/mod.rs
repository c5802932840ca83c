//! The reactor: one epoll instance that tells the runtime which sockets became ready.
//!
//! This is the seeds' *Poller thread*, folded into the runtime's own thread. Every I/O source is
//! added to epoll once, edge-triggered, for both directions, and stays there until it is dropped:
//! there is no `epoll_ctl` per read or write. When a task's read returns `WouldBlock`, the task
//! stores its waker in the source's `ScheduledIo` (`scheduled_io.rs`) and returns `Pending`. When the runtime has
//! nothing left to run, it calls `Reactor::wait`; each event sets a readiness bit and wakes the
//! parked task, which the executor then polls again.
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
use std::task::Waker;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

use crate::executor::trace::trace;
use crate::slab::Slab;

pub use async_io::Async;
pub use scheduled_io::ReadyEvent;
use scheduled_io::{ScheduledIo, READABLE, WRITABLE};

/// The epoll key holds the slab index in its low half and a generation in its high half.
const INDEX_BITS: u32 = usize::BITS / 2;
/// Mask of the slab index in a key.
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// One epoll instance and the sources registered in it.
#[derive(Debug)]
pub(crate) struct Reactor {
    /// The `polling` poller (epoll on Linux).
    poller: Poller,
    /// Every registered source, by slab index. Locked once per batch of events.
    sources: Mutex<Slab<Arc<ScheduledIo>>>,
    /// Bumped for each registration, so that a reused slab slot gets a new key and a stale event
    /// for a closed fd (whose number and slot were reused) matches nothing.
    generation: AtomicUsize,
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
                .add_with_mode(fd.as_raw_fd(), Event::all(io.key), PollMode::Edge)
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
    pub(crate) fn delete(&self, fd: BorrowedFd<'_>, io: &ScheduledIo) -> io::Result<()> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        sources.remove(io.key & INDEX_MASK);
        drop(sources);
        if self.trace {
            trace(format_args!(
                "source {} deleted: fd {}",
                io.key & INDEX_MASK,
                fd.as_raw_fd()
            ));
        }
        self.poller.delete(fd)
    }

    /// Waits for events (at most `timeout`; `None` blocks until one arrives) and wakes the tasks
    /// parked on the sources that became ready. Returns the number of events.
    pub(crate) fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        wakers: &mut Vec<Waker>,
        drained: &mut Drained,
    ) -> io::Result<usize> {
        // Sources found closed by the re-check are work to do now: do not block. The re-check
        // and the epoll batch each get a tick of their own, so that a clear based on one cannot
        // erase readiness set by the other.
        let timeout = match self.recheck_drained(self.next_tick(), wakers, drained) {
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
        let trace = self.trace;
        let mut count = 0;
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events.iter() {
            count += 1;
            let Some(io) = sources.get(event.key & INDEX_MASK) else {
                continue;
            };
            // A stale event for a slot that was freed and reused: not this source's.
            if io.key != event.key {
                continue;
            }
            // `polling` reports hang-up and error as both readable and writable, so both
            // directions wake and see the error from their next read or write.
            let ready = (if event.readable { READABLE } else { 0 })
                | (if event.writable { WRITABLE } else { 0 });
            if trace {
                trace_event(event.key, ready, "");
            }
            io.set_readiness(tick, ready, wakers);
        }
        // Drop the lock before waking: a woken task may register or drop a source.
        drop(sources);
        wake_all(wakers);
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
    fn recheck_drained(&self, tick: usize, wakers: &mut Vec<Waker>, local: &mut Drained) -> usize {
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
            let live = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
            for (pollfd, &key) in pollfds.iter().zip(local.keys.iter()) {
                // If poll itself failed, treat every source as readable: a spurious wake costs
                // one read, a missed one would hang its task.
                let readable = polled < 0 || pollfd.revents & !libc::POLLNVAL != 0;
                match live.get(key & INDEX_MASK) {
                    Some(io) if readable && io.key == key => {
                        if self.trace {
                            trace_event(key, READABLE, " (peer shut down, found by poll)");
                        }
                        io.set_readiness(tick, READABLE, wakers);
                        found += 1;
                    }
                    _ => {}
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
        let mut wakers = Vec::new();
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        for io in sources.iter() {
            io.shutdown(&mut wakers);
        }
        drop(sources);
        wake_all(&mut wakers);
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

/// Wakes every waker in `wakers`, emptying it. A waker that panics is contained, so one
/// misbehaving task cannot take the reactor down.
pub(crate) fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
    }
}
