//! `Watchdog`: one timeout for every operation of a connection, checked lazily.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::sleep::far_future;
use super::timeout::Elapsed;
use super::{sleep_until, Sleep};

/// A timeout shared by a sequence of operations (the reads of a connection, say): each must
/// complete within one to two `period`s of starting.
///
/// An idle timeout wraps every read (and a write timeout every write) of a connection. With
/// [`timeout`](super::timeout), each operation that has to wait registers a new sleep with the
/// runtime's timers and removes it when it completes: on a busy echo server that is two trips
/// to a locked map per message, and the clock read each time. A watchdog keeps one sleep for the
/// whole connection instead, and looks at it only every `period`:
///
/// - [`Watchdog::watch`] counts the operation as started and runs it. An operation that
///   completes without waiting never touches the timers; one that waits polls the watchdog's
///   sleep, which (registered once) answers without a lock or a clock.
/// - When the sleep fires (every `period`, while operations wait), the watchdog checks: if an
///   operation started since the last check, all is well, and the sleep is pushed one `period`
///   further; if the same operation was already waiting at the last check, it has waited at
///   least `period`, and fails with [`Elapsed`].
///
/// So an operation fails after waiting between one and two periods (on average one and a half),
/// never sooner: the price of not reading the clock on every operation. nginx's timeouts are
/// similarly coarse (its clock is read once per event-loop turn).
///
/// ```
/// use std::time::Duration;
/// use ripple_runtime::time::{sleep, Watchdog};
///
/// ripple_runtime::block_on(async {
///     let mut idle = Watchdog::new(Duration::from_millis(20));
///     // Quick operations pass...
///     for _ in 0..3 {
///         assert!(idle.watch(sleep(Duration::from_millis(5))).await.is_ok());
///     }
///     // ...one that waits too long does not.
///     assert!(idle.watch(sleep(Duration::from_secs(60))).await.is_err());
/// });
/// ```
#[derive(Debug)]
pub struct Watchdog {
    /// How long an operation may wait, at least.
    period: Duration,
    /// Fires at the next check; armed at the first operation that waits.
    sleep: Sleep,
    /// Whether `sleep` has a deadline (it is created far in the future, and armed lazily).
    armed: bool,
    /// Whether an operation has started since the last check.
    started: bool,
}

impl Watchdog {
    /// A watchdog whose operations may each wait `period` (and at most twice that).
    pub fn new(period: Duration) -> Watchdog {
        Watchdog {
            period,
            sleep: sleep_until(far_future()),
            armed: false,
            started: false,
        }
    }

    /// How long an operation may wait, at least.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Runs `future` as one operation: its output, or [`Elapsed`] if it is still waiting at the
    /// second check after it started. Dropping the returned future cancels the operation and
    /// leaves the watchdog ready for the next.
    pub fn watch<F: Future>(&mut self, future: F) -> Watch<'_, F> {
        self.started = true;
        Watch { dog: self, future }
    }

    /// Pushes the next check one period from now.
    fn arm(&mut self) {
        let next = Instant::now()
            .checked_add(self.period)
            .unwrap_or_else(far_future);
        self.sleep.reset(next);
        self.armed = true;
    }

    /// Called while the current operation waits: `Ready` once it has waited too long.
    ///
    /// Inlined, this is only the sleep's fast path (registered for this task, not yet due);
    /// arming and the check itself are out of line, as they run once a period at most.
    #[inline]
    fn poll_check(&mut self, cx: &mut Context<'_>) -> Poll<Elapsed> {
        if self.sleep.is_pending_for(cx) {
            return Poll::Pending;
        }
        self.poll_check_slow(cx.waker())
    }

    /// The rest of [`poll_check`](Self::poll_check): the first wait, or a sleep that may have
    /// fired (or moved to another task). It takes the waker, not the `Context`, for the reason
    /// given at `Sleep::poll_slow`.
    #[cold]
    fn poll_check_slow(&mut self, waker: &Waker) -> Poll<Elapsed> {
        if !self.armed {
            // The first wait of this watchdog: the first check is a period from now.
            self.started = false;
            self.arm();
        }
        loop {
            ready!(self.sleep.poll_slow(waker));
            if !self.started {
                // The same operation was waiting at the last check, a period ago.
                return Poll::Ready(Elapsed::new());
            }
            self.started = false;
            self.arm();
        }
    }
}

pin_project! {
    /// The future returned by [`Watchdog::watch`].
    #[must_use = "a Watch does nothing unless awaited"]
    #[derive(Debug)]
    pub struct Watch<'a, F> {
        // The watchdog.
        dog: &'a mut Watchdog,
        // The operation.
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Watch<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The work goes first: an operation that is ready at the check still counts.
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        this.dog.poll_check(cx).map(Err)
    }
}
