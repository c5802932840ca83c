//! The trace file: with `RIPPLE_TRACE_FILE=PATH` (or `Builder::trace_file`), every poll, wake,
//! epoll wait, timer firing and steal goes to `PATH` in the Trace Event Format, the JSON that
//! Perfetto's UI (<https://ui.perfetto.dev>) and `chrome://tracing` open, as a timeline with one
//! track per thread.
//!
//! The file is a JSON array written one record per line: `[`, then each event object followed by
//! a comma. The format lets a reader do without the closing `]`, so the file can be opened at
//! any moment, and a process that crashes keeps the records it wrote: every one whole, except
//! that a kill in the middle of a long write can cut the last line (Linux stops a write between
//! pages for a fatal signal), which a reader drops. When the last runtime that
//! uses the file is dropped, a closing event and the `]` make it strict JSON; a runtime that opens
//! the file again after that takes the `]` away and goes on.
//!
//! Each thread appends whole records to a buffer of its own (a thread-local), and writes the
//! buffer to the file with one `write` under the file's lock: when it parks, when a runtime is
//! dropped, when the buffer passes 64 KiB, and when the thread exits. Records of two threads never
//! interleave mid-line. Threads that run no runtime (one that wakes a task from outside, say) write
//! each record at once. Past `RIPPLE_TRACE_FILE_MAX_MB` (default 256; a value that is not a
//! number gets the default, and a line on stderr) of records the file gets one last event saying
//! so, tracing stops and the file is closed. A write that fails (a full disk) is cut back to the
//! last whole record, reported once on stderr, and tracing stops there too.
//!
//! One file per process: every runtime given the same file shares it (and its clock), each under
//! a number of its own (`args.runtime`). The same file means the same device and inode, however
//! the path spells it (`./t.json`, `t.json`, a symlink). A `{pid}` in the path is replaced by the
//! process id, so that several processes (a server and a forked child, a test run) each get a
//! file of their own: `RIPPLE_TRACE_FILE=/tmp/trace-{pid}.json`.
//!
//! # The events
//!
//! `pid` is the process id; `tid` a small number per thread (1, 2, ... in the order threads first
//! write; 0 for the process-wide events); `ts` and `dur` are microseconds (with three decimals:
//! nanoseconds) since the file was opened, which is when the first runtime that uses it was
//! built. Instant events (`"ph": "i"`) carry `"s": "t"` (the thread's track) or `"s": "g"` (the
//! whole trace); flow events carry `id`, and the poll's end of an arrow `"bp": "e"`.
//!
//! Perfetto binds each end of an arrow to the slice that encloses it on its thread, and drops
//! an arrow whose start lies in no slice. So a spawn and a wake are each a slice of 1 ns (`dur`
//! 0.001) that holds the start of their arrow (`s`, at the slice's start), whether or not they
//! happen inside a poll; the arrow's end (`f`) lies at the start of the poll it caused.
//!
//! In the table, `name` lists the names an event may have (`N` a number, `FILE:LINE` a place in
//! the source), and `args` lists the keys of its `args`, each followed by the values it takes or
//! a note in parentheses; `-` means none. `tests/trace_file.rs` checks a real trace against it.
//!
//! | `name` | `ph` | `cat` | what | `args` |
//! |---|---|---|---|---|
//! | `process_name` | `M` | - | names the process: `ripple: PROGRAM` | `name` |
//! | `thread_name` | `M` | - | names a thread's track: `worker N`, `blocking`, `NAME (current_thread)` or the thread's own name | `name` |
//! | `thread_sort_index` | `M` | - | orders the tracks by `tid` | `sort_index` |
//! | `task N FILE:LINE`, `task N`, `block_on` | `X` | `task` | one poll of task N, spawned at FILE:LINE (`task N` if the trace does not know where; `block_on` for the future given to `block_on`) | `runtime`, `task` (0 for `block_on`), `wake` (the wake it answers; 0 for the first poll), `outcome` (`pending`, `ready`, `panicked`, `cancelled`), `spawned_at` (`"FILE:LINE:COLUMN"`, or `null` if unknown) |
//! | `spawn` | `X` | `task` | task N spawned: 1 ns holding the start of the arrow to its first poll | `runtime`, `task`, `spawned_at` |
//! | `wake` | `X` | `task` | task N woken: 1 ns holding the start of the arrow to the poll it causes | `runtime`, `task` (0 for the `block_on` future), `wake` (1, 2, ... per task), `by` (`reactor`, `timer`, `task`, `block_on`, `thread`, `shutdown`, or `rescheduled`: the task woke itself while it was polled, as `yield_now` does), `by_task` (when `by` is `task`: the task being polled) |
//! | `wake` | `s`, `f` | `task` | the arrow from a spawn or a wake (`s`) to the poll it caused (`f`); `id`: the number the file gives each task and each `block_on` call in turn, across runtimes (29 bits), then the wake number (24 bits; 0 for the spawn), packed into one integer below 2^53 | - |
//! | `epoll_wait` | `X` | `epoll` | one `epoll_wait` | `events`, `timeout_ms` (`null`: none) |
//! | `timers` | `X` | `timer` | firing due timers | `fired` |
//! | `steal` | `i` | `steal` | a worker took tasks from a sibling | `from_worker`, `tasks` |
//! | `thread start`, `thread end` | `i` | `thread` | the thread's track begins and ends (a worker or blocking thread exits; a current-thread runtime is dropped) | - |
//! | `trace stopped` | `i` | `trace` | the size cap was reached: nothing follows | `max_mb` |
//! | `trace closed` | `i` | `trace` | the last runtime using the file was dropped | - |

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::Instant;

