//! One worker thread of the multi-thread scheduler: its queues and its loop.
//!
//! The loop, step by step: run the LIFO slot's task or the local queue's head (the inject queue's
//! every `INJECT_INTERVAL` polls); with nothing there, search: steal half of a random sibling's
//! queue, or take from the inject queue; with nothing anywhere, sleep until a wake-up. Every
//! `EVENT_INTERVAL` polls a busy worker also looks at the driver without blocking, so that I/O
//! and timers are not starved while every worker is busy.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::queue;
use super::{Shared, Woke};
use crate::context::Scoped;
use crate::coop;
use crate::driver::shared::{ParkedIn, Parker};
use crate::driver::{self};
use crate::loom::sync::atomic::{fence, Ordering};
use crate::metrics::{LocalCounters, WakeSource};
use crate::scheduler::owned::OwnedTasks;
use crate::scheduler::{Handle, INJECT_INTERVAL};
use crate::task_core::{RunOutcome, TaskRef};
use crate::trace;

/// Polls in a row of tasks from the LIFO slot before the slot's task goes to the back of the
/// queue instead: two tasks that keep waking each other must not starve the rest (tokio: 3).
const MAX_LIFO_POLLS: u32 = 3;

/// What a worker counts besides its `LocalCounters`.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    /// Successful steals.
    steals: u64,
    /// Tasks those steals took.
    stolen_tasks: u64,
    /// Times the worker went to sleep.
    parks: u64,
}

/// A worker: everything its thread owns.
pub(crate) struct Worker {
    /// The runtime's shared half.
    shared: Arc<Shared>,
    /// This worker's number.
    index: usize,
    /// The local run queue.
    run_queue: queue::Local,
    /// The task woken last by a task on this worker, run next.
    lifo: Cell<Option<TaskRef>>,
    /// The tasks spawned on this worker (and those it took from the inject queue).
    owned: OwnedTasks,
    /// How this worker sleeps.
    parker: Parker,
    /// This thread's part of the driver.
    driver_local: driver::Local,
    /// This worker's counts, and who is waking tasks right now.
    counters: LocalCounters,
    /// Whether this worker is searching for work.
    ///
    /// # Invariant
    /// True exactly while the worker is counted as searching in `Idle`.
    searching: Cell<bool>,
    /// Polls so far.
    polls: Cell<u32>,
    /// Steals and parks so far, published with the counters.
    stats: Cell<Stats>,
    /// State of the random number generator that picks whom to steal from.
    rng: Cell<u32>,
}

thread_local! {
    /// The worker this thread is, if it is one.
    static CURRENT: Scoped<Worker> = const { Scoped::new() };
}

/// Runs `f` with the worker this thread is, if any.
#[inline]
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
    Scoped::with(&CURRENT, f)
}

