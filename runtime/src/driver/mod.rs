//! The driver: where a thread with nothing to run waits for I/O and timers.
//!
//! A scheduler needs three things from the world outside its run queue, and this module is all
//! it sees of it: [`Driver::park`] (wait until an I/O event, a timer, or an unpark, at most for a
//! timeout; a zero timeout only looks), [`Handle::unpark`] (from any thread, wake whoever is
//! parked), and the [`Handle`] that I/O objects and sleeps register with, made current on a
//! thread by [`Local::enter`].
//!
//! A park reads top to bottom, like the seeds' event loop: re-check the sources that short
//! reads drained; wait in epoll; for each event, set its source's readiness bit and wake the
//! task parked there; and if the timers' alarm (a timerfd set for the nearest deadline, in the
//! same epoll) rang, fire the due timers. The driver
//! holds no lock while it wakes a task, and a task woken here is only queued: the scheduler runs
//! it after `park` returns.
//!
//! The [`Driver`] itself (the event buffer, the list of fired timers) belongs to one thread at a
//! time: the current-thread scheduler owns it outright, and a multi-thread scheduler hands it
//! from worker to worker, each of which keeps its own [`Local`]. Everything the driver shares
//! (the reactor's registry, the timers) is behind the [`Handle`], which any thread may use.

pub(crate) mod shared;

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::metrics::{LocalCounters, WakeSource};
use crate::reactor::{self, Drained, Events, Reactor, SourceKey, READABLE, WRITABLE};
use crate::time;
use crate::trace::{trace, Tracer};

/// The shared half of a driver: its reactor and timers. Cloned into every runtime handle;
/// `Async` keeps the reactor and `Sleep` the timers.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    /// The epoll reactor.
    io: Arc<Reactor>,
    /// The timers.
    time: time::Handle,
}

/// The half of a driver that parks: one thread at a time holds it.
#[derive(Debug)]
pub(crate) struct Driver {
    /// The reactor and timers it waits on.
    handle: Handle,
    /// epoll's output buffer, reused across waits.
    events: Events,
    /// Wakers of fired timers, woken after the timers' lock is dropped; reused across parks.
    wakers: Vec<Waker>,
    /// The drained sources handed over for the next re-check; reused across parks.
    drained: Drained,
    /// Bumped for each batch of readiness the driver sets (an epoll batch, a re-check), and
    /// stamped into each source's readiness word, so that a task's clear never erases an edge
    /// newer than the one it saw.
    tick: usize,
    /// What to trace: the printed lines and the trace file's slices of each wait.
    trace: Tracer,
}

/// What a thread that runs tasks keeps for a driver: its own list of drained sources, and what
/// it makes current so that I/O objects and sleeps created on it find the driver.
#[derive(Debug)]
pub(crate) struct Local {
    /// This thread's part of the reactor.
    io: reactor::Local,
    /// The timers.
    time: time::Handle,
}

impl Driver {
    /// A new epoll instance and empty timers, traced as `trace` says.
    pub(crate) fn new(trace: Tracer) -> io::Result<Driver> {
        let io = Arc::new(Reactor::new(trace.print)?);
        let alarm = io.clone();
        let time = time::Handle::new(Arc::new(move |at| alarm.set_alarm(at)));
        Ok(Driver {
            handle: Handle { io, time },
            events: Events::new(),
            wakers: Vec::new(),
            drained: Drained::default(),
            tick: 0,
            trace,
        })
    }

    /// The shared half.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Waits for I/O events and timers, at most `timeout` (`None`: until something happens; a
    /// zero timeout only looks), and wakes the tasks they release. `local` is the calling
    /// thread's part of the driver; `counters`, its counters, which also say who is waking.
    ///
    /// Fails only if the poller itself is broken (`epoll_wait` fails).
    #[inline]
    pub(crate) fn park(
        &mut self,
        local: &Local,
        timeout: Option<Duration>,
        counters: &LocalCounters,
    ) -> io::Result<()> {
        let Driver {
            handle,
            events,
            wakers,
            drained,
            tick,
            trace: tracer,
        } = self;
        let (reactor, time) = (&*handle.io, &handle.time);

        counters.set_waking(WakeSource::Reactor);

        // 1. Sources that short reads drained: one poll(2) looks for a FIN that came with their
        //    last data. Any it finds is work to do now, so the wait must not block.
        let mut timeout = timeout;
        local.io.take_drained(drained);
        if !drained.is_empty() && recheck_drained(reactor, drained, next_tick(tick)) > 0 {
            timeout = Some(Duration::ZERO);
        }

        // 2. Wait: one epoll_wait (`reactor/epoll.rs`); a zero timeout only looks. The timers
        //    need no timeout: their alarm is a timerfd in the same epoll.
        let wait_start = if tracer.on { tracer.before_wait() } else { 0 };
        reactor.wait(events, timeout)?;
        if tracer.on {
            trace_wait(tracer, wait_start, timeout, events.len());
        }

        // 3. Dispatch: each event sets its source's readiness and wakes the task parked there.
        let batch_tick = next_tick(tick);
        let mut count = 0;
        for event in events.iter() {
            count += 1;
            // SAFETY: epoll reports only keys this reactor gave it (`Reactor::add`), and
            // `Events::iter` drops the reactor's and `polling`'s own; the runtime is not used
            // across a `fork`.
            let key = unsafe { SourceKey::from_epoll(event.key) };
            let Some(io) = reactor.source(key) else {
                if reactor.trace {
                    trace_stale(key);
                }
                continue;
            };
            // A hang-up or an error is both readable and writable (`reactor/epoll.rs`), so
            // both directions wake and see the error from their next read or write.
            let ready = (if event.readable { READABLE } else { 0 })
                | (if event.writable { WRITABLE } else { 0 });
            if reactor.trace {
                trace_event(io.index, ready, "");
            }
            io.set_readiness(batch_tick, ready);
        }
        counters.waited(count);

        // 4. Timers: if the alarm rang, fire the due ones and set it for the next.
        if events.alarm() {
            ring(time, wakers, counters, tracer);
        }
        counters.set_waking(WakeSource::Main);
        Ok(())
    }
}

