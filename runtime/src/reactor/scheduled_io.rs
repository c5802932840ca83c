//! The readiness of one I/O source, and the tasks waiting for it.
//!
//! The source is registered edge-triggered: epoll reports each *change* to readable or writable
//! once, not the state itself. So the reactor remembers it: an event sets a bit here, and the bit
//! stays until a task's read or write returns `WouldBlock` and clears it. Each event also stamps
//! the word with the reactor's tick, and a clear only succeeds if the tick is unchanged, so an
//! edge that arrives while a task is in the middle of a read is never lost.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};

use crate::executor::trace::trace;

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

/// Which way a task wants to move data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Waiting to read (or accept).
    Read,
    /// Waiting to write (or for a connect to finish).
    Write,
}

impl Direction {
    /// The direction as a verb, for the trace.
    fn verb(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }

    /// The readiness bit this direction waits for.
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// Proof that a source was ready in one direction at one tick; hand it back to
/// [`Async::clear_readiness`](super::Async::clear_readiness) after `WouldBlock`.
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

/// One registered source: its readiness word and its (at most two) waiting tasks.
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    /// The epoll key: slab index in the low half, generation in the high half. Fixed at creation.
    pub(crate) key: usize,
    /// `READABLE | WRITABLE | SHUTDOWN` in the low bits, the tick of the last event above
    /// `TICK_SHIFT`. Set by the reactor, cleared by tasks, always with read-modify-writes.
    readiness: AtomicUsize,
    /// The tasks parked on this source, one per direction, so that a reader task and a writer
    /// task can share the source. Wakers are taken under the lock and woken after it is dropped.
    waiters: Mutex<Waiters>,
    /// Whether to trace parking and clearing (the runtime's `RIPPLE_TRACE`). Fixed at creation.
    trace: bool,
}

/// The parked tasks of one source.
#[derive(Debug, Default)]
struct Waiters {
    /// Woken when the source becomes readable.
    reader: Option<Waker>,
    /// Woken when the source becomes writable.
    writer: Option<Waker>,
    /// Further tasks waiting through a shared reference (say, two tasks accepting on one
    /// listener). Rare, so they stay out of the two slots above; woken with them.
    others: Vec<(Direction, Waker)>,
}

impl Waiters {
    /// Parks `waker` for `direction`. Nothing is replaced (and so nothing dropped under the
    /// lock): a different waker joins `others` instead.
    fn register(&mut self, direction: Direction, waker: &Waker) {
        let slot = match direction {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        };
        match slot {
            None => *slot = Some(waker.clone()),
            Some(old) if old.will_wake(waker) => {}
            Some(_) => {
                // Another task holds the slot: queue this one too, once.
                let known = self
                    .others
                    .iter()
                    .any(|(d, w)| *d == direction && w.will_wake(waker));
                if !known {
                    self.others.push((direction, waker.clone()));
                }
            }
        }
    }

    /// Moves the wakers released by `ready` into `wakers`.
    fn take(&mut self, ready: usize, wakers: &mut Vec<Waker>) {
        if ready & READABLE != 0 {
            wakers.extend(self.reader.take());
        }
        if ready & WRITABLE != 0 {
            wakers.extend(self.writer.take());
        }
        if !self.others.is_empty() {
            self.others.retain(|(direction, waker)| {
                let released = ready & direction.mask() != 0;
                if released {
                    wakers.push(waker.clone());
                }
                !released
            });
        }
    }
}

impl ScheduledIo {
    /// A source that is assumed ready both ways: a new socket's first read or write just tries,
    /// and waits only if the kernel answers `WouldBlock` (which then clears the bit).
    pub(crate) fn new(key: usize, trace: bool) -> Self {
        ScheduledIo {
            key,
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            waiters: Mutex::new(Waiters::default()),
            trace,
        }
    }

    /// The slab index part of the key: how the trace names the source.
    fn index(&self) -> usize {
        self.key & super::INDEX_MASK
    }

