//! The current-thread scheduler: one thread, one run queue, and the driver it parks in.
//!
//! One thread runs everything: it pops a task, polls it, and repeats. When the queue is empty it
//! *parks* in the driver, which re-checks the sockets that short reads drained, blocks in epoll
//! until an event, the timers' alarm or another thread ends the wait, wakes the tasks of the
//! events, and, if the alarm rang, fires the due timers (`Driver::park`, in that order). Every
//! [`EVENT_INTERVAL`](super::EVENT_INTERVAL) polls it also parks with a zero timeout, a look
//! that does not block, so a task that is always ready cannot starve I/O or timers.
//!
//! State is split by who may touch it. [`Shared`] is reachable from any thread (through wakers
//! and handles) and uses atomics and locks. [`Core`] belongs to the thread inside `block_on` and
//! uses plain `RefCell`s; the thread finds it through a thread-local pointer, set while it runs
//! the scheduler.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::{pin, Pin};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_task::ArcWake;

use super::blocking::BlockingPool;
use super::inject::Inject;
use super::owned::{take_slot, OwnedTasks, Released};
use super::Handle;
use super::INJECT_INTERVAL;
use crate::context::Scoped;
use crate::coop;
use crate::driver::{self, Driver};
use crate::metrics::{Counters, LocalCounters, Metrics, WakeSource};
use crate::task_core::{new_task, JoinHandle, RunOutcome, Runnable, Schedule, TaskRef};
use crate::trace::{self, Tracer};

/// The part of a scheduler that any thread may reach.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Tasks woken or spawned from other threads, waiting for the scheduler's thread.
    inject: Inject,
    /// Tasks that completed on other threads, for the registry to forget.
    released: Released,
    /// Set by the `block_on` future's waker; the loop polls that future only when it is set.
    main_woken: AtomicBool,
    /// The reactor and timers, for unparking the thread and for shutdown.
    driver: driver::Handle,
    /// Threads for blocking work.
    pub(crate) blocking: BlockingPool,
    /// What the scheduler did so far; see `metrics.rs`.
    pub(crate) counters: Counters,
    /// What to trace (`RIPPLE_TRACE`, `RIPPLE_TRACE_FILE`); fixed when the runtime is built.
    trace: Tracer,
}

/// The part of a scheduler that only the thread inside `block_on` touches.
#[derive(Debug)]
pub(crate) struct Core {
    /// Runnable tasks, in wake order.
    run_queue: RefCell<VecDeque<TaskRef>>,
    /// Every live task, so that shutdown can drop the futures of tasks parked on I/O or timers
    /// (the run queue only knows about runnable ones).
    owned: OwnedTasks,
    /// The driver, owned outright: only this thread ever parks in it.
    driver: RefCell<Driver>,
    /// This thread's part of the driver.
    driver_local: driver::Local,
    /// Polls since the thread last parked.
    polls_since_park: Cell<u32>,
    /// Polls in total, for choosing between the local queue and the inject queue.
    polls: Cell<u32>,
    /// Polls between non-blocking looks at the driver.
    event_interval: u32,
    /// The counts only this thread makes, and who is waking tasks right now; published to
    /// `Shared::counters` at each park.
    counters: LocalCounters,
    /// A copy of `Shared::trace` where the hot paths already look, so that a trace that is off
    /// costs them one compare (of `trace.on`) with memory they have at hand.
    trace: Tracer,
}

/// A current-thread scheduler: the shared half and the thread's half.
#[derive(Debug)]
pub(crate) struct CurrentThread {
    /// Reachable from everywhere.
    pub(crate) shared: Arc<Shared>,
    /// Ours while we are inside `block_on`.
    core: Core,
}

thread_local! {
    /// The scheduler this thread is running, if any.
    static CURRENT: Scoped<CurrentThread> = const { Scoped::new() };
}

/// Runs `f` with the scheduler this thread is running, if any.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&CurrentThread>) -> R) -> R {
    Scoped::with(&CURRENT, f)
}

