//! `JoinSet`: a set of tasks whose results come back in the order the tasks finish.
//!
//! Awaiting `JoinHandle`s one by one joins tasks in the order they were spawned, so one slow
//! task holds back the results of every fast one after it. A `JoinSet` hands out each result as
//! soon as its task is done. Each task it spawns carries a small guard, [`Report`]; when the
//! task's future is done with (it returned, panicked, or was aborted and dropped), the guard
//! adds the task's number to a list the set shares and wakes whoever waits in
//! [`JoinSet::join_next`]. So `join_next` looks only at tasks that have finished, one lock and
//! one map lookup each, however many tasks the set holds.

use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::Handle;
use crate::task_core::{JoinError, JoinHandle};

/// A set of spawned tasks, joined in the order they finish. Dropping the set aborts every task
/// still in it (their futures are dropped, so their destructors run); [`JoinSet::detach_all`]
/// lets them run on instead.
///
/// ```
/// use std::time::Duration;
/// use ripple_runtime::task::JoinSet;
///
/// ripple_runtime::block_on(async {
///     let mut set = JoinSet::new();
///     for ms in [30u64, 10, 20] {
///         set.spawn(async move {
///             ripple_runtime::time::sleep(Duration::from_millis(ms)).await;
///             ms
///         });
///     }
///     let mut order = Vec::new();
///     while let Some(result) = set.join_next().await {
///         order.push(result.unwrap());
///     }
///     assert_eq!(order, [10, 20, 30]);
/// });
/// ```
pub struct JoinSet<T> {
    /// The tasks not joined yet, by number.
    tasks: HashMap<u64, JoinHandle<T>>,
    /// Where the tasks' guards report that they finished.
    finished: Arc<Finished>,
    /// Tasks reported finished whose output was not stored yet when the set looked (a guard
    /// reports from inside the task's last poll, just before the task stores its output), and
    /// reported tasks not looked at yet. Looked at before anything else.
    finishing: Vec<u64>,
    /// The next task's number.
    next: u64,
}

/// What a set shares with the guards of its tasks.
#[derive(Debug, Default)]
struct Finished(Mutex<FinishedState>);

/// The tasks reported finished since the set last looked, and who to wake for the next one.
#[derive(Debug, Default)]
struct FinishedState {
    /// Numbers of tasks whose future is done with.
    ids: Vec<u64>,
    /// The task waiting in `join_next`, if one is.
    waker: Option<Waker>,
}

impl Finished {
    /// The state, locked (each change is a push or a take, so a poisoned lock is fine).
    fn lock(&self) -> MutexGuard<'_, FinishedState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Carried by each task of a set: reports the task finished when its future is dropped, which
/// happens whether it returned, panicked or was aborted.
struct Report {
    /// The task's number in its set.
    id: u64,
    /// Where to report.
    finished: Arc<Finished>,
}

impl Drop for Report {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.finished.lock();
            state.ids.push(self.id);
            state.waker.take()
        };
        // Woken with the lock released: the woken task may look at the set at once.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

pin_project! {
    /// A task's future with its guard: polled straight through (a task is polled on every
    /// wake, so this wrapper must cost nothing), the guard dropped with it.
    struct Reporting<F> {
        #[pin]
        future: F,
        report: Report,
    }
}

impl<F: Future> Future for Reporting<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            tasks: HashMap::new(),
            finished: Arc::default(),
            finishing: Vec::new(),
            next: 0,
        }
    }

    /// Spawns `future` on the current runtime, into the set.
    ///
    /// # Panics
    /// Outside a runtime, as [`spawn`](super::spawn) does.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (id, future) = self.reporting(future);
        self.tasks.insert(id, super::spawn(future));
    }

    /// Spawns `future` on the runtime of `handle`, into the set; works from any thread.
    #[track_caller]
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (id, future) = self.reporting(future);
        self.tasks.insert(id, handle.spawn(future));
    }

    /// The set's next task number, and `future` carrying that task's guard.
    fn reporting<F>(&mut self, future: F) -> (u64, Reporting<F>)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let id = self.next;
        self.next += 1;
        let report = Report {
            id,
            finished: self.finished.clone(),
        };
        (id, Reporting { future, report })
    }

    /// Waits for the next task to finish and returns its result: its output, or a
    /// [`JoinError`] if it panicked or was aborted. `None` once the set is empty.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// The result of a task that has finished already, if one has; never waits.
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        let mut cx = Context::from_waker(futures_task::noop_waker_ref());
        match self.poll_join_next(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => None,
        }
    }

    /// The polling form of [`join_next`](Self::join_next).
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        loop {
            if self.tasks.is_empty() {
                return Poll::Ready(None);
            }
            if let Some(result) = self.take_finished(cx) {
                return Poll::Ready(Some(result));
            }
            // Nothing among the tasks reported so far: take the newly reported ones, or leave
            // a waker for the next report. Both under the lock, so no report falls in between.
            let mut state = self.finished.lock();
            if state.ids.is_empty() {
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            self.finishing.append(&mut state.ids);
        }
    }

    /// The result of one of the reported tasks whose output is stored, removing it from the
    /// set. A reported task whose output is not stored yet keeps its place in `finishing`, and
    /// its handle keeps `cx`'s waker, which it wakes once the output is there.
    fn take_finished(&mut self, cx: &mut Context<'_>) -> Option<Result<T, JoinError>> {
        let mut i = 0;
        while i < self.finishing.len() {
            let id = self.finishing[i];
            let Some(handle) = self.tasks.get_mut(&id) else {
                // Detached, or joined already.
                self.finishing.swap_remove(i);
                continue;
            };
            if let Poll::Ready(result) = Pin::new(handle).poll(cx) {
                self.finishing.swap_remove(i);
                self.tasks.remove(&id);
                return Some(result);
            }
            i += 1;
        }
        None
    }

    /// Aborts every task in the set and waits until each has finished; the set is then empty.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }
}

impl<T> JoinSet<T> {
    /// How many tasks the set holds (finished ones count until they are joined).
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Aborts every task in the set. They stay in it: each is joined as a cancelled
    /// [`JoinError`] (or with its output, if it finished first).
    pub fn abort_all(&mut self) {
        for handle in self.tasks.values() {
            handle.abort();
        }
    }

    /// Empties the set without aborting its tasks: they run on, detached.
    pub fn detach_all(&mut self) {
        self.tasks.clear();
        self.finishing.clear();
    }
}

impl<T: Send + 'static> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet")
            .field("len", &self.tasks.len())
            .finish()
    }
}
