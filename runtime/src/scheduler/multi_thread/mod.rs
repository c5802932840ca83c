//! The multi-thread scheduler: worker threads that steal from each other, and one driver they
//! take turns in.
//!
//! Each worker is the current-thread loop on a thread of its own, with a run queue of its own
//! (`queue.rs`, a ring other workers can steal half of) and a slot for the task woken last (the
//! LIFO slot: a task that wakes another, as a channel send does, gets the woken one run next,
//! while its data is still in the cache). A worker with nothing to run looks at the inject queue
//! (tasks from outside the workers) and steals from a sibling chosen at random; only a few
//! search at once (`idle.rs`). A worker that finds nothing sleeps: in the driver, if it is free
//! (then it is the one that waits in epoll and fires timers), on its own condvar otherwise
//! (`driver/shared.rs`).
//!
//! This is the seeds' Tomcat endpoint turned around: there the Poller thread hands ready sockets
//! to a pool of Workers; here every worker may be the Poller, and the tasks a wake-up releases
//! land in that worker's queue, where its idle siblings steal them.

mod idle;
pub(crate) mod queue;
mod worker;

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_task::ArcWake;

use super::blocking::BlockingPool;
use super::inject::Inject;
use super::owned::{owner_of, take_slot, Released};
use super::Handle;
use crate::coop;
use crate::driver::shared::{SharedDriver, Unparker};
use crate::driver::{self, Driver};
use crate::metrics::{Counters, Metrics, WorkerMetrics};
use crate::task_core::{new_task, JoinHandle, Runnable, Schedule, TaskRef};
use crate::trace::Tracer;

use idle::{Idle, Woke};
use worker::{with_worker, Worker};

/// A multi-thread scheduler, as its runtime owns it: the shared half and the worker threads.
#[derive(Debug)]
pub(crate) struct MultiThread {
    /// Reachable from everywhere.
    pub(crate) shared: Arc<Shared>,
    /// The workers, joined at shutdown.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// How a multi-thread scheduler is built.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Worker threads (at least 1).
    pub(crate) workers: usize,
    /// Polls between two looks at the driver while a worker stays busy.
    pub(crate) event_interval: u32,
    /// What to trace.
    pub(crate) trace: Tracer,
    /// The workers' thread name.
    pub(crate) thread_name: String,
}

/// The part of a multi-thread scheduler that any thread may reach.
pub(crate) struct Shared {
    /// What other threads may do to each worker: steal, wake it, release its tasks.
    remotes: Box<[Remote]>,
    /// Tasks from outside the workers, and the overflow of full local queues.
    inject: Inject,
    /// Who sleeps and who searches.
    idle: Idle,
    /// The driver's shared half (the workers' parkers hold the driver itself), for shutdown.
    driver_handle: driver::Handle,
    /// Threads for blocking work.
    pub(crate) blocking: BlockingPool,
    /// The counts any thread makes (spawns, wakes from outside).
    pub(crate) counters: Counters,
    /// Each worker's counts, published by the worker at each park.
    worker_counters: Box<[Counters]>,
    /// Each worker's steals, parks and queue length, published with its counters.
    worker_extra: Box<[Mutex<WorkerMetrics>]>,
    /// Set once the runtime is shutting down: workers empty their queues and exit.
    shutdown: AtomicBool,
    /// How many workers have exited their loop, and where shutdown waits for them.
    exited: (Mutex<usize>, Condvar),
    /// Polls between two looks at the driver.
    event_interval: u32,
    /// What to trace (the hot paths test `trace.on`).
    trace: Tracer,
}

/// What other threads may do to one worker.
struct Remote {
    /// Take half of its queue.
    steal: queue::Steal,
    /// Wake it where it sleeps.
    unparker: Unparker,
    /// Free the registry slots of its tasks that completed elsewhere.
    released: Released,
}