/// The size cap when `RIPPLE_TRACE_FILE_MAX_MB` does not set one.
const DEFAULT_MAX_MB: u64 = 256;
/// A thread's buffer is written out once it holds this much, even if the thread does not park.
const FLUSH_AT: usize = 64 * 1024;
/// What follows the last event of a closed file; a reopening takes it away again.
const CLOSING: &[u8] = b"\n]\n";
/// What a path's `{pid}` becomes: the process id.
const PID_PLACEHOLDER: &[u8] = b"{pid}";

/// A trace file, shared by every runtime of the process that was given its path.
#[derive(Debug)]
pub(crate) struct TraceFile {
    /// Where it is, for messages (the file is known by `id`).
    path: PathBuf,
    /// The file's device and inode: another path to the same file finds it by these.
    id: (u64, u64),
    /// Time zero of every `ts`.
    start: Instant,
    /// This process's id.
    pid: u32,
    /// Bytes of records at most (`RIPPLE_TRACE_FILE_MAX_MB`).
    max_bytes: u64,
    /// The file and what has been written to it; a whole buffer is written under this lock.
    out: Mutex<Out>,
    /// Set once tracing stops (the size cap is reached, or a write failed), under `out`'s lock:
    /// every record is dropped from then on. Read without the lock to skip work early, and
    /// again under it before writing.
    stopped: AtomicBool,
    /// The tasks traced so far, by [`task_key`]: where each was spawned and how often woken.
    tasks: Mutex<HashMap<u64, TaskInfo>>,
    /// Runtimes that have used the file so far, for numbering the next one.
    runtimes: AtomicU32,
    /// Tasks and `block_on` calls given arrows so far, for numbering the next one's: see
    /// [`flow_base`].
    arrows: AtomicU64,
}

/// What [`TraceFile::out`] protects.
#[derive(Debug)]
struct Out {
    /// The open file; `None` once tracing has stopped, so that a stopped trace holds no file
    /// descriptor.
    file: Option<File>,
    /// The file's length: every byte written so far, each record whole. A write that fails is
    /// cut back to it.
    len: u64,
    /// Runtimes using the file now; the last one to go closes it.
    users: usize,
    /// Whether the file ends with [`CLOSING`].
    closed: bool,
}

/// What the trace knows of one task (or one `block_on` call).
#[derive(Debug, Clone, Copy)]
struct TaskInfo {
    /// Where it was spawned (`None` for the `block_on` future).
    location: Option<&'static Location<'static>>,
    /// Wakes so far: the number of the next poll's wake.
    wakes: u32,
    /// The arrows' ids without their wake number: [`flow_base`].
    flow: u64,
}

impl TaskInfo {
    /// A task (or `block_on` future) that the trace has not seen spawned, with arrows of its own
    /// (a spawn then adds where it was spawned).
    fn unknown(file: &TraceFile) -> TaskInfo {
        TaskInfo {
            location: None,
            wakes: 0,
            flow: file.next_flow(),
        }
    }
}

/// One runtime's use of a trace file: the file and the runtime's number in it.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeFile {
    /// The file.
    file: Arc<TraceFile>,
    /// This runtime's number (1 for the first in the process).
    runtime: u32,
}

/// A poll that has begun, for [`RuntimeFile::polled`]. Dropped without being given to `polled`
/// or `skipped`, which only a panic that escapes the poll does (a `block_on` future's, or a
/// blocking task's output's destructor), it records the poll as `panicked`: the slice and its
/// arrow are not lost, and the thread no longer counts as polling the task.
#[derive(Debug)]
pub(crate) struct PollStart<'a> {
    /// The runtime's file.
    file: &'a RuntimeFile,
    /// Whether the poll is yet to be recorded.
    open: bool,
    /// The task (0: the `block_on` future).
    task: u64,
    /// Its wake number: which wake this poll answers.
    wake: u32,
    /// Its arrows' ids without the wake number.
    flow: u64,
    /// Where it was spawned.
    location: Option<&'static Location<'static>>,
    /// When the poll began, in nanoseconds since the file's start.
    ns: u64,
    /// The poll this one interrupts on this thread (a blocking task that runs a `block_on`),
    /// given back when it ends.
    outer: Option<(u32, u64)>,
}

