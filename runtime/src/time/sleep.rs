//! `sleep`: a future that completes at a deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::Handle;

/// Waits until `duration` has passed.
///
/// # Panics
/// When polled outside a ripple runtime.
pub fn sleep(duration: Duration) -> Sleep {
    // A duration too large to add saturates to "thirty years from now".
    let deadline = Instant::now()
        .checked_add(duration)
        .unwrap_or_else(far_future);
    sleep_until(deadline)
}

/// Waits until `deadline`. A deadline in the past completes at the first poll.
///
/// # Panics
/// When polled outside a ripple runtime.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        entry: None,
    }
}

/// About thirty years from now: the deadline of a sleep that will never fire in practice.
pub(crate) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The future returned by [`sleep`] and [`sleep_until`].
#[must_use = "a Sleep does nothing unless awaited"]
#[derive(Debug)]
pub struct Sleep {
    /// When it completes.
    deadline: Instant,
    /// Its entry in a runtime's timers, from the first pending poll until it fires, completes or
    /// is reset to an earlier deadline.
    entry: Option<Entry>,
}

/// A sleep's entry in its runtime's timers.
///
/// Invariant: `at` is at or before the `deadline` of the sleep that holds it. A [`reset`](Sleep::reset) to a later
/// deadline leaves the entry where it is (no lock, no map change); when it fires, the poll that
/// follows finds the deadline still ahead and registers anew. That is what makes moving a
/// deadline further out (an idle timeout pushed back by every message) cost nothing.
#[derive(Debug)]
struct Entry {
    /// The runtime's timers.
    handle: Handle,
    /// The entry's id there.
    id: u64,
    /// The deadline it is registered under, on the timers' clock ([`Handle::nanos`]).
    at: u64,
    /// The waker it holds: a poll with a waker that wakes the same task needs no lock.
    waker: Waker,
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Moves the deadline, keeping the sleep usable. Moving it later costs nothing: the sleep
    /// stays registered under the old deadline and registers anew if that one fires first.
    /// Moving it earlier unregisters it (it re-registers at its next poll).
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(entry) = &self.entry {
            if entry.at > entry.handle.nanos(deadline) {
                self.unregister();
            }
        }
        self.deadline = deadline;
    }

    /// Removes the entry from the runtime's timers, if it has one.
    fn unregister(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.handle.remove(entry.at, entry.id);
        }
    }

    /// The poll when the fast path cannot answer: reads the clock, and completes, or updates
    /// the entry's waker, or registers. It takes the waker rather than the `Context`: a
    /// `Context` passed to a function that is not inlined must be built whole by every caller
    /// up the chain (the task's `run`), a few instructions on every poll.
    #[cold]
    pub(crate) fn poll_slow(&mut self, waker: &Waker) -> Poll<()> {
        if self.is_elapsed() {
            self.unregister();
            return Poll::Ready(());
        }
        if let Some(entry) = &mut self.entry {
            if entry.handle.update(entry.at, entry.id, waker) {
                entry.waker.clone_from(waker);
                return Poll::Pending;
            }
            // Gone: it fired (at a deadline since moved later), or its runtime shut down.
            self.entry = None;
        }
        // Register with the runtime polling us now.
        let handle =
            Handle::current().expect("a ripple::time::Sleep was polled outside a ripple runtime");
        let at = handle.nanos(self.deadline);
        let id = handle.insert(at, waker);
        self.entry = Some(Entry {
            handle,
            id,
            at,
            waker: waker.clone(),
        });
        Poll::Pending
    }
}

impl Sleep {
    /// The fast path of a poll, taken by every poll of a registered sleep before it fires: no
    /// clock, no lock. True if the sleep is registered for the task of `cx` and cannot have
    /// fired yet, so that polling it would return `Pending` and change nothing. The timers'
    /// clock passes `at` before the entry fires (see `Handle::nanos`), so while it has not,
    /// the entry is still there, holding a waker for this task.
    #[inline]
    pub(crate) fn is_pending_for(&self, cx: &Context<'_>) -> bool {
        match &self.entry {
            Some(entry) => {
                !entry.handle.may_have_fired(entry.at) && entry.waker.will_wake(cx.waker())
            }
            None => false,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_pending_for(cx) {
            return Poll::Pending;
        }
        self.poll_slow(cx.waker())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}
