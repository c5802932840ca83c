//! The task core: a spawned future, the state word that says who may touch it, and its waker.
//!
//! To spawn a future we move it to the heap together with a little state: whether it is queued,
//! whether it is being polled, whether it has finished, and where its output goes. That heap
//! object is the *task*. A run queue holds `Arc`s to tasks; polling a task hands the future a
//! [`Waker`] that, when called, puts the same `Arc` back into the queue. This is the "event loop"
//! of the seeds, seen from the work side: the loop only ever runs tasks that something woke.
//!
//! One allocation holds everything (`Task`), and every task of one future type shares one waker
//! vtable (built by `futures-task` from [`ArcWake`]), so `Waker::will_wake` holds for two wakers of
//! the same task (as far as the compiler keeps one vtable per type, which std does not promise but
//! does in practice) and the reactor can skip a clone.
//!
//! ```
//! let rt = ripple_runtime::runtime::Builder::new_current_thread().build().unwrap();
//! let answer = rt.block_on(async {
//!     let handle = ripple_runtime::spawn(async { 6 * 7 });
//!     handle.await.unwrap()
//! });
//! assert_eq!(answer, 42);
//! ```

mod join;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_task::{waker_ref, ArcWake};

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::Mutex;

pub use join::{JoinError, JoinHandle};

use join::Join;

/// A type-erased, queued task: what a run queue holds.
pub(crate) type TaskRef = Arc<dyn Runnable>;

/// What a scheduler must do for its tasks. The task knows nothing else about who runs it (this
/// module imports nothing above it), so each scheduler flavour implements this trait.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queues `task` to be polled. Called from any thread by the task's waker.
    fn schedule(&self, task: TaskRef);
    /// Queues `task` again after a poll during which it was woken (by itself, as `yield_now`
    /// does, or by another): it goes behind the tasks already waiting. By default, `schedule`.
    fn reschedule(&self, task: TaskRef) {
        self.schedule(task);
    }
    /// Whether the calling thread is the one running this scheduler. A waker that finds it is
    /// can hand its own reference to [`Schedule::schedule_local`] instead of cloning it.
    fn is_local(&self) -> bool;
    /// Queues `task` on the scheduler the calling thread runs, which [`Schedule::is_local`] has
    /// just confirmed is the task's own. It takes no `&self`: the caller's only reference to the
    /// scheduler lives inside the task it is giving away.
    fn schedule_local(task: TaskRef);
    /// [`Schedule::reschedule`] on the thread [`Schedule::is_local`] has just confirmed runs
    /// this scheduler: the runner's own reference moves into the queue, with no count to bump.
    /// By default, [`Schedule::schedule_local`].
    fn reschedule_local(task: TaskRef) {
        Self::schedule_local(task);
    }
    /// `task` has completed, on whichever thread ran it: forget it.
    fn release(&self, task: &dyn Runnable);
    /// `task` was woken while it ran, on the calling thread (itself, as `yield_now` does) or on
    /// another: its runner queues it once the poll is over ([`Schedule::reschedule`]). Only the
    /// trace cares who woke it, and when, so by default nothing happens.
    fn woken_while_running(&self, task: &dyn Runnable) {
        let _ = task;
    }
}

/// The scheduler-facing side of a task, with its future type erased.
pub(crate) trait Runnable: Send + Sync {
    /// Polls the future once (or cancels it, if it was aborted), and says what happened.
    fn run(self: Arc<Self>) -> RunOutcome;
    /// Drops the future without polling it and completes the task as cancelled. Used when the
    /// runtime shuts down. A task that is running (on another worker) is marked as aborted
    /// instead, so that its runner queues it again once the poll is over and its next run drops
    /// the future; a complete task is left alone.
    fn shutdown(&self);
    /// The task's slot in its runtime's registry of owned tasks ([`NOT_OWNED`] when it has none).
    fn owned_index(&self) -> &AtomicUsize;
    /// The task's id in its runtime (1 for the first task spawned), for the trace.
    fn id(&self) -> u64;
}

