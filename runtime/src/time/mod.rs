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
mod watchdog;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use crate::context::Scoped;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use std::time::Instant;
pub use timeout::{timeout, timeout_at, Timeout};
pub use watchdog::{Watch, Watchdog};

/// Errors of the time module.
pub mod error {
    pub use super::timeout::Elapsed;
}

/// The pending deadlines of one runtime, on the timers' clock (see [`Clock`]).
#[derive(Debug)]
pub(crate) struct Timers {
    /// Parked sleeps by `(deadline, id)`; the id keeps equal deadlines apart.
    entries: BTreeMap<(u64, u64), Waker>,
    /// The id for the next registration.
    next_id: u64,
    /// The earliest deadline of `entries` (`u64::MAX` if there is none), so that a park that
    /// finds no timer due compares one number instead of searching the map.
    earliest: u64,
    /// Until when a thread parked in the driver waits (`None`: no timeout), while
    /// `Shared::parked` is set. A sleep registered with an earlier deadline must wake it.
    parked_until: Option<u64>,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            entries: BTreeMap::new(),
            next_id: 0,
            earliest: u64::MAX,
            parked_until: None,
        }
    }
}

impl Timers {
    /// Parks `waker` until `deadline`; returns the entry's id.
    fn insert(&mut self, deadline: u64, waker: &Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert((deadline, id), waker.clone());
        self.earliest = self.earliest.min(deadline);
        id
    }

    /// Points an existing entry at `waker` (a sleep may move to another task). Returns `None` if
    /// the entry is gone (it fired, or its runtime shut down), otherwise the waker it replaced,
    /// if any, for the caller to drop once the lock is released.
    fn update(&mut self, deadline: u64, id: u64, waker: &Waker) -> Option<Option<Waker>> {
        let old = self.entries.get_mut(&(deadline, id))?;
        if old.will_wake(waker) {
            return Some(None);
        }
        Some(Some(std::mem::replace(old, waker.clone())))
    }

    /// Forgets an entry (a dropped or completed sleep); returns its waker, for the caller to drop
    /// once the lock is released (dropping a waker can drop a task, which runs user code).
    fn remove(&mut self, deadline: u64, id: u64) -> Option<Waker> {
        let removed = self.entries.remove(&(deadline, id));
        if deadline == self.earliest {
            self.earliest = self
                .entries
                .first_key_value()
                .map_or(u64::MAX, |(k, _)| k.0);
        }
        removed
    }

    /// Moves the wakers of every timer due at `now` into `wakers`; returns the next deadline.
    #[inline]
    fn fire(&mut self, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        if now < self.earliest {
            // The common case: nothing is due.
            return Some(self.earliest).filter(|&e| e != u64::MAX);
        }
        self.fire_some(now, wakers)
    }

    /// [`fire`](Self::fire) when the earliest deadline has come.
    #[cold]
    fn fire_some(&mut self, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                self.earliest = entry.key().0;
                return Some(self.earliest);
            }
            wakers.push(entry.remove());
        }
        self.earliest = u64::MAX;
        None
    }
}

/// The timers' clock: `CLOCK_MONOTONIC` (the clock of [`Instant`]) in nanoseconds, as a plain
/// `u64`. Every park of a runtime with timers reads it and compares and subtracts deadlines;
/// `Instant`'s arithmetic (seconds and nanoseconds, normalised at each step) cost several times
/// as much, on the path of every message of a server whose connections have timeouts.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// An instant, and the clock's reading at (just after) it: what converts one to the other.
    base: (Instant, u64),
}

impl Clock {
    /// A clock whose conversions start from now.
    fn new() -> Clock {
        let instant = Instant::now();
        Clock {
            base: (instant, Clock::now()),
        }
    }

    /// The clock's reading.
    #[inline]
    fn now() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime(2) writes the time into `ts`, a valid, exclusively borrowed
        // struct; CLOCK_MONOTONIC always exists on Linux, so it cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        (ts.tv_sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts.tv_nsec as u64)
    }

    /// `instant` on this clock. Read just after `base.0`, `base.1` is a few nanoseconds late,
    /// so a deadline converted here is never early.
    fn nanos(&self, instant: Instant) -> u64 {
        let (base, reading) = self.base;
        let offset = match instant.checked_duration_since(base) {
            Some(after) => u64::try_from(after.as_nanos()).unwrap_or(u64::MAX),
            None => return reading.saturating_sub(saturating_nanos(base - instant)),
        };
        reading.saturating_add(offset)
    }
}