impl MultiThread {
    /// Starts `config.workers` worker threads around a new driver, with `blocking` for
    /// blocking work.
    pub(crate) fn new(config: Config, blocking: BlockingPool) -> io::Result<MultiThread> {
        let driver = Driver::new(config.trace.clone())?;
        let driver_handle = driver.handle().clone();
        let shared_driver = SharedDriver::new(driver);
        let mut remotes = Vec::with_capacity(config.workers);
        let mut parts = Vec::with_capacity(config.workers);
        for _ in 0..config.workers {
            let (local, steal) = queue::new();
            let (parker, unparker) = shared_driver.parker();
            remotes.push(Remote {
                steal,
                unparker,
                released: Released::default(),
            });
            parts.push((local, parker));
        }
        let shared = Arc::new(Shared {
            remotes: remotes.into_boxed_slice(),
            inject: Inject::default(),
            idle: Idle::new(config.workers),
            driver_handle,
            blocking,
            counters: Counters::default(),
            worker_counters: (0..config.workers).map(|_| Counters::default()).collect(),
            worker_extra: (0..config.workers)
                .map(|_| Mutex::new(WorkerMetrics::default()))
                .collect(),
            shutdown: AtomicBool::new(false),
            exited: (Mutex::new(0), Condvar::new()),
            event_interval: config.event_interval,
            trace: config.trace,
        });
        let scheduler = MultiThread {
            shared: shared.clone(),
            threads: Mutex::new(Vec::with_capacity(config.workers)),
        };
        for (index, (local, parker)) in parts.into_iter().enumerate() {
            let shared = shared.clone();
            let started = std::thread::Builder::new()
                .name(config.thread_name.clone())
                .spawn(move || Worker::new(shared, index, local, parker).run());
            match started {
                Ok(thread) => scheduler.lock_threads().push(thread),
                Err(err) => {
                    // Stop the workers started so far; then report.
                    scheduler.shutdown(None);
                    return Err(err);
                }
            }
        }
        Ok(scheduler)
    }

