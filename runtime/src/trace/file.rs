//! The trace file: with `RIPPLE_TRACE_FILE=PATH` (or `Builder::trace_file`), every poll, wake,
//! epoll wait, timer firing and steal goes to `PATH` in the Trace Event Format, the JSON that
//! Perfetto's UI (<https://ui.perfetto.dev>) and `chrome://tracing` open, as a timeline with one
//! track per thread.
//!
//! The file is a JSON array written one record per line: `[`, then each event object followed by
//! a comma. The format lets a reader do without the closing `]`, so the file can be opened at
//! any moment, and a process that crashes keeps every record it wrote. When the last runtime that
//! uses the file is dropped, a closing event and the `]` make it strict JSON; a runtime that opens
//! the file again after that takes the `]` away and goes on.
//!
//! Each thread appends whole records to a buffer of its own (a thread-local), and writes the
//! buffer to the file with one `write` under the file's lock: when it parks, when a runtime is
//! dropped, when the buffer passes 64 KiB, and when the thread exits. Records of two threads never
//! interleave mid-line. Threads that run no runtime (one that wakes a task from outside, say) write
//! each record at once. Past `RIPPLE_TRACE_FILE_MAX_MB` (default 256) of records the file gets one
//! last event saying so, and tracing stops.
//!
//! One file per process: every runtime given the same path shares it (and its clock), each under
//! a number of its own (`args.runtime`).
//!
//! # The events
//!
//! `pid` is the process id; `tid` a small number per thread (1, 2, ... in the order threads first
//! write), named by a `thread_name` metadata event (`"ph": "M"`); `ts` and `dur` are microseconds
//! (with three decimals: nanoseconds) since the file was opened, which is when the first runtime
//! that uses it was built.
//!
//! | `name` | `ph` | `cat` | what | `args` |
//! |---|---|---|---|---|
//! | `task N FILE:LINE` (`block_on` for the future given to `block_on`) | `X` | `task` | one poll of task N, spawned at FILE:LINE | `runtime`, `task`, `wake` (the wake it answers; 0 for the first poll), `outcome` (`pending`, `ready`, `panicked`, `cancelled`), `spawned_at` |
//! | `spawn` | `i` | `task` | task N spawned | `runtime`, `task`, `spawned_at` |
//! | `wake` | `i` | `task` | task N woken | `runtime`, `task`, `wake` (1, 2, ... per task), `by` (`reactor`, `timer`, `task`, `block_on`, `thread`, `shutdown`), `by_task` (the task being polled, if a task woke it) |
//! | `wake` | `s`, `f` | `task` | the arrow from a spawn or a wake (`s`) to the poll it caused (`f`, bound to the poll's slice) | `id`: the runtime (5 bits), task (24 bits) and wake number (24 bits) packed into one integer below 2^53 |
//! | `epoll_wait` | `X` | `epoll` | one `epoll_wait` | `events`, `timeout_ms` (`null`: none) |
//! | `timers` | `X` | `timer` | firing due timers | `fired` |
//! | `steal` | `i` | `steal` | a worker took tasks from a sibling | `from_worker`, `tasks` |
//! | `thread start`, `thread end` | `i` | `thread` | the thread's track begins and ends (a worker or blocking thread exits; a current-thread runtime is dropped) | |
//! | `trace stopped` | `i` | `trace` | the size cap was reached: nothing follows | `max_mb` |
//! | `trace closed` | `i` | `trace` | the last runtime using the file was dropped | |

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The size cap when `RIPPLE_TRACE_FILE_MAX_MB` does not set one.
const DEFAULT_MAX_MB: u64 = 256;
/// A thread's buffer is written out once it holds this much, even if the thread does not park.
const FLUSH_AT: usize = 64 * 1024;
/// What follows the last event of a closed file; a reopening takes it away again.
const CLOSING: &[u8] = b"\n]\n";

