//! The current-thread scheduler: run queues, the loop that drives them, and parking in epoll.
//!
//! One thread runs everything: it pops a task, polls it, and repeats. When the queue is empty it
//! *parks*: it fires due timers and blocks in the reactor until an event, a timer or another
//! thread wakes it. Every [`EVENT_INTERVAL`] polls it also checks the reactor without blocking, so
//! a task that is always ready cannot starve I/O or timers.
//!
//! State is split by who may touch it. [`Shared`] is reachable from any thread (through wakers,
//! handles and I/O objects) and uses atomics and locks. [`Core`] belongs to the thread inside
//! `block_on` and uses plain `RefCell`s; the thread finds it through a thread-local pointer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use futures_task::ArcWake;
use polling::Events;

use super::metrics::{Counters, LocalCounters, WakeSource};
use super::trace::trace;
use crate::reactor::{Drained, Reactor, SourceKey};
use crate::slab::Slab;
use crate::task::{new_task, JoinHandle, RunOutcome, Runnable, Schedule, TaskRef, NOT_OWNED};
use crate::time::Timers;

/// Polls between two non-blocking looks at the reactor while tasks keep being runnable (tokio: 61).
pub(crate) const EVENT_INTERVAL: u32 = 61;
/// Polls between two looks at the remote queue while the local queue is not empty (tokio: 31).
const REMOTE_INTERVAL: u32 = 31;
/// I/O operations one poll of a task may complete before it must yield (tokio: 128).
const BUDGET_PER_POLL: u32 = 128;
/// The budget outside any task poll: unlimited.
const UNLIMITED: u32 = u32::MAX;

/// The part of a runtime that any thread may reach.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Tasks woken or spawned from other threads, waiting for the runtime's thread.
    remote: Mutex<RemoteQueue>,
    /// Length of `remote.queue`, so the runtime can skip the lock while it is empty.
    remote_len: AtomicUsize,
    /// Set by the `block_on` future's waker; the loop polls that future only when it is set.
    main_woken: AtomicBool,
    /// The epoll reactor.
    pub(crate) reactor: Reactor,
    /// Pending sleeps.
    timers: Mutex<Timers>,
    /// What the runtime did so far; see `metrics.rs`.
    pub(crate) counters: Counters,
    /// Whether to print the trace (`RIPPLE_TRACE`); fixed when the runtime is built.
    pub(crate) trace: bool,
}

/// The remote run queue.
#[derive(Debug, Default)]
struct RemoteQueue {
    /// Tasks queued from other threads.
    queue: VecDeque<TaskRef>,
    /// The runtime shut down: tasks that arrive now are cancelled on the spot.
    closed: bool,
}

/// The part of a runtime that only the thread inside `block_on` touches.
#[derive(Debug)]
pub(crate) struct Core {
    /// Runnable tasks, in wake order.
    run_queue: RefCell<VecDeque<TaskRef>>,
    /// Every live task, so that shutdown can drop the futures of tasks parked on I/O or timers
    /// (the run queue only knows about runnable ones).
    owned: RefCell<Slab<TaskRef>>,
    /// epoll's output buffer, reused across waits.
    events: RefCell<Events>,
    /// Wakers collected under a lock, woken after it is dropped; reused across parks.
    wakers: RefCell<Vec<Waker>>,
    /// Polls since the reactor was last checked.
    polls_since_park: Cell<u32>,
    /// Polls in total, for choosing between the local and the remote queue.
    tick: Cell<u32>,
    /// Polls between non-blocking reactor checks.
    event_interval: u32,
    /// What the thread is doing right now, so a wake on this thread can say who woke the task.
    waking: Cell<WakeSource>,
    /// The counts only this thread makes; published to `Shared::counters` at each park.
    counters: LocalCounters,
    /// A copy of `Shared::trace` where the hot paths already look, so that a trace that is off
    /// costs them one compare with memory they have at hand.
    trace: bool,
    /// Sources a short read drained on this thread since the last wait, for the reactor to
    /// re-check (see `Reactor::recheck_drained`); other threads use the reactor's locked list.
    drained: RefCell<Drained>,
}

