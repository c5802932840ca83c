//! Creating and configuring runtimes: [`Builder`], [`Runtime`], [`Handle`], what a runtime did
//! ([`Metrics`], [`WorkerMetrics`]), and the free functions `spawn`, `spawn_blocking` and
//! `block_on`.
//!
//! This is the top layer: it picks a scheduler flavor (`scheduler/`) and hands it a driver
//! (`driver/`), and it is the only layer that knows about all the others. A current-thread
//! [`Runtime`] is the seeds' *event loop*: one thread that owns a run queue of tasks and an
//! epoll reactor, and alternates between the two (`scheduler/current_thread.rs`);
//! [`Runtime::block_on`] runs that loop until the future you give it completes. A multi-thread
//! runtime (`Builder::new_multi_thread`) runs the tasks on worker threads instead
//! (`scheduler/multi_thread/`), and `block_on` only polls its own future. A [`Handle`] lets
//! other threads spawn onto either.
//!
//! ```
//! use ripple_runtime::runtime::Builder;
//!
//! let rt = Builder::new_current_thread().build()?;
//! let handle = rt.handle().clone();
//! // Spawn from another OS thread; the runtime wakes up from epoll to run it.
//! let task = std::thread::spawn(move || handle.spawn(async { 1 + 1 })).join().unwrap();
//! assert_eq!(rt.block_on(task).unwrap(), 2);
//! # std::io::Result::Ok(())
//! ```

mod builder;
pub(crate) mod join_set;

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::time::Duration;

use crate::scheduler::blocking::BlockingPool;
use crate::scheduler::current_thread::{self, CurrentThread};
use crate::scheduler::multi_thread::MultiThread;
use crate::scheduler::{self, Handle as SchedulerHandle};
use crate::task_core::JoinHandle;
use crate::trace::Tracer;

pub use crate::metrics::{Metrics, WorkerMetrics};
pub use builder::Builder;

/// How long dropping a runtime waits for blocking tasks that are still running, before it leaves
/// them to finish on their own.
const DROP_BLOCKING_TIMEOUT: Duration = Duration::from_secs(10);

/// A ripple runtime: a scheduler (one thread, or worker threads), an epoll reactor, timers and
/// a pool of threads for blocking work.
///
/// Dropping it drops every task's future (destructors run, sockets close), and their
/// `JoinHandle`s report cancellation; it waits up to 10 s for blocking tasks that are running,
/// and for worker threads stuck in a task that blocks them, then leaves them to finish on their
/// own (see [`shutdown_timeout`](Self::shutdown_timeout)). Wakers that outlive it do nothing.
pub struct Runtime {
    /// The scheduler, with the driver.
    flavor: Flavor,
    /// The scheduler as handles see it.
    handle: SchedulerHandle,
    /// Threads for blocking work.
    blocking: BlockingPool,
    /// Whether `shutdown_timeout` or `shutdown_background` has run, so that dropping does not
    /// wait for the blocking pool again.
    shut_down: bool,
    /// The runtime's trace, whose file (if any) is told when the runtime goes.
    trace: Tracer,
}

/// The scheduler of a runtime.
// One per runtime: the bytes the smaller variant wastes do not matter, and a box would put the
// current-thread scheduler behind one more pointer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Flavor {
    /// Every task on the thread inside `block_on`.
    CurrentThread(CurrentThread),
    /// Worker threads that steal from each other.
    MultiThread(MultiThread),
}