impl Handle {
    /// Wakes the thread parked in this driver, if one is, from any thread. Cheap when it is
    /// already notified.
    pub(crate) fn unpark(&self) {
        self.io.notify();
    }

    /// A thread's part of this driver.
    pub(crate) fn local(&self) -> Local {
        Local {
            io: reactor::Local::new(self.io.clone()),
            time: self.time.clone(),
        }
    }

    /// Fails every registered I/O object and forgets every timer: the runtime is going away.
    /// Parked sleeps hold wakers, which hold tasks, which hold the runtime: this breaks the
    /// cycle.
    pub(crate) fn shutdown(&self) {
        self.io.shutdown();
        self.time.clear();
    }
}

impl Local {
    /// Hands this thread's drained sources to whichever thread waits in the driver: this thread
    /// is about to sleep somewhere else (see `reactor::Local::flush_drained`).
    pub(crate) fn flush_drained(&self) {
        self.io.flush_drained();
    }

    /// Runs `f` with the driver current on this thread, so that I/O objects and sleeps created
    /// in it register with the driver.
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        self.io.enter(|| self.time.enter(f))
    }
}

/// Marks readable every drained source whose peer `poll(2)` finds shut down (or hung up, or
/// failed), stamped with `tick`, waking its reader, and empties the list. Returns how many it
/// found.
fn recheck_drained(reactor: &Reactor, drained: &mut Drained, tick: usize) -> usize {
    let pollfds = &mut drained.pollfds;
    // SAFETY: `pollfds` is a valid, exclusively borrowed array of `pollfds.len()` entries, and a
    // zero timeout makes the call return at once. Closed fds only yield POLLNVAL.
    let polled = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 0) };
    let mut found = 0;
    if polled != 0 {
        for (pollfd, &key) in pollfds.iter().zip(drained.keys.iter()) {
            // If poll itself failed, treat every source as readable: a spurious wake costs one
            // read, a missed one would hang its task.
            let readable = polled < 0 || pollfd.revents & !libc::POLLNVAL != 0;
            if let Some(io) = reactor.source(key).filter(|_| readable) {
                if reactor.trace {
                    trace_event(io.index, READABLE, " (peer shut down, found by poll)");
                }
                io.set_readiness(tick, READABLE);
                found += 1;
            }
        }
    }
    drained.clear();
    found
}

/// A fresh tick to stamp readiness with.
#[inline]
fn next_tick(tick: &mut usize) -> usize {
    *tick = tick.wrapping_add(1);
    *tick
}

/// The alarm rang: fires the due timers and wakes their tasks. Out of line: most parks of a busy
/// server find no alarm.
#[cold]
#[inline(never)]
fn ring(time: &time::Handle, wakers: &mut Vec<Waker>, counters: &LocalCounters, tracer: &Tracer) {
    time.ring(wakers);
    if !wakers.is_empty() {
        fire_timers(wakers, counters, tracer);
    }
}

/// Wakes the tasks of the timers that fired into `wakers`, counting and tracing them.
#[cold]
fn fire_timers(wakers: &mut Vec<Waker>, counters: &LocalCounters, tracer: &Tracer) {
    let fired = wakers.len();
    counters.fired(fired);
    if tracer.print {
        trace(format_args!("{fired} timer(s) fired"));
    }
    let start = if tracer.on { tracer.now() } else { 0 };
    counters.set_waking(WakeSource::Timer);
    wake_all(wakers);
    if let Some(file) = &tracer.file {
        file.fired(start, fired);
    }
}

/// Wakes every waker in `wakers`, emptying it. A waker that panics is contained, so one
/// misbehaving task cannot take the driver down.
fn wake_all(wakers: &mut Vec<Waker>) {
    for waker in wakers.drain(..) {
        let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
    }
}

/// Traces one epoll wait that began at `start` (a line, unless it was a look that found
/// nothing; a slice in the file). Out of line, so the hot path only tests the flag.
#[cold]
#[inline(never)]
fn trace_wait(tracer: &Tracer, start: u64, timeout: Option<Duration>, n: usize) {
    // As the wait rounds it (`reactor/epoll.rs`): up, to whole milliseconds.
    let timeout_ms = timeout.map(|t| t.as_nanos().div_ceil(1_000_000));
    if tracer.print && (timeout != Some(Duration::ZERO) || n > 0) {
        let s = if n == 1 { "" } else { "s" };
        let timeout = match timeout_ms {
            None => "none".to_string(),
            Some(ms) => format!("{ms}ms"),
        };
        trace(format_args!(
            "epoll wait (timeout {timeout}) -> {n} event{s}"
        ));
    }
    if let Some(file) = &tracer.file {
        file.waited(start, timeout_ms, n);
    }
}

/// Prints that an event came for a registration that is no more.
#[cold]
#[inline(never)]
fn trace_stale(key: SourceKey) {
    trace(format_args!(
        "event for a deleted registration (key {:#x}) ignored",
        key.get()
    ));
}

/// Prints the trace line of one event: the source's slot and which ways it became ready.
#[cold]
#[inline(never)]
fn trace_event(index: usize, ready: usize, why: &str) {
    let read = if ready & READABLE != 0 { " read" } else { "" };
    let write = if ready & WRITABLE != 0 { " write" } else { "" };
    trace(format_args!("source {index} ready:{read}{write}{why}"));
}