/// A trace file, shared by every runtime of the process that was given its path.
#[derive(Debug)]
pub(crate) struct TraceFile {
    /// Where it is.
    path: PathBuf,
    /// Time zero of every `ts`.
    start: Instant,
    /// This process's id.
    pid: u32,
    /// Bytes of records at most (`RIPPLE_TRACE_FILE_MAX_MB`).
    max_bytes: u64,
    /// The file and what has been written to it; a whole buffer is written under this lock.
    out: Mutex<Out>,
    /// Set once the size cap is reached: every record is dropped from then on.
    stopped: AtomicBool,
    /// The tasks traced so far, by [`task_key`]: where each was spawned and how often woken.
    tasks: Mutex<HashMap<u64, TaskInfo>>,
    /// Runtimes that have used the file so far, for numbering the next one.
    runtimes: AtomicU32,
}

/// What [`TraceFile::out`] protects.
#[derive(Debug)]
struct Out {
    /// The open file.
    file: File,
    /// Bytes written so far.
    written: u64,
    /// Runtimes using the file now; the last one to go closes it.
    users: usize,
    /// Whether the file ends with [`CLOSING`].
    closed: bool,
}

/// What the trace knows of one task.
#[derive(Debug, Clone, Copy, Default)]
struct TaskInfo {
    /// Where it was spawned (`None` for the `block_on` future, and for a task spawned before
    /// the file was opened).
    location: Option<&'static Location<'static>>,
    /// Wakes so far: the number of the next poll's wake.
    wakes: u32,
}

/// One runtime's use of a trace file: the file and the runtime's number in it.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeFile {
    /// The file.
    file: Arc<TraceFile>,
    /// This runtime's number (1 for the first in the process).
    runtime: u32,
}

/// A poll that has begun, for [`RuntimeFile::polled`].
#[derive(Debug)]
pub(crate) struct PollStart {
    /// The task (0: the `block_on` future).
    task: u64,
    /// Its wake number: which wake this poll answers.
    wake: u32,
    /// Where it was spawned.
    location: Option<&'static Location<'static>>,
    /// When the poll began, in nanoseconds since the file's start.
    ns: u64,
}

/// The files of this process, and the paths that could not be opened (said once each).
#[derive(Debug)]
struct Registry {
    /// Open files, whether or not a runtime uses them now.
    files: Vec<Arc<TraceFile>>,
    /// Paths that failed to open.
    failed: Vec<PathBuf>,
}

/// Every trace file of the process.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    files: Vec::new(),
    failed: Vec::new(),
});

/// The next thread number.
static NEXT_TID: AtomicU32 = AtomicU32::new(1);

thread_local! {
    /// This thread's buffer of records.
    static THREAD: RefCell<ThreadLog> = const { RefCell::new(ThreadLog::new()) };
}

/// A thread's records not yet written, and what the file knows of the thread.
#[derive(Debug)]
struct ThreadLog {
    /// The file `buf` goes to.
    file: Option<Arc<TraceFile>>,
    /// Whole records, each ending in `,\n`.
    buf: String,
    /// This thread's number (0 until it first writes).
    tid: u32,
    /// The name of its track, if a runtime gave it one.
    name: Option<String>,
    /// Whether `file` has this thread's name.
    named: bool,
    /// Whether the thread's track is open in `file` (a `thread start` with no `thread end` yet).
    open: bool,
    /// Whether the thread writes its buffer only at parks and drops (a runtime's own thread).
    buffered: bool,
    /// The task this thread is polling, for naming who woke whom (0: none).
    polling: u64,
    /// When a runtime made this thread its own, if its track has not begun since: the track
    /// begins there, before anything the thread records.
    since: Option<Instant>,
}

impl ThreadLog {
    /// A thread that has written nothing.
    const fn new() -> ThreadLog {
        ThreadLog {
            file: None,
            buf: String::new(),
            tid: 0,
            name: None,
            named: false,
            open: false,
            buffered: false,
            polling: 0,
            since: None,
        }
    }

    /// Writes the buffer to its file.
    fn flush(&mut self) {
        if let Some(file) = &self.file {
            if !self.buf.is_empty() {
                file.write(self.buf.as_bytes());
            }
        }
        self.buf.clear();
    }
}