impl Shared {
    /// Queues a task from a thread that is not running this scheduler.
    fn push_remote(&self, task: TaskRef) {
        if self.inject.push(task) {
            // The thread may be blocked in epoll: wake it.
            self.driver.unpark();
        }
    }

    /// Whether `scheduler` is this one.
    #[inline]
    fn is(&self, scheduler: &CurrentThread) -> bool {
        ptr::eq(self, &*scheduler.shared)
    }

    /// Spawns a task, from any thread: on the scheduler's own thread it is queued locally;
    /// elsewhere it goes through the inject queue and the thread is woken. `location` is where
    /// it was spawned, for the trace.
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        with_current(|current| match current {
            Some(scheduler) if self.is(scheduler) => scheduler.spawn(future, location),
            _ => {
                let id = self.counters.spawned();
                if self.trace.on {
                    self.trace
                        .spawned(id, location, " from outside the runtime");
                }
                let (task, handle) = new_task(future, self.clone(), id);
                // Counted (and traced) as a wake from another thread, like any remote wake.
                self.schedule(task);
                handle
            }
        })
    }

    /// The reactor and timers.
    pub(crate) fn driver(&self) -> &driver::Handle {
        &self.driver
    }

    /// What the scheduler has done so far: exact on its own thread; elsewhere, as of its last
    /// park.
    pub(crate) fn metrics(&self) -> Metrics {
        with_current(|current| match current {
            Some(scheduler) if self.is(scheduler) => scheduler.metrics(),
            _ => self.counters.snapshot(),
        })
    }
}

impl Schedule for Arc<Shared> {
    fn schedule(&self, task: TaskRef) {
        with_current(|current| match current {
            // On the scheduler's own thread: no lock, no syscall.
            Some(scheduler) if self.is(scheduler) => scheduler.push_woken(task),
            _ => {
                self.counters.woken_remotely();
                if self.trace.on {
                    self.trace.woken(task.id(), "thread");
                }
                self.push_remote(task)
            }
        });
    }

    // Only `reschedule_local` is on the way of a yield: tasks run on the runtime's own thread.
    #[cold]
    #[inline(never)]
    fn reschedule(&self, task: TaskRef) {
        with_current(|current| match current {
            Some(scheduler) if self.is(scheduler) => scheduler.push_rescheduled(task),
            _ => {
                self.counters.woken_remotely();
                self.push_remote(task)
            }
        });
    }

    #[inline]
    fn is_local(&self) -> bool {
        with_current(|current| current.is_some_and(|scheduler| self.is(scheduler)))
    }

    // Not inlined: inside `Task::run` it would cost every poll a few register saves, for the
    // sake of the polls that yield.
    #[inline(never)]
    fn reschedule_local(task: TaskRef) {
        with_current(|current| {
            current
                .expect("reschedule_local is called only where is_local holds")
                .push_rescheduled(task)
        });
    }

    // Cold: a task woken during its own poll is the rare case of a wake (a yield, say), and
    // only the trace has anything to do here.
    #[cold]
    #[inline(never)]
    fn woken_while_running(&self, task: &dyn Runnable) {
        if self.trace.on {
            self.trace.woken(task.id(), self.waker_name());
        }
    }

    #[inline]
    fn schedule_local(task: TaskRef) {
        with_current(|current| {
            current
                .expect("schedule_local is called only where is_local holds")
                .push_woken(task)
        });
    }

    fn release(&self, task: &dyn Runnable) {
        let Some(slot) = take_slot(task) else { return };
        with_current(|current| match current {
            Some(scheduler) if self.is(scheduler) => scheduler.core.owned.remove(slot),
            _ => self.released.push(slot),
        });
    }
}