/// What one [`Runnable::run`] did, for the scheduler's counters and trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunOutcome {
    /// The future was polled and is not finished.
    Pending,
    /// The future was polled and finished.
    Ready,
    /// The future was polled and panicked; the panic went to the `JoinHandle`.
    Panicked,
    /// The task had been aborted: its future was dropped, not polled.
    Cancelled,
    /// Nothing: the task was already running elsewhere or complete.
    Skipped,
}

impl RunOutcome {
    /// The outcome in one word, as the trace writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RunOutcome::Pending => "pending",
            RunOutcome::Ready => "ready",
            RunOutcome::Panicked => "panicked",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Skipped => "skipped",
        }
    }

    /// Whether the task is complete after this run.
    pub(crate) fn is_final(self) -> bool {
        matches!(
            self,
            RunOutcome::Ready | RunOutcome::Panicked | RunOutcome::Cancelled
        )
    }
}

impl std::fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Debug for dyn Runnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Task({})", self.id())
    }
}

/// `owned_index` of a task that is not (or not yet) in its runtime's registry.
pub(crate) const NOT_OWNED: usize = usize::MAX;

/// The task is in a run queue, or will be put there by whoever is running it. Set by a wake,
/// cleared by the executor just before it polls. May coexist with every other bit; on a
/// `COMPLETE` task it means nothing (a wake sets it but queues nothing).
const SCHEDULED: usize = 1 << 0;
/// The executor is polling the future right now and has exclusive access to the stage.
/// Never set together with `COMPLETE`.
const RUNNING: usize = 1 << 1;
/// The future is gone and the stage holds the output. Final: no bit is cleared after it.
const COMPLETE: usize = 1 << 2;
/// `abort` was called: the next run drops the future instead of polling it.
const CANCELLED: usize = 1 << 3;

/// Where the future is in its life. Which side may touch it is decided by the state word.
enum Stage<F: Future> {
    /// Not finished: the future itself.
    Running(F),
    /// Finished: the output, or why there is none, until the `JoinHandle` takes it.
    Finished(Result<F::Output, JoinError>),
    /// The output was taken, or dropped at shutdown.
    Consumed,
}

/// A spawned future and everything needed to run it, in one allocation.
pub(crate) struct Task<F: Future, S> {
    /// `SCHEDULED | RUNNING | COMPLETE | CANCELLED`, changed only by atomic read-modify-writes.
    state: AtomicUsize,
    /// Slot in the owning runtime's task registry ([`NOT_OWNED`] when it has none); whoever
    /// swaps a slot out of it is the one that removes the task from the registry.
    owned_index: AtomicUsize,
    /// The task's number in its runtime, for the trace. Fixed at creation.
    id: u64,
    /// Who runs this task when it is woken.
    scheduler: S,
    /// # Invariant
    /// Only the thread that set `RUNNING` may touch the stage while that bit is set, and only the
    /// single `JoinHandle` may touch it after `COMPLETE` was set (observed with `Acquire`).
    stage: UnsafeCell<Stage<F>>,
    /// The waker of whoever awaits the `JoinHandle`. The completing side sets `COMPLETE` before
    /// taking this lock, and the joining side checks `COMPLETE` under it, so no wake is lost.
    join_waker: Mutex<Option<Waker>>,
}

// SAFETY: the stage is the only field that is not already `Sync`, and the state word hands it to
// one thread at a time (see the invariant on `stage`). `F` and its output move between threads
// when the task is woken or joined from elsewhere, hence the `Send` bounds.
unsafe impl<F: Future + Send, S: Sync> Sync for Task<F, S> where F::Output: Send {}

/// Allocates task number `id` for `future`, owned by `scheduler`. The caller queues the returned
/// reference.
pub(crate) fn new_task<F, S>(future: F, scheduler: S, id: u64) -> (TaskRef, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let task = Arc::new(Task {
        // A new task starts out queued: the caller pushes it right away.
        state: AtomicUsize::new(SCHEDULED),
        owned_index: AtomicUsize::new(NOT_OWNED),
        id,
        scheduler,
        stage: UnsafeCell::new(Stage::Running(future)),
        join_waker: Mutex::new(None),
    });
    let join: Arc<dyn Join<F::Output>> = task.clone();
    (task, JoinHandle::new(join))
}

