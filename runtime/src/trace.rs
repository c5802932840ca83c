//! The runtime's trace: with `RIPPLE_TRACE=1`, each moment the counters of `metrics.rs` count is
//! also printed on stderr, as one `ripple: ...` line. Any layer may print one.
//!
//! Each call site tests a copy of the runtime's `trace` flag (read once, when the runtime is
//! built) that sits in a struct it already has at hand, and only then calls an out-of-line
//! function that formats the line. So while the trace is off, it costs the hot path a compare
//! and a well-predicted branch per site, and no code that would crowd out inlining. Measured
//! with callgrind on the echo server (10 connections x 2,000 messages, 5 pairs against a build
//! with the trace compiled out): about 14 more user-space instructions per echoed message
//! (1.6%), well inside the spread of the server's CPU time from run to run.
//!
//! The same moments can also go to a file, as a timeline that Perfetto and `chrome://tracing`
//! draw (`RIPPLE_TRACE_FILE=PATH`; the format is described in `trace/file.rs`). Both traces
//! hide behind one flag, [`Tracer::on`], so turning on the file costs an untraced runtime
//! nothing more.

mod file;

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::panic::Location;
use std::path::Path;

pub(crate) use file::{flush_thread, set_thread, PollStart, RuntimeFile};

/// What a runtime traces, fixed when it is built; each struct whose code traces holds a copy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracer {
    /// Whether anything is traced: the one flag the hot paths test.
    pub(crate) on: bool,
    /// Whether to print trace lines on stderr (`RIPPLE_TRACE`).
    pub(crate) print: bool,
    /// The trace file (`RIPPLE_TRACE_FILE`), if any.
    pub(crate) file: Option<RuntimeFile>,
}

impl Tracer {
    /// A runtime's tracer: lines on stderr if `print`, records in the file at `path` if given
    /// (and if it can be opened).
    pub(crate) fn new(print: bool, path: Option<&Path>) -> Tracer {
        let file = path.and_then(file::TraceFile::attach);
        Tracer {
            on: print || file.is_some(),
            print,
            file,
        }
    }

    /// Task `id` was spawned at `location`; `how` says from where, for the printed line.
    #[cold]
    #[inline(never)]
    pub(crate) fn spawned(&self, id: u64, location: &'static Location<'static>, how: &str) {
        if self.print {
            trace(format_args!("task {id} spawned{how}"));
        }
        if let Some(file) = &self.file {
            file.spawned(id, location);
        }
    }

    /// Task `id` (0: the `block_on` future) was woken by `by` (a `WakeSource`'s name, or
    /// `thread`).
    #[cold]
    #[inline(never)]
    pub(crate) fn woken(&self, id: u64, by: &str) {
        if self.print {
            match (id, by) {
                (0, "thread") => trace(format_args!("the block_on future woken by another thread")),
                (0, _) => trace(format_args!(
                    "the block_on future woken by {}",
                    by_words(by)
                )),
                (_, _) => trace(format_args!("task {id} woken by {}", by_words(by))),
            }
        }
        if let Some(file) = &self.file {
            file.woken(id, by);
        }
    }

    /// A call of `block_on` begins: its future's arrows get ids of their own.
    #[cold]
    #[inline(never)]
    pub(crate) fn block_on_started(&self) {
        if let Some(file) = &self.file {
            file.block_on_started();
        }
    }