impl Worker {
    /// Worker number `index` of `shared`'s runtime.
    pub(super) fn new(
        shared: Arc<Shared>,
        index: usize,
        run_queue: queue::Local,
        parker: Parker,
    ) -> Worker {
        let driver_local = shared.driver_handle.local();
        Worker {
            shared,
            index,
            run_queue,
            lifo: Cell::new(None),
            owned: OwnedTasks::new(index),
            parker,
            driver_local,
            counters: LocalCounters::default(),
            searching: Cell::new(false),
            polls: Cell::new(0),
            stats: Cell::new(Stats::default()),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32).wrapping_mul(0x85EB_CA6B) | 1),
        }
    }

    /// This worker's number.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The tasks spawned on this worker.
    pub(crate) fn owned(&self) -> &OwnedTasks {
        &self.owned
    }

    /// Whether this worker belongs to the runtime of `shared`.
    #[inline]
    pub(crate) fn is_of(&self, shared: &Shared) -> bool {
        std::ptr::eq(&*self.shared, shared)
    }

    /// The worker thread's body: enter the runtime, loop until shutdown, then drop every task
    /// this worker holds.
    pub(super) fn run(self) {
        let handle = Handle::MultiThread(self.shared.clone());
        trace::set_worker(Some(self.index));
        if self.shared.trace.file.is_some() {
            trace::set_thread(Some(format!("worker {}", self.index)), true);
        }
        handle.enter(|| {
            self.driver_local.enter(|| {
                Scoped::set(&CURRENT, &self, || {
                    crate::scheduler::mark_runtime_thread(&handle, || {
                        crate::scheduler::enter_async(|| {
                            self.run_loop();
                            self.shutdown();
                            self.shared.trace.end_thread();
                            trace::set_worker(None);
                            super::MultiThread::worker_exited(&self.shared);
                        })
                    })
                })
            })
        });
    }

    /// The loop: run, search, sleep, until the runtime shuts down.
    fn run_loop(&self) {
        while !self.shared.is_shutdown() {
            let polls = self.polls.get().wrapping_add(1);
            self.polls.set(polls);
            if polls % self.shared.event_interval == 0 {
                self.maintenance();
            }
            if let Some(task) = self.next_task(polls) {
                self.run_task(task);
            } else if let Some(task) = self.search() {
                self.run_task(task);
            } else {
                self.sleep();
            }
        }
    }

    /// The next task of this worker: the local queue's head, or the inject queue's (first, every
    /// `INJECT_INTERVAL` polls, so that it is not starved by a busy local queue).
    fn next_task(&self, polls: u32) -> Option<TaskRef> {
        if polls % INJECT_INTERVAL == 0 {
            self.pop_inject().or_else(|| self.run_queue.pop())
        } else {
            self.run_queue.pop().or_else(|| self.pop_inject())
        }
    }

    /// Takes a task from the inject queue; a task spawned from outside is adopted here.
    fn pop_inject(&self) -> Option<TaskRef> {
        let task = self.shared.inject.pop()?;
        if !self.owned.contains(&task) {
            self.owned.insert(&task);
        }
        Some(task)
    }

    /// Looks for work elsewhere: half of a sibling's queue, or the inject queue. Only a few
    /// workers search at once; `None` if this one may not, or finds nothing.
    fn search(&self) -> Option<TaskRef> {
        if !self.searching.get() {
            if !self.shared.idle.start_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let workers = self.shared.remotes.len();
        let start = self.next_random() as usize % workers;
        for i in 0..workers {
            let victim = (start + i) % workers;
            if victim == self.index {
                continue;
            }
            if let Some((task, taken)) = self.shared.remotes[victim]
                .steal
                .steal_into(&self.run_queue)
            {
                let mut stats = self.stats.get();
                stats.steals += 1;
                stats.stolen_tasks += u64::from(taken);
                self.stats.set(stats);
                if self.shared.trace.on {
                    self.shared.trace.stole(victim, taken);
                }
                return Some(task);
            }
        }
        self.pop_inject()
    }

    /// Runs `task`, then the tasks it woke into the LIFO slot (a few in a row at most).
    fn run_task(&self, task: TaskRef) {
        if self.searching.replace(false) && self.shared.idle.stop_searching() {
            // The last searcher found work: there may be more, so wake another to look.
            self.shared.wake_one_worker();
        }
        self.poll(task);
        let mut lifo_polls = 0;
        while let Some(next) = self.lifo.take() {
            if lifo_polls == MAX_LIFO_POLLS || self.shared.is_shutdown() {
                self.run_queue.push_back(next, &self.shared.inject);
                self.shared.wake_one_worker();
                break;
            }
            lifo_polls += 1;
            self.poll(next);
        }
    }

    /// Polls one task with a fresh budget, counting (and tracing) the poll.
    fn poll(&self, task: TaskRef) {
        self.counters.set_waking(WakeSource::Task);
        if self.shared.trace.on {
            return self.poll_traced(task);
        }
        self.poll_counted(task);
    }

    /// `poll` with the trace on: the same, plus a record of the task and what its poll did.
    #[cold]
    #[inline(never)]
    fn poll_traced(&self, task: TaskRef) {
        // Ask the id first: a task that completes may be freed by the time the poll returns.
        let id = task.id();
        let started = self.shared.trace.poll_started(id);
        let outcome = self.poll_counted(task);
        crate::scheduler::trace_run(&self.shared.trace, id, started, outcome);
    }

    /// Polls `task` and counts the poll, if it was one.
    #[inline(always)]
    fn poll_counted(&self, task: TaskRef) -> RunOutcome {
        // `run` contains the future's panics; this contains the rest (an output whose
        // destructor panics), so a panicking task never kills its worker.
        let ran = catch_unwind(AssertUnwindSafe(|| coop::with_budget(|| task.run())));
        let outcome = ran.unwrap_or(RunOutcome::Panicked);
        if matches!(
            outcome,
            RunOutcome::Pending | RunOutcome::Ready | RunOutcome::Panicked
        ) {
            self.counters.polled();
        }
        outcome
    }

    /// Spawns `task` on this worker: recorded here, queued at the back of the local queue, where
    /// an idle sibling may steal it. (The LIFO slot is kept for wakes. Siblings cannot reach it,
    /// so a task that wakes another and then runs on for long holds the woken one: tokio has the
    /// same limit.)
    pub(crate) fn spawn(&self, task: TaskRef) {
        if self.shared.is_shutdown() {
            task.shutdown();
            return;
        }
        self.owned.insert(&task);
        self.run_queue.push_back(task, &self.shared.inject);
        self.shared.wake_one_worker();
    }

    /// Queues a task woken on this worker's thread: into the LIFO slot if a task woke it (run it
    /// next, while its data is warm), else (the driver, a timer) at the back of the queue.
    pub(crate) fn push_woken(&self, task: TaskRef) {
        self.push_woken_where(task, true);
    }

    /// Queues a task woken while it ran: at the back of the queue.
    pub(crate) fn push_woken_back(&self, task: TaskRef) {
        self.push_woken_where(task, false);
    }

    /// What this worker is doing, as the source of a wake it makes.
    pub(crate) fn waking_source(&self) -> WakeSource {
        self.counters.waking()
    }

    /// Counts (and traces) a wake, then queues the task: into the LIFO slot if `lifo` allows it
    /// and a task woke it, else at the back of the queue. A task woken while it ran (`lifo`
    /// false) had its wake traced when it happened ([`Schedule::woken_while_running`](crate::task_core::Schedule::woken_while_running)).
    fn push_woken_where(&self, task: TaskRef, lifo: bool) {
        let source = self.counters.waking();
        self.counters.woken_by(source);
        if lifo && self.shared.trace.on {
            self.shared.trace.woken(task.id(), source.name());
        }
        match source {
            // A task that was woken while it ran is no new work: it was running here a moment
            // ago, so waking a sibling for it would only make the two race for it.
            _ if !lifo => self.run_queue.push_back(task, &self.shared.inject),
            WakeSource::Task => self.push_lifo(task),
            // This worker is inside its own park, dispatching a batch of events or timers. It
            // wakes a sibling once the batch is queued, if there is more than it will run next
            // (`notify_after_park`): one wake-up per batch, not one per task. (Waking here
            // would also pick this very worker, still listed as asleep, and cost an eventfd
            // write that makes its next wait return at once.)
            WakeSource::Reactor | WakeSource::Timer => {
                self.run_queue.push_back(task, &self.shared.inject)
            }
            WakeSource::Main | WakeSource::Shutdown => {
                self.run_queue.push_back(task, &self.shared.inject);
                self.shared.wake_one_worker();
            }
        }
    }

    /// After a park that may have queued tasks here (an epoll batch, fired timers): wake a
    /// sibling to steal if there is more than the one task this worker runs next. A searching
    /// worker leaves that to the moment it stops searching (`run_task`), as tokio does.
    fn notify_after_park(&self) {
        if !self.searching.get() && self.run_queue.len() > 1 {
            self.shared.wake_one_worker();
        }
    }

    /// Puts `task` in the LIFO slot; the task it displaces goes to the back of the queue, where
    /// an idle sibling may steal it.
    fn push_lifo(&self, task: TaskRef) {
        if let Some(previous) = self.lifo.replace(Some(task)) {
            self.run_queue.push_back(previous, &self.shared.inject);
            self.shared.wake_one_worker();
        }
    }

    /// The periodic chores of a busy worker: a look at the driver that does not block (I/O and
    /// timers), the registry slots freed elsewhere, the counters.
    fn maintenance(&self) {
        let parked = self
            .parker
            .park(&self.driver_local, Some(Duration::ZERO), &self.counters);
        self.check_park(parked);
        self.notify_after_park();
        self.owned
            .apply_released(&self.shared.remotes[self.index].released);
        self.publish();
    }

    /// Nothing to run and nothing to steal: sleep until woken.
    fn sleep(&self) {
        let was_last_searcher = self
            .shared
            .idle
            .sleep(self.index, self.searching.replace(false));
        if was_last_searcher {
            // Work that appeared while this worker was the last searcher woke nobody: look once
            // more at every queue. This fence and the one in `Idle::worker_to_wake` (after a
            // push) order the two sides: either this look sees the work, or the pusher sees this
            // worker asleep and wakes it.
            fence(Ordering::SeqCst);
            if self.work_is_waiting() {
                self.shared.wake_one_worker();
            }
        }
        let mut stats = self.stats.get();
        stats.parks += 1;
        self.stats.set(stats);
        self.publish();
        if self.shared.trace.on {
            self.shared.trace.sleeps();
        }
        if !self.shared.is_shutdown() {
            let parked = self.parker.park(&self.driver_local, None, &self.counters);
            self.check_park(parked);
        }
        // Woken to search (counted as searching already), or by an event of its own.
        self.searching
            .set(self.shared.idle.woke(self.index) == Woke::ToSearch);
        self.notify_after_park();
        self.owned
            .apply_released(&self.shared.remotes[self.index].released);
    }

    /// Whether any queue holds a task.
    fn work_is_waiting(&self) -> bool {
        !self.shared.inject.is_empty() || self.shared.remotes.iter().any(|r| !r.steal.is_empty())
    }

    /// A park that failed means the poller itself is broken: there is no going on without it.
    fn check_park(&self, parked: std::io::Result<ParkedIn>) {
        if let Err(err) = parked {
            panic!("ripple: waiting for I/O events failed: {err}");
        }
        self.counters.set_waking(WakeSource::Main);
    }

    /// Copies this worker's counts where other threads read them.
    pub(crate) fn publish(&self) {
        self.counters
            .publish(&self.shared.worker_counters[self.index]);
        let stats = self.stats.get();
        let mut extra = self.shared.worker_extra[self.index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        extra.steals = stats.steals;
        extra.stolen_tasks = stats.stolen_tasks;
        extra.parks = stats.parks;
        extra.local_queue_len = self.run_queue.len() as u64;
    }

    /// The runtime is shutting down: drop every task this worker holds (its queue, its LIFO
    /// slot, the tasks it owns), until none is left, since dropping a future may wake or spawn
    /// others.
    fn shutdown(&self) {
        self.counters.set_waking(WakeSource::Shutdown);
        let released = &self.shared.remotes[self.index].released;
        loop {
            let mut tasks = self.owned.drain(released);
            tasks.extend(self.lifo.take());
            tasks.extend(std::iter::from_fn(|| self.run_queue.pop()));
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                task.shutdown();
            }
        }
        self.publish();
    }

    /// A xorshift step: good enough to spread steals over the siblings.
    fn next_random(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }
}