    /// The worker threads, locked.
    fn lock_threads(&self) -> std::sync::MutexGuard<'_, Vec<std::thread::JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `future` to completion on the calling thread (not a worker), while the workers run
    /// the tasks. The thread sleeps on a condvar between polls.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        let handle = Handle::MultiThread(self.shared.clone());
        let local = self.shared.driver_handle.local();
        handle.enter(|| {
            local.enter(|| {
                let parker = Arc::new(ThreadParker::default());
                let waker = futures_task::waker_ref(&parker);
                let mut cx = Context::from_waker(&waker);
                let mut future = pin!(future);
                loop {
                    if let Poll::Ready(output) = coop::with_budget(|| future.as_mut().poll(&mut cx))
                    {
                        return output;
                    }
                    // Sources this thread's reads drained go to the driver before it sleeps.
                    local.flush_drained();
                    parker.park();
                }
            })
        })
    }

    /// Stops the workers (their tasks' futures are dropped) and waits for them, at most
    /// `timeout` (`None`: without limit), then fails the I/O objects and forgets the timers that
    /// outlive the runtime. A worker stuck in a task that blocks its thread is left to finish on
    /// its own after the timeout: it sees the shutdown when its task returns.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) {
        let shared = &self.shared;
        if shared.shutdown.swap(true, Ordering::SeqCst) {
            return;
        }
        // Tasks still queued from outside are dropped here, with the runtime current, so that
        // their destructors find it (as on a worker).
        let handle = Handle::MultiThread(shared.clone());
        let local = shared.driver_handle.local();
        handle.enter(|| {
            local.enter(|| {
                for task in shared.inject.close() {
                    task.shutdown();
                }
            })
        });
        for remote in shared.remotes.iter() {
            remote.unparker.unpark();
        }
        let threads = std::mem::take(&mut *self.lock_threads());
        if self.wait_for_workers(threads.len(), timeout) {
            for thread in threads {
                // A worker that panicked has nothing more to clean up.
                let _ = thread.join();
            }
        }
        shared.driver_handle.shutdown();
    }

    /// Waits until `workers` workers have left their loop, at most `timeout`; returns whether
    /// they all did.
    fn wait_for_workers(&self, workers: usize, timeout: Option<Duration>) -> bool {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let (count, condvar) = &self.shared.exited;
        let mut exited = count.lock().unwrap_or_else(PoisonError::into_inner);
        while *exited < workers {
            exited = match deadline {
                None => condvar.wait(exited).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    condvar
                        .wait_timeout(exited, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }

    /// A worker has left its loop (and dropped its tasks).
    pub(super) fn worker_exited(shared: &Shared) {
        let (count, condvar) = &shared.exited;
        *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        condvar.notify_all();
    }

    /// Live tasks are not counted across workers; the runtime's `Debug` shows the workers.
    pub(crate) fn workers(&self) -> usize {
        self.shared.remotes.len()
    }
}

impl Shared {
    /// Spawns a task, from any thread: on a worker of this runtime at the back of its queue
    /// (where an idle sibling may steal it), elsewhere into the inject queue (waking a worker).
    /// `location` is where it was spawned, for the trace.
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = self.counters.spawned();
        let (task, handle) = new_task(future, self.clone(), id);
        with_worker(|worker| match worker {
            Some(worker) if worker.is_of(self) => {
                if self.trace.on {
                    self.trace.spawned(id, location, "");
                }
                worker.spawn(task)
            }
            _ => {
                if self.trace.on {
                    self.trace
                        .spawned(id, location, " from outside the workers");
                }
                self.push_remote(task)
            }
        });
        handle
    }

    /// Queues a task from a thread that is not one of this runtime's workers.
    fn push_remote(&self, task: TaskRef) {
        if self.inject.push(task) {
            self.wake_one_worker();
        }
    }

    /// Work appeared: wake a sleeping worker to search for it, unless one searches already.
    #[inline]
    fn wake_one_worker(&self) {
        if let Some(index) = self.idle.worker_to_wake() {
            self.remotes[index].unparker.unpark();
        }
    }

    /// What the scheduler has done: the sum over the workers, as of their last parks.
    pub(crate) fn metrics(&self) -> Metrics {
        with_worker(|worker| {
            if let Some(worker) = worker.filter(|w| w.is_of(self)) {
                worker.publish();
            }
        });
        let mut sum = self.counters.snapshot();
        for counters in self.worker_counters.iter() {
            sum.add(&counters.snapshot());
        }
        sum
    }

    /// What worker `index` has done, if there is such a worker.
    pub(crate) fn worker_metrics(&self, index: usize) -> Option<WorkerMetrics> {
        let extra = self.worker_extra.get(index)?;
        let mut metrics = *extra.lock().unwrap_or_else(PoisonError::into_inner);
        metrics.polls = self.worker_counters[index].snapshot().polls;
        Some(metrics)
    }

    /// The reactor and timers.
    pub(crate) fn driver(&self) -> &driver::Handle {
        &self.driver_handle
    }

    /// Whether the runtime is shutting down.
    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

impl Schedule for Arc<Shared> {
    fn schedule(&self, task: TaskRef) {
        with_worker(|worker| match worker {
            Some(worker) if worker.is_of(self) => worker.push_woken(task),
            _ => {
                self.counters.woken_remotely();
                if self.trace.on {
                    self.trace.woken(task.id(), "thread");
                }
                self.push_remote(task)
            }
        });
    }

    fn reschedule(&self, task: TaskRef) {
        with_worker(|worker| match worker {
            // A task that was woken while it ran (a yield, say) goes behind the others, not
            // into the LIFO slot, where it would run again at once.
            Some(worker) if worker.is_of(self) => worker.push_woken_back(task),
            // (Its wake was traced when it happened: `woken_while_running`.)
            _ => {
                self.counters.woken_remotely();
                self.push_remote(task)
            }
        });
    }

    #[inline]
    fn is_local(&self) -> bool {
        with_worker(|worker| worker.is_some_and(|w| w.is_of(self)))
    }

    #[inline]
    fn schedule_local(task: TaskRef) {
        with_worker(|worker| {
            worker
                .expect("schedule_local is called only where is_local holds")
                .push_woken(task)
        });
    }

    #[inline]
    fn reschedule_local(task: TaskRef) {
        with_worker(|worker| {
            worker
                .expect("reschedule_local is called only where is_local holds")
                .push_woken_back(task)
        });
    }

    // Cold: a task woken during its own poll is the rare case of a wake (a yield, say), and
    // only the trace has anything to do here.
    #[cold]
    #[inline(never)]
    fn woken_while_running(&self, task: &dyn Runnable) {
        if self.trace.on {
            let by = with_worker(|worker| match worker {
                Some(worker) if worker.is_of(self) => worker.waking_source().name(),
                _ => "thread",
            });
            self.trace.woken(task.id(), by);
        }
    }

    fn release(&self, task: &dyn Runnable) {
        let Some(slot) = take_slot(task) else { return };
        let owner = owner_of(slot);
        with_worker(|worker| match worker {
            Some(worker) if worker.is_of(self) && worker.index() == owner => {
                worker.owned().remove(slot)
            }
            _ => self.remotes[owner].released.push(slot),
        });
    }
}

/// Wakes the thread inside `block_on` when its future is woken.
#[derive(Debug, Default)]
struct ThreadParker {
    /// Whether a wake came since the thread last looked.
    woken: Mutex<bool>,
    /// Where the thread sleeps.
    condvar: Condvar,
}

impl ThreadParker {
    /// Sleeps until woken (at once, if a wake came since the last call).
    fn park(&self) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        while !*woken {
            woken = self
                .condvar
                .wait(woken)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *woken = false;
    }
}

impl ArcWake for ThreadParker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        *arc_self
            .woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        arc_self.condvar.notify_one();
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("multi_thread::Shared")
            .field("workers", &self.remotes.len())
            .finish_non_exhaustive()
    }
}
