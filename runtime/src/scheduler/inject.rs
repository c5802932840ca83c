//! The inject queue: tasks handed to a scheduler from outside its threads.
//!
//! A task spawned with a `Handle` from another thread, or woken by a waker called there (a
//! blocking thread finishing, a timer thread of another program), cannot touch the scheduler's
//! own run queue, which only its thread may use. It goes here instead, behind a lock, and the
//! scheduler looks here regularly (every `INJECT_INTERVAL` polls, and whenever its own queue is
//! empty). A length kept beside the lock lets those looks cost one atomic load while the queue
//! is empty, which is nearly always.

use std::collections::VecDeque;
use std::sync::PoisonError;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};
use crate::task_core::TaskRef;

/// Tasks queued from outside a scheduler's threads.
#[derive(Debug, Default)]
pub(crate) struct Inject {
    /// The queue, and whether it still takes tasks.
    queue: Mutex<Queue>,
    /// The queue's length, so that an empty queue is seen without the lock.
    len: AtomicUsize,
}

/// What [`Inject`]'s lock protects.
#[derive(Debug, Default)]
struct Queue {
    /// The tasks, oldest first.
    tasks: VecDeque<TaskRef>,
    /// The scheduler shut down: tasks that arrive now are cancelled on the spot.
    closed: bool,
}

impl Inject {
    /// Queues `task`; returns whether it was queued. A task offered after [`Inject::close`] is
    /// cancelled instead (its future dropped, its `JoinHandle` told), and `false` returned.
    pub(crate) fn push(&self, task: TaskRef) -> bool {
        let mut queue = self.lock();
        if queue.closed {
            drop(queue);
            task.shutdown();
            return false;
        }
        queue.tasks.push_back(task);
        self.len.fetch_add(1, Ordering::Release);
        true
    }

    /// Queues every task of `tasks` under one lock (the overflow of a worker's full queue).
    /// Tasks offered after [`Inject::close`] are cancelled instead.
    pub(crate) fn push_batch(&self, tasks: impl Iterator<Item = TaskRef>) {
        let mut queue = self.lock();
        if queue.closed {
            drop(queue);
            tasks.for_each(|task| task.shutdown());
            return;
        }
        let before = queue.tasks.len();
        queue.tasks.extend(tasks);
        self.len
            .fetch_add(queue.tasks.len() - before, Ordering::Release);
    }

    /// Whether the queue looks empty (one atomic load; it may change at once).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Takes the oldest task, if any.
    #[inline]
    pub(crate) fn pop(&self) -> Option<TaskRef> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut queue = self.lock();
        let task = queue.tasks.pop_front();
        if task.is_some() {
            self.len.fetch_sub(1, Ordering::Release);
        }
        task
    }

    /// Stops taking tasks and returns those still queued, for the caller to cancel.
    pub(crate) fn close(&self) -> VecDeque<TaskRef> {
        let mut queue = self.lock();
        queue.closed = true;
        self.len.store(0, Ordering::Release);
        std::mem::take(&mut queue.tasks)
    }

    /// The queue, locked. A panic elsewhere cannot leave it inconsistent (every change is one
    /// call on the `VecDeque`), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::thread;
    use crate::task_core::new_task;
    use crate::testing::Nowhere;
    use std::sync::Arc;

    #[test]
    fn loom_a_task_pushed_while_the_queue_closes_is_handed_back_or_cancelled() {
        crate::loom::model(|| {
            let inject = Arc::new(Inject::default());
            let (task, join) = new_task(async {}, Arc::new(Nowhere), 1);
            let pusher = {
                let inject = inject.clone();
                thread::spawn(move || inject.push(task))
            };
            let orphans = inject.close();
            let queued = pusher.join().unwrap();
            assert!(
                inject.pop().is_none(),
                "nothing is left behind a closed queue"
            );
            if queued {
                assert_eq!(
                    orphans.len(),
                    1,
                    "a task queued before the close is handed back"
                );
            } else {
                assert!(
                    orphans.is_empty() && join.is_finished(),
                    "a late task is cancelled"
                );
            }
        });
    }
}
