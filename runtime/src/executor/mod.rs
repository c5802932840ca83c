//! The runtime: `Builder`, `Runtime`, `Handle`, and the free functions `spawn` and `block_on`.
//!
//! A [`Runtime`] is the seeds' *event loop*: one thread that owns a run queue of tasks and an
//! epoll reactor, and alternates between the two (see [`scheduler`] for the loop itself).
//! [`Runtime::block_on`] runs that loop until the future you give it completes; tasks spawned
//! meanwhile run on the same thread. A [`Handle`] lets other threads spawn onto it.
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

mod metrics;
mod scheduler;
pub(crate) mod trace;

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::task::{new_task, JoinHandle, Schedule};

pub use metrics::Metrics;
pub(crate) use scheduler::consume_budget;
use scheduler::{with_current, Context, Enter, Shared, EVENT_INTERVAL};

/// Configures and creates a [`Runtime`].
#[derive(Debug, Clone)]
pub struct Builder {
    /// Task polls between two non-blocking checks of the reactor.
    event_interval: u32,
    /// Whether the runtime prints its trace on stderr.
    trace: bool,
}

impl Builder {
    /// A builder for a runtime that runs every task on the thread that calls `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder {
            event_interval: EVENT_INTERVAL,
            trace: trace::trace_from_env(),
        }
    }

    /// Whether the runtime prints a line on stderr for each thing it does: a task spawned,
    /// polled or woken (and by what), an epoll wait and its events, a timer firing. Defaults to
    /// on when the environment variable `RIPPLE_TRACE` is set (to anything but `0`).
    /// See [`Metrics`] for the same moments as counters.
    pub fn trace(&mut self, on: bool) -> &mut Builder {
        self.trace = on;
        self
    }

    /// How many task polls may run before the runtime checks for I/O and timers without
    /// blocking (default 61, as in tokio). Lower is fairer to I/O; higher makes fewer syscalls.
    ///
    /// # Panics
    /// If `interval` is zero.
    pub fn event_interval(&mut self, interval: u32) -> &mut Builder {
        assert!(interval > 0, "event_interval must be at least 1");
        self.event_interval = interval;
        self
    }

    /// Creates the runtime (an epoll instance and its eventfd).
    pub fn build(&self) -> io::Result<Runtime> {
        Ok(Runtime {
            context: Context::new(self.event_interval, self.trace)?,
        })
    }
}

/// A current-thread runtime: an executor, an epoll reactor and timers.
///
/// Dropping it drops every task's future (destructors run, sockets close), and their
/// `JoinHandle`s report cancellation. Wakers that outlive it do nothing.
pub struct Runtime {
    /// The runtime's state; entered on the thread that calls `block_on`.
    context: Context,
}

impl Runtime {
    /// A current-thread runtime with default settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new_current_thread().build()
    }

    /// Runs `future` to completion on this thread, together with every task spawned on the
    /// runtime, and returns its output.
    ///
    /// # Panics
    /// When called from inside a ripple runtime (in a task or another `block_on`): the
    /// thread that would block is the one that has to run every task. Use `.await` instead.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        if with_current(|c| c.is_some()) {
            panic!(
                "ripple: block_on was called from inside a ripple runtime; it would block the \
                 thread that runs the tasks. Use `.await` (or `spawn`) instead."
            );
        }
        let _enter = Enter::new(&self.context);
        self.context.block_on(future)
    }

    /// Spawns a task on this runtime. It starts running when the runtime is next driven by
    /// `block_on`.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }

    /// What the runtime has done so far: tasks spawned and polled, wakes by source, epoll
    /// waits and their events, timers fired.
    pub fn metrics(&self) -> Metrics {
        self.context.metrics()
    }

    /// A handle that spawns onto this runtime from any thread.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.context.shared.clone(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Enter the runtime so that destructors which spawn or touch timers find it.
        let _enter = Enter::new(&self.context);
        self.context.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("tasks", &self.context.task_count())
            .finish()
    }
}

/// A reference to a runtime that can be sent to other threads.
#[derive(Clone)]
pub struct Handle {
    /// The runtime's shared half.
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// The runtime this thread is running.
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
        with_current(|c| {
            c.map(|c| Handle {
                shared: c.shared.clone(),
            })
        })
    }

    /// Spawns a task onto the runtime. Works from any thread; from another thread, the task is
    /// queued remotely and the runtime is woken from epoll. If the runtime has shut down, the
    /// task is cancelled at once.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        with_current(|current| match current {
            Some(context) if Arc::ptr_eq(&context.shared, &self.shared) => context.spawn(future),
            _ => {
                let id = self.shared.counters.spawned();
                if self.shared.trace {
                    trace::trace(format_args!("task {id} spawned from outside the runtime"));
                }
                let (task, handle) = new_task(future, self.shared.clone(), id);
                self.shared.schedule(task);
                handle
            }
        })
    }

    /// What the runtime has done so far; see [`Runtime::metrics`]. Exact on the runtime's own
    /// thread; from another thread, the counts the runtime thread makes itself (polls, wakes on
    /// its thread, epoll waits, events, timers) are as of its last visit to epoll.
    pub fn metrics(&self) -> Metrics {
        with_current(|current| match current {
            Some(context) if Arc::ptr_eq(&context.shared, &self.shared) => context.metrics(),
            _ => self.shared.counters.snapshot(),
        })
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
/// runtime's thread. Its output (or panic) is delivered through the [`JoinHandle`].
///
/// # Panics
/// Outside a ripple runtime. From another thread, use a [`Handle`].
///
/// ```
/// ripple_runtime::block_on(async {
///     let handles: Vec<_> = (0..10).map(|i| ripple_runtime::spawn(async move { i * 2 })).collect();
///     let mut sum = 0;
///     for handle in handles {
///         sum += handle.await.unwrap();
///     }
///     assert_eq!(sum, 90);
/// });
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    with_current(|current| match current {
        Some(context) => context.spawn(future),
        None => panic!(
            "ripple::spawn was called outside a ripple runtime. Call it from inside \
             ripple::block_on, #[ripple::main] or a task, or use Handle::spawn from other threads."
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