impl Runtime {
    /// A current-thread runtime with default settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new_current_thread().build()
    }

    /// Runs `future` to completion on this thread and returns its output. On a current-thread
    /// runtime every spawned task runs on this thread meanwhile; on a multi-thread runtime they
    /// run on the workers, and this thread only polls `future`.
    ///
    /// # Panics
    /// When called from inside a ripple runtime (in a task or another `block_on`): the thread
    /// that would block is one that has to run tasks. Use `.await` instead. (From a blocking
    /// task, which runs on a thread of its own, it is allowed.)
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        if scheduler::in_async_context() {
            panic!(
                "ripple: block_on was called from inside a ripple runtime; it would block a \
                 thread that runs tasks. Use `.await` (or `spawn`, or `spawn_blocking` for \
                 blocking work) instead."
            );
        }
        match &self.flavor {
            Flavor::CurrentThread(scheduler) => scheduler.enter(|| scheduler.block_on(future)),
            Flavor::MultiThread(scheduler) => scheduler::enter_async(|| scheduler.block_on(future)),
        }
    }

    /// Spawns a task on this runtime. On a current-thread runtime it starts running when the
    /// runtime is next driven by `block_on`; on a multi-thread runtime, at once.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future, Location::caller())
    }

    /// Runs `f` on the runtime's blocking pool; see [`spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.handle.spawn_blocking(f, Location::caller())
    }

    /// What the runtime has done so far: tasks spawned and polled, wakes by source, epoll
    /// waits and their events, timers fired (on a multi-thread runtime, the sum over the
    /// workers, as of their last parks).
    pub fn metrics(&self) -> Metrics {
        match &self.flavor {
            Flavor::CurrentThread(scheduler) => scheduler.metrics(),
            Flavor::MultiThread(scheduler) => scheduler.shared.metrics(),
        }
    }

    /// What worker `index` of a multi-thread runtime has done: polls, steals, parks, and the
    /// tasks in its local queue. `None` on a current-thread runtime or past the last worker.
    pub fn worker_metrics(&self, index: usize) -> Option<WorkerMetrics> {
        match &self.flavor {
            Flavor::CurrentThread(_) => None,
            Flavor::MultiThread(scheduler) => scheduler.shared.worker_metrics(index),
        }
    }

    /// A handle that spawns onto this runtime from any thread.
    pub fn handle(&self) -> Handle {
        Handle {
            inner: self.handle.clone(),
        }
    }

    /// Shuts the runtime down: drops every task's future, cancels blocking tasks that have not
    /// started, and waits at most `timeout` for the blocking tasks that are running. Returns
    /// whether they all finished in time (those that did not go on, detached).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        self.shutdown_scheduler(Some(timeout));
        self.shut_down = true;
        self.blocking.shutdown(Some(timeout))
    }

    /// Shuts the runtime down without waiting for running blocking tasks.
    pub fn shutdown_background(mut self) {
        self.shutdown_scheduler(Some(Duration::ZERO));
        self.shut_down = true;
        self.blocking.shutdown(Some(Duration::ZERO));
    }

    /// Stops the scheduler and drops its tasks, waiting at most `timeout` for worker threads
    /// stuck in a task; idempotent.
    fn shutdown_scheduler(&self, timeout: Option<Duration>) {
        if self.handle.is_own_thread() {
            panic!(
                "ripple: a runtime was dropped (or shut down) on one of its own worker or \
                 blocking threads; it would wait for that very thread. Drop it from the thread \
                 that built it, or move it out with `shutdown_background` from elsewhere."
            );
        }
        match &self.flavor {
            // Enter the runtime so that destructors which spawn or touch timers find it.
            Flavor::CurrentThread(scheduler) => scheduler.enter(|| scheduler.shutdown()),
            Flavor::MultiThread(scheduler) => scheduler.shutdown(timeout),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.shut_down {
            self.shutdown_scheduler(Some(DROP_BLOCKING_TIMEOUT));
            self.blocking.shutdown(Some(DROP_BLOCKING_TIMEOUT));
        }
        // Everything this thread recorded goes to the trace file, which the last runtime using
        // it closes.
        self.trace.detach();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.flavor {
            Flavor::CurrentThread(scheduler) => f
                .debug_struct("Runtime")
                .field("flavor", &"current_thread")
                .field("tasks", &scheduler.task_count())
                .finish(),
            Flavor::MultiThread(scheduler) => f
                .debug_struct("Runtime")
                .field("flavor", &"multi_thread")
                .field("workers", &scheduler.workers())
                .finish(),
        }
    }
}

/// A reference to a runtime that can be sent to other threads.
#[derive(Clone)]
pub struct Handle {
    /// The scheduler.
    inner: SchedulerHandle,
}

impl Handle {
    /// The runtime this thread is running (inside `block_on`, a task, or a blocking task).
    ///
    /// # Panics
    /// Outside a ripple runtime; see [`try_current`](Self::try_current).
    pub fn current() -> Handle {
        Handle::try_current().expect(
            "ripple: Handle::current() was called outside a ripple runtime; \
             call it from inside block_on, #[ripple::main] or a task",
        )
    }

