//! Timers: `sleep`, `timeout` and `interval`.
//!
//! A runtime keeps every pending deadline in one ordered map. When it has nothing to run, it
//! hands the *nearest* deadline to epoll as the wait's timeout, so a sleeping runtime wakes up
//! exactly when the first timer is due (or earlier, for I/O), then fires every timer whose
//! deadline has passed. A [`Sleep`] registers itself the first time it is polled and
//! unregisters when dropped, so creating and dropping a sleep that was never awaited costs
//! nothing, and cancelling one costs a map removal.
//!
//! ```
//! use std::time::Duration;
//! use ripple_runtime::time::{sleep, timeout, Instant};
//!
//! ripple_runtime::block_on(async {
//!     let start = Instant::now();
//!     sleep(Duration::from_millis(10)).await;
//!     assert!(start.elapsed() >= Duration::from_millis(10));
//!
//!     let slow = sleep(Duration::from_secs(60));
//!     assert!(timeout(Duration::from_millis(5), slow).await.is_err());
//! });
//! ```

mod interval;
mod timeout;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub use std::time::Instant;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use timeout::{timeout, timeout_at, Timeout};

use crate::executor::Handle;

/// Errors of the time module.
pub mod error {
    pub use super::timeout::Elapsed;
}

/// The pending deadlines of one runtime.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Parked sleeps by `(deadline, id)`; the id keeps equal deadlines apart.
    entries: BTreeMap<(Instant, u64), Waker>,
    /// The id for the next registration.
    next_id: u64,
}

impl Timers {
    /// Parks `waker` until `deadline`; returns the entry's id.
    fn insert(&mut self, deadline: Instant, waker: &Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert((deadline, id), waker.clone());
        id
    }

    /// Points an existing entry at `waker` (a sleep may move to another task). Returns `None` if
    /// the entry is gone (it fired, or its runtime shut down), otherwise the waker it replaced,
    /// if any, for the caller to drop once the lock is released.
    fn update(&mut self, deadline: Instant, id: u64, waker: &Waker) -> Option<Option<Waker>> {
        let old = self.entries.get_mut(&(deadline, id))?;
        if old.will_wake(waker) {
            return Some(None);
        }
        Some(Some(std::mem::replace(old, waker.clone())))
    }

    /// Forgets an entry (a dropped or completed sleep); returns its waker, for the caller to drop
    /// once the lock is released (dropping a waker can drop a task, which runs user code).
    fn remove(&mut self, deadline: Instant, id: u64) -> Option<Waker> {
        self.entries.remove(&(deadline, id))
    }

    /// Forgets every entry: the runtime is shutting down. Returns them, to be dropped after the
    /// lock is released. A sleep that is polled again re-registers with the runtime polling it.
    pub(crate) fn clear(&mut self) -> BTreeMap<(Instant, u64), Waker> {
        std::mem::take(&mut self.entries)
    }

    /// Moves the wakers of every timer due at `now` into `wakers`; returns the next deadline.
    pub(crate) fn fire(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> Option<Instant> {
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            wakers.push(entry.remove());
        }
        None
    }

    /// Whether no sleep is parked.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

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
    /// The runtime and entry id, once registered at the first pending poll.
    entry: Option<(Handle, u64)>,
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

    /// Moves the deadline, keeping the sleep usable (it re-registers at its next poll).
    pub fn reset(&mut self, deadline: Instant) {
        self.unregister();
        self.deadline = deadline;
    }

    /// Removes the entry from the runtime's timers, if it has one.
    fn unregister(&mut self) {
        if let Some((handle, id)) = self.entry.take() {
            let removed = handle.shared.lock_timers().remove(self.deadline, id);
            drop(removed);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_elapsed() {
            self.unregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        if let Some((handle, id)) = &self.entry {
            let updated = handle
                .shared
                .lock_timers()
                .update(deadline, *id, cx.waker());
            if updated.is_some() {
                return Poll::Pending;
            }
        }
        // First poll, or the entry is gone (its runtime shut down, or the clock said the deadline
        // passed before `Instant::now` here did): register with the runtime polling us now.
        let handle = Handle::try_current()
            .expect("a ripple::time::Sleep was polled outside a ripple runtime");
        let id = handle.shared.lock_timers().insert(deadline, cx.waker());
        self.entry = Some((handle, id));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}