/// A runtime: the shared half and the thread-local half.
#[derive(Debug)]
pub(crate) struct Context {
    /// Reachable from everywhere.
    pub(crate) shared: Arc<Shared>,
    /// Ours while we are inside `block_on`.
    pub(crate) core: Core,
}

thread_local! {
    /// I/O operations the task being polled may still complete before it must yield;
    /// `UNLIMITED` outside a poll. A thread runs one poll at a time, so one counter suffices.
    static BUDGET: Cell<u32> = const { Cell::new(UNLIMITED) };

    /// The runtime this thread is running, if any.
    ///
    /// # Invariant
    /// Non-null only while an [`Enter`] guard for that context is alive on this thread; the
    /// guard borrows the context, so the pointer never dangles.
    static CURRENT: Cell<*const Context> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with the runtime this thread is running, if any.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    let current = CURRENT.with(Cell::get);
    // SAFETY: by the invariant on CURRENT, a non-null pointer refers to a live context that the
    // enclosing `Enter` guard borrows for at least as long as this call.
    f(unsafe { current.as_ref() })
}

/// Makes a context current on this thread; restores the previous one when dropped.
pub(crate) struct Enter<'a> {
    /// The context that was current before.
    prev: *const Context,
    /// Ties the guard to the context it points at.
    _context: &'a Context,
}

impl<'a> Enter<'a> {
    /// Makes `context` current on this thread.
    pub(crate) fn new(context: &'a Context) -> Self {
        let prev = CURRENT.with(|c| c.replace(context));
        Enter {
            prev,
            _context: context,
        }
    }
}

impl Drop for Enter<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

impl Shared {
    /// The timers, locked.
    pub(crate) fn lock_timers(&self) -> MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a task from a thread that is not running this runtime.
    fn push_remote(&self, task: TaskRef) {
        let mut remote = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        if remote.closed {
            drop(remote);
            task.shutdown();
            return;
        }
        remote.queue.push_back(task);
        self.remote_len.fetch_add(1, Ordering::Release);
        drop(remote);
        // The runtime may be blocked in epoll: wake it.
        self.reactor.notify();
    }

    /// Takes one task from the remote queue.
    fn pop_remote(&self) -> Option<TaskRef> {
        if self.remote_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut remote = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
        let task = remote.queue.pop_front();
        if task.is_some() {
            self.remote_len.fetch_sub(1, Ordering::Release);
        }
        task
    }

    /// Queues a drained source for the reactor's re-check before its next wait: on the
    /// runtime's thread in a plain list, elsewhere under the reactor's lock.
    #[inline]
    pub(crate) fn recheck_later(&self, fd: RawFd, key: SourceKey) {
        with_current(|current| match current {
            Some(context) if self.is(context) => context.core.drained.borrow_mut().push(fd, key),
            _ => self.reactor.recheck_later(fd, key),
        });
    }

    /// Whether `context` is this runtime's.
    fn is(&self, context: &Context) -> bool {
        ptr::eq(self, &*context.shared)
    }
}

impl Schedule for Arc<Shared> {
    fn schedule(&self, task: TaskRef) {
        with_current(|current| match current {
            // On the runtime's own thread: no lock, no syscall.
            Some(context) if self.is(context) => context.push_woken(task),
            _ => {
                self.counters.woken_remotely();
                if self.trace {
                    trace(format_args!("task {} woken by another thread", task.id()));
                }
                self.push_remote(task)
            }
        });
    }

    #[inline]
    fn is_local(&self) -> bool {
        with_current(|current| current.is_some_and(|context| self.is(context)))
    }

    #[inline]
    fn schedule_local(task: TaskRef) {
        with_current(|current| {
            current
                .expect("schedule_local is called only where is_local holds")
                .push_woken(task)
        });
    }

    fn release(&self, task: &dyn Runnable) {
        let index = task.owned_index().swap(NOT_OWNED, Ordering::Relaxed);
        if index == NOT_OWNED {
            return;
        }
        with_current(|current| {
            if let Some(context) = current.filter(|c| self.is(c)) {
                // Bind the removed reference so it drops after the borrow ends: dropping a task
                // can run user code that spawns.
                let removed = context.core.owned.borrow_mut().remove(index);
                drop(removed);
            }
        });
    }
}

