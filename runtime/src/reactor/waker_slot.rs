//! A lock-free slot for the waker of one parked task, shared by that task and the reactor.
//!
//! When a read finds its socket not ready, the task leaves its waker in the source and returns
//! `Pending`; when epoll reports the socket ready, the reactor takes the waker out and wakes it.
//! The two sides run on any threads at any time, and a lock per park and per event would cost
//! every message. So the slot follows the protocol of the `futures` crate's `AtomicWaker`: a
//! small state word says who may touch the waker right now, and whoever finds the other side
//! busy leaves the wake to it, so that a wake is never lost.

use std::fmt;
use std::task::Waker;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};

/// The waker of one parked task, shared between that task (which stores it) and the reactor
/// (which takes it out to wake it), on any threads, with no lock: the protocol of the
/// `futures` crate's `AtomicWaker`, plus a bit that lets the reactor pass an empty slot by with
/// one load.
///
/// `state` says who may touch `waker` right now: nobody (`EMPTY` or `FULL`, by whether a waker
/// is stored), the task storing its waker (`REGISTERING` set), or the reactor taking it out
/// (`WAKING` set). A task that finds `WAKING` does not store, and wakes itself; a reactor that
/// finds `REGISTERING` only adds `WAKING`, and the registering task, seeing it when it tries to
/// let go,
/// takes the waker out and wakes it. Either way the wake is never lost.
pub(crate) struct WakerSlot {
    /// `EMPTY` or `FULL`, possibly with `REGISTERING` or `WAKING` on top.
    state: AtomicUsize,
    /// The parked task's waker.
    ///
    /// # Invariant
    /// Touched only by the thread that set `REGISTERING` or `WAKING` in `state`, until that
    /// thread clears it again. `Some` exactly when `state` says `FULL` (or is being changed by
    /// that thread).
    waker: UnsafeCell<Option<Waker>>,
}

/// No waker is stored and nobody is touching the slot.
const EMPTY: usize = 0;
/// A task is storing its waker.
const REGISTERING: usize = 1;
/// The reactor is taking the waker out.
const WAKING: usize = 2;
/// A waker is stored.
const FULL: usize = 4;

// SAFETY: the waker cell is handed to one thread at a time by `state` (see the invariant on
// `waker`), and `Waker` itself is `Send + Sync`.
unsafe impl Sync for WakerSlot {}

/// What [`WakerSlot::register`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registered {
    /// The slot holds this task's waker (stored now, or already), or the task was woken.
    Yes,
    /// The slot holds another task's waker: the caller must keep this one elsewhere.
    Occupied,
}

impl WakerSlot {
    /// An empty slot.
    pub(crate) fn new() -> WakerSlot {
        WakerSlot {
            state: AtomicUsize::new(EMPTY),
            waker: UnsafeCell::new(None),
        }
    }

    /// Stores `waker` in the slot, unless the slot holds another task's waker already (which is
    /// then left alone: nothing is dropped or replaced here).
    ///
    /// The caller then checks readiness again with a `SeqCst` load: `take` may have passed the
    /// slot by just before this stored the waker, but then its readiness, set before it looked,
    /// is what the caller sees. That rests on the compare-exchange that sets `REGISTERING` being
    /// `SeqCst`, like `take`'s first load and the readiness update before it.
    pub(crate) fn register(&self, waker: &Waker) -> Registered {
        let mut idle = self.state.load(Ordering::SeqCst);
        loop {
            match idle {
                EMPTY | FULL => {}
                // Being woken right now. The readiness that the waking side set first may be
                // cleared again (by the task it wakes) before the caller looks, so the caller
                // cannot count on seeing it: wake it, as `AtomicWaker` does, and its next poll
                // registers again.
                _ if idle & REGISTERING == 0 => {
                    waker.wake_by_ref();
                    return Registered::Yes;
                }
                // Another task is registering here at this very moment.
                _ => return Registered::Occupied,
            }
            match self.state.compare_exchange(
                idle,
                idle | REGISTERING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(actual) => idle = actual,
            }
        }
        let registered = self.waker.with_mut(|slot| {
            // SAFETY: we set REGISTERING, so the cell is ours.
            let slot = unsafe { &mut *slot };
            match slot {
                None => {
                    *slot = Some(waker.clone());
                    Registered::Yes
                }
                Some(old) if old.will_wake(waker) => Registered::Yes,
                Some(_) => Registered::Occupied,
            }
        });
        let done = self.state.compare_exchange(
            idle | REGISTERING,
            FULL,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if done.is_err() {
            // The reactor came by meanwhile (it added WAKING) and left the wake to us: take the
            // waker out, give the slot back, wake it.
            // SAFETY: REGISTERING is still set (only we clear it), so the cell is still ours.
            let woken = self.waker.with_mut(|slot| unsafe { (*slot).take() });
            self.state.store(EMPTY, Ordering::Release);
            if let Some(woken) = woken {
                woken.wake();
            }
        }
        registered
    }

    /// Takes the parked waker out, if there is one and nobody else is touching it. A task that is
    /// registering at this moment will find `WAKING` and wake itself.
    ///
    /// The caller has just set readiness with a `SeqCst` read-modify-write (see `register`).
    #[inline]
    pub(crate) fn take(&self) -> Option<Waker> {
        // Nothing parked and nobody registering: nothing to do, and no write to the line.
        if self.state.load(Ordering::SeqCst) == EMPTY {
            return None;
        }
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            EMPTY | FULL => {
                // SAFETY: we set WAKING on an idle slot, so the cell is ours.
                let waker = self.waker.with_mut(|slot| unsafe { (*slot).take() });
                // A plain store: while WAKING is set, nobody else changes the state (a
                // registering task backs off, another taker's `fetch_or` adds nothing).
                self.state.store(EMPTY, Ordering::Release);
                waker
            }
            // A task is registering (and will see WAKING and wake itself), or someone else is
            // taking the waker.
            _ => None,
        }
    }
}

impl fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakerSlot")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::testing::Count;

    /// Task A is parked; task B, on another thread, registers while the reactor is taking A's
    /// waker. B finds the slot being woken, so it stores nothing: it must be woken itself, or,
    /// once A has run and cleared the readiness, the next event has nobody to wake. The steps
    /// are played one by one, as two threads could.
    #[test]
    fn a_task_that_registers_while_the_slot_is_being_woken_is_woken_itself() {
        let slot = WakerSlot::new();
        let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (wake_a, wake_b) = (
            futures_task::waker(a.clone()),
            futures_task::waker(b.clone()),
        );
        assert_eq!(slot.register(&wake_a), Registered::Yes);
        // The reactor starts `take`: WAKING is set on A's slot.
        assert_eq!(slot.state.fetch_or(WAKING, Ordering::AcqRel), FULL);
        // B registers now and finds WAKING.
        assert_eq!(slot.register(&wake_b), Registered::Yes);
        assert_eq!(b.get(), 1, "B stored its waker nowhere, and was not woken");
        // The reactor finishes `take` and wakes A; the slot is empty again.
        // SAFETY: this test plays the reactor, which set WAKING above and owns the cell.
        let taken = slot.waker.with_mut(|cell| unsafe { (*cell).take() });
        slot.state.store(EMPTY, Ordering::Release);
        taken.expect("A's waker").wake();
        assert_eq!(a.get(), 1);
        assert!(slot.take().is_none(), "nothing is left to wake");
    }
}
