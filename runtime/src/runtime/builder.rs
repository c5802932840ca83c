//! `Builder`: the settings a runtime is made with.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::{Flavor, Runtime};
use crate::scheduler::blocking::{self, BlockingPool};
use crate::scheduler::current_thread::CurrentThread;
use crate::scheduler::multi_thread::{self, MultiThread};
use crate::scheduler::{Handle, EVENT_INTERVAL};
use crate::trace;

/// What `build` says of a `RIPPLE_WORKER_THREADS` it cannot use.
const NOT_A_NUMBER: &str = "RIPPLE_WORKER_THREADS must be a positive number of worker threads";

/// Configures and creates a [`Runtime`].
///
/// ```
/// use ripple_runtime::runtime::Builder;
///
/// let rt = Builder::new_multi_thread().worker_threads(2).build()?;
/// let sum = rt.block_on(async {
///     let tasks: Vec<_> = (0..4u64)
///         .map(|i| ripple_runtime::spawn(async move { i * i }))
///         .collect();
///     let mut sum = 0;
///     for task in tasks {
///         sum += task.await.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 14);
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    /// Which scheduler.
    kind: Kind,
    /// Worker threads asked for with `worker_threads` (multi-thread only).
    worker_threads: Option<usize>,
    /// The name of the runtime's threads.
    thread_name: String,
    /// Blocking threads at most.
    max_blocking_threads: usize,
    /// How long an idle blocking thread waits for work before it exits.
    keep_alive: Duration,
    /// Task polls between two non-blocking checks of the reactor.
    event_interval: u32,
    /// Whether the runtime prints its trace on stderr.
    trace: bool,
    /// Where the runtime writes its trace as a timeline, if anywhere.
    trace_file: Option<PathBuf>,
}

/// The scheduler a builder makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One thread, the caller's.
    CurrentThread,
    /// Worker threads.
    MultiThread,
}