/// Spends one unit of the running task's I/O budget: an operation found its source ready and is
/// about to do it. When the budget is spent, the task is woken (so it goes to the back of the run
/// queue) and `Pending` is returned instead: a socket that is always ready must not let one task
/// keep the thread forever. Only ready operations are charged, so a task that waits on many
/// sources is not charged for them. Outside a task poll, the budget is unlimited.
#[inline]
pub(crate) fn consume_budget(cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
    BUDGET.with(|budget| match budget.get() {
        0 => {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
        UNLIMITED => std::task::Poll::Ready(()),
        left => {
            budget.set(left - 1);
            std::task::Poll::Ready(())
        }
    })
}

/// The waker of the future passed to `block_on`: it only raises a flag (and wakes the thread
/// if it sleeps in epoll), because that future is polled by the loop itself, not queued.
impl ArcWake for Shared {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if arc_self.main_woken.swap(true, Ordering::AcqRel) {
            // Already woken and not yet polled: one poll serves both wakes, and whoever raised
            // the flag first also woke the thread if it had to (the runtime's own thread, which
            // need not, looks at the flag before it parks). So: one wake, counted once.
            return;
        }
        with_current(|current| match current {
            Some(context) if arc_self.is(context) => {
                let source = context.core.waking.get();
                context.core.counters.woken_by(source);
                if arc_self.trace {
                    context.trace_wake(&format_args!("the block_on future"), source);
                }
            }
            _ => {
                arc_self.counters.woken_remotely();
                if arc_self.trace {
                    trace(format_args!("the block_on future woken by another thread"));
                }
                // The runtime may be blocked in epoll: wake it.
                arc_self.reactor.notify();
            }
        });
    }
}

