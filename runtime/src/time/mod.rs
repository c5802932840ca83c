//! Timers: `sleep`, `timeout` and `interval`, and the deadlines behind them.
//!
//! A runtime keeps every pending deadline in one ordered map (`Timers`). When a thread has
//! nothing to run, the driver hands the *nearest* deadline to epoll as the wait's timeout, so a
//! sleeping runtime wakes up exactly when the first timer is due (or earlier, for I/O), then
//! fires every timer whose deadline has passed. A [`Sleep`] registers itself the first time it is
//! polled and unregisters when dropped, so creating and dropping a sleep that was never awaited
//! costs nothing, and cancelling one costs a map removal.
//!
//! The timers know nothing of epoll. When a sleep is registered with a deadline earlier than the
//! one a parked thread is waiting for (a sleep made on one worker while another is blocked in
//! epoll), they wake the driver through a plain [`Waker`] that the driver gave them, so that the
//! parked thread recomputes its timeout.
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
mod sleep;
mod timeout;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use crate::context::Scoped;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::Instant;
pub use timeout::{timeout, timeout_at, Timeout};

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
    /// Until when a thread parked in the driver waits (`None`: no timeout), while
    /// `Shared::parked` is set. A sleep registered with an earlier deadline must wake it.
    parked_until: Option<Instant>,
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

    /// Moves the wakers of every timer due at `now` into `wakers`; returns the next deadline.
    fn fire(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> Option<Instant> {
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            wakers.push(entry.remove());
        }
        None
    }
}

/// A runtime's timers, as the driver and every sleep see them: shared, behind a lock.
#[derive(Clone)]
pub(crate) struct Handle {
    /// The timers and the driver's waker.
    shared: Arc<Shared>,
}

/// What a [`Handle`] points at.
struct Shared {
    /// The deadlines.
    timers: Mutex<Timers>,
    /// Wakes a thread parked in the driver (see the module docs).
    unpark: Waker,
    /// Whether a thread may be blocked in the driver until `Timers::parked_until`. Set under
    /// the lock before the wait, cleared without it after: a sleep registered in between sees
    /// it and wakes the thread; one that sees it stale costs a spurious wake, no more.
    parked: AtomicBool,
}

thread_local! {
    /// The timers of the runtime this thread is running, if any.
    static CURRENT: Scoped<Handle> = const { Scoped::new() };
}

impl Handle {
    /// Empty timers that wake a parked driver with `unpark`.
    pub(crate) fn new(unpark: Waker) -> Handle {
        Handle {
            shared: Arc::new(Shared {
                timers: Mutex::new(Timers::default()),
                unpark,
                parked: AtomicBool::new(false),
            }),
        }
    }

    /// Runs `f` with these as the timers that sleeps on this thread register with.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        Scoped::set(&CURRENT, self, f)
    }

    /// The timers current on this thread, if any.
    fn current() -> Option<Handle> {
        Scoped::with(&CURRENT, |handle| handle.cloned())
    }

    /// The timers, locked.
    fn lock(&self) -> MutexGuard<'_, Timers> {
        self.shared
            .timers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Points the entry of a registered sleep at `waker`; returns whether the entry is still
    /// there (it is gone once it fired, or after a shutdown).
    fn update(&self, deadline: Instant, id: u64, waker: &Waker) -> bool {
        // The replaced waker drops after the lock (the statement's temporary guard) is released.
        let replaced = self.lock().update(deadline, id, waker);
        replaced.is_some()
    }

    /// Forgets the entry of a dropped or completed sleep.
    fn remove(&self, deadline: Instant, id: u64) {
        let removed = self.lock().remove(deadline, id);
        drop(removed);
    }

    /// Registers a sleep; returns its id. Wakes the parked driver if it waits for longer.
    fn insert(&self, deadline: Instant, waker: &Waker) -> u64 {
        let mut timers = self.lock();
        let id = timers.insert(deadline, waker);
        let earlier = self.shared.parked.load(Ordering::Acquire)
            && timers.parked_until.map_or(true, |until| deadline < until);
        drop(timers);
        if earlier {
            self.shared.unpark.wake_by_ref();
        }
        id
    }

    /// Called by a thread about to wait in the driver for at most `limit` (`None`: no limit):
    /// moves the wakers of every due timer into `wakers`, and returns how long the wait may last
    /// (until the next deadline; not at all if a timer fired). If the wait may block, the thread
    /// counts as parked until [`Handle::after_park`]: a sleep registered meanwhile with an
    /// earlier deadline wakes it.
    #[inline]
    pub(crate) fn before_park(
        &self,
        wakers: &mut Vec<Waker>,
        limit: Option<Duration>,
    ) -> Option<Duration> {
        let mut timers = self.lock();
        // Most parks of a busy server find no timer at all: then not even the clock is read.
        let (timeout, now) = if timers.entries.is_empty() {
            (limit, None)
        } else {
            let now = Instant::now();
            let next = timers.fire(now, wakers).map(|next| next - now);
            if !wakers.is_empty() {
                // Fired tasks are runnable now: do not block.
                return Some(Duration::ZERO);
            }
            (
                next.map_or(limit, |next| Some(limit.map_or(next, |l| l.min(next)))),
                Some(now),
            )
        };
        if !timeout.is_some_and(|t| t.is_zero()) {
            // A wait that may block: from now on an earlier sleep must wake it.
            timers.parked_until =
                timeout.and_then(|t| now.unwrap_or_else(Instant::now).checked_add(t));
            self.shared.parked.store(true, Ordering::Release);
        }
        timeout
    }

    /// Moves the wakers of every due timer into `wakers`, for a thread that is not about to wait.
    pub(crate) fn fire_due(&self, wakers: &mut Vec<Waker>) {
        let mut timers = self.lock();
        if !timers.entries.is_empty() {
            timers.fire(Instant::now(), wakers);
        }
    }

    /// The thread that [`before_park`](Self::before_park) said may block is running again.
    #[inline]
    pub(crate) fn after_park(&self) {
        self.shared.parked.store(false, Ordering::Release);
    }

    /// Whether a thread counts as parked (between `before_park` and `after_park`).
    #[cfg(test)]
    pub(crate) fn is_parked(&self) -> bool {
        self.shared.parked.load(Ordering::Acquire)
    }

    /// Forgets every entry: the runtime is shutting down. The wakers are dropped after the lock
    /// is released. A sleep that is polled again re-registers with the runtime polling it.
    pub(crate) fn clear(&self) {
        let entries = std::mem::take(&mut self.lock().entries);
        drop(entries);
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("time::Handle")
            .field("timers", &self.lock().entries.len())
            .finish()
    }
}