impl Drop for ThreadLog {
    fn drop(&mut self) {
        // The thread exits: what it recorded must not be lost.
        self.flush();
    }
}

/// The key of task `task` of runtime `runtime` in [`TraceFile::tasks`].
fn task_key(runtime: u32, task: u64) -> u64 {
    (u64::from(runtime) << 40) | task
}

/// The id of the arrow from wake `wake` of a task to the poll it caused: runtime, task and wake
/// packed into 53 bits, which every JSON reader keeps exact.
fn flow_id(runtime: u32, task: u64, wake: u32) -> u64 {
    (u64::from(runtime & 0x1F) << 48) | ((task & 0xFF_FFFF) << 24) | u64::from(wake & 0xFF_FFFF)
}

impl TraceFile {
    /// The trace file at `path` for a new runtime: the process's, if it has one there already,
    /// else a new one. If it cannot be created, says so on stderr (once per path) and returns
    /// `None`: the runtime runs without it.
    pub(crate) fn attach(path: &Path) -> Option<RuntimeFile> {
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        let file = match registry.files.iter().find(|f| f.path == path) {
            Some(file) => file.clone(),
            None if registry.failed.iter().any(|p| p == path) => return None,
            None => match TraceFile::create(path) {
                Ok(file) => {
                    registry.files.push(file.clone());
                    file
                }
                Err(err) => {
                    eprintln!(
                        "ripple: cannot open the trace file {}: {err}; running without it",
                        path.display()
                    );
                    registry.failed.push(path.to_path_buf());
                    return None;
                }
            },
        };
        drop(registry);
        file.lock().users += 1;
        let runtime = file.runtimes.fetch_add(1, Ordering::Relaxed) + 1;
        Some(RuntimeFile { file, runtime })
    }

    /// Creates the file and writes its opening: the `[` and the process's name.
    fn create(path: &Path) -> io::Result<Arc<TraceFile>> {
        let mut file = File::create(path)?;
        let pid = std::process::id();
        let max_mb = std::env::var("RIPPLE_TRACE_FILE_MAX_MB")
            .ok()
            .and_then(|mb| mb.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_MB);
        let program = std::env::args()
            .next()
            .map(|arg| arg.rsplit('/').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let mut head = String::from("[\n");
        let _ = write!(
            head,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"tid\":0,\"ts\":0,\"args\":{{\"name\":"
        );
        json_str(&mut head, &format!("ripple: {program}"));
        head.push_str("}},\n");
        file.write_all(head.as_bytes())?;
        Ok(Arc::new(TraceFile {
            path: path.to_path_buf(),
            start: Instant::now(),
            pid,
            max_bytes: max_mb.saturating_mul(1024 * 1024),
            out: Mutex::new(Out {
                file,
                written: head.len() as u64,
                users: 0,
                closed: false,
            }),
            stopped: AtomicBool::new(false),
            tasks: Mutex::new(HashMap::new()),
            runtimes: AtomicU32::new(0),
        }))
    }

    /// The file's state, locked. A panic cannot leave it half-changed (a write is one call), so a
    /// poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Nanoseconds since the file's start.
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Writes whole records, with one `write`, unless the size cap is reached: then writes the
    /// last event instead, and stops.
    fn write(&self, records: &[u8]) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let mut out = self.lock();
        if out.closed {
            // A runtime is using the file again (or a thread wrote late): take the `]` away.
            let end = out.file.seek(SeekFrom::End(0)).unwrap_or(0);
            let _ = out.file.set_len(end.saturating_sub(CLOSING.len() as u64));
            let _ = out.file.seek(SeekFrom::End(0));
            let _ = out.file.write_all(b",\n");
            out.closed = false;
        }
        if out.written + records.len() as u64 > self.max_bytes {
            self.stopped.store(true, Ordering::Relaxed);
            let mut last = String::new();
            self.global_event(&mut last, "trace stopped", "trace");
            let _ = writeln!(
                last,
                ",\"args\":{{\"max_mb\":{}}}}},",
                self.max_bytes / (1024 * 1024)
            );
            let _ = out.file.write_all(last.as_bytes());
            return;
        }
        // Best effort: a full disk must not take the runtime down.
        if out.file.write_all(records).is_ok() {
            out.written += records.len() as u64;
        }
        if out.users == 0 {
            self.close(&mut out);
        }
    }