/// `duration` in nanoseconds, `u64::MAX` if it has more.
fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
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
    /// The last reading of the clock with which the timers fired their entries, `u64::MAX` once
    /// they are cleared.
    ///
    /// Invariant: it only grows, and it is raised to a time before any entry due at that time
    /// fires. So an entry registered under `at` has surely not fired while `fired_to < at`:
    /// the fast path of `Sleep::poll` needs no lock and no clock of its own.
    fired_to: AtomicU64,
    /// Converts instants to the timers' clock.
    clock: Clock,
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
                fired_to: AtomicU64::new(0),
                clock: Clock::new(),
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

    /// `instant` on the timers' clock.
    pub(crate) fn nanos(&self, instant: Instant) -> u64 {
        self.shared.clock.nanos(instant)
    }

    /// Whether the entry registered under `deadline` (on the timers' clock) may have fired.
    #[inline]
    pub(crate) fn may_have_fired(&self, deadline: u64) -> bool {
        self.shared.fired_to.load(Ordering::Acquire) >= deadline
    }

    /// Points the entry of a registered sleep at `waker`; returns whether the entry is still
    /// there (it is gone once it fired, or after a shutdown).
    fn update(&self, deadline: u64, id: u64, waker: &Waker) -> bool {
        // The replaced waker drops after the lock (the statement's temporary guard) is released.
        let replaced = self.lock().update(deadline, id, waker);
        replaced.is_some()
    }

    /// Forgets the entry of a dropped or completed sleep.
    fn remove(&self, deadline: u64, id: u64) {
        let removed = self.lock().remove(deadline, id);
        drop(removed);
    }

    /// Registers a sleep; returns its id. Wakes the parked driver if it waits for longer.
    fn insert(&self, deadline: u64, waker: &Waker) -> u64 {
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

    /// Fires the entries due at `now` into `wakers`, raising `fired_to` first; returns the
    /// next deadline. The caller holds the lock (`timers`), under which alone `fired_to`
    /// changes, so a plain load and store keep it growing.
    #[inline]
    fn fire(&self, timers: &mut Timers, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        let fired_to = &self.shared.fired_to;
        if now > fired_to.load(Ordering::Relaxed) {
            fired_to.store(now, Ordering::Release);
        }
        timers.fire(now, wakers)
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
        // Most parks of a busy server without timeouts find no timer at all: then not even the
        // clock is read.
        let (timeout, now) = if timers.entries.is_empty() {
            (limit, None)
        } else {
            let now = Clock::now();
            let next = self.fire(&mut timers, now, wakers);
            if !wakers.is_empty() {
                // Fired tasks are runnable now: do not block.
                return Some(Duration::ZERO);
            }
            match (next, limit) {
                // Until the next deadline, which is also when an earlier sleep must wake us.
                (Some(next), None) => {
                    timers.parked_until = Some(next);
                    self.shared.parked.store(true, Ordering::Release);
                    return Some(Duration::from_nanos(next - now));
                }
                (Some(next), Some(limit)) => {
                    (Some(limit.min(Duration::from_nanos(next - now))), Some(now))
                }
                (None, limit) => (limit, Some(now)),
            }
        };
        if !timeout.is_some_and(|t| t.is_zero()) {
            // A wait that may block: from now on an earlier sleep must wake it.
            timers.parked_until = timeout.map(|t| {
                now.unwrap_or_else(Clock::now)
                    .saturating_add(saturating_nanos(t))
            });
            self.shared.parked.store(true, Ordering::Release);
        }
        timeout
    }

    /// Moves the wakers of every due timer into `wakers`, for a thread that is not about to wait.
    pub(crate) fn fire_due(&self, wakers: &mut Vec<Waker>) {
        let mut timers = self.lock();
        if !timers.entries.is_empty() {
            self.fire(&mut timers, Clock::now(), wakers);
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
        let entries = {
            let mut timers = self.lock();
            // Every sleep's next poll takes the slow path, and finds its entry gone.
            self.shared.fired_to.store(u64::MAX, Ordering::Release);
            timers.earliest = u64::MAX;
            std::mem::take(&mut timers.entries)
        };
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