impl Context {
    /// A fresh runtime.
    pub(crate) fn new(event_interval: u32, trace: bool) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            remote: Mutex::new(RemoteQueue::default()),
            remote_len: AtomicUsize::new(0),
            main_woken: AtomicBool::new(false),
            reactor: Reactor::new(trace)?,
            timers: Mutex::new(Timers::default()),
            counters: Counters::default(),
            trace,
        });
        let core = Core {
            run_queue: RefCell::new(VecDeque::with_capacity(256)),
            owned: RefCell::new(Slab::new()),
            events: RefCell::new(Events::with_capacity(
                NonZeroUsize::new(1024).expect("1024 is not zero"),
            )),
            wakers: RefCell::new(Vec::new()),
            polls_since_park: Cell::new(0),
            tick: Cell::new(0),
            event_interval,
            waking: Cell::new(WakeSource::Main),
            counters: LocalCounters::default(),
            drained: RefCell::new(Drained::default()),
            trace,
        };
        Ok(Context { shared, core })
    }

    /// Spawns a task on this runtime, from its own thread.
    pub(crate) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = self.shared.counters.spawned();
        if self.shared.trace {
            trace(format_args!("task {id} spawned"));
        }
        let (task, handle) = new_task(future, self.shared.clone(), id);
        self.own(&task);
        self.core.run_queue.borrow_mut().push_back(task);
        handle
    }

    /// Queues a task woken on this thread, counting (and tracing) who woke it.
    #[inline]
    fn push_woken(&self, task: TaskRef) {
        let source = self.core.waking.get();
        self.core.counters.woken_by(source);
        if self.core.trace {
            self.trace_task_wake(&*task, source);
        }
        self.core.run_queue.borrow_mut().push_back(task)
    }

    /// Records `task` in the registry of live tasks.
    fn own(&self, task: &TaskRef) {
        let index = self.core.owned.borrow_mut().insert(task.clone());
        task.owned_index().store(index, Ordering::Relaxed);
    }

    /// The next task to poll: usually the local queue's head, but the remote queue's every
    /// `REMOTE_INTERVAL` polls so that it is not starved by a busy local queue.
    #[inline]
    fn next_task(&self) -> Option<TaskRef> {
        let tick = self.core.tick.get().wrapping_add(1);
        self.core.tick.set(tick);
        if tick % REMOTE_INTERVAL == 0 {
            self.pop_remote().or_else(|| self.pop_local())
        } else {
            self.pop_local().or_else(|| self.pop_remote())
        }
    }

    /// Pops the local queue's head.
    #[inline]
    fn pop_local(&self) -> Option<TaskRef> {
        self.core.run_queue.borrow_mut().pop_front()
    }

    /// Pops the remote queue's head; a task spawned from another thread is adopted here.
    fn pop_remote(&self) -> Option<TaskRef> {
        let task = self.shared.pop_remote()?;
        if task.owned_index().load(Ordering::Relaxed) == NOT_OWNED {
            self.own(&task);
        }
        Some(task)
    }

    /// Drives `future` to completion, running every spawned task in between.
    ///
    /// The caller has entered this context on the current thread.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let waker = futures_task::waker_ref(&self.shared);
        let mut cx = std::task::Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        self.shared.main_woken.store(true, Ordering::Release);
        let core = &self.core;
        loop {
            if self.shared.main_woken.swap(false, Ordering::AcqRel) {
                core.polls_since_park.set(core.polls_since_park.get() + 1);
                core.waking.set(WakeSource::Main);
                let polled = self.with_budget(|| future.as_mut().poll(&mut cx));
                if let std::task::Poll::Ready(output) = polled {
                    core.counters.publish(&self.shared.counters);
                    return output;
                }
            }
            // Run tasks until the budget between two reactor checks is spent or none is left.
            while core.polls_since_park.get() < core.event_interval {
                let Some(task) = self.next_task() else { break };
                core.polls_since_park.set(core.polls_since_park.get() + 1);
                self.run(task);
            }
            if core.polls_since_park.get() >= core.event_interval {
                // Still busy: look at I/O and timers without blocking, then carry on.
                self.park(Some(Duration::ZERO));
            } else if !self.shared.main_woken.load(Ordering::Acquire) {
                // Nothing to do: sleep in epoll until I/O, a timer, or another thread.
                self.park(None);
            }
        }
    }

    /// Runs one task: polls it with a fresh I/O budget, counting (and tracing) the poll.
    #[inline(always)]
    fn run(&self, task: TaskRef) {
        self.core.waking.set(WakeSource::Task);
        if self.core.trace {
            return self.run_traced(task);
        }
        self.run_counted(task);
    }

    /// `run` with the trace on: the same, plus a line naming the task and what its poll did.
    #[cold]
    #[inline(never)]
    fn run_traced(&self, task: TaskRef) {
        // Ask the id first: a task that completes may be freed by the time the poll returns.
        let id = task.id();
        let outcome = self.run_counted(task);
        self.trace_poll(id, outcome);
    }

    /// Polls `task` and counts the poll, if it was one.
    #[inline(always)]
    fn run_counted(&self, task: TaskRef) -> RunOutcome {
        // `run` contains the future's panics; this contains the rest (an output whose
        // destructor panics when the last reference to a detached task goes away).
        let ran = catch_unwind(AssertUnwindSafe(|| self.with_budget(|| task.run())));
        let outcome = ran.unwrap_or(RunOutcome::Panicked);
        if matches!(
            outcome,
            RunOutcome::Pending | RunOutcome::Ready | RunOutcome::Panicked
        ) {
            self.core.counters.polled();
        }
        outcome
    }

    /// Prints the outcome of a poll. Out of line, so the hot path only tests the flag.
    #[cold]
    #[inline(never)]
    fn trace_poll(&self, id: u64, outcome: RunOutcome) {
        trace(format_args!("task {id} polled -> {outcome}"));
    }

    /// Prints who woke `task`. Out of line, like `trace_poll`.
    #[cold]
    #[inline(never)]
    fn trace_task_wake(&self, task: &dyn Runnable, source: WakeSource) {
        self.trace_wake(&format_args!("task {}", task.id()), source);
    }

    /// Prints who woke `what`.
    #[cold]
    fn trace_wake(&self, what: &fmt::Arguments<'_>, source: WakeSource) {
        trace(format_args!("{what} woken by {source}"));
    }

    /// Runs one poll with a fresh I/O budget.
    fn with_budget<R>(&self, poll: impl FnOnce() -> R) -> R {
        /// Puts the budget back to unlimited even if the poll unwinds.
        struct Reset;
        impl Drop for Reset {
            #[inline]
            fn drop(&mut self) {
                BUDGET.with(|budget| budget.set(UNLIMITED));
            }
        }
        BUDGET.with(|budget| budget.set(BUDGET_PER_POLL));
        let _reset = Reset;
        poll()
    }

    /// Fires due timers, then waits in the reactor for at most `timeout` (or, if `None`, until
    /// the next timer is due) and wakes the tasks whose sources became ready.
    fn park(&self, timeout: Option<Duration>) {
        self.core.polls_since_park.set(0);
        let mut wakers = self.core.wakers.borrow_mut();
        let mut timeout = timeout;
        {
            let mut timers = self.shared.lock_timers();
            if !timers.is_empty() {
                let now = Instant::now();
                let next = timers.fire(now, &mut wakers);
                if timeout.is_none() {
                    timeout = next.map(|deadline| deadline - now);
                }
            }
        }
        if !wakers.is_empty() {
            // Timers fired: their tasks are runnable now, so do not block.
            timeout = Some(Duration::ZERO);
            self.core.counters.fired(wakers.len());
            if self.shared.trace {
                trace(format_args!("{} timer(s) fired", wakers.len()));
            }
            self.core.waking.set(WakeSource::Timer);
            wake_all(&mut wakers);
        }
        let mut events = self.core.events.borrow_mut();
        // Publish before a wait that may last: other threads then see everything done so far.
        self.core.counters.publish(&self.shared.counters);
        self.core.waking.set(WakeSource::Reactor);
        // Take the list rather than borrow it across the wait: the wait wakes tasks, and a
        // waker may run code that drains a source on this thread and pushes to the list.
        let mut drained = std::mem::take(&mut *self.core.drained.borrow_mut());
        let waited = self.shared.reactor.wait(&mut events, timeout, &mut drained);
        self.core.waking.set(WakeSource::Main);
        // Give the (now empty) list its buffer back, unless wakers refilled the cell meanwhile.
        let mut list = self.core.drained.borrow_mut();
        if list.is_empty() {
            *list = drained;
        }
        drop(list);
        match waited {
            Ok(count) => {
                self.core.counters.waited(count);
                self.core.counters.publish(&self.shared.counters);
            }
            // Waiting fails only if the poller itself is broken (epoll_wait, or the timerfd and
            // eventfd bookkeeping `polling` does around it); there is no way to go on without it.
            Err(err) => panic!("ripple: waiting for I/O events failed: {err}"),
        }
    }

    /// Drops every task's future: the runtime is going away. Called on the runtime's thread,
    /// with this context entered, when no task is running.
    pub(crate) fn shutdown(&self) {
        // Wakes from here on (joiners of cancelled tasks) come from the runtime itself.
        self.core.waking.set(WakeSource::Shutdown);
        let mut orphans = {
            let mut remote = self
                .shared
                .remote
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            remote.closed = true;
            self.shared.remote_len.store(0, Ordering::Release);
            std::mem::take(&mut remote.queue)
        };
        // Dropping a future can spawn or wake tasks, so repeat until nothing is left.
        loop {
            let mut tasks = self.core.owned.borrow_mut().drain();
            tasks.extend(self.core.run_queue.borrow_mut().drain(..));
            tasks.extend(orphans.drain(..));
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                task.owned_index().store(NOT_OWNED, Ordering::Relaxed);
                task.shutdown();
            }
        }
        // I/O objects that outlive the runtime get an error instead of waiting forever.
        self.shared.reactor.shutdown();
        // Parked sleeps hold wakers, which hold tasks, which hold this runtime: break the cycle.
        let timers = self.shared.lock_timers().clear();
        drop(timers);
    }

    /// The runtime's counters, exact when called on its own thread.
    pub(crate) fn metrics(&self) -> super::Metrics {
        self.core.counters.publish(&self.shared.counters);
        self.shared.counters.snapshot()
    }

    /// Live tasks (spawned here, not yet complete).
    pub(crate) fn task_count(&self) -> usize {
        self.core.owned.borrow().len()
    }
}

/// Wakes every waker in `wakers`, emptying it. A waker that panics is contained, so one
/// misbehaving task cannot take the reactor down.
fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
    }
}