    /// Ends the file with a last event and `]`: strict JSON until someone writes again.
    fn close(&self, out: &mut Out) {
        let mut last = String::new();
        self.global_event(&mut last, "trace closed", "trace");
        last.push('}');
        let _ = out.file.write_all(last.as_bytes());
        let _ = out.file.write_all(CLOSING);
        out.closed = true;
    }

    /// Starts a process-wide instant event (with no closing brace).
    fn global_event(&self, out: &mut String, name: &str, cat: &str) {
        let _ = write!(
            out,
            "{{\"ph\":\"i\",\"s\":\"g\",\"name\":\"{name}\",\"cat\":\"{cat}\",\"pid\":{},\"tid\":0,\"ts\":",
            self.pid
        );
        ts(out, self.now());
    }

    /// Appends records to this thread's buffer with `f`, after opening the thread's track if it
    /// is not open (at `earliest`, the first time those records mention); writes the buffer out
    /// if the thread is not a runtime's or the buffer is full.
    fn record(self: &Arc<Self>, earliest: u64, f: impl FnOnce(&mut String, Header)) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let _ = THREAD.try_with(|log| {
            // A record made while this thread is already recording (it cannot happen today) is
            // dropped rather than allowed to panic.
            let Ok(mut log) = log.try_borrow_mut() else {
                return;
            };
            if !log.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, self)) {
                log.flush();
                log.file = Some(self.clone());
                log.named = false;
                log.open = false;
            }
            if log.tid == 0 {
                log.tid = NEXT_TID.fetch_add(1, Ordering::Relaxed);
            }
            let header = Header {
                pid: self.pid,
                tid: log.tid,
            };
            if !log.named {
                log.named = true;
                let name = match &log.name {
                    Some(name) => name.clone(),
                    None => std::thread::current()
                        .name()
                        .unwrap_or("unnamed thread")
                        .to_string(),
                };
                let buf = &mut log.buf;
                let _ = write!(
                    buf,
                    "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{},\"ts\":0,\"args\":{{\"name\":",
                    header.pid, header.tid
                );
                json_str(buf, &name);
                let _ = writeln!(
                    buf,
                    "}}}},\n{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{},\"tid\":{},\"ts\":0,\"args\":{{\"sort_index\":{}}}}},",
                    header.pid, header.tid, header.tid
                );
            }
            if !log.open {
                log.open = true;
                let since = log.since.take().map(|t| {
                    t.saturating_duration_since(self.start).as_nanos() as u64
                });
                let start = since.map_or(earliest, |since| since.min(earliest));
                header.instant(&mut log.buf, "thread start", "thread", start);
                log.buf.push_str("},\n");
            }
            f(&mut log.buf, header);
            if !log.buffered || log.buf.len() >= FLUSH_AT {
                log.flush();
            }
        });
    }
}

/// The fields every event of one thread starts with.
#[derive(Debug, Clone, Copy)]
struct Header {
    /// The process.
    pid: u32,
    /// The thread's number.
    tid: u32,
}

impl Header {
    /// Starts an event of phase `ph` at `ns` (no closing brace).
    fn event(self, out: &mut String, ph: char, name: &str, cat: &str, ns: u64) {
        self.event_named(out, ph, cat, ns, |out| json_escaped(out, name));
    }