impl<F, S> Task<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    /// Stores the result, publishes `COMPLETE` and wakes the joiner.
    ///
    /// The caller must hold `RUNNING` (it has exclusive access to the stage).
    fn complete(&self, result: Result<F::Output, JoinError>) {
        self.stage.with_mut(|stage| {
            // SAFETY: the caller holds RUNNING, so no other thread touches the stage.
            let stage = unsafe { &mut *stage };
            // Drop the future where it lies: it is pinned, so it must not move before its
            // destructor runs. If that destructor panics, the assignment still stores `Consumed`
            // while unwinding, and `catch_unwind` keeps the panic out of the executor.
            let _ = catch_unwind(AssertUnwindSafe(|| *stage = Stage::Consumed));
            *stage = Stage::Finished(result);
        });
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !RUNNING) | COMPLETE)
            })
            .expect("the closure always returns Some");
        // Take the waker under the lock, wake after dropping it.
        let waker = self
            .join_waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
        }
    }
}

impl<F, S> Runnable for Task<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    fn run(self: Arc<Self>) -> RunOutcome {
        // Claim the future: clear SCHEDULED (a wake from now on queues it again) and set RUNNING.
        // Usually the state is exactly SCHEDULED, and one compare-exchange does it.
        let claimed = self
            .state
            .compare_exchange(SCHEDULED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .or_else(|_| {
                self.state
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                        (s & (RUNNING | COMPLETE) == 0).then_some((s & !SCHEDULED) | RUNNING)
                    })
            });
        let Ok(prev) = claimed else {
            return RunOutcome::Skipped;
        };
        if prev & CANCELLED != 0 {
            self.complete(Err(JoinError::cancelled()));
            self.scheduler.release(&*self);
            return RunOutcome::Cancelled;
        }

        // The waker borrows our Arc: no reference count traffic unless someone clones it.
        let waker = waker_ref(&self);
        let mut cx = Context::from_waker(&waker);
        let polled = catch_unwind(AssertUnwindSafe(|| {
            self.stage.with_mut(|stage| {
                // SAFETY: we set RUNNING above, so the stage is ours until we clear it.
                let stage = unsafe { &mut *stage };
                let Stage::Running(future) = stage else {
                    unreachable!("a task without COMPLETE still holds its future");
                };
                // SAFETY: the future lives inside the Arc'd task and is never moved out of it
                // until it is dropped in `complete`.
                unsafe { Pin::new_unchecked(future) }.poll(&mut cx)
            })
        }));

        match polled {
            Ok(Poll::Pending) => {
                // Release the future. If it was woken while we polled, queue it again now.
                let prev = self.state.fetch_and(!RUNNING, Ordering::AcqRel);
                if prev & SCHEDULED != 0 {
                    if self.scheduler.is_local() {
                        // Our reference goes to the queue: no clone here, no drop below.
                        S::reschedule_local(self);
                    } else {
                        self.scheduler.reschedule(self.clone());
                    }
                }
                RunOutcome::Pending
            }
            Ok(Poll::Ready(output)) => {
                self.complete(Ok(output));
                self.scheduler.release(&*self);
                RunOutcome::Ready
            }
            Err(panic) => {
                self.complete(Err(JoinError::panic(panic)));
                self.scheduler.release(&*self);
                RunOutcome::Panicked
            }
        }
    }

    fn shutdown(&self) {
        let prev = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                if s & COMPLETE != 0 {
                    None
                } else if s & RUNNING != 0 {
                    // Its runner sees SCHEDULED when the poll ends and queues it again.
                    Some(s | CANCELLED | SCHEDULED)
                } else {
                    Some(s | RUNNING | CANCELLED)
                }
            });
        if prev.is_ok_and(|s| s & RUNNING == 0) {
            self.complete(Err(JoinError::cancelled()));
        }
    }

    fn owned_index(&self) -> &AtomicUsize {
        &self.owned_index
    }

    fn id(&self) -> u64 {
        self.id
    }
}

