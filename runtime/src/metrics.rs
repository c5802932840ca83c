//! Counters of what a runtime did (the trace that narrates the same moments is in `trace.rs`).
//!
//! The seeds draw the event loop as a picture: wait for events, run what they woke, repeat. These
//! counters let a program watch that loop turn: how many tasks were spawned and polled, who woke
//! them (the reactor, a timer, another task, another thread), how often the thread slept in
//! epoll and how many events each wait brought back. Read them at any time with
//! [`Runtime::metrics`](crate::runtime::Runtime::metrics) or
//! [`Handle::metrics`](crate::runtime::Handle::metrics).
//!
//! Set `RIPPLE_TRACE=1` (or call [`Builder::trace`](crate::runtime::Builder::trace)) and the
//! runtime also prints each of these moments on stderr, one line each:
//!
//! ```text
//! ripple: task 2 spawned
//! ripple: epoll wait (timeout none) -> 1 event
//! ripple: source 3 ready: read write
//! ripple: task 2 woken by reactor
//! ripple: task 2 polled -> pending
//! ```
//!
//! The counters are always on: each is a plain add on the runtime's own thread, published for
//! other threads each time the runtime waits in epoll. The trace costs one well-predicted branch
//! on a flag per moment while it is off.
//!
//! ```
//! use ripple_runtime::runtime::Runtime;
//!
//! let rt = Runtime::new()?;
//! rt.block_on(async {
//!     let task = ripple_runtime::spawn(async {
//!         ripple_runtime::task::yield_now().await;
//!     });
//!     task.await.unwrap();
//! });
//! let metrics = rt.metrics();
//! assert_eq!(metrics.tasks_spawned, 1);
//! assert_eq!(metrics.polls, 2, "one poll before the yield, one after");
//! assert_eq!(metrics.wakes_by_task, 2, "the task woke itself, then woke its joiner");
//! # std::io::Result::Ok(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a runtime's counters, taken by
/// [`Runtime::metrics`](crate::runtime::Runtime::metrics).
///
/// Every count starts at zero when the runtime is built and only grows. A wake is counted each
/// time a task (or the future given to `block_on`) is woken while it was not already queued,
/// under what woke it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Tasks spawned, from any thread.
    pub tasks_spawned: u64,
    /// Times a task's future was polled (the `block_on` future not included; an aborted task
    /// whose future is dropped unpolled is not counted).
    pub polls: u64,
    /// Wakes by the reactor: a source that a task waited on became ready.
    pub wakes_by_reactor: u64,
    /// Wakes by a timer whose deadline came.
    pub wakes_by_timer: u64,
    /// Wakes by a task (or the `block_on` future) while it was being polled on the runtime's
    /// thread: a channel send, a finished task waking its joiner, a `yield_now`. A task woken
    /// (from anywhere) while it is itself being polled is counted here, once, when the runtime
    /// queues it again after that poll.
    pub wakes_by_task: u64,
    /// Wakes from another OS thread, or from outside the runtime (a spawn from a
    /// [`Handle`](crate::runtime::Handle) there, or before `block_on` runs).
    pub wakes_by_thread: u64,
    /// Looks at epoll (each one `epoll_wait`): blocking waits, and the non-blocking checks a
    /// busy runtime makes every 61 polls.
    pub epoll_waits: u64,
    /// I/O events those waits returned.
    pub events: u64,
    /// Timers that fired.
    pub timers_fired: u64,
}

/// What one worker of a multi-thread runtime did, taken by
/// [`Runtime::worker_metrics`](crate::runtime::Runtime::worker_metrics). Counts as of the
/// worker's last park (or its last look at the driver, every 61 polls while it is busy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Task polls this worker made.
    pub polls: u64,
    /// Times it stole tasks from a sibling's queue.
    pub steals: u64,
    /// Tasks those steals took.
    pub stolen_tasks: u64,
    /// Times it went to sleep for lack of work.
    pub parks: u64,
    /// Tasks waiting in its local queue.
    pub local_queue_len: u64,
}

impl Metrics {
    /// Adds `other`'s counts to these: the sum of several workers' counts.
    pub(crate) fn add(&mut self, other: &Metrics) {
        self.tasks_spawned += other.tasks_spawned;
        self.polls += other.polls;
        self.wakes_by_reactor += other.wakes_by_reactor;
        self.wakes_by_timer += other.wakes_by_timer;
        self.wakes_by_task += other.wakes_by_task;
        self.wakes_by_thread += other.wakes_by_thread;
        self.epoll_waits += other.epoll_waits;
        self.events += other.events;
        self.timers_fired += other.timers_fired;
    }

    /// Wakes of every kind.
    pub fn wakes(&self) -> u64 {
        self.wakes_by_reactor + self.wakes_by_timer + self.wakes_by_task + self.wakes_by_thread
    }

    /// The mean number of I/O events per epoll wait (0 before the first wait). High under load:
    /// one syscall serves many connections, which is the point of an event loop.
    pub fn events_per_wait(&self) -> f64 {
        if self.epoll_waits == 0 {
            0.0
        } else {
            self.events as f64 / self.epoll_waits as f64
        }
    }
}

/// Who woke a task; the scheduler and the driver set it around each kind of work they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum WakeSource {
    /// The reactor, dispatching an epoll batch.
    Reactor,
    /// The timers, firing due sleeps.
    Timer,
    /// A task, being polled (the trace's next `polled` line names it).
    Task,
    /// The future passed to `block_on`, being polled (and, between polls, the loop itself).
    #[default]
    Main,
    /// The runtime shutting down: cancelled tasks wake their joiners. Counted, but never
    /// published.
    Shutdown,
}