    /// Starts an event whose name `name` writes (escaped, without the quotes): a task's name is
    /// made of parts, and this spares putting them together first.
    fn event_named(
        self,
        out: &mut String,
        ph: char,
        cat: &str,
        ns: u64,
        name: impl FnOnce(&mut String),
    ) {
        out.push_str("{\"ph\":\"");
        out.push(ph);
        out.push_str("\",\"name\":\"");
        name(out);
        out.push_str("\",\"cat\":\"");
        out.push_str(cat);
        out.push_str("\",\"pid\":");
        uint(out, self.pid.into());
        out.push_str(",\"tid\":");
        uint(out, self.tid.into());
        out.push_str(",\"ts\":");
        ts(out, ns);
    }

    /// Starts an instant event on this thread's track.
    fn instant(self, out: &mut String, name: &str, cat: &str, ns: u64) {
        self.event(out, 'i', name, cat, ns);
        out.push_str(",\"s\":\"t\"");
    }

    /// Starts a complete slice from `start` to `end`.
    fn slice(self, out: &mut String, name: &str, cat: &str, start: u64, end: u64) {
        self.slice_named(out, cat, start, end, |out| json_escaped(out, name));
    }

    /// Starts a complete slice whose name `name` writes, as [`event_named`](Self::event_named).
    fn slice_named(
        self,
        out: &mut String,
        cat: &str,
        start: u64,
        end: u64,
        name: impl FnOnce(&mut String),
    ) {
        self.event_named(out, 'X', cat, start, name);
        out.push_str(",\"dur\":");
        ts(out, end.saturating_sub(start));
    }

    /// Writes a whole flow event (`s` or `f`) of arrow `id`.
    fn flow(self, out: &mut String, ph: char, id: u64, ns: u64) {
        self.event(out, ph, "wake", "task", ns);
        out.push_str(",\"id\":");
        uint(out, id);
        if ph == 'f' {
            out.push_str(",\"bp\":\"e\"");
        }
        out.push_str("},\n");
    }
}

/// Writes nanoseconds as microseconds with three decimals.
fn ts(out: &mut String, ns: u64) {
    uint(out, ns / 1000);
    let frac = ns % 1000;
    out.push('.');
    for digit in [frac / 100, frac / 10 % 10, frac % 10] {
        out.push(char::from(b'0' + digit as u8));
    }
}

/// Writes `n` in decimal. The records are mostly numbers, and `write!` through `fmt` costs
/// several times more than this.
fn uint(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[at..] {
        out.push(char::from(digit));
    }
}

/// Writes `s` as a JSON string: quoted, with `"`, `\` and control characters escaped.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    json_escaped(out, s);
    out.push('"');
}