/// The waker of the future passed to `block_on`: it only raises a flag (and wakes the thread
/// if it sleeps in epoll), because that future is polled by the loop itself, not queued.
impl ArcWake for Shared {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if arc_self.trace.on {
            return arc_self.wake_main_traced();
        }
        if arc_self.main_woken.swap(true, Ordering::AcqRel) {
            // Already woken and not yet polled: one poll serves both wakes, and whoever raised
            // the flag first also woke the thread if it had to (the scheduler's own thread,
            // which need not, looks at the flag before it parks). So: one wake, counted once.
            return;
        }
        arc_self.main_wake_counted();
    }
}

/// Polls the `block_on` future with the trace on: the poll, recorded (as `panicked` if it
/// unwinds: the record's guard sees to that).
#[cold]
#[inline(never)]
fn poll_main_traced<F: Future>(
    trace: &Tracer,
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let started = trace.poll_started(0);
    let polled = coop::with_budget(|| future.poll(cx));
    let done = polled.is_ready();
    trace.polled(0, started, if done { "ready" } else { "pending" }, done);
    polled
}

impl Shared {
    /// The `block_on` future's wake with the trace on: the same, but the wake is numbered
    /// before the flag goes up, so that the poll the flag lets in answers this wake. (Two
    /// wakers racing here both number a wake; the poll answers the later, and the earlier's
    /// arrow points nowhere.)
    #[cold]
    #[inline(never)]
    fn wake_main_traced(self: &Arc<Self>) {
        if self.main_woken.load(Ordering::Acquire) {
            return;
        }
        self.trace.woken(0, self.waker_name());
        if !self.main_woken.swap(true, Ordering::AcqRel) {
            self.main_wake_counted();
        }
    }

    /// Who is waking a task, for the trace: what this runtime's thread is doing, or `thread` for
    /// any other thread.
    fn waker_name(&self) -> &'static str {
        with_current(|current| match current {
            Some(scheduler) if self.is(scheduler) => scheduler.core.counters.waking().name(),
            _ => "thread",
        })
    }

    /// Counts a wake of the `block_on` future that raised its flag, and wakes the thread if
    /// another thread woke it (it may be blocked in epoll).
    #[inline]
    fn main_wake_counted(self: &Arc<Self>) {
        with_current(|current| match current {
            Some(scheduler) if self.is(scheduler) => {
                let source = scheduler.core.counters.waking();
                scheduler.core.counters.woken_by(source);
            }
            _ => {
                self.counters.woken_remotely();
                self.driver.unpark();
            }
        });
    }
}

impl CurrentThread {
    /// A fresh scheduler with a driver of its own, and `blocking` for blocking work.
    pub(crate) fn new(
        event_interval: u32,
        trace: Tracer,
        blocking: BlockingPool,
    ) -> std::io::Result<Self> {
        let driver = Driver::new(trace.clone())?;
        let driver_handle = driver.handle().clone();
        let shared = Arc::new(Shared {
            inject: Inject::default(),
            released: Released::default(),
            main_woken: AtomicBool::new(false),
            driver: driver_handle.clone(),
            blocking,
            counters: Counters::default(),
            trace: trace.clone(),
        });
        let core = Core {
            run_queue: RefCell::new(VecDeque::with_capacity(256)),
            owned: OwnedTasks::new(0),
            driver: RefCell::new(driver),
            driver_local: driver_handle.local(),
            polls_since_park: Cell::new(0),
            polls: Cell::new(0),
            event_interval,
            counters: LocalCounters::default(),
            trace,
        };
        Ok(CurrentThread { shared, core })
    }