impl WakeSource {
    /// A one-word name, for the trace file's `by`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            WakeSource::Reactor => "reactor",
            WakeSource::Timer => "timer",
            WakeSource::Task => "task",
            WakeSource::Main => "block_on",
            WakeSource::Shutdown => "shutdown",
        }
    }
}

/// How many [`WakeSource`]s there are.
const WAKE_SOURCES: usize = WakeSource::Shutdown as usize + 1;

impl fmt::Display for WakeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WakeSource::Reactor => f.write_str("reactor"),
            WakeSource::Timer => f.write_str("timer"),
            WakeSource::Task => f.write_str("a task"),
            WakeSource::Main => f.write_str("the block_on future"),
            WakeSource::Shutdown => f.write_str("the runtime shutting down"),
        }
    }
}

/// The counters that any thread may bump, and the published copy of the runtime thread's own.
///
/// # Invariant
/// `tasks_spawned` and `wakes_by_thread` are live (bumped with `fetch_add` by any thread). The
/// others are copies of a [`LocalCounters`], stored by the runtime's thread just before and just
/// after each park in the driver (and when `block_on` returns), so another thread reads them as
/// of the runtime's last visit to epoll.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Live; it also hands out task ids.
    tasks_spawned: AtomicU64,
    /// Live.
    wakes_by_thread: AtomicU64,
    /// Published from `LocalCounters::polls`.
    polls: AtomicU64,
    /// Published from `LocalCounters::wakes_by_reactor`.
    wakes_by_reactor: AtomicU64,
    /// Published from `LocalCounters::wakes_by_timer`.
    wakes_by_timer: AtomicU64,
    /// Published from `LocalCounters::wakes_by_task`.
    wakes_by_task: AtomicU64,
    /// Published from `LocalCounters::epoll_waits`.
    epoll_waits: AtomicU64,
    /// Published from `LocalCounters::events`.
    events: AtomicU64,
    /// Published from `LocalCounters::timers_fired`.
    timers_fired: AtomicU64,
}

impl Counters {
    /// Counts a spawn and returns the new task's id (1, 2, 3, ...). Any thread.
    pub(crate) fn spawned(&self) -> u64 {
        self.tasks_spawned.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts a wake from another thread. Any thread.
    pub(crate) fn woken_remotely(&self) {
        self.wakes_by_thread.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as last published: each field read once, with no lock.
    pub(crate) fn snapshot(&self) -> Metrics {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Metrics {
            tasks_spawned: get(&self.tasks_spawned),
            polls: get(&self.polls),
            wakes_by_reactor: get(&self.wakes_by_reactor),
            wakes_by_timer: get(&self.wakes_by_timer),
            wakes_by_task: get(&self.wakes_by_task),
            wakes_by_thread: get(&self.wakes_by_thread),
            epoll_waits: get(&self.epoll_waits),
            events: get(&self.events),
            timers_fired: get(&self.timers_fired),
        }
    }
}

/// The counters only the runtime's thread bumps, as plain cells: a count on the hot path is
/// one add to memory the thread already has in cache, with no atomic and no pointer chase.
#[derive(Debug, Default)]
pub(crate) struct LocalCounters {
    /// What the thread is doing right now, so that a wake on this thread can say who woke the
    /// task.
    waking: Cell<WakeSource>,
    /// Task polls.
    polls: Cell<u64>,
    /// Wakes on this thread, one cell per [`WakeSource`] (indexed by `source as usize`), so that
    /// counting a wake is one add with no branch. `Task` and `Main` are published together as
    /// wakes by a task; `Shutdown` is counted but never published.
    wakes: [Cell<u64>; WAKE_SOURCES],
    /// epoll waits.
    epoll_waits: Cell<u64>,
    /// Events those waits returned.
    events: Cell<u64>,
    /// Timers fired.
    timers_fired: Cell<u64>,
}

/// Adds `n` to a cell.
#[inline]
fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}

impl LocalCounters {
    /// Who is waking tasks on this thread from now on.
    #[inline]
    pub(crate) fn set_waking(&self, source: WakeSource) {
        self.waking.set(source);
    }

    /// Who is waking tasks on this thread right now.
    #[inline]
    pub(crate) fn waking(&self) -> WakeSource {
        self.waking.get()
    }

    /// Counts a task poll.
    #[inline]
    pub(crate) fn polled(&self) {
        add(&self.polls, 1);
    }

    /// Counts a wake by `source`.
    #[inline]
    pub(crate) fn woken_by(&self, source: WakeSource) {
        add(&self.wakes[source as usize], 1);
    }

    /// Counts an epoll wait that returned `events` events.
    #[inline]
    pub(crate) fn waited(&self, events: usize) {
        add(&self.epoll_waits, 1);
        add(&self.events, events as u64);
    }

    /// Counts `n` fired timers.
    pub(crate) fn fired(&self, n: usize) {
        add(&self.timers_fired, n as u64);
    }

    /// Copies these counts into `shared`, where any thread can read them.
    pub(crate) fn publish(&self, shared: &Counters) {
        let set = |to: &AtomicU64, n: u64| to.store(n, Ordering::Relaxed);
        let wakes = |source: WakeSource| self.wakes[source as usize].get();
        set(&shared.polls, self.polls.get());
        set(&shared.wakes_by_reactor, wakes(WakeSource::Reactor));
        set(&shared.wakes_by_timer, wakes(WakeSource::Timer));
        set(
            &shared.wakes_by_task,
            wakes(WakeSource::Task).wrapping_add(wakes(WakeSource::Main)),
        );
        set(&shared.epoll_waits, self.epoll_waits.get());
        set(&shared.events, self.events.get());
        set(&shared.timers_fired, self.timers_fired.get());
    }
}
