//! The blocking pool: threads for work that would block a worker.
//!
//! A task must not block its thread: a file read, a DNS lookup, a slow library call or a long
//! computation there stalls every other task of that thread. [`spawn_blocking`] hands such work
//! to this pool instead: a set of plain threads, started on demand up to a limit, that wait on a
//! condition variable for work and exit after sitting idle for a while. The work runs as a task
//! whose future is the closure, polled once, so that its `JoinHandle` is the same as any task's
//! (await it, abort it before it starts, get a panic back as a `JoinError`).
//!
//! Inside the closure the runtime is current, as in tokio: `Handle::current()`, `spawn` and
//! `Async::new` work there.
//!
//! [`spawn_blocking`]: crate::task::spawn_blocking

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::Handle;
use crate::task_core::{new_task, JoinHandle, Runnable, Schedule, TaskRef};
use crate::trace::{self, Tracer};

/// Threads at most, by default (tokio's number).
pub(crate) const MAX_THREADS: usize = 512;
/// How long an idle thread waits for work before it exits, by default.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The pool, shared by the runtime (which shuts it down) and its handles (which spawn onto it).
#[derive(Clone)]
pub(crate) struct BlockingPool {
    /// The queue and the threads' bookkeeping.
    inner: Arc<Inner>,
}

/// What the pool's threads share.
struct Inner {
    /// The queue and the counts.
    state: Mutex<State>,
    /// Idle threads wait here for work.
    work: Condvar,
    /// The runtime's shutdown waits here for running threads to finish.
    exited: Condvar,
    /// Threads at most.
    max_threads: usize,
    /// How long an idle thread waits before it exits.
    keep_alive: Duration,
    /// The name of each thread.
    thread_name: String,
    /// What to trace: each blocking task's run is a poll on its thread's track.
    trace: Tracer,
}

/// What [`Inner::state`] protects.
#[derive(Default)]
struct State {
    /// Work not yet started, oldest first, each with the runtime to make current for it.
    queue: VecDeque<(TaskRef, Handle)>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for work and not yet promised any.
    idle: usize,
    /// Wake-ups sent to idle threads for queued work and not yet taken: a spawn that finds an
    /// idle thread promises it the work (`idle` down, `notified` up), so that two spawns in a
    /// row do not both count on one idle thread.
    notified: usize,
    /// The runtime shut down: no more work is taken, idle threads exit.
    shutdown: bool,
}

/// The future of a blocking task: the closure, run at its first poll.
struct BlockingTask<F>(Option<F>);

// The closure is never pinned in place: it is moved out and called.
impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> T, T> Future for BlockingTask<F> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        let f = self
            .0
            .take()
            .expect("a blocking task is polled once: it is ready at its first poll");
        Poll::Ready(f())
    }
}

/// The scheduler of blocking tasks. A blocking task is ready at its first poll, so it is never
/// woken to be polled again: an `abort` before it starts only marks it, and the pool's thread
/// then cancels it instead of running it.
#[derive(Debug, Clone, Copy)]
struct NoReschedule;

impl Schedule for NoReschedule {
    fn schedule(&self, task: TaskRef) {
        // Unreachable in practice (see above); cancelling is the safe answer to a second run.
        task.shutdown();
    }

    fn is_local(&self) -> bool {
        false
    }

    fn schedule_local(task: TaskRef) {
        task.shutdown();
    }

    fn release(&self, _task: &dyn Runnable) {}
}