    /// A poll of task `id` (0: the `block_on` future) begins.
    #[cold]
    #[inline(never)]
    pub(crate) fn poll_started(&self, id: u64) -> Option<PollStart<'_>> {
        self.file.as_ref().map(|file| file.poll_started(id))
    }

    /// The poll that began with `start` returned `outcome`; `finished` if the task completed.
    #[cold]
    #[inline(never)]
    pub(crate) fn polled(
        &self,
        id: u64,
        start: Option<PollStart<'_>>,
        outcome: &str,
        finished: bool,
    ) {
        if self.print && id != 0 {
            trace(format_args!("task {id} polled -> {outcome}"));
        }
        if let (Some(file), Some(start)) = (&self.file, start) {
            file.polled(start, outcome, finished);
        }
    }

    /// The run that began with `start` was no poll after all (the task was running elsewhere,
    /// or complete): nothing is recorded.
    #[cold]
    #[inline(never)]
    pub(crate) fn skipped(&self, start: Option<PollStart<'_>>) {
        if let (Some(file), Some(start)) = (&self.file, start) {
            file.skipped(start);
        }
    }

    /// Nanoseconds since the trace file's start (0 without a file), to begin a slice.
    #[cold]
    #[inline(never)]
    pub(crate) fn now(&self) -> u64 {
        self.file.as_ref().map_or(0, RuntimeFile::now)
    }

    /// The thread is about to wait in epoll, which is a park: its records go to the file.
    /// Returns when the wait begins, as [`Tracer::now`].
    #[cold]
    #[inline(never)]
    pub(crate) fn before_wait(&self) -> u64 {
        let Some(file) = &self.file else { return 0 };
        flush_thread();
        file.now()
    }

    /// A worker stole `tasks` tasks from worker `victim`.
    #[cold]
    #[inline(never)]
    pub(crate) fn stole(&self, victim: usize, tasks: u32) {
        if self.print {
            trace(format_args!("stole {tasks} task(s) from worker {victim}"));
        }
        if let Some(file) = &self.file {
            file.stole(victim, tasks);
        }
    }

    /// A worker found nothing to do and is about to sleep: a line, and its records go to the
    /// file.
    #[cold]
    #[inline(never)]
    pub(crate) fn sleeps(&self) {
        if self.print {
            trace(format_args!("sleeps"));
        }
        self.parks();
    }

    /// This thread is about to park: its records go to the file.
    #[cold]
    #[inline(never)]
    pub(crate) fn parks(&self) {
        if self.file.is_some() {
            flush_thread();
        }
    }

    /// This thread's track ends: a worker or blocking thread exits, a current-thread runtime
    /// is dropped.
    pub(crate) fn end_thread(&self) {
        if let Some(file) = &self.file {
            file.end_thread();
        }
    }

    /// A current-thread runtime is dropped on this thread: its track ends, unless the thread is
    /// another runtime's own.
    pub(crate) fn leave_thread(&self) {
        if let Some(file) = &self.file {
            file.leave_thread();
        }
    }

    /// The runtime is dropped: the last one to use the trace file closes it.
    pub(crate) fn detach(&self) {
        if let Some(file) = &self.file {
            file.detach();
        }
    }
}

/// How a printed line says who woke a task, from a `WakeSource`'s name.
fn by_words(by: &str) -> &str {
    match by {
        "task" => "a task",
        "block_on" => "the block_on future",
        "thread" => "another thread",
        "shutdown" => "the runtime shutting down",
        other => other,
    }
}

thread_local! {
    /// The worker this thread is, if it is one of a multi-thread runtime's: its trace lines
    /// start with `worker N:`, whichever layer prints them.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the calling thread as worker `index` (or, with `None`, as no worker) for the trace.
pub(crate) fn set_worker(index: Option<usize>) {
    WORKER.with(|worker| worker.set(index));
}

/// Whether the environment asks for the trace: `RIPPLE_TRACE` set to anything but `0` or empty.
pub(crate) fn trace_from_env() -> bool {
    std::env::var_os("RIPPLE_TRACE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The trace file the environment asks for: `RIPPLE_TRACE_FILE`, if set and not empty.
pub(crate) fn trace_file_from_env() -> Option<std::path::PathBuf> {
    std::env::var_os("RIPPLE_TRACE_FILE")
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

/// Prints one trace line, `ripple: ...` (`ripple: worker N: ...` on a worker thread), on stderr.
/// Callers check the runtime's trace flag first, so that formatting costs nothing while the
/// trace is off.
#[cold]
pub(crate) fn trace(args: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    // A closed or full stderr must not take the runtime down: the trace is best effort.
    let _ = match WORKER.with(Cell::get) {
        Some(index) => writeln!(stderr, "ripple: worker {index}: {args}"),
        None => writeln!(stderr, "ripple: {args}"),
    };
}
