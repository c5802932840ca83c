//! Schedulers: who runs a task when it is woken, and on which thread.
//!
//! A scheduler owns run queues and a loop: pop a task, poll it, repeat; when nothing is left,
//! park in the driver until I/O, a timer or another thread has work for it. Below it are the
//! task core (which only asks its scheduler to `schedule` it through the `Schedule` trait) and
//! the driver (which offers `park` and `unpark`, a thread's `Local` part to `enter`, and
//! `shutdown`); above it, `Runtime` picks a flavour.
//!
//! - [`current_thread`]: the seeds' event loop. One thread runs every task and parks in epoll.
//! - [`multi_thread`]: worker threads that steal from each other and take turns in the driver.
//!
//! The pieces the flavours share live in files of their own: the registry of live tasks that
//! shutdown must reach ([`owned`]), the queue for tasks handed over from other threads
//! ([`inject`]), the pool for blocking work ([`blocking`]), and the loop's fairness intervals
//! (below). [`Handle`] is either flavour, as `spawn` and `Handle::current` see it.

pub(crate) mod blocking;
pub(crate) mod current_thread;
pub(crate) mod inject;
pub(crate) mod multi_thread;
pub(crate) mod owned;

use std::cell::Cell;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;

use crate::context::Scoped;
use crate::metrics::Metrics;
use crate::task_core::{JoinHandle, RunOutcome};
use crate::trace::{PollStart, Tracer};

/// Polls between two non-blocking looks at the driver while tasks keep being runnable, so that
/// a task that is always ready cannot starve I/O and timers (tokio: 61).
pub(crate) const EVENT_INTERVAL: u32 = 61;
/// Polls between two looks at the inject queue while the local queue is not empty, so that
/// tasks from other threads are not starved by a busy local queue (tokio: 31).
pub(crate) const INJECT_INTERVAL: u32 = 31;

/// A scheduler of either flavour: what spawns and the runtime's handles hold.
#[derive(Debug, Clone)]
pub(crate) enum Handle {
    /// One thread runs every task.
    CurrentThread(Arc<current_thread::Shared>),
    /// Worker threads run the tasks.
    MultiThread(Arc<multi_thread::Shared>),
}

thread_local! {
    /// The runtime this thread runs or serves (inside `block_on`, on a worker, on a blocking
    /// thread), if any.
    static CURRENT: Scoped<Handle> = const { Scoped::new() };

    /// The runtime whose worker or blocking thread this is (its shared half's address), so that
    /// dropping that runtime here is caught: it would wait for this very thread.
    static RUNTIME_THREAD: Cell<usize> = const { Cell::new(0) };

    /// Whether this thread runs async code of a runtime (inside `block_on`, or a worker), where
    /// blocking in another `block_on` would stall tasks.
    static IN_ASYNC: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread runs async code of a runtime (see `IN_ASYNC`).
pub(crate) fn in_async_context() -> bool {
    IN_ASYNC.with(Cell::get)
}

/// Runs `f` with this thread marked as running async code.
pub(crate) fn enter_async<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous mark, also on unwinding.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_ASYNC.with(|mark| mark.set(self.0));
        }
    }
    let _restore = Restore(IN_ASYNC.with(|mark| mark.replace(true)));
    f()
}

/// Runs `f` with this thread marked as one of `handle`'s runtime's own threads.
pub(crate) fn mark_runtime_thread<R>(handle: &Handle, f: impl FnOnce() -> R) -> R {
    /// Clears the mark, also on unwinding.
    struct Unmark(usize);
    impl Drop for Unmark {
        fn drop(&mut self) {
            RUNTIME_THREAD.with(|mark| mark.set(self.0));
        }
    }
    let previous = RUNTIME_THREAD.with(|mark| mark.replace(handle.address()));
    let _unmark = Unmark(previous);
    f()
}

impl Handle {
    /// The runtime current on this thread, if any.
    pub(crate) fn current() -> Option<Handle> {
        Scoped::with(&CURRENT, |handle| handle.cloned())
    }

    /// Runs `f` with the runtime current on this thread, if any.
    #[inline]
    pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
        Scoped::with(&CURRENT, f)
    }

    /// Runs `f` with this runtime current on this thread (for `spawn` and `Handle::current`).
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        Scoped::set(&CURRENT, self, f)
    }

    /// Whether this thread is a worker or a blocking thread of this runtime.
    pub(crate) fn is_own_thread(&self) -> bool {
        RUNTIME_THREAD.with(|mark| mark.get() == self.address())
    }

    /// The address of the scheduler's shared half: the runtime's identity.
    fn address(&self) -> usize {
        match self {
            Handle::CurrentThread(shared) => Arc::as_ptr(shared) as usize,
            Handle::MultiThread(shared) => Arc::as_ptr(shared) as usize,
        }
    }

    /// Spawns a task on this runtime, from any thread; `location` is where (for the trace).
    pub(crate) fn spawn<F>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Handle::CurrentThread(shared) => shared.spawn(future, location),
            Handle::MultiThread(shared) => shared.spawn(future, location),
        }
    }

    /// Runs `f` on this runtime's blocking pool; `location` is where it was asked for.
    pub(crate) fn spawn_blocking<F, T>(
        &self,
        f: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (pool, id) = match self {
            Handle::CurrentThread(shared) => (&shared.blocking, shared.counters.spawned()),
            Handle::MultiThread(shared) => (&shared.blocking, shared.counters.spawned()),
        };
        pool.spawn(self, id, f, location)
    }

    /// Runs `f` on a blocking thread with this runtime current: its handle for `spawn`, its
    /// driver for I/O objects and sleeps.
    pub(crate) fn enter_blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        let local = self.driver().local();
        let out = self.enter(|| local.enter(|| mark_runtime_thread(self, f)));
        // Sources that reads drained here go to the driver: this thread never parks in it.
        local.flush_drained();
        out
    }

    /// The runtime's driver.
    fn driver(&self) -> &crate::driver::Handle {
        match self {
            Handle::CurrentThread(shared) => shared.driver(),
            Handle::MultiThread(shared) => shared.driver(),
        }
    }

    /// What the runtime has done so far.
    pub(crate) fn metrics(&self) -> Metrics {
        match self {
            Handle::CurrentThread(shared) => shared.metrics(),
            Handle::MultiThread(shared) => shared.metrics(),
        }
    }
}

/// Records in `trace` the run of task `id` that began with `start` and ended with `outcome`: a
/// poll, or no poll after all (the task was running elsewhere, or complete), which records
/// nothing. Every scheduler's traced run ends here.
pub(crate) fn trace_run(
    trace: &Tracer,
    id: u64,
    start: Option<PollStart<'_>>,
    outcome: RunOutcome,
) {
    match outcome {
        RunOutcome::Skipped => trace.skipped(start),
        _ => trace.polled(id, start, outcome.name(), outcome.is_final()),
    }
}
