//! Timers: `sleep`, `timeout` and `interval`, and the deadlines behind them.
//!
//! A runtime keeps every pending deadline in one ordered map (`Timers`), and an *alarm* set for
//! the nearest one: a timerfd in the driver's epoll, so the kernel keeps the time. A park needs
//! no clock and no timeout for the timers; when a deadline comes, the alarm ends the wait like
//! any I/O event, and the driver fires every timer whose deadline has passed and sets the alarm
//! for the next. A [`Sleep`] registers itself the first time it is polled and unregisters when
//! dropped, so creating and dropping a sleep that was never awaited costs nothing, and
//! cancelling one costs a map removal.
//!
//! The alarm is set lazily: only when a deadline earlier than the one it is set for arrives (a
//! `timerfd_settime`, under the timers' lock, from whichever thread registers the sleep), never
//! when a timer is removed. An alarm that rings for a removed timer fires nothing and is set for
//! the next deadline. So a server whose connections each keep a timeout pushed ever later (a
//! [`Watchdog`]) costs the kernel one alarm per deadline that really comes, not one per message.
//!
//! The timers know nothing of epoll: the driver gives them a function that sets the alarm.
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
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// When the alarm is set to ring (`u64::MAX`: not set). Invariant: at or before the
    /// earliest deadline of `entries`.
    armed: u64,
    /// The runtime has shut down (`Handle::clear`): nothing registers any more.
    closed: bool,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            entries: BTreeMap::new(),
            next_id: 0,
            armed: u64::MAX,
            closed: false,
        }
    }
}

impl Timers {
    /// Parks `waker` until `deadline`; returns the entry's id.
    fn insert(&mut self, deadline: u64, waker: &Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if !self.closed {
            self.entries.insert((deadline, id), waker.clone());
        }
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
        self.entries.remove(&(deadline, id))
    }

    /// Moves the wakers of every timer due at `now` into `wakers`; returns the next deadline.
    fn fire(&mut self, now: u64, wakers: &mut Vec<Waker>) -> Option<u64> {
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            wakers.push(entry.remove());
        }
        None
    }
}

/// The timers' clock: `CLOCK_MONOTONIC` (the clock of [`Instant`], and of the alarm's timerfd) in
/// nanoseconds since boot, as a plain `u64`, which the alarm takes as it is.
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// An instant, and the clock's reading at (just after) it: what converts one to the other.
    base: (Instant, u64),
}

impl Clock {
    /// A clock whose conversions start from now.
    fn new() -> Clock {
        // The instant, read between two readings of the clock that are close together: a
        // thread preempted in between would make every deadline of the runtime late by that
        // much. The later reading is kept, so a converted deadline is never early.
        let mut base = None;
        for _ in 0..10 {
            let before = Clock::now();
            let instant = Instant::now();
            let after = Clock::now();
            base = Some((instant, after));
            if after - before < 1_000 {
                break;
            }
        }
        Clock {
            base: base.expect("the loop runs at least once"),
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

    /// `instant` on this clock. Read just after `base.0`, `base.1` is at most about a
    /// microsecond late, so a deadline converted here is never early.
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

/// Sets the driver's alarm to ring at a time on the timers' clock (the driver's
/// `Reactor::set_alarm`).
pub(crate) type SetAlarm = Arc<dyn Fn(u64) + Send + Sync>;

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
    /// Sets the driver's alarm (see the module docs).
    set_alarm: SetAlarm,
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
    /// Empty timers that set the driver's alarm with `set_alarm`.
    pub(crate) fn new(set_alarm: SetAlarm) -> Handle {
        Handle {
            shared: Arc::new(Shared {
                timers: Mutex::new(Timers::default()),
                set_alarm,
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

    /// Registers a sleep; returns its id. Sets the alarm earlier if it must ring for this one.
    fn insert(&self, deadline: u64, waker: &Waker) -> u64 {
        let mut timers = self.lock();
        let id = timers.insert(deadline, waker);
        if deadline < timers.armed && !timers.closed {
            // Under the lock: two registrations racing must leave the alarm at the earlier.
            timers.armed = deadline;
            (self.shared.set_alarm)(deadline);
        }
        id
    }

    /// The alarm rang: moves the wakers of every timer now due into `wakers`, and sets the
    /// alarm for the next deadline. `fired_to` is raised first, under the lock (the only place
    /// it changes but `clear`), so a plain load and store keep it growing.
    pub(crate) fn ring(&self, wakers: &mut Vec<Waker>) {
        let mut timers = self.lock();
        let now = Clock::now();
        let fired_to = &self.shared.fired_to;
        if now > fired_to.load(Ordering::Relaxed) {
            fired_to.store(now, Ordering::Release);
        }
        let next = timers.fire(now, wakers);
        timers.armed = next.unwrap_or(u64::MAX);
        if let Some(next) = next {
            (self.shared.set_alarm)(next);
        }
    }

    /// Forgets every entry: the runtime is shutting down. The wakers are dropped after the lock
    /// is released. A sleep that is polled again re-registers with the runtime polling it.
    pub(crate) fn clear(&self) {
        let entries = {
            let mut timers = self.lock();
            // Every sleep's next poll takes the slow path, and finds its entry gone.
            self.shared.fired_to.store(u64::MAX, Ordering::Release);
            // A sleep polled on a worker that outlives the shutdown must not register: its
            // waker would keep its task, and so the runtime, alive.
            timers.closed = true;
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