/// Writes `s` escaped for the inside of a JSON string. Names and paths rarely need it, so a
/// string with nothing to escape is copied as it is.
fn json_escaped(out: &mut String, s: &str) {
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Writes a spawn location as a JSON string, `null` if unknown.
fn location_str(out: &mut String, location: Option<&'static Location<'static>>) {
    match location {
        Some(l) => {
            out.push('"');
            json_escaped(out, l.file());
            out.push(':');
            uint(out, l.line().into());
            out.push(':');
            uint(out, l.column().into());
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

impl RuntimeFile {
    /// Records that `task` was spawned at `location`: where its first poll's arrow starts.
    pub(crate) fn spawned(&self, task: u64, location: &'static Location<'static>) {
        let key = task_key(self.runtime, task);
        self.file
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                TaskInfo {
                    location: Some(location),
                    wakes: 0,
                },
            );
        let ns = self.file.now();
        self.file.record(ns, |out, header| {
            header.instant(out, "spawn", "task", ns);
            out.push_str(",\"args\":{\"runtime\":");
            uint(out, self.runtime.into());
            out.push_str(",\"task\":");
            uint(out, task);
            out.push_str(",\"spawned_at\":");
            location_str(out, Some(location));
            out.push_str("}},\n");
            header.flow(out, 's', flow_id(self.runtime, task, 0), ns);
        });
    }

    /// Records that `task` (0: the `block_on` future) was woken by `by`: a wake and the start of
    /// the arrow to the poll it causes.
    pub(crate) fn woken(&self, task: u64, by: &str) {
        let key = task_key(self.runtime, task);
        let wake = {
            let mut tasks = self
                .file
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let info = tasks.entry(key).or_default();
            info.wakes = info.wakes.wrapping_add(1);
            info.wakes
        };
        let by_task = THREAD
            .try_with(|log| log.try_borrow().map_or(0, |log| log.polling))
            .unwrap_or(0);
        let ns = self.file.now();
        self.file.record(ns, |out, header| {
            header.instant(out, "wake", "task", ns);
            out.push_str(",\"args\":{\"runtime\":");
            uint(out, self.runtime.into());
            out.push_str(",\"task\":");
            uint(out, task);
            out.push_str(",\"wake\":");
            uint(out, wake.into());
            out.push_str(",\"by\":\"");
            out.push_str(by);
            out.push('"');
            if by == "task" && by_task != 0 {
                out.push_str(",\"by_task\":");
                uint(out, by_task);
            }
            out.push_str("}},\n");
            header.flow(out, 's', flow_id(self.runtime, task, wake), ns);
        });
    }

    /// A poll of `task` (0: the `block_on` future) begins.
    pub(crate) fn poll_started(&self, task: u64) -> PollStart {
        let info = self
            .file
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&task_key(self.runtime, task))
            .copied()
            .unwrap_or_default();
        set_polling(task);
        PollStart {
            task,
            wake: info.wakes,
            location: info.location,
            ns: self.file.now(),
        }
    }

    /// The poll that began at `start` returned `outcome`; `finished` if the task is complete
    /// (it is then forgotten).
    pub(crate) fn polled(&self, start: PollStart, outcome: &str, finished: bool) {
        let end = self.file.now();
        set_polling(0);
        let task = start.task;
        if finished {
            self.file
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&task_key(self.runtime, task));
        }
        self.file.record(start.ns, |out, header| {
            header.slice_named(out, "task", start.ns, end, |out| {
                match (task, start.location) {
                    (0, _) => out.push_str("block_on"),
                    (_, Some(l)) => {
                        out.push_str("task ");
                        uint(out, task);
                        out.push(' ');
                        json_escaped(out, l.file());
                        out.push(':');
                        uint(out, l.line().into());
                    }
                    (_, None) => {
                        out.push_str("task ");
                        uint(out, task);
                    }
                }
            });
            out.push_str(",\"args\":{\"runtime\":");
            uint(out, self.runtime.into());
            out.push_str(",\"task\":");
            uint(out, task);
            out.push_str(",\"wake\":");
            uint(out, start.wake.into());
            out.push_str(",\"outcome\":\"");
            out.push_str(outcome);
            out.push_str("\",\"spawned_at\":");
            location_str(out, start.location);
            out.push_str("}},\n");
            // The first poll of the `block_on` future answers no wake: it has no arrow.
            if task != 0 || start.wake != 0 {
                header.flow(out, 'f', flow_id(self.runtime, task, start.wake), start.ns);
            }
        });
    }

    /// Nanoseconds since the file's start, to begin a slice.
    pub(crate) fn now(&self) -> u64 {
        self.file.now()
    }

    /// Records an epoll wait from `start` to now that returned `events` events.
    pub(crate) fn waited(&self, start: u64, timeout_ms: Option<u128>, events: usize) {
        let end = self.file.now();
        self.file.record(start, |out, header| {
            header.slice(out, "epoll_wait", "epoll", start, end);
            out.push_str(",\"args\":{\"events\":");
            uint(out, events as u64);
            out.push_str(",\"timeout_ms\":");
            match timeout_ms {
                Some(ms) => uint(out, u64::try_from(ms).unwrap_or(u64::MAX)),
                None => out.push_str("null"),
            }
            out.push_str("}},\n");
        });
    }

    /// Records the firing of `fired` timers, from `start` to now.
    pub(crate) fn fired(&self, start: u64, fired: usize) {
        let end = self.file.now();
        self.file.record(start, |out, header| {
            header.slice(out, "timers", "timer", start, end);
            let _ = writeln!(out, ",\"args\":{{\"fired\":{fired}}}}},");
        });
    }

    /// Records a steal of `tasks` tasks from worker `victim`.
    pub(crate) fn stole(&self, victim: usize, tasks: u32) {
        let ns = self.file.now();
        self.file.record(ns, |out, header| {
            header.instant(out, "steal", "steal", ns);
            let _ = writeln!(
                out,
                ",\"args\":{{\"from_worker\":{victim},\"tasks\":{tasks}}}}},"
            );
        });
    }

    /// This thread's track ends (its worker or blocking thread exits, or its current-thread
    /// runtime is dropped): a `thread end`, and the buffer written out.
    pub(crate) fn end_thread(&self) {
        let open = THREAD
            .try_with(|log| log.try_borrow().is_ok_and(|log| log.open))
            .unwrap_or(false);
        if open {
            let ns = self.file.now();
            self.file.record(ns, |out, header| {
                header.instant(out, "thread end", "thread", ns);
                out.push_str("},\n");
            });
            let _ = THREAD.try_with(|log| {
                if let Ok(mut log) = log.try_borrow_mut() {
                    log.open = false;
                }
            });
        }
        flush_thread();
    }

    /// The runtime is dropped: writes this thread's records and, if it was the last runtime
    /// using the file, closes it.
    pub(crate) fn detach(&self) {
        flush_thread();
        self.file
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&key, _| key >> 40 != u64::from(self.runtime));
        let mut out = self.file.lock();
        out.users -= 1;
        if out.users == 0 && !out.closed && !self.file.stopped.load(Ordering::Relaxed) {
            self.file.close(&mut out);
        }
    }
}