    /// Records an event (`ready` bits at reactor tick `tick`) and moves the wakers it releases
    /// into `wakers`, for the caller to wake once its locks are dropped.
    pub(crate) fn set_readiness(&self, tick: usize, ready: usize, wakers: &mut Vec<Waker>) {
        let tick = (tick << TICK_SHIFT) & !READY_MASK;
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some((cur & READY_MASK) | ready | tick)
            });
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.take(ready, wakers);
    }

    /// Marks the source dead and releases both waiters; their next poll returns an error.
    pub(crate) fn shutdown(&self, wakers: &mut Vec<Waker>) {
        self.readiness.fetch_or(SHUTDOWN, Ordering::AcqRel);
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.take(READABLE | WRITABLE, wakers);
    }

    /// Ready if the source is ready in `direction`; otherwise parks the task until it is.
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        // A task that has done its share of I/O for this poll yields, even if the source is ready.
        ready!(crate::executor::poll_budget(cx));
        // Fast path: one atomic load when the source is already known to be ready.
        let ready = match self.check(direction) {
            Some(ready) => ready,
            None => ready!(self.park(cx, direction)),
        };
        if ready.is_ok() {
            crate::executor::spend_budget();
        }
        Poll::Ready(ready)
    }

    /// The slow path of `poll_ready`: store the task's waker, then look once more.
    #[inline(never)]
    fn park(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<ReadyEvent>> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.register(direction, cx.waker());
        // Check again under the lock: an event that landed after the first check has either set
        // the bit (seen now) or will take the waker we just stored.
        match self.check(direction) {
            Some(ready) => Poll::Ready(ready),
            None => {
                if self.trace {
                    self.trace_park(direction);
                }
                Poll::Pending
            }
        }
    }

    /// The ready event for `direction`, if the bit is set (or an error after shutdown).
    #[inline]
    fn check(&self, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        let cur = self.readiness.load(Ordering::Acquire);
        if cur & SHUTDOWN != 0 {
            return Some(Err(shutdown_error()));
        }
        let ready = cur & direction.mask();
        (ready != 0).then_some(Ok(ReadyEvent {
            tick: (cur >> TICK_SHIFT) as u32,
            ready: ready as u8,
        }))
    }

    /// Forgets the readiness in `event`, unless a newer event arrived since it was observed.
    /// Returns whether it did.
    #[inline]
    pub(crate) fn clear_readiness(&self, event: ReadyEvent) -> bool {
        self.readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                ((cur >> TICK_SHIFT) as u32 == event.tick)
                    .then_some(cur & !usize::from(event.ready))
            })
            .is_ok()
    }

    /// Prints that a task parks here. Out of line, so the hot path only tests the flag.
    #[cold]
    #[inline(never)]
    fn trace_park(&self, direction: Direction) {
        trace(format_args!(
            "source {} not ready to {}: the task parks its waker there",
            self.index(),
            direction.verb()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_task::noop_waker;

    #[test]
    fn clear_with_a_stale_tick_keeps_the_newer_edge() {
        let io = ScheduledIo::new(0, false);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut wakers = Vec::new();
        let Poll::Ready(Ok(first)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("a new source starts out ready");
        };
        // An edge arrives while the task is reading; the task then sees WouldBlock.
        io.set_readiness(1, READABLE, &mut wakers);
        io.clear_readiness(first);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_ready());
        // With no new edge, the clear holds and the task parks.
        let Poll::Ready(Ok(second)) = io.poll_ready(&mut cx, Direction::Read) else {
            unreachable!()
        };
        io.clear_readiness(second);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
        // Writability is tracked on its own.
        assert!(io.poll_ready(&mut cx, Direction::Write).is_ready());
    }

    #[test]
    fn an_event_releases_only_the_waiter_of_its_direction() {
        let io = ScheduledIo::new(0, false);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut wakers = Vec::new();
        for direction in [Direction::Read, Direction::Write] {
            let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, direction) else {
                unreachable!()
            };
            io.clear_readiness(ev);
            assert!(io.poll_ready(&mut cx, direction).is_pending());
        }
        io.set_readiness(1, WRITABLE, &mut wakers);
        assert_eq!(wakers.len(), 1);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
        io.shutdown(&mut wakers);
        assert_eq!(wakers.len(), 2, "shutdown releases the reader too");
        assert!(matches!(
            io.poll_ready(&mut cx, Direction::Read),
            Poll::Ready(Err(_))
        ));
    }
}