impl Drop for PollStart<'_> {
    fn drop(&mut self) {
        if self.open {
            let file = self.file;
            file.finish_poll(self, "panicked", true);
        }
    }
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
    buf: Vec<u8>,
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
    /// The runtime and task this thread is polling (task 0: the `block_on` future), for naming
    /// who woke whom.
    polling: Option<(u32, u64)>,
    /// When a runtime made this thread its own, if its track has not begun since: the track
    /// begins there, before anything the thread records.
    since: Option<Instant>,
}

impl ThreadLog {
    /// A thread that has written nothing.
    const fn new() -> ThreadLog {
        ThreadLog {
            file: None,
            buf: Vec::new(),
            tid: 0,
            name: None,
            named: false,
            open: false,
            buffered: false,
            polling: None,
            since: None,
        }
    }

    /// Writes the buffer to its file.
    fn flush(&mut self) {
        if let Some(file) = &self.file {
            if !self.buf.is_empty() {
                file.write(&self.buf);
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

/// The ids of the arrows of the `number`th task or `block_on` call that the file has seen (of
/// any runtime: the file numbers them all in one sequence), without the wake number: the number
/// in 29 bits, and 24 bits below it for the wake. So every id is below 2^53, which every JSON
/// reader keeps exact, and two tasks' arrows meet only after 2^29 (536 million) tasks, or a task
/// woken 2^24 (16 million) times; a task's number is not its id, which starts again at 1 in
/// each runtime.
fn flow_base(number: u64) -> u64 {
    (number & 0x1FFF_FFFF) << 24
}

/// The id of the arrow from wake `wake` (0: the spawn) to the poll it caused.
fn flow_id(base: u64, wake: u32) -> u64 {
    base | u64::from(wake & 0xFF_FFFF)
}

/// `path` with each `{pid}` replaced by this process's id.
fn with_pid(path: &Path) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    let find = |bytes: &[u8]| {
        bytes
            .windows(PID_PLACEHOLDER.len())
            .position(|w| w == PID_PLACEHOLDER)
    };
    if find(bytes).is_none() {
        return path.to_path_buf();
    }
    let pid = std::process::id().to_string();
    let mut out = Vec::with_capacity(bytes.len() + pid.len());
    let mut rest = bytes;
    while let Some(at) = find(rest) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(pid.as_bytes());
        rest = &rest[at + PID_PLACEHOLDER.len()..];
    }
    out.extend_from_slice(rest);
    PathBuf::from(OsString::from_vec(out))
}

/// The size cap in MiB: `RIPPLE_TRACE_FILE_MAX_MB`, or the default if it is unset or empty. A
/// value that is not a number gets the default too, and a line on stderr (once per process).
fn max_mb() -> u64 {
    let value = match std::env::var_os("RIPPLE_TRACE_FILE_MAX_MB") {
        Some(value) if !value.is_empty() => value,
        _ => return DEFAULT_MAX_MB,
    };
    if let Some(mb) = value.to_str().and_then(|v| v.trim().parse().ok()) {
        return mb;
    }
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            io::stderr(),
            "ripple: RIPPLE_TRACE_FILE_MAX_MB={value:?} is not a number of MiB; the trace file \
             is capped at the default, {DEFAULT_MAX_MB} MiB"
        );
    });
    DEFAULT_MAX_MB
}

