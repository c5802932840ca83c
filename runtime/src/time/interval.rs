//! `interval`: a ticker that completes once per period.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use super::{sleep_until, Sleep};

/// What an [`Interval`] does when ticks were missed (the task was busy past a whole period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up, keeping the original schedule.
    /// The number of ticks over a long run is exact. The default.
    #[default]
    Burst,
    /// Fire once now, then restart the schedule one period after this late tick.
    Delay,
    /// Fire once now, then continue at the next multiple of the period on the original
    /// schedule, dropping the missed ticks.
    Skip,
}

/// Ticks every `period`; the first tick completes immediately.
///
/// # Panics
/// If `period` is zero.
///
/// ```
/// use std::time::Duration;
/// ripple_runtime::block_on(async {
///     let mut ticker = ripple_runtime::time::interval(Duration::from_millis(2));
///     for _ in 0..3 {
///         ticker.tick().await;
///     }
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first time at `start`.
///
/// # Panics
/// If `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        period > Duration::ZERO,
        "`interval` needs a non-zero period"
    );
    Interval {
        sleep: sleep_until(start),
        period,
        missed_tick_behavior: MissedTickBehavior::default(),
    }
}

/// A stream of ticks, one per period; see [`interval`]. It is a
/// [`Stream`](futures_core::Stream) of the ticks' scheduled times, which never ends, so stream
/// combinators (`futures::StreamExt`, `futures_lite::StreamExt`) work on it:
///
/// ```
/// use std::time::Duration;
/// use futures_core::Stream;
///
/// ripple_runtime::block_on(async {
///     let mut ticks = ripple_runtime::time::interval(Duration::from_millis(1));
///     let mut ticks = std::pin::Pin::new(&mut ticks);
///     for _ in 0..3 {
///         let tick = std::future::poll_fn(|cx| ticks.as_mut().poll_next(cx)).await;
///         assert!(tick.is_some(), "an interval never ends");
///     }
/// });
/// ```
#[derive(Debug)]
pub struct Interval {
    /// Completes at the next tick.
    sleep: Sleep,
    /// The time between ticks.
    period: Duration,
    /// How late ticks are handled.
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// The polling form of [`tick`](Self::tick).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        ready!(Pin::new(&mut self.sleep).poll(cx));
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        let next = match self.missed_tick_behavior {
            MissedTickBehavior::Burst => scheduled + self.period,
            MissedTickBehavior::Delay if now > scheduled + self.period => now + self.period,
            MissedTickBehavior::Skip if now > scheduled + self.period => {
                let periods = (now - scheduled).as_nanos() / self.period.as_nanos();
                // Whole periods fit in u32 for any realistic delay; saturate otherwise.
                scheduled + self.period * u32::try_from(periods + 1).unwrap_or(u32::MAX)
            }
            _ => scheduled + self.period,
        };
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// Chooses how missed ticks are handled.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }

    /// The time between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.poll_tick(cx).map(Some)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}
