//! The cooperative I/O budget: how many ready I/O operations one poll of a task may complete.
//!
//! A task runs until it returns `Pending`, and a socket that is always ready (a fast client, a
//! full pipe) never makes it return. So each poll gets a budget of [`BUDGET_PER_POLL`] operations
//! (tokio's number); an operation that finds its source ready spends one unit, and once the
//! budget is spent the next one wakes its task and returns `Pending` instead, putting the task at
//! the back of the run queue. This is what keeps one busy connection from starving the others.
//!
//! The budget is a thread-local counter, because a thread runs one poll at a time: schedulers
//! grant it with [`with_budget`] around each poll, I/O spends it with [`consume_budget`]. Outside
//! a poll (code in `block_on` before the runtime starts, a test driving a future by hand) it is
//! unlimited.

use std::cell::Cell;
use std::task::{Context, Poll};

/// I/O operations one poll of a task may complete before it must yield (tokio: 128).
pub(crate) const BUDGET_PER_POLL: u32 = 128;
/// The budget outside any task poll: unlimited.
const UNLIMITED: u32 = u32::MAX;

thread_local! {
    /// Operations the poll running on this thread may still complete; `UNLIMITED` outside one.
    static BUDGET: Cell<u32> = const { Cell::new(UNLIMITED) };
}

/// Runs one poll with a fresh budget, and makes the budget unlimited again afterwards (even if
/// the poll unwinds).
#[inline]
pub(crate) fn with_budget<R>(poll: impl FnOnce() -> R) -> R {
    /// Puts the budget back to unlimited when dropped.
    struct Reset;
    impl Drop for Reset {
        #[inline]
        fn drop(&mut self) {
            BUDGET.with(|budget| budget.set(UNLIMITED));
        }
    }
    BUDGET.with(|budget| budget.set(BUDGET_PER_POLL));
    let _reset = Reset;
    poll()
}

/// Spends one unit of the running task's I/O budget: an operation found its source ready and is
/// about to do it. When the budget is spent, the task is woken (so it goes to the back of the run
/// queue) and `Pending` is returned instead. Only ready operations are charged, so a task that
/// waits on many sources is not charged for them.
#[inline]
pub(crate) fn consume_budget(cx: &mut Context<'_>) -> Poll<()> {
    BUDGET.with(|budget| match budget.get() {
        0 => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        UNLIMITED => Poll::Ready(()),
        left => {
            budget.set(left - 1);
            Poll::Ready(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_task::noop_waker;

    #[test]
    fn a_poll_that_spends_its_budget_yields_and_the_next_poll_gets_a_new_one() {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        with_budget(|| {
            for _ in 0..BUDGET_PER_POLL {
                assert!(consume_budget(&mut cx).is_ready());
            }
            assert!(consume_budget(&mut cx).is_pending());
        });
        assert!(
            consume_budget(&mut cx).is_ready(),
            "outside a poll the budget is unlimited"
        );
        with_budget(|| assert!(consume_budget(&mut cx).is_ready()));
    }
}