impl TraceFile {
    /// The trace file at `path` (with `{pid}` replaced) for a new runtime: the process's, if it
    /// has that file open already (by whatever path), else a new one. If it cannot be created,
    /// says so on stderr (once per path) and returns `None`: the runtime runs without it.
    pub(crate) fn attach(path: &Path) -> Option<RuntimeFile> {
        let path = with_pid(path);
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        // Look for the file itself, not its name: `File::create` below would empty it.
        let id = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        let open = id.and_then(|id| registry.files.iter().find(|f| f.id == id).cloned());
        let file = match open {
            Some(file) => file,
            None if registry.failed.contains(&path) => return None,
            None => match TraceFile::create(&path) {
                Ok(file) => {
                    registry.files.push(file.clone());
                    file
                }
                Err(err) => {
                    let _ = writeln!(
                        io::stderr(),
                        "ripple: cannot open the trace file {}: {err}; running without it",
                        path.display()
                    );
                    registry.failed.push(path);
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
        let metadata = file.metadata()?;
        let pid = std::process::id();
        let max_mb = max_mb();
        let program = std::env::args()
            .next()
            .map(|arg| arg.rsplit('/').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let mut head = b"[\n".to_vec();
        let _ = write!(
            head,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"tid\":0,\"ts\":0,\"args\":{{\"name\":"
        );
        json_str(&mut head, &format!("ripple: {program}"));
        head.extend_from_slice(b"}},\n");
        file.write_all(&head)?;
        Ok(Arc::new(TraceFile {
            path: path.to_path_buf(),
            id: (metadata.dev(), metadata.ino()),
            start: Instant::now(),
            pid,
            max_bytes: max_mb.saturating_mul(1024 * 1024),
            out: Mutex::new(Out {
                file: Some(file),
                len: head.len() as u64,
                users: 0,
                closed: false,
            }),
            stopped: AtomicBool::new(false),
            tasks: Mutex::new(HashMap::new()),
            runtimes: AtomicU32::new(0),
            arrows: AtomicU64::new(0),
        }))
    }

    /// The file's state, locked. A panic cannot leave it half-changed (a write is one call, cut
    /// back if it fails), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The arrow ids of the next task or `block_on` call: [`flow_base`].
    fn next_flow(&self) -> u64 {
        flow_base(self.arrows.fetch_add(1, Ordering::Relaxed) + 1)
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
        // Again under the lock: another thread may have stopped the trace since the look above,
        // and only one may write the last event.
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        if let Err(err) = self.write_locked(&mut out, records) {
            self.failed(&mut out, &err);
        }
    }

    /// [`write`](Self::write) with the lock held and the trace not stopped.
    fn write_locked(&self, out: &mut Out, records: &[u8]) -> io::Result<()> {
        if out.closed {
            // A runtime is using the file again (or a thread wrote late): take the `]` away.
            out.cut(out.len.saturating_sub(CLOSING.len() as u64))?;
            out.put(b",\n")?;
            out.closed = false;
        }
        if out.len + records.len() as u64 > self.max_bytes {
            let mut last = Vec::new();
            self.global_event(&mut last, "trace stopped", "trace");
            last.extend_from_slice(b",\"args\":{\"max_mb\":");
            uint(&mut last, self.max_bytes / (1024 * 1024));
            last.extend_from_slice(b"}},\n");
            let written = out.put(&last);
            self.stop(out);
            return written;
        }
        out.put(records)?;
        if out.users == 0 {
            self.close(out)?;
        }
        Ok(())
    }

    /// Ends the file with a last event and `]`: strict JSON until someone writes again.
    fn close(&self, out: &mut Out) -> io::Result<()> {
        let mut last = Vec::new();
        self.global_event(&mut last, "trace closed", "trace");
        last.push(b'}');
        last.extend_from_slice(CLOSING);
        out.put(&last)?;
        out.closed = true;
        Ok(())
    }

    /// Stops tracing: no record is written from now on, and the file is closed.
    fn stop(&self, out: &mut Out) {
        self.stopped.store(true, Ordering::Relaxed);
        out.file = None;
    }

    /// A write failed (and was cut back to the last whole record): says so, once, since the
    /// trace stops here.
    fn failed(&self, out: &mut Out, err: &io::Error) {
        self.stop(out);
        let _ = writeln!(
            io::stderr(),
            "ripple: cannot write the trace file {}: {err}; tracing stops (the file keeps the {} \
             bytes of whole records written before)",
            self.path.display(),
            out.len
        );
    }

    /// Starts a process-wide instant event (with no closing brace).
    fn global_event(&self, out: &mut Vec<u8>, name: &str, cat: &str) {
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
    fn record(self: &Arc<Self>, earliest: u64, f: impl FnOnce(&mut Vec<u8>, Header)) {
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
                log.buf.extend_from_slice(b"},\n");
            }
            f(&mut log.buf, header);
            if !log.buffered || log.buf.len() >= FLUSH_AT {
                log.flush();
            }
        });
    }
}

impl Out {
    /// Appends `bytes`. If that fails part-way (a full disk), cuts the file back to its length
    /// before, so that it still ends with a whole record, and returns the error.
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        let len = self.len;
        let file = self.file_mut()?;
        if let Err(err) = file.write_all(bytes) {
            let _ = file.set_len(len);
            let _ = file.seek(SeekFrom::Start(len));
            return Err(err);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Cuts the file to `len` bytes, to write on from there.
    fn cut(&mut self, len: u64) -> io::Result<()> {
        let file = self.file_mut()?;
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        self.len = len;
        Ok(())
    }

    /// The open file (an error once tracing has stopped, which callers check first).
    fn file_mut(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the trace file was closed"))
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
    fn event(self, out: &mut Vec<u8>, ph: u8, name: &str, cat: &str, ns: u64) {
        self.event_named(out, ph, cat, ns, |out| json_escaped(out, name));
    }

    /// Starts an event whose name `name` writes (escaped, without the quotes): a task's name is
    /// made of parts, and this spares putting them together first.
    fn event_named(
        self,
        out: &mut Vec<u8>,
        ph: u8,
        cat: &str,
        ns: u64,
        name: impl FnOnce(&mut Vec<u8>),
    ) {
        out.extend_from_slice(b"{\"ph\":\"");
        out.push(ph);
        out.extend_from_slice(b"\",\"name\":\"");
        name(out);
        out.extend_from_slice(b"\",\"cat\":\"");
        out.extend_from_slice(cat.as_bytes());
        out.extend_from_slice(b"\",\"pid\":");
        uint(out, self.pid.into());
        out.extend_from_slice(b",\"tid\":");
        uint(out, self.tid.into());
        out.extend_from_slice(b",\"ts\":");
        ts(out, ns);
    }

    /// Starts an instant event on this thread's track.
    fn instant(self, out: &mut Vec<u8>, name: &str, cat: &str, ns: u64) {
        self.event(out, b'i', name, cat, ns);
        out.extend_from_slice(b",\"s\":\"t\"");
    }

    /// Starts a complete slice from `start` to `end`.
    fn slice(self, out: &mut Vec<u8>, name: &str, cat: &str, start: u64, end: u64) {
        self.slice_named(out, cat, start, end, |out| json_escaped(out, name));
    }

    /// Starts a complete slice whose name `name` writes, as [`event_named`](Self::event_named).
    fn slice_named(
        self,
        out: &mut Vec<u8>,
        cat: &str,
        start: u64,
        end: u64,
        name: impl FnOnce(&mut Vec<u8>),
    ) {
        self.event_named(out, b'X', cat, start, name);
        out.extend_from_slice(b",\"dur\":");
        ts(out, end.saturating_sub(start));
    }

    /// Starts the 1 ns slice of a spawn or a wake at `ns`, which holds the start of its arrow:
    /// Perfetto drops an arrow that starts in no slice.
    fn moment(self, out: &mut Vec<u8>, name: &str, ns: u64) {
        self.event(out, b'X', name, "task", ns);
        out.extend_from_slice(b",\"dur\":0.001");
    }

    /// Writes a whole flow event (`s` or `f`) of arrow `id`.
    fn flow(self, out: &mut Vec<u8>, ph: u8, id: u64, ns: u64) {
        self.event(out, ph, "wake", "task", ns);
        out.extend_from_slice(b",\"id\":");
        uint(out, id);
        if ph == b'f' {
            out.extend_from_slice(b",\"bp\":\"e\"");
        }
        out.extend_from_slice(b"},\n");
    }
}

/// Writes nanoseconds as microseconds with three decimals.
fn ts(out: &mut Vec<u8>, ns: u64) {
    uint(out, ns / 1000);
    let frac = (ns % 1000) as u16;
    let digits = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    out.extend_from_slice(&digits);
}

/// `00`, `01`, ... `99`: the digits of each number below 100, two bytes each.
const PAIRS: [u8; 200] = {
    let mut pairs = [0; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Writes `n` in decimal. The records are mostly numbers, and `write!` through `fmt` costs
/// several times more than this: two digits per division, and the digits copied at once.
fn uint(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes `s` as a JSON string: quoted, with `"`, `\` and control characters escaped.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_escaped(out, s);
    out.push(b'"');
}

/// Writes `s` escaped for the inside of a JSON string. Names and paths rarely need it, so a
/// string with nothing to escape is copied as it is. (Byte by byte: the bytes of a UTF-8
/// character beyond ASCII are all 0x80 or more, and need no escape.)
fn json_escaped(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 => {
                let _ = write!(out, "\\u{b:04x}");
            }
            b => out.push(b),
        }
    }
}

/// Writes a spawn location as a JSON string, `null` if unknown.
fn location_str(out: &mut Vec<u8>, location: Option<&'static Location<'static>>) {
    match location {
        Some(l) => {
            out.push(b'"');
            json_escaped(out, l.file());
            out.push(b':');
            uint(out, l.line().into());
            out.push(b':');
            uint(out, l.column().into());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

impl RuntimeFile {
    /// Locks the file's tasks.
    fn tasks(&self) -> MutexGuard<'_, HashMap<u64, TaskInfo>> {
        self.file
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `task` was spawned at `location`: where its first poll's arrow starts.
    pub(crate) fn spawned(&self, task: u64, location: &'static Location<'static>) {
        let info = TaskInfo {
            location: Some(location),
            ..TaskInfo::unknown(&self.file)
        };
        let flow = info.flow;
        self.tasks().insert(task_key(self.runtime, task), info);
        let ns = self.file.now();
        self.file.record(ns, |out, header| {
            header.moment(out, "spawn", ns);
            out.extend_from_slice(b",\"args\":{\"runtime\":");
            uint(out, self.runtime.into());
            out.extend_from_slice(b",\"task\":");
            uint(out, task);
            out.extend_from_slice(b",\"spawned_at\":");
            location_str(out, Some(location));
            out.extend_from_slice(b"}},\n");
            header.flow(out, b's', flow_id(flow, 0), ns);
        });
    }

    /// A call of `block_on` begins: its future (task 0) gets arrows of its own, numbered apart
    /// from every other call's, of this runtime or another.
    pub(crate) fn block_on_started(&self) {
        let info = TaskInfo::unknown(&self.file);
        self.tasks().insert(task_key(self.runtime, 0), info);
    }

    /// Records that `task` (0: the `block_on` future) was woken by `by`: a wake and the start of
    /// the arrow to the poll it causes.
    pub(crate) fn woken(&self, task: u64, by: &str) {
        let key = task_key(self.runtime, task);
        let (wake, flow) = {
            let mut tasks = self.tasks();
            let info = tasks
                .entry(key)
                .or_insert_with(|| TaskInfo::unknown(&self.file));
            info.wakes = info.wakes.wrapping_add(1);
            (info.wakes, info.flow)
        };
        let polling = THREAD
            .try_with(|log| log.try_borrow().map_or(None, |log| log.polling))
            .unwrap_or(None);
        // A task that wakes itself while it is polled (`yield_now`) is no one else's doing.
        let (by, by_task) = match polling {
            Some(polled) if polled == (self.runtime, task) => ("rescheduled", None),
            Some((runtime, polled)) if by == "task" && runtime == self.runtime && polled != 0 => {
                (by, Some(polled))
            }
            _ => (by, None),
        };
        let ns = self.file.now();
        self.file.record(ns, |out, header| {
            header.moment(out, "wake", ns);
            out.extend_from_slice(b",\"args\":{\"runtime\":");
            uint(out, self.runtime.into());
            out.extend_from_slice(b",\"task\":");
            uint(out, task);
            out.extend_from_slice(b",\"wake\":");
            uint(out, wake.into());
            out.extend_from_slice(b",\"by\":\"");
            out.extend_from_slice(by.as_bytes());
            out.push(b'"');
            if let Some(by_task) = by_task {
                out.extend_from_slice(b",\"by_task\":");
                uint(out, by_task);
            }
            out.extend_from_slice(b"}},\n");
            header.flow(out, b's', flow_id(flow, wake), ns);
        });
    }

    /// A poll of `task` (0: the `block_on` future) begins.
    pub(crate) fn poll_started(&self, task: u64) -> PollStart<'_> {
        let info = *self
            .tasks()
            .entry(task_key(self.runtime, task))
            .or_insert_with(|| TaskInfo::unknown(&self.file));
        let outer = set_polling(Some((self.runtime, task)));
        PollStart {
            file: self,
            open: true,
            task,
            wake: info.wakes,
            flow: info.flow,
            location: info.location,
            ns: self.file.now(),
            outer,
        }
    }

    /// The poll that began at `start` returned `outcome`; `finished` if the task is complete
    /// (it is then forgotten).
    pub(crate) fn polled(&self, mut start: PollStart<'_>, outcome: &str, finished: bool) {
        self.finish_poll(&mut start, outcome, finished);
    }

    /// Records the poll that began at `start`, once.
    fn finish_poll(&self, start: &mut PollStart<'_>, outcome: &str, finished: bool) {
        if !std::mem::replace(&mut start.open, false) {
            return;
        }
        let end = self.file.now();
        set_polling(start.outer);
        let task = start.task;
        if finished {
            self.tasks().remove(&task_key(self.runtime, task));
        }
        self.file.record(start.ns, |out, header| {
            header.slice_named(out, "task", start.ns, end, |out| {
                match (task, start.location) {
                    (0, _) => out.extend_from_slice(b"block_on"),
                    (_, Some(l)) => {
                        out.extend_from_slice(b"task ");
                        uint(out, task);
                        out.push(b' ');
                        json_escaped(out, l.file());
                        out.push(b':');
                        uint(out, l.line().into());
                    }
                    (_, None) => {
                        out.extend_from_slice(b"task ");
                        uint(out, task);
                    }
                }
            });
            out.extend_from_slice(b",\"args\":{\"runtime\":");
            uint(out, self.runtime.into());
            out.extend_from_slice(b",\"task\":");
            uint(out, task);
            out.extend_from_slice(b",\"wake\":");
            uint(out, start.wake.into());
            out.extend_from_slice(b",\"outcome\":\"");
            out.extend_from_slice(outcome.as_bytes());
            out.extend_from_slice(b"\",\"spawned_at\":");
            location_str(out, start.location);
            out.extend_from_slice(b"}},\n");
            // The first poll of the `block_on` future answers no wake: it has no arrow.
            if task != 0 || start.wake != 0 {
                header.flow(out, b'f', flow_id(start.flow, start.wake), start.ns);
            }
        });
    }

    /// The run that began at `start` was no poll (the task was running elsewhere, or complete):
    /// nothing to record.
    pub(crate) fn skipped(&self, mut start: PollStart<'_>) {
        start.open = false;
        set_polling(start.outer);
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
            out.extend_from_slice(b",\"args\":{\"events\":");
            uint(out, events as u64);
            out.extend_from_slice(b",\"timeout_ms\":");
            match timeout_ms {
                Some(ms) => uint(out, u64::try_from(ms).unwrap_or(u64::MAX)),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b"}},\n");
        });
    }

    /// Records the firing of `fired` timers, from `start` to now.
    pub(crate) fn fired(&self, start: u64, fired: usize) {
        let end = self.file.now();
        self.file.record(start, |out, header| {
            header.slice(out, "timers", "timer", start, end);
            out.extend_from_slice(b",\"args\":{\"fired\":");
            uint(out, fired as u64);
            out.extend_from_slice(b"}},\n");
        });
    }

    /// Records a steal of `tasks` tasks from worker `victim`.
    pub(crate) fn stole(&self, victim: usize, tasks: u32) {
        let ns = self.file.now();
        self.file.record(ns, |out, header| {
            header.instant(out, "steal", "steal", ns);
            out.extend_from_slice(b",\"args\":{\"from_worker\":");
            uint(out, victim as u64);
            out.extend_from_slice(b",\"tasks\":");
            uint(out, tasks.into());
            out.extend_from_slice(b"}},\n");
        });
    }

    /// This thread's track ends (its worker or blocking thread exits, or its current-thread
    /// runtime is dropped): a `thread end`, and the buffer written out. A runtime's thread that
    /// recorded nothing (a worker that never found work) still gets its track, from when the
    /// runtime made it its own to now.
    pub(crate) fn end_thread(&self) {
        self.end_track(false);
    }

    /// A current-thread runtime is dropped: [`end_thread`](Self::end_thread), unless the thread
    /// belongs to another runtime (a blocking thread that ran a `block_on`), whose track goes on.
    pub(crate) fn leave_thread(&self) {
        self.end_track(true);
    }

    /// Ends this thread's track, unless `unless_owned` and a runtime owns the thread; writes its
    /// buffer out.
    fn end_track(&self, unless_owned: bool) {
        let open = THREAD
            .try_with(|log| {
                log.try_borrow().is_ok_and(|log| {
                    (log.open || log.since.is_some()) && !(unless_owned && log.buffered)
                })
            })
            .unwrap_or(false);
        if open {
            let ns = self.file.now();
            self.file.record(ns, |out, header| {
                header.instant(out, "thread end", "thread", ns);
                out.extend_from_slice(b"},\n");
            });
            let _ = THREAD.try_with(|log| {
                if let Ok(mut log) = log.try_borrow_mut() {
                    log.open = false;
                }
            });
        }
        flush_thread();
    }

    /// The runtime is dropped (or its build failed): writes this thread's records and, if it
    /// was the last runtime using the file, closes it.
    pub(crate) fn detach(&self) {
        flush_thread();
        self.tasks()
            .retain(|&key, _| key >> 40 != u64::from(self.runtime));
        let mut out = self.file.lock();
        out.users -= 1;
        if out.users == 0 && !out.closed && !self.file.stopped.load(Ordering::Relaxed) {
            if let Err(err) = self.file.close(&mut out) {
                self.file.failed(&mut out, &err);
            }
        }
    }
}

/// Notes the task this thread is polling (`None`: none); returns the one it noted before.
fn set_polling(polling: Option<(u32, u64)>) -> Option<(u32, u64)> {
    THREAD
        .try_with(|log| {
            log.try_borrow_mut()
                .map_or(None, |mut log| std::mem::replace(&mut log.polling, polling))
        })
        .unwrap_or(None)
}

/// Writes this thread's buffered records to their file: at a park, and when a runtime is dropped.
pub(crate) fn flush_thread() {
    let _ = THREAD.try_with(|log| {
        if let Ok(mut log) = log.try_borrow_mut() {
            log.flush();
        }
    });
}

/// Names this thread's track (`worker 0`, `blocking`, ...) unless a runtime named it already
/// (a blocking thread that runs a `block_on` stays `blocking`), and says whether its records are
/// buffered until it parks (a runtime's own thread) or written at once. Returns whether they
/// were buffered before, to put back.
pub(crate) fn set_thread(name: Option<String>, buffered: bool) -> bool {
    THREAD
        .try_with(|log| {
            let Ok(mut log) = log.try_borrow_mut() else {
                return false;
            };
            if !buffered {
                log.flush();
            }
            let before = std::mem::replace(&mut log.buffered, buffered);
            if buffered && !log.open && log.since.is_none() {
                // The track begins when the first runtime made the thread its own.
                log.since = Some(Instant::now());
            }
            if name.is_some() && log.name.is_none() {
                log.name = name;
                log.named = false;
            }
            before
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_json_and_plain_ones_copied_as_they_are() {
        let mut out = Vec::new();
        json_str(&mut out, "plain/path.rs");
        assert_eq!(String::from_utf8_lossy(&out), r#""plain/path.rs""#);

        out.clear();
        json_str(&mut out, "a \"quoted\" \\ name\n\twith \u{1} and é");
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#""a \"quoted\" \\ name\n\twith \u0001 and é""#
        );
    }

    #[test]
    fn a_location_is_a_json_string_of_file_line_and_column() {
        let here = Location::caller();
        let mut out = Vec::new();
        location_str(&mut out, Some(here));
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("\"{}:{}:{}\"", here.file(), here.line(), here.column())
        );
        out.clear();
        location_str(&mut out, None);
        assert_eq!(String::from_utf8_lossy(&out), "null");
    }

    #[test]
    fn a_pid_in_the_path_becomes_the_process_id() {
        let pid = std::process::id();
        assert_eq!(
            with_pid(Path::new("/tmp/t-{pid}.json")),
            PathBuf::from(format!("/tmp/t-{pid}.json"))
        );
        assert_eq!(
            with_pid(Path::new("{pid}/{pid}")),
            PathBuf::from(format!("{pid}/{pid}"))
        );
        assert_eq!(with_pid(Path::new("t.json")), PathBuf::from("t.json"));
        assert_eq!(
            with_pid(Path::new("{pi}d.json")),
            PathBuf::from("{pi}d.json")
        );
    }

    #[test]
    fn arrow_ids_stay_below_2_pow_53_and_two_numbers_never_share_one() {
        let most = flow_id(flow_base(u64::MAX), u32::MAX);
        assert!(most < 1 << 53, "{most}");
        let mut ids = std::collections::HashSet::new();
        for number in [1, 2, 33, 0x1FFF_FFFF] {
            for wake in [0, 1, 0xFF_FFFF] {
                assert!(ids.insert(flow_id(flow_base(number), wake)));
            }
        }
    }

    #[test]
    fn threads_that_race_past_the_size_cap_write_the_last_event_once_and_close_the_file() {
        let path =
            std::env::temp_dir().join(format!("ripple-cap-race-{}.json", std::process::id()));
        let mut file = TraceFile::create(&path).expect("a trace file in the temporary folder");
        Arc::get_mut(&mut file).expect("not shared yet").max_bytes = 16 * 1024;
        let record = format!("{{\"ph\":\"i\",\"name\":\"{}\"}},\n", "x".repeat(80));
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    barrier.wait();
                    for _ in 0..100 {
                        file.write(record.as_bytes());
                    }
                });
            }
        });
        assert!(file.lock().file.is_none(), "the capped file is closed");
        let text = std::fs::read_to_string(&path).expect("the trace");
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.matches("trace stopped").count(), 1, "{text}");
        assert!(text.ends_with("}},\n"), "ends with the last event, whole");
        assert!(text.len() <= 16 * 1024 + 200, "{} bytes", text.len());
    }

    #[test]
    fn numbers_and_timestamps_are_written_in_decimal() {
        let mut out = Vec::new();
        for n in [0, 7, 9, 10, 42, 99, 100, 101, 1_000, 1_234_567, u64::MAX] {
            out.clear();
            uint(&mut out, n);
            assert_eq!(String::from_utf8_lossy(&out), n.to_string());
        }
        out.clear();
        ts(&mut out, 12_345_067);
        assert_eq!(String::from_utf8_lossy(&out), "12345.067");
        out.clear();
        ts(&mut out, 5);
        assert_eq!(String::from_utf8_lossy(&out), "0.005");
    }
}