impl<F, S> ArcWake for Task<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    /// The reactor's and the timers' wake: they own a waker and give it up. On the runtime's
    /// own thread the reference moves straight into the run queue, with no count to bump.
    fn wake(self: Arc<Self>) {
        let prev = transition_to_scheduled(&self.state);
        if must_queue(prev) {
            if self.scheduler.is_local() {
                S::schedule_local(self);
            } else {
                // Another thread: `schedule` borrows the scheduler inside this task while the
                // queued reference may already be running (and dropped) on the runtime's
                // thread, so queue a clone and drop ours afterwards.
                self.scheduler.schedule(self.clone());
            }
        } else if first_wake_while_running(prev) {
            woken_while_running(&*self);
        }
    }

    fn wake_by_ref(arc_self: &Arc<Self>) {
        let prev = transition_to_scheduled(&arc_self.state);
        if must_queue(prev) {
            arc_self.scheduler.schedule(arc_self.clone());
        } else if first_wake_while_running(prev) {
            woken_while_running(&**arc_self);
        }
    }
}

/// Marks the task scheduled, and returns the state before: whether the waker must queue the
/// task ([`must_queue`]) or only tell the scheduler ([`first_wake_while_running`]).
#[inline(always)]
fn transition_to_scheduled(state: &AtomicUsize) -> usize {
    state.fetch_or(SCHEDULED, Ordering::AcqRel)
}

/// Whether the waker must queue the task: it was not queued, running (its runner re-queues it
/// after the poll) or complete.
#[inline(always)]
fn must_queue(prev: usize) -> bool {
    prev & (SCHEDULED | RUNNING | COMPLETE) == 0
}

/// Whether this is the first wake of a task during its poll: nothing to queue, but the
/// scheduler may note it ([`Schedule::woken_while_running`]).
#[inline(always)]
fn first_wake_while_running(prev: usize) -> bool {
    prev & (SCHEDULED | RUNNING | COMPLETE) == RUNNING
}

/// Tells the scheduler of a wake during a poll: out of the hot path of a wake.
#[cold]
#[inline(never)]
fn woken_while_running<F, S>(task: &Task<F, S>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    task.scheduler.woken_while_running(task);
}

impl<F, S> Join<F::Output> for Task<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        if self.state.load(Ordering::Acquire) & COMPLETE == 0 {
            let mut slot = self
                .join_waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Check again under the lock: `complete` sets COMPLETE before it takes this lock.
            if self.state.load(Ordering::Acquire) & COMPLETE == 0 {
                let replaced = match &*slot {
                    Some(old) if old.will_wake(cx.waker()) => None,
                    _ => slot.replace(cx.waker().clone()),
                };
                // Drop the old waker after the lock: dropping a waker can run a task's
                // destructors, which may join this very task.
                drop(slot);
                drop(replaced);
                return Poll::Pending;
            }
        }
        let taken = self.stage.with_mut(|stage| {
            // SAFETY: COMPLETE was observed with Acquire, so the executor is done with the stage,
            // and the one JoinHandle (which is not Clone and polls through `&mut self`) is its
            // only user.
            std::mem::replace(unsafe { &mut *stage }, Stage::Consumed)
        });
        match taken {
            Stage::Finished(result) => Poll::Ready(result),
            _ => panic!("JoinHandle polled again after it returned the task's output"),
        }
    }

    fn abort(self: Arc<Self>) {
        // Mark it, then wake it like any waker would: its next run drops the future.
        self.state.fetch_or(CANCELLED, Ordering::AcqRel);
        ArcWake::wake(self);
    }

    fn is_finished(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMPLETE != 0
    }
}

