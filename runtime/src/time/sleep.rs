//! `sleep`: a future that completes at a deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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
            handle.remove(self.deadline, id);
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
            if handle.update(deadline, *id, cx.waker()) {
                return Poll::Pending;
            }
        }
        // First poll, or the entry is gone (its runtime shut down, or the clock said the deadline
        // passed before `Instant::now` here did): register with the runtime polling us now.
        let handle =
            Handle::current().expect("a ripple::time::Sleep was polled outside a ripple runtime");
        let id = handle.insert(deadline, cx.waker());
        self.entry = Some((handle, id));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}