    /// Runs `f` with this scheduler and its driver current on this thread: tasks spawned and
    /// woken in it go to this run queue, I/O objects and sleeps to this driver.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let handle = Handle::CurrentThread(self.shared.clone());
        Scoped::set(&CURRENT, self, || {
            self.core
                .driver_local
                .enter(|| handle.enter(|| super::enter_async(f)))
        })
    }

    /// Spawns a task on this scheduler, from its own thread; `location` is where, for the trace.
    pub(crate) fn spawn<F>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = self.shared.counters.spawned();
        if self.core.trace.on {
            self.core.trace.spawned(id, location, "");
        }
        let (task, handle) = new_task(future, self.shared.clone(), id);
        self.core.owned.insert(&task);
        self.core.run_queue.borrow_mut().push_back(task);
        handle
    }

    /// Queues a task woken on this thread, counting (and tracing) who woke it.
    #[inline]
    fn push_woken(&self, task: TaskRef) {
        let source = self.core.counters.waking();
        self.core.counters.woken_by(source);
        if self.core.trace.on {
            self.core.trace.woken(task.id(), source.name());
        }
        self.core.run_queue.borrow_mut().push_back(task)
    }

    /// Queues a task that was woken while it ran, now that its poll is over. The wake was
    /// traced when it happened ([`Schedule::woken_while_running`](crate::task_core::Schedule::woken_while_running)); it is counted here.
    #[inline]
    fn push_rescheduled(&self, task: TaskRef) {
        let source = self.core.counters.waking();
        self.core.counters.woken_by(source);
        self.core.run_queue.borrow_mut().push_back(task)
    }

    /// The next task to poll: usually the local queue's head, but the inject queue's every
    /// `INJECT_INTERVAL` polls so that it is not starved by a busy local queue.
    #[inline]
    fn next_task(&self) -> Option<TaskRef> {
        let polls = self.core.polls.get().wrapping_add(1);
        self.core.polls.set(polls);
        if polls % INJECT_INTERVAL == 0 {
            self.pop_inject().or_else(|| self.pop_local())
        } else {
            self.pop_local().or_else(|| self.pop_inject())
        }
    }

    /// Pops the local queue's head.
    #[inline]
    fn pop_local(&self) -> Option<TaskRef> {
        self.core.run_queue.borrow_mut().pop_front()
    }

    /// Pops the inject queue's head; a task spawned from another thread is adopted here.
    fn pop_inject(&self) -> Option<TaskRef> {
        let task = self.shared.inject.pop()?;
        if !self.core.owned.contains(&task) {
            self.core.owned.insert(&task);
        }
        Some(task)
    }

    /// Drives `future` to completion, running every spawned task in between.
    ///
    /// The caller has entered this scheduler on the current thread.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let waker = futures_task::waker_ref(&self.shared);
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        self.shared.main_woken.store(true, Ordering::Release);
        let core = &self.core;
        let _traced = core.trace.on.then(|| TracedThread::enter(&core.trace));
        loop {
            if self.shared.main_woken.swap(false, Ordering::AcqRel) {
                core.polls_since_park.set(core.polls_since_park.get() + 1);
                core.counters.set_waking(WakeSource::Main);
                let polled = if core.trace.on {
                    poll_main_traced(&core.trace, future.as_mut(), &mut cx)
                } else {
                    coop::with_budget(|| future.as_mut().poll(&mut cx))
                };
                if let Poll::Ready(output) = polled {
                    core.counters.publish(&self.shared.counters);
                    return output;
                }
            }
            // Run tasks until the budget between two looks at the driver is spent or none is
            // left.
            while core.polls_since_park.get() < core.event_interval {
                let Some(task) = self.next_task() else { break };
                core.polls_since_park.set(core.polls_since_park.get() + 1);
                self.run(task);
            }
            if core.polls_since_park.get() >= core.event_interval {
                // Still busy: look at I/O and timers without blocking, then carry on.
                self.park(Some(Duration::ZERO));
            } else if !self.shared.main_woken.load(Ordering::Acquire) {
                // Nothing to do: sleep in epoll until I/O, a timer, or another thread.
                self.park(None);
            }
        }
    }

    /// Runs one task: polls it with a fresh I/O budget, counting (and tracing) the poll.
    #[inline(always)]
    fn run(&self, task: TaskRef) {
        self.core.counters.set_waking(WakeSource::Task);
        if self.core.trace.on {
            return self.run_traced(task);
        }
        self.run_counted(task);
    }

    /// `run` with the trace on: the same, plus a record of the task and what its poll did.
    #[cold]
    #[inline(never)]
    fn run_traced(&self, task: TaskRef) {
        // Ask the id first: a task that completes may be freed by the time the poll returns.
        let id = task.id();
        let started = self.core.trace.poll_started(id);
        let outcome = self.run_counted(task);
        super::trace_run(&self.core.trace, id, started, outcome);
    }

    /// Polls `task` and counts the poll, if it was one.
    #[inline(always)]
    fn run_counted(&self, task: TaskRef) -> RunOutcome {
        // `run` contains the future's panics; this contains the rest (an output whose
        // destructor panics when the last reference to a detached task goes away).
        let ran = catch_unwind(AssertUnwindSafe(|| coop::with_budget(|| task.run())));
        let outcome = ran.unwrap_or(RunOutcome::Panicked);
        if matches!(
            outcome,
            RunOutcome::Pending | RunOutcome::Ready | RunOutcome::Panicked
        ) {
            self.core.counters.polled();
        }
        outcome
    }

    /// Parks in the driver for at most `timeout` (`None`: until something happens), which
    /// queues the tasks that I/O and timers wake.
    fn park(&self, timeout: Option<Duration>) {
        let core = &self.core;
        core.polls_since_park.set(0);
        core.owned.apply_released(&self.shared.released);
        // Publish before a wait that may last: other threads then see everything done so far.
        core.counters.publish(&self.shared.counters);
        let parked = core
            .driver
            .borrow_mut()
            .park(&core.driver_local, timeout, &core.counters);
        if let Err(err) = parked {
            // The poller itself is broken; there is no way to go on without it.
            panic!("ripple: waiting for I/O events failed: {err}");
        }
        core.counters.publish(&self.shared.counters);
    }

    /// Drops every task's future: the runtime is going away. Called on the scheduler's thread,
    /// with it entered, when no task is running.
    pub(crate) fn shutdown(&self) {
        let core = &self.core;
        // Wakes from here on (joiners of cancelled tasks) come from the runtime itself.
        core.counters.set_waking(WakeSource::Shutdown);
        let mut orphans = self.shared.inject.close();
        // Dropping a future can spawn or wake tasks, so repeat until nothing is left.
        loop {
            let mut tasks = core.owned.drain(&self.shared.released);
            tasks.extend(core.run_queue.borrow_mut().drain(..));
            tasks.extend(orphans.drain(..));
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                task.shutdown();
            }
        }
        // I/O objects that outlive the runtime get an error instead of waiting forever, and
        // parked sleeps let go of their wakers.
        self.shared.driver.shutdown();
        core.trace.leave_thread();
    }

    /// The scheduler's counters, exact when called on its own thread.
    pub(crate) fn metrics(&self) -> Metrics {
        self.core.counters.publish(&self.shared.counters);
        self.shared.counters.snapshot()
    }

    /// Live tasks (spawned here, not yet complete).
    pub(crate) fn task_count(&self) -> usize {
        self.core.owned.len()
    }
}

/// Marks the thread inside `block_on` as a runtime's own for the trace file while it is there:
/// its records are buffered until it parks, its track is named, and the call's future gets
/// arrows of its own.
struct TracedThread {
    /// Whether the thread's records were buffered before (a blocking thread's are), to put back.
    buffered: bool,
}

impl TracedThread {
    /// Marks the calling thread.
    #[cold]
    fn enter(trace: &Tracer) -> TracedThread {
        let mut buffered = false;
        if trace.file.is_some() {
            let thread = std::thread::current();
            let name = format!("{} (current_thread)", thread.name().unwrap_or("unnamed"));
            buffered = trace::set_thread(Some(name), true);
        }
        trace.block_on_started();
        TracedThread { buffered }
    }
}

impl Drop for TracedThread {
    fn drop(&mut self) {
        // Outside `block_on` the thread may never park again: unless it is a runtime's own
        // thread anyway, its records go out now, and from now on at once.
        trace::set_thread(None, self.buffered);
    }
}