/// Yields once to the scheduler: the task is queued behind every task that is already runnable.
///
/// A loop that never awaits anything that is pending would keep the thread forever; awaiting
/// `yield_now()` in it lets other tasks, I/O and timers run.
///
/// ```
/// ripple_runtime::block_on(async {
///     for _ in 0..3 {
///         ripple_runtime::task::yield_now().await;
///     }
/// });
/// ```
pub async fn yield_now() {
    /// Pending once (after asking to be woken right away), then ready.
    struct YieldNow {
        /// Whether we already returned `Pending`.
        yielded: bool,
    }
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.yielded {
                return Poll::Ready(());
            }
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow { yielded: false }.await
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::sync::atomic::AtomicBool;
    use crate::loom::thread;

    use crate::testing::Recorder;

    /// A future that is pending at its first poll and ready at the next; it notes whether a
    /// wake had happened when it was polled, and counts its drops.
    struct Probe {
        /// Polls so far.
        polls: u32,
        /// Set by the waking thread before it wakes.
        woken: Arc<AtomicBool>,
        /// Whether a poll saw `woken` set.
        saw_wake: Arc<AtomicBool>,
        /// Drops of this future.
        drops: Arc<AtomicUsize>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.woken.load(Ordering::SeqCst) {
                self.saw_wake.store(true, Ordering::SeqCst);
            }
            self.polls += 1;
            if self.polls == 1 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A task of a `Probe`, as the scheduler would hold it (queued once), with its join half.
    #[allow(clippy::type_complexity)]
    fn probe() -> (
        Arc<Task<Probe, Arc<Recorder>>>,
        JoinHandle<()>,
        Arc<Recorder>,
        [Arc<dyn Fn() -> bool + Send + Sync>; 3],
    ) {
        let (woken, saw_wake, drops) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let recorder = Arc::new(Recorder::default());
        let task = Arc::new(Task {
            state: AtomicUsize::new(SCHEDULED),
            owned_index: AtomicUsize::new(NOT_OWNED),
            id: 1,
            scheduler: recorder.clone(),
            stage: UnsafeCell::new(Stage::Running(Probe {
                polls: 0,
                woken: woken.clone(),
                saw_wake: saw_wake.clone(),
                drops: drops.clone(),
            })),
            join_waker: Mutex::new(None),
        });
        let join: Arc<dyn Join<()>> = task.clone();
        let woken_f: Arc<dyn Fn() -> bool + Send + Sync> = {
            let woken = woken.clone();
            Arc::new(move || {
                woken.store(true, Ordering::SeqCst);
                true
            })
        };
        let saw_f: Arc<dyn Fn() -> bool + Send + Sync> =
            Arc::new(move || saw_wake.load(Ordering::SeqCst));
        let drops_f: Arc<dyn Fn() -> bool + Send + Sync> =
            Arc::new(move || drops.load(Ordering::SeqCst) == 1);
        (
            task,
            JoinHandle::new(join),
            recorder,
            [woken_f, saw_f, drops_f],
        )
    }

    /// Runs every task the recorder holds, until it holds none.
    fn drain(recorder: &Recorder) -> usize {
        let mut runs = 0;
        loop {
            let queued = std::mem::take(&mut *recorder.0.lock().unwrap());
            if queued.is_empty() {
                return runs;
            }
            for task in queued {
                task.run();
                runs += 1;
            }
        }
    }

    #[test]
    fn loom_a_wake_while_the_task_runs_queues_it_once_and_is_not_lost() {
        crate::loom::model(|| {
            let (task, _join, recorder, [mark_woken, saw_wake, _]) = probe();
            let waker_side = task.clone();
            let waker = thread::spawn(move || {
                mark_woken();
                ArcWake::wake_by_ref(&waker_side);
            });
            let runner: TaskRef = task.clone();
            runner.run();
            waker.join().unwrap();
            let queued = recorder.0.lock().unwrap().len();
            assert!(queued <= 1, "queued twice");
            // Unless the poll already saw the wake, the wake must have queued the task.
            assert!(queued == 1 || saw_wake(), "the wake was lost");
        });
    }

    #[test]
    fn loom_an_abort_racing_a_run_drops_the_future_exactly_once() {
        crate::loom::model(|| {
            let (task, join, recorder, [_, _, dropped_once]) = probe();
            let aborter = thread::spawn(move || join.abort());
            let runner: TaskRef = task.clone();
            runner.run();
            aborter.join().unwrap();
            drain(&recorder);
            assert!(task.is_finished(), "an aborted task completes");
            assert!(dropped_once(), "the future is dropped once");
        });
    }

    #[test]
    fn loom_a_shutdown_racing_a_run_on_another_worker_drops_the_future() {
        crate::loom::model(|| {
            let (task, _join, recorder, [_, _, dropped_once]) = probe();
            let owner: TaskRef = task.clone();
            let shutdown = thread::spawn(move || owner.shutdown());
            let runner: TaskRef = task.clone();
            runner.run();
            shutdown.join().unwrap();
            // A task that was running when its owner shut it down is queued again by its
            // runner; the worker drains its queue at shutdown.
            drain(&recorder);
            assert!(task.is_finished(), "the task completes");
            assert!(dropped_once(), "the future is dropped once");
        });
    }
}

/// The state machine driven by hand, with no runtime, no thread and no system call: what Miri
/// can run (`cargo +nightly miri test -p ripple-runtime --lib miri_`), to check the `unsafe`
/// accesses to the stage and the waker's reference counting.
#[cfg(all(test, not(loom)))]
mod miri_checked {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    use crate::testing::Recorder as Queue;

    /// Counts its drops.
    struct Dropped(Arc<StdAtomicUsize>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Polls `join` once with a waker that does nothing.
    fn poll_join<T>(join: &mut JoinHandle<T>) -> Poll<Result<T, JoinError>> {
        Pin::new(join).poll(&mut Context::from_waker(futures_task::noop_waker_ref()))
    }

    #[test]
    fn miri_a_task_that_yields_is_queued_once_then_completes_and_is_joined() {
        let queue = Arc::new(Queue::default());
        let (task, mut join) = new_task(
            async {
                yield_now().await;
                6 * 7
            },
            queue.clone(),
            1,
        );
        assert!(poll_join(&mut join).is_pending());
        assert_eq!(task.run(), RunOutcome::Pending);
        let mut queued = queue.take();
        assert_eq!(queued.len(), 1, "the yield queued the task once");
        assert_eq!(queued.pop().unwrap().run(), RunOutcome::Ready);
        assert!(matches!(poll_join(&mut join), Poll::Ready(Ok(42))));
        assert!(queue.take().is_empty());
    }

    #[test]
    fn miri_an_aborted_task_drops_its_future_once_and_its_handle_says_cancelled() {
        let drops = Arc::new(StdAtomicUsize::new(0));
        let guard = Dropped(drops.clone());
        let queue = Arc::new(Queue::default());
        let (task, mut join) = new_task(
            async move {
                let _guard = guard;
                std::future::pending::<()>().await
            },
            queue.clone(),
            1,
        );
        join.abort();
        assert_eq!(task.run(), RunOutcome::Cancelled);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
        match poll_join(&mut join) {
            Poll::Ready(Err(err)) => assert!(err.is_cancelled()),
            other => panic!(
                "expected a cancelled task, got {:?}",
                other.map(|r| r.is_ok())
            ),
        }
    }

    #[test]
    fn miri_a_panic_goes_to_the_handle_and_a_late_waker_is_harmless() {
        let queue = Arc::new(Queue::default());
        let kept = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let keep = kept.clone();
        let (task, mut join) = new_task(
            async move {
                // Keep a waker past the end of the task.
                let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
                *keep.lock().unwrap() = Some(waker);
                panic!("boom")
            },
            queue.clone(),
            1,
        );
        assert_eq!(task.run(), RunOutcome::Panicked);
        match poll_join(&mut join) {
            Poll::Ready(Err(err)) => assert!(err.is_panic()),
            other => panic!("expected a panic, got {:?}", other.map(|r| r.is_ok())),
        }
        // The completed task's waker: waking it queues nothing, and dropping it frees the task.
        let waker = kept
            .lock()
            .unwrap()
            .take()
            .expect("the task kept its waker");
        waker.wake();
        assert!(queue.take().is_empty());
    }
}