    /// The runtime this thread is running, if any.
    pub fn try_current() -> Option<Handle> {
        SchedulerHandle::current().map(|inner| Handle { inner })
    }

    /// Spawns a task onto the runtime. Works from any thread; from outside the runtime's threads
    /// the task is queued for them and a sleeping one is woken. If the runtime has shut down,
    /// the task is cancelled at once.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn(future, Location::caller())
    }

    /// Runs `f` on the runtime's blocking pool; see [`spawn_blocking`].
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.spawn_blocking(f, Location::caller())
    }

    /// What the runtime has done so far; see [`Runtime::metrics`]. Exact on a current-thread
    /// runtime's own thread; elsewhere, the counts the runtime's threads make themselves (polls,
    /// wakes on their threads, epoll waits, events, timers) are as of their last parks.
    pub fn metrics(&self) -> Metrics {
        self.inner.metrics()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// Spawns a task on the current runtime and returns a handle to await its output.
///
/// The task runs concurrently with the caller: it is polled whenever it is woken, on the
/// runtime's thread (or one of its workers). Its output (or panic) is delivered through the
/// [`JoinHandle`].
///
/// # Panics
/// Outside a ripple runtime. From another thread, use a [`Handle`].
///
/// ```
/// ripple_runtime::block_on(async {
///     let handles: Vec<_> = (0..10)
///         .map(|i| ripple_runtime::spawn(async move { i * 2 }))
///         .collect();
///     let mut sum = 0;
///     for handle in handles {
///         sum += handle.await.unwrap();
///     }
///     assert_eq!(sum, 90);
/// });
/// ```
#[track_caller]
#[inline]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Where the task was spawned, for the trace file (a closure cannot pass it on by itself).
    let location = Location::caller();
    // On a current-thread runtime's own thread (the common case), one look at a thread-local
    // finds the run queue; elsewhere the runtime's handle says where the task goes.
    let future = match current_thread::with_current(move |scheduler| match scheduler {
        Some(scheduler) => Ok(scheduler.spawn(future, location)),
        None => Err(future),
    }) {
        Ok(handle) => return handle,
        Err(future) => future,
    };
    SchedulerHandle::with_current(|current| match current {
        Some(handle) => handle.spawn(future, location),
        None => panic!(
            "ripple::spawn was called outside a ripple runtime. Call it from inside \
             ripple::block_on, #[ripple::main] or a task, or use Handle::spawn from other threads."
        ),
    })
}

/// Runs the blocking function `f` on the current runtime's blocking pool, a set of threads
/// apart from the ones that run tasks, and returns a handle to await its result.
///
/// Use it for work that would stall every other task of its thread: a blocking system call, a
/// slow library, a long computation. Threads are started on demand, up to
/// [`Builder::max_blocking_threads`], and exit after [`Builder::thread_keep_alive`] without
/// work. A panic in `f` comes back as a [`JoinError`](crate::task::JoinError);
/// [`abort`](JoinHandle::abort) cancels `f` if it has not started. Inside `f` the runtime is
/// current: `Handle::current()`, `spawn` and new I/O objects work there.
///
/// # Panics
/// Outside a ripple runtime, like [`spawn`].
///
/// ```
/// ripple_runtime::block_on(async {
///     let answer = ripple_runtime::task::spawn_blocking(|| {
///         std::thread::sleep(std::time::Duration::from_millis(10));
///         42
///     });
///     assert_eq!(answer.await.unwrap(), 42);
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let location = Location::caller();
    SchedulerHandle::with_current(|current| match current {
        Some(handle) => handle.spawn_blocking(f, location),
        None => panic!(
            "ripple::task::spawn_blocking was called outside a ripple runtime. Call it from \
             inside ripple::block_on, #[ripple::main] or a task, or use Handle::spawn_blocking \
             from other threads."
        ),
    })
}

/// Creates a current-thread runtime, runs `future` on it to completion and drops it.
///
/// # Panics
/// From inside a ripple runtime (see [`Runtime::block_on`]), or if the runtime cannot be
/// created (epoll or eventfd refused, for example for lack of file descriptors).
pub fn block_on<F: Future>(future: F) -> F::Output {
    Runtime::new()
        .expect("ripple: could not create a runtime (epoll_create or eventfd failed)")
        .block_on(future)
}