impl BlockingPool {
    /// A pool of at most `max_threads` threads, each named `thread_name` and exiting after
    /// `keep_alive` without work, traced as `trace` says. No thread starts before the first
    /// blocking task.
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
        trace: Tracer,
    ) -> Self {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                exited: Condvar::new(),
                max_threads,
                keep_alive,
                thread_name,
                trace,
            }),
        }
    }

    /// Runs `f` on a pool thread, with `handle`'s runtime current there; task number `id`,
    /// asked for at `location`.
    pub(crate) fn spawn<F, T>(
        &self,
        handle: &Handle,
        id: u64,
        f: F,
        location: &'static Location<'static>,
    ) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.inner.trace.on {
            self.inner.trace.spawned(id, location, " (blocking)");
        }
        let (task, join) = new_task(BlockingTask(Some(f)), NoReschedule, id);
        let mut state = self.inner.lock();
        if state.shutdown {
            drop(state);
            task.shutdown();
            return join;
        }
        state.queue.push_back((task, handle.clone()));
        if state.idle > 0 {
            state.idle -= 1;
            state.notified += 1;
            drop(state);
            self.inner.work.notify_one();
        } else if state.threads < self.inner.max_threads {
            state.threads += 1;
            drop(state);
            self.start_thread();
        }
        // Otherwise every thread is busy and no more may start: the work waits its turn.
        join
    }

    /// Starts one pool thread (already counted in `threads`).
    fn start_thread(&self) {
        let inner = self.inner.clone();
        let started = std::thread::Builder::new()
            .name(self.inner.thread_name.clone())
            .spawn(move || inner.run());
        if started.is_err() {
            // No thread could be made (out of memory or threads): the work stays queued for
            // the threads that exist, or for the next spawn to try again.
            self.inner.lock().threads -= 1;
        }
    }

    /// Stops the pool: work not yet started is cancelled, and running work gets at most
    /// `timeout` to finish (`None`: wait without limit) before the pool's threads are left to
    /// end on their own. Returns whether every thread exited in time.
    pub(crate) fn shutdown(&self, timeout: Option<Duration>) -> bool {
        let mut state = self.inner.lock();
        state.shutdown = true;
        let cancelled: Vec<_> = state.queue.drain(..).collect();
        drop(state);
        self.inner.work.notify_all();
        // Cancelling drops the closures, which may run user code: no lock held.
        for (task, _) in cancelled {
            task.shutdown();
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut state = self.inner.lock();
        while state.threads > 0 {
            state = match deadline {
                None => self
                    .inner
                    .exited
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.inner
                        .exited
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        true
    }
}

impl Inner {
    /// The state, locked; a panic cannot leave it inconsistent (each change is a few plain
    /// assignments), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pool thread: take work, run it with its runtime current, wait for more; exit after
    /// `keep_alive` without work, or at shutdown.
    fn run(&self) {
        if self.trace.file.is_some() {
            trace::set_thread(Some("blocking".to_string()), true);
        }
        let mut state = self.lock();
        'work: loop {
            while let Some((task, handle)) = state.queue.pop_front() {
                drop(state);
                // A panic in the closure is caught by the task and goes to its JoinHandle; this
                // catches the rest (the output's destructor, when nobody awaits it), so that a
                // panic never ends the thread without its count.
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    handle.enter_blocking(|| {
                        if self.trace.on {
                            run_traced(&self.trace, task);
                        } else {
                            task.run();
                        }
                    })
                }));
                state = self.lock();
            }
            if state.shutdown {
                break;
            }
            state.idle += 1;
            loop {
                let (next, waited) = self
                    .work
                    .wait_timeout(state, self.keep_alive)
                    .unwrap_or_else(PoisonError::into_inner);
                state = next;
                if state.notified > 0 {
                    // Promised work (the spawn already took this thread off `idle`).
                    state.notified -= 1;
                    continue 'work;
                }
                if state.shutdown || waited.timed_out() {
                    state.idle -= 1;
                    break 'work;
                }
                // A spurious wake-up: wait again.
            }
        }
        // The thread's last records go out before it stops being counted: the runtime's drop
        // waits for the count to reach zero, then closes the trace file. (Under the lock, so
        // that no spawn counts on this thread meanwhile; the trace never takes this lock. With
        // the trace file on, that is one small write under the pool's lock: a slow disk holds up
        // `spawn_blocking` callers for as long.)
        self.trace.end_thread();
        state.threads -= 1;
        drop(state);
        self.exited.notify_all();
    }
}

/// Runs a blocking task, traced as one poll; its records go out at once, since the thread may
/// wait a long time for its next task.
#[cold]
#[inline(never)]
fn run_traced(trace: &Tracer, task: TaskRef) {
    let id = task.id();
    let started = trace.poll_started(id);
    super::trace_run(trace, id, started, task.run());
    trace.parks();
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("BlockingPool")
            .field("threads", &state.threads)
            .field("idle", &state.idle)
            .field("queued", &state.queue.len())
            .finish()
    }
}