impl Builder {
    /// A builder for a runtime that runs every task on the thread that calls `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder::new(Kind::CurrentThread)
    }

    /// A builder for a runtime whose tasks run on worker threads that steal work from each other:
    /// by default one per available core, or `RIPPLE_WORKER_THREADS` of them if that
    /// environment variable is set (as tokio's `TOKIO_WORKER_THREADS`); see
    /// [`worker_threads`](Self::worker_threads).
    pub fn new_multi_thread() -> Builder {
        Builder::new(Kind::MultiThread)
    }

    /// The defaults of a `kind` runtime.
    fn new(kind: Kind) -> Builder {
        Builder {
            kind,
            worker_threads: None,
            thread_name: "ripple-runtime-worker".to_string(),
            max_blocking_threads: blocking::MAX_THREADS,
            keep_alive: blocking::KEEP_ALIVE,
            event_interval: EVENT_INTERVAL,
            trace: trace::trace_from_env(),
            trace_file: trace::trace_file_from_env(),
        }
    }

    /// How many worker threads a multi-thread runtime starts. This wins over
    /// `RIPPLE_WORKER_THREADS` and over the default (the number of available cores). Zero is an
    /// error from [`build`](Self::build). A current-thread runtime ignores it.
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        self.worker_threads = Some(n);
        self
    }

    /// The name of the runtime's worker and blocking threads (default `ripple-runtime-worker`).
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
        self
    }

    /// How many threads the blocking pool may start at most (default 512; at least 1, so 0 means
    /// 1). Work beyond that waits for a thread to be free.
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for work before it exits (default 10 s).
    pub fn thread_keep_alive(&mut self, duration: Duration) -> &mut Builder {
        self.keep_alive = duration;
        self
    }

    /// Whether the runtime prints a line on stderr for each thing it does: a task spawned,
    /// polled or woken (and by what), an epoll wait and its events, a timer firing. Defaults to
    /// on when the environment variable `RIPPLE_TRACE` is set (to anything but `0`).
    /// See [`Metrics`](super::Metrics) for the same moments as counters.
    pub fn trace(&mut self, on: bool) -> &mut Builder {
        self.trace = on;
        self
    }

    /// Writes a timeline of what the runtime does to the file at `path`, in the Trace Event
    /// Format that [Perfetto](https://ui.perfetto.dev) and `chrome://tracing` open: one track per
    /// thread, a slice per task poll (named by the task's id and where it was spawned), each
    /// epoll wait and timer firing, and an arrow from each wake to the poll it caused. Defaults to
    /// the environment variable `RIPPLE_TRACE_FILE`, if set; `RIPPLE_TRACE_FILE_MAX_MB` caps its
    /// size (default 256). A `{pid}` in the path is replaced by the process id, so that each
    /// process gets a file of its own (`/tmp/trace-{pid}.json`). Every runtime of a process given
    /// the same file (by any path to it) shares it. If it cannot be created, the runtime says so
    /// once on stderr and runs without it.
    ///
    /// The file stays loadable while the program runs and after it crashes: each thread writes
    /// whole records, at each park and when the runtime is dropped. `cargo run -p ripple-tools
    /// --bin timeline -- TRACE.json OUT.svg` draws it as a picture.
    pub fn trace_file(&mut self, path: impl Into<PathBuf>) -> &mut Builder {
        self.trace_file = Some(path.into());
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

    /// Creates the runtime: an epoll instance and its eventfd, and for a multi-thread runtime
    /// its worker threads.
    ///
    /// Fails with `InvalidInput` for zero worker threads, or a `RIPPLE_WORKER_THREADS` that is
    /// not a positive number; with the system's error if epoll or a thread cannot be made.
    pub fn build(&self) -> io::Result<Runtime> {
        let workers = match self.kind {
            Kind::CurrentThread => 0,
            Kind::MultiThread => self.workers()?,
        };
        let tracer = trace::Tracer::new(self.trace, self.trace_file.as_deref());
        let blocking = BlockingPool::new(
            self.max_blocking_threads.max(1),
            self.keep_alive,
            self.thread_name.clone(),
            tracer.clone(),
        );
        let flavor = match self.kind {
            Kind::CurrentThread => {
                CurrentThread::new(self.event_interval, tracer.clone(), blocking.clone())
                    .map(Flavor::CurrentThread)
            }
            Kind::MultiThread => {
                let config = multi_thread::Config {
                    workers,
                    event_interval: self.event_interval,
                    trace: tracer.clone(),
                    thread_name: self.thread_name.clone(),
                };
                MultiThread::new(config, blocking.clone()).map(Flavor::MultiThread)
            }
        };
        let flavor = match flavor {
            Ok(flavor) => flavor,
            Err(err) => {
                // No runtime will be dropped to let go of the trace file: let go of it here, or
                // the file would never be closed.
                tracer.detach();
                return Err(err);
            }
        };
        let handle = match &flavor {
            Flavor::CurrentThread(scheduler) => Handle::CurrentThread(scheduler.shared.clone()),
            Flavor::MultiThread(scheduler) => Handle::MultiThread(scheduler.shared.clone()),
        };
        Ok(Runtime {
            flavor,
            handle,
            blocking,
            shut_down: false,
            trace: tracer,
        })
    }

    /// The number of worker threads: asked for, or from the environment, or one per core.
    fn workers(&self) -> io::Result<usize> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        let n = match (self.worker_threads, std::env::var("RIPPLE_WORKER_THREADS")) {
            (Some(n), _) => n,
            (None, Ok(value)) => value
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{NOT_A_NUMBER}, not {value:?}")))?,
            (None, Err(std::env::VarError::NotUnicode(value))) => {
                return Err(invalid(format!("{NOT_A_NUMBER}, not {value:?}")))
            }
            (None, Err(std::env::VarError::NotPresent)) => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
        };
        if n == 0 {
            return Err(invalid(
                "a multi-thread runtime needs at least one worker thread".to_string(),
            ));
        }
        Ok(n)
    }
}