/// Notes the task this thread is polling (0: none).
fn set_polling(task: u64) {
    let _ = THREAD.try_with(|log| {
        if let Ok(mut log) = log.try_borrow_mut() {
            log.polling = task;
        }
    });
}

/// Writes this thread's buffered records to their file: at a park, and when a runtime is dropped.
pub(crate) fn flush_thread() {
    let _ = THREAD.try_with(|log| {
        if let Ok(mut log) = log.try_borrow_mut() {
            log.flush();
        }
    });
}

/// Names this thread's track (`worker 0`, `blocking`, ...), and says whether its records are
/// buffered until it parks (a runtime's own thread) or written at once.
pub(crate) fn set_thread(name: Option<String>, buffered: bool) {
    let _ = THREAD.try_with(|log| {
        if let Ok(mut log) = log.try_borrow_mut() {
            if !buffered {
                log.flush();
            }
            log.buffered = buffered;
            if buffered && !log.open {
                log.since = Some(Instant::now());
            }
            if name.is_some() && log.name != name {
                log.name = name;
                log.named = false;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_json_and_plain_ones_copied_as_they_are() {
        let mut out = String::new();
        json_str(&mut out, "plain/path.rs");
        assert_eq!(out, r#""plain/path.rs""#);

        out.clear();
        json_str(&mut out, "a \"quoted\" \\ name\n\twith \u{1} and é");
        assert_eq!(out, r#""a \"quoted\" \\ name\n\twith \u0001 and é""#);
    }

    #[test]
    fn a_location_is_a_json_string_of_file_line_and_column() {
        let here = Location::caller();
        let mut out = String::new();
        location_str(&mut out, Some(here));
        assert_eq!(
            out,
            format!("\"{}:{}:{}\"", here.file(), here.line(), here.column())
        );
        out.clear();
        location_str(&mut out, None);
        assert_eq!(out, "null");
    }

    #[test]
    fn numbers_and_timestamps_are_written_in_decimal() {
        let mut out = String::new();
        for n in [0, 7, 10, 1_234_567, u64::MAX] {
            out.clear();
            uint(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        out.clear();
        ts(&mut out, 12_345_067);
        assert_eq!(out, "12345.067");
        out.clear();
        ts(&mut out, 5);
        assert_eq!(out, "0.005");
    }
}
