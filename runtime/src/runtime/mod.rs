//! Creating and configuring runtimes: [`Builder`], [`Runtime`], [`Handle`], what a runtime did
//! ([`Metrics`]), and the free functions `spawn` and `block_on`.
//!
//! This is the top layer: it picks a scheduler flavour (`scheduler/`) and hands it a driver
//! (`driver/`), and it is the only layer that knows about all the others. A [`Runtime`] is the
//! seeds' *event loop*: one thread that owns a run queue of tasks and an epoll reactor, and
//! alternates between the two (`scheduler/current_thread.rs` has the loop itself).
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

mod builder;

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;

use crate::scheduler::current_thread::{with_current, CurrentThread, Shared};
use crate::task_core::JoinHandle;

pub use crate::metrics::Metrics;
pub use builder::Builder;

/// A current-thread runtime: an executor, an epoll reactor and timers.
///
/// Dropping it drops every task's future (destructors run, sockets close), and their
/// `JoinHandle`s report cancellation. Wakers that outlive it do nothing.
pub struct Runtime {
    /// The scheduler, with the driver it owns; entered on the thread that calls `block_on`.
    scheduler: CurrentThread,
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
        self.scheduler.enter(|| self.scheduler.block_on(future))
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
        self.scheduler.metrics()
    }

    /// A handle that spawns onto this runtime from any thread.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.scheduler.shared.clone(),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Enter the runtime so that destructors which spawn or touch timers find it.
        self.scheduler.enter(|| self.scheduler.shutdown());
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("tasks", &self.scheduler.task_count())
            .finish()
    }
}

/// A reference to a runtime that can be sent to other threads.
#[derive(Clone)]
pub struct Handle {
    /// The scheduler's shared half.
    shared: Arc<Shared>,
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
        with_current(|scheduler| {
            scheduler.map(|scheduler| Handle {
                shared: scheduler.shared.clone(),
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
        self.shared.spawn(future)
    }

    /// What the runtime has done so far; see [`Runtime::metrics`]. Exact on the runtime's own
    /// thread; from another thread, the counts the runtime thread makes itself (polls, wakes on
    /// its thread, epoll waits, events, timers) are as of its last visit to epoll.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
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
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    with_current(|current| match current {
        Some(scheduler) => scheduler.spawn(future),
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
