//! The readiness of one I/O source, and the tasks waiting for it.
//!
//! The source is registered edge-triggered: epoll reports each *change* to readable or writable
//! once, not the state itself. So the reactor remembers it: an event sets a bit here, and the bit
//! stays until a task's read or write returns `WouldBlock` and clears it. Each event also stamps
//! the word with the reactor's tick, and a clear only succeeds if the tick is unchanged, so an
//! edge that arrives while a task is in the middle of a read is never lost.

use std::cell::UnsafeCell;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};

use crate::executor::trace::trace;

/// The source has data to read, a pending connection, EOF, or an error.
pub(crate) const READABLE: usize = 1 << 0;
/// The source has room to write, or an error.
pub(crate) const WRITABLE: usize = 1 << 1;
/// The runtime shut down: every wait on this source now fails.
const SHUTDOWN: usize = 1 << 2;
/// A registration's key: its source's address, with the registration's generation in the bits
/// above. Only [`ScheduledIo::key`] makes one, and [`SourceKey::from_epoll`] takes one back from
/// epoll, so the address part of a key always names a source that its reactor's registry keeps
/// (and never frees) for as long as the reactor lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceKey(usize);

impl SourceKey {
    /// The key as epoll stores it.
    pub(crate) fn get(self) -> usize {
        self.0
    }

    /// Takes back a key that epoll reported.
    ///
    /// # Safety
    /// `key` must be the value of a [`SourceKey::get`] that was handed to this reactor's epoll:
    /// epoll reports only what it was given, and `polling` drops the keys it uses itself.
    /// (Which also means a runtime must not be used on both sides of a `fork`: the child's
    /// epoll would report the parent's keys.)
    #[inline]
    pub(crate) unsafe fn from_epoll(key: usize) -> SourceKey {
        SourceKey(key)
    }

    /// The address of the source the key names.
    #[inline]
    pub(crate) fn address(self) -> *const ScheduledIo {
        (self.0 & ADDRESS_MASK) as *const ScheduledIo
    }
}

/// A key holds the source's address in its low 48 bits, which is all that user-space addresses
/// use on 64-bit Linux, and the registration's generation above them.
pub(crate) const GENERATION_SHIFT: u32 = 48;
/// The address part of a key.
pub(crate) const ADDRESS_MASK: usize = match 1usize.checked_shl(GENERATION_SHIFT) {
    Some(bit) => bit - 1,
    // A 32-bit address fills the key: no room for a generation.
    None => usize::MAX,
};
/// The generations a key can tell apart (65,536 on 64-bit; they wrap around).
const GENERATION_MASK: usize = match (!ADDRESS_MASK).checked_shr(GENERATION_SHIFT) {
    Some(mask) => mask,
    None => 0,
};
/// The tick lives above the readiness bits.
const TICK_SHIFT: u32 = 16;
/// The readiness bits of the word.
const READY_MASK: usize = (1 << TICK_SHIFT) - 1;

/// Which way a task wants to move data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Waiting to read (or accept).
    Read,
    /// Waiting to write (or for a connect to finish).
    Write,
}

impl Direction {
    /// The direction as a verb, for the trace.
    fn verb(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }

    /// The readiness bit this direction waits for.
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }
}

/// Proof that a source was ready in one direction at one tick; hand it back to
/// [`Async::clear_readiness`](super::Async::clear_readiness) after `WouldBlock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyEvent {
    /// The reactor tick at which the readiness was last set (its low 32 bits: enough to tell
    /// apart any two events that one read can straddle).
    tick: u32,
    /// The readiness bits this event stands for.
    ready: u8,
}

/// The error of any wait on a source whose runtime is gone.
#[cold]
fn shutdown_error() -> io::Error {
    io::Error::other("the ripple runtime that drove this I/O object has shut down")
}

/// Wakes `waker`. A waker that panics is contained, so one misbehaving task cannot take the
/// reactor down.
#[inline]
fn wake(waker: Waker) {
    let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
}

/// One registered source: its readiness word and its waiting tasks.
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    /// The source's slot in the reactor's registry. Fixed: a deleted source keeps its slot and
    /// its memory, and a later registration reuses both (see `Reactor::add`).
    pub(crate) index: usize,
    /// Bumped each time the slot is reused, so that an event meant for an earlier registration
    /// is told apart from the current one's (see [`ScheduledIo::key`]).
    generation: AtomicUsize,
    /// `READABLE | WRITABLE | SHUTDOWN` in the low bits, the tick of the last event above
    /// `TICK_SHIFT`. Set by the reactor, cleared by tasks, always with read-modify-writes.
    readiness: AtomicUsize,
    /// The task parked to read, one slot per direction so that a reader task and a writer task
    /// can share the source. No lock: see [`WakerSlot`].
    reader: WakerSlot,
    /// The task parked to write.
    writer: WakerSlot,
    /// Further tasks waiting through a shared reference while another task holds the slot of
    /// their direction (say, two tasks accepting on one listener). Rare, so they wait here,
    /// behind a lock, and are woken with the slot's task.
    others: Mutex<Vec<(Direction, Waker)>>,
    /// Whether `others` may hold wakers, so that an event looks at the lock only then. Written
    /// only with `others` locked; read without it (see `wake_others` for why that is enough).
    has_others: AtomicBool,
    /// Whether to trace parking and clearing (the runtime's `RIPPLE_TRACE`). Fixed at creation.
    trace: bool,
}

/// The waker of one parked task, shared between that task (which stores it) and the reactor
/// (which takes it out to wake it), on any threads, with no lock: the protocol of the
/// `futures` crate's `AtomicWaker`, plus a bit that lets the reactor pass an empty slot by with
/// one load.
///
/// `state` says who may touch `waker` right now: nobody (`EMPTY` or `FULL`, by whether a waker
/// is stored), the task storing its waker (`REGISTERING` set), or the reactor taking it out
/// (`WAKING` set). A task that finds `WAKING` does not store, and wakes itself; a reactor that finds
/// `REGISTERING` only adds `WAKING`, and the registering task, seeing it when it tries to let go,
/// takes the waker out and wakes it. Either way the wake is never lost.
struct WakerSlot {
    /// `EMPTY` or `FULL`, possibly with `REGISTERING` or `WAKING` on top.
    state: AtomicUsize,
    /// The parked task's waker.
    ///
    /// # Invariant
    /// Touched only by the thread that set `REGISTERING` or `WAKING` in `state`, until that
    /// thread clears it again. `Some` exactly when `state` says `FULL` (or is being changed by
    /// that thread).
    waker: UnsafeCell<Option<Waker>>,
}

/// No waker is stored and nobody is touching the slot.
const EMPTY: usize = 0;
/// A task is storing its waker.
const REGISTERING: usize = 1;
/// The reactor is taking the waker out.
const WAKING: usize = 2;
/// A waker is stored.
const FULL: usize = 4;

// SAFETY: the waker cell is handed to one thread at a time by `state` (see the invariant on
// `waker`), and `Waker` itself is `Send + Sync`.
unsafe impl Sync for WakerSlot {}

/// What [`WakerSlot::register`] did.
#[derive(Debug, PartialEq, Eq)]
enum Registered {
    /// The slot holds this task's waker (stored now, or already), or the task was woken.
    Yes,
    /// The slot holds another task's waker: the caller must keep this one elsewhere.
    Occupied,
}

impl WakerSlot {
    /// An empty slot.
    fn new() -> WakerSlot {
        WakerSlot {
            state: AtomicUsize::new(EMPTY),
            waker: UnsafeCell::new(None),
        }
    }

    /// Stores `waker` in the slot, unless the slot holds another task's waker already (which is
    /// then left alone: nothing is dropped or replaced here).
    ///
    /// The caller then checks readiness again with a `SeqCst` load: `take` may have passed the
    /// slot by just before this stored the waker, but then its readiness, set before it looked,
    /// is what the caller sees. That rests on the compare-exchange that sets `REGISTERING` being
    /// `SeqCst`, like `take`'s first load and the readiness update before it.
    fn register(&self, waker: &Waker) -> Registered {
        let mut idle = self.state.load(Ordering::SeqCst);
        loop {
            match idle {
                EMPTY | FULL => {}
                // Being woken right now. The readiness that the waking side set first may be
                // cleared again (by the task it wakes) before the caller looks, so the caller
                // cannot count on seeing it: wake it, as `AtomicWaker` does, and its next poll
                // registers again.
                _ if idle & REGISTERING == 0 => {
                    waker.wake_by_ref();
                    return Registered::Yes;
                }
                // Another task is registering here at this very moment.
                _ => return Registered::Occupied,
            }
            match self.state.compare_exchange(
                idle,
                idle | REGISTERING,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(actual) => idle = actual,
            }
        }
        // SAFETY: we set REGISTERING, so the cell is ours.
        let slot = unsafe { &mut *self.waker.get() };
        let registered = match slot {
            None => {
                *slot = Some(waker.clone());
                Registered::Yes
            }
            Some(old) if old.will_wake(waker) => Registered::Yes,
            Some(_) => Registered::Occupied,
        };
        let done = self.state.compare_exchange(
            idle | REGISTERING,
            FULL,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if done.is_err() {
            // The reactor came by meanwhile (it added WAKING) and left the wake to us: take the
            // waker out, give the slot back, wake it.
            let woken = slot.take();
            self.state.store(EMPTY, Ordering::Release);
            if let Some(woken) = woken {
                woken.wake();
            }
        }
        registered
    }

    /// Takes the parked waker out, if there is one and nobody else is touching it. A task that is
    /// registering at this moment will find `WAKING` and wake itself.
    ///
    /// The caller has just set readiness with a `SeqCst` read-modify-write (see `register`).
    #[inline]
    fn take(&self) -> Option<Waker> {
        // Nothing parked and nobody registering: nothing to do, and no write to the line.
        if self.state.load(Ordering::SeqCst) == EMPTY {
            return None;
        }
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            EMPTY | FULL => {
                // SAFETY: we set WAKING on an idle slot, so the cell is ours.
                let waker = unsafe { (*self.waker.get()).take() };
                // A plain store: while WAKING is set, nobody else changes the state (a
                // registering task backs off, another taker's `fetch_or` adds nothing).
                self.state.store(EMPTY, Ordering::Release);
                waker
            }
            // A task is registering (and will see WAKING and wake itself), or someone else is
            // taking the waker.
            _ => None,
        }
    }
}

impl fmt::Debug for WakerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakerSlot")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

impl ScheduledIo {
    /// A source that is assumed ready both ways: a new socket's first read or write just tries,
    /// and waits only if the kernel answers `WouldBlock` (which then clears the bit).
    pub(crate) fn new(index: usize, trace: bool) -> Self {
        ScheduledIo {
            index,
            generation: AtomicUsize::new(0),
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            reader: WakerSlot::new(),
            writer: WakerSlot::new(),
            others: Mutex::new(Vec::new()),
            has_others: AtomicBool::new(false),
            trace,
        }
    }

    /// The slot of `direction`.
    fn slot(&self, direction: Direction) -> &WakerSlot {
        match direction {
            Direction::Read => &self.reader,
            Direction::Write => &self.writer,
        }
    }

    /// The key of the current registration, as epoll reports it with each event: the source's
    /// address, with the generation in the bits above it. `None` if the address does not leave
    /// those bits free (64-bit Linux hands out such addresses only to a program that asks).
    pub(crate) fn key(&self) -> Option<SourceKey> {
        let address = self as *const ScheduledIo as usize;
        if address & !ADDRESS_MASK != 0 {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire) & GENERATION_MASK;
        Some(SourceKey(
            address | generation.checked_shl(GENERATION_SHIFT).unwrap_or(0),
        ))
    }

    /// Whether `key` was made by the current registration (and not an earlier one of this
    /// memory).
    #[inline]
    pub(crate) fn has_generation_of(&self, key: SourceKey) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        generation & GENERATION_MASK == key.0.checked_shr(GENERATION_SHIFT).unwrap_or(0)
    }

    /// Ends the current registration: from now on its key names nothing (see
    /// [`ScheduledIo::has_generation_of`]).
    pub(crate) fn retire(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Gets a retired source ready for a new registration: the optimistic readiness of a new
    /// source. Its waiters were dropped when it was deleted.
    pub(crate) fn reuse(&self) {
        self.readiness.store(READABLE | WRITABLE, Ordering::Release);
    }

    /// Records an event (`ready` bits at reactor tick `tick`) and wakes the tasks it releases.
    ///
    /// The caller holds no lock: waking a task, or dropping the last reference to one, may run
    /// code that adds or deletes sources.
    #[inline]
    pub(crate) fn set_readiness(&self, tick: usize, ready: usize) {
        let tick = (tick << TICK_SHIFT) & !READY_MASK;
        let _ = self
            .readiness
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some((cur & READY_MASK) | ready | tick)
            });
        self.wake(ready);
    }

    /// Marks the source dead and wakes every waiter; their next poll returns an error. The
    /// caller holds no lock, as for `set_readiness`.
    pub(crate) fn shutdown(&self) {
        self.readiness.fetch_or(SHUTDOWN, Ordering::SeqCst);
        self.wake(READABLE | WRITABLE);
    }

    /// Drops every parked waker without waking it: the source was deleted and its I/O object
    /// is gone. The reactor keeps the source's memory for a later registration (see
    /// `Reactor::add`), and a waker left in it would keep its task, and so the runtime, alive.
    /// The caller holds no lock: dropping the last reference to a task runs its destructors.
    pub(crate) fn forget_waiters(&self) {
        for slot in [&self.reader, &self.writer] {
            drop(slot.take());
        }
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let dropped = std::mem::take(&mut *others);
        self.has_others.store(false, Ordering::SeqCst);
        drop(others);
        drop(dropped);
    }

    /// Wakes the tasks waiting for `ready`. The caller has just published `ready` in the
    /// readiness word.
    #[inline]
    fn wake(&self, ready: usize) {
        if ready & READABLE != 0 {
            if let Some(waker) = self.reader.take() {
                wake(waker);
            }
        }
        if ready & WRITABLE != 0 {
            if let Some(waker) = self.writer.take() {
                wake(waker);
            }
        }
        // A task that parks in `others` sets the flag and then checks readiness; here readiness
        // was set and then the flag is read, all four in one total (SeqCst) order. So either
        // this sees the flag, or that task sees the readiness and does not wait. (The slots'
        // `take` relies on the same argument with the slot's state in place of the flag.)
        if self.has_others.load(Ordering::SeqCst) {
            self.wake_others(ready);
        }
    }

    /// The rare path of `wake`: wakes the waiters in `others` that `ready` releases, after
    /// letting go of their lock (the wakers move out; none is dropped under it).
    #[cold]
    fn wake_others(&self, ready: usize) {
        let mut released = Vec::new();
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let mut i = 0;
        while i < others.len() {
            if ready & others[i].0.mask() != 0 {
                released.push(others.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        if others.is_empty() {
            self.has_others.store(false, Ordering::SeqCst);
        }
        drop(others);
        released.into_iter().for_each(wake);
    }

    /// Ready if the source is ready in `direction`; otherwise parks the task until it is.
    #[inline]
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<io::Result<ReadyEvent>> {
        // Fast path: one atomic load when the source is already known to be ready.
        let ready = match self.check(direction) {
            Some(ready) => ready,
            None => ready!(self.park(cx, direction)),
        };
        if ready.is_ok() {
            // A task that has done its share of I/O for this poll yields, even if the source
            // is ready.
            ready!(crate::executor::consume_budget(cx));
        }
        Poll::Ready(ready)
    }

    /// The slow path of `poll_ready`: store the task's waker, then look once more.
    #[inline]
    fn park(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<ReadyEvent>> {
        if self.slot(direction).register(cx.waker()) == Registered::Occupied {
            self.park_with_others(cx.waker(), direction);
        }
        // Check again: an event that landed after the first check has either set the bit (seen
        // now) or will take the waker we just stored (the slot's state orders the two).
        match self.check_seqcst(direction) {
            Some(ready) => Poll::Ready(ready),
            None => {
                if self.trace {
                    self.trace_park(direction);
                }
                Poll::Pending
            }
        }
    }

    /// Parks `waker` in `others`, once, while another task holds the slot of `direction`.
    #[cold]
    fn park_with_others(&self, waker: &Waker, direction: Direction) {
        let mut others = self.others.lock().unwrap_or_else(PoisonError::into_inner);
        let known = others
            .iter()
            .any(|(d, w)| *d == direction && w.will_wake(waker));
        if !known {
            others.push((direction, waker.clone()));
        }
        self.has_others.store(true, Ordering::SeqCst);
    }

    /// `check` with the load in the total order of `wake` and `WakerSlot::take` (see there).
    #[inline]
    fn check_seqcst(&self, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        Self::ready_in(self.readiness.load(Ordering::SeqCst), direction)
    }

    /// The ready event for `direction`, if the bit is set (or an error after shutdown).
    #[inline]
    fn check(&self, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        Self::ready_in(self.readiness.load(Ordering::Acquire), direction)
    }

    /// The ready event for `direction` in the readiness word `cur`.
    #[inline]
    fn ready_in(cur: usize, direction: Direction) -> Option<io::Result<ReadyEvent>> {
        // One test for the common answers (ready, or not ready and alive), then sort them out.
        if cur & (direction.mask() | SHUTDOWN) == 0 {
            return None;
        }
        if cur & SHUTDOWN != 0 {
            return Some(Err(shutdown_error()));
        }
        Some(Ok(ReadyEvent {
            tick: (cur >> TICK_SHIFT) as u32,
            ready: (cur & direction.mask()) as u8,
        }))
    }

    /// Forgets the readiness in `event`, unless a newer event arrived since it was observed.
    /// Returns whether it did.
    #[inline]
    pub(crate) fn clear_readiness(&self, event: ReadyEvent) -> bool {
        self.readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                // A bit that is already clear "clears" again and says so: the caller may then
                // queue a drained source twice, which costs one more entry in one `poll(2)`.
                // Checking would cost every read a few instructions.
                ((cur >> TICK_SHIFT) as u32 == event.tick)
                    .then_some(cur & !usize::from(event.ready))
            })
            .is_ok()
    }

    /// Prints that a task parks here. Out of line, so the hot path only tests the flag.
    #[cold]
    #[inline(never)]
    fn trace_park(&self, direction: Direction) {
        trace(format_args!(
            "source {} not ready to {}: the task parks its waker there",
            self.index,
            direction.verb()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_task::{noop_waker, ArcWake};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl ArcWake for Count {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn clear_with_a_stale_tick_keeps_the_newer_edge() {
        let io = ScheduledIo::new(0, false);
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok(first)) = io.poll_ready(&mut cx, Direction::Read) else {
            panic!("a new source starts out ready");
        };
        // An edge arrives while the task is reading; the task then sees WouldBlock.
        io.set_readiness(1, READABLE);
        io.clear_readiness(first);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_ready());
        // With no new edge, the clear holds and the task parks.
        let Poll::Ready(Ok(second)) = io.poll_ready(&mut cx, Direction::Read) else {
            unreachable!()
        };
        io.clear_readiness(second);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
        // Writability is tracked on its own.
        assert!(io.poll_ready(&mut cx, Direction::Write).is_ready());
    }

    #[test]
    fn an_event_releases_only_the_waiter_of_its_direction() {
        let io = ScheduledIo::new(0, false);
        let (reader, writer) = (Arc::new(Count::default()), Arc::new(Count::default()));
        for (direction, count) in [(Direction::Read, &reader), (Direction::Write, &writer)] {
            let waker = futures_task::waker(count.clone());
            let mut cx = Context::from_waker(&waker);
            let Poll::Ready(Ok(ev)) = io.poll_ready(&mut cx, direction) else {
                unreachable!()
            };
            io.clear_readiness(ev);
            assert!(io.poll_ready(&mut cx, direction).is_pending());
        }
        io.set_readiness(1, WRITABLE);
        assert_eq!((reader.get(), writer.get()), (0, 1));
        let waker = futures_task::waker(reader.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(io.poll_ready(&mut cx, Direction::Read).is_pending());
        io.shutdown();
        assert_eq!(reader.get(), 1, "shutdown releases the reader too");
        assert!(matches!(
            io.poll_ready(&mut cx, Direction::Read),
            Poll::Ready(Err(_))
        ));
    }

    #[test]
    fn a_second_task_on_one_direction_waits_in_others_and_is_woken_too() {
        let io = ScheduledIo::new(0, false);
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let Poll::Ready(Ok(ev)) =
            io.poll_ready(&mut Context::from_waker(&noop_waker()), Direction::Read)
        else {
            unreachable!()
        };
        io.clear_readiness(ev);
        for count in [&first, &second] {
            let waker = futures_task::waker(count.clone());
            assert!(io
                .poll_ready(&mut Context::from_waker(&waker), Direction::Read)
                .is_pending());
        }
        io.set_readiness(1, READABLE);
        assert_eq!((first.get(), second.get()), (1, 1));
    }

    /// The reactor sets readiness and takes the waker on one thread while a task parks on
    /// another, at the same moment, round after round. Each round has exactly one event, so a
    /// lost wake cannot be covered up by the next one: a park must end in a wake, or the park
    /// must find the source ready.
    #[test]
    fn a_park_racing_an_event_is_never_lost() {
        let io = Arc::new(ScheduledIo::new(0, false));
        let count = Arc::new(Count::default());
        let (go, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let rounds = 5_000;
        let reactor = {
            let (io, go, done) = (io.clone(), go.clone(), done.clone());
            std::thread::spawn(move || {
                for round in 1..=rounds {
                    while go.load(Ordering::SeqCst) < round {
                        std::thread::yield_now();
                    }
                    io.set_readiness(round, READABLE);
                    done.store(round, Ordering::SeqCst);
                }
            })
        };
        let waker = futures_task::waker(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut parked = 0;
        for round in 1..=rounds {
            if let Some(Ok(event)) = io.check(Direction::Read) {
                io.clear_readiness(event);
            }
            let before = count.get();
            go.store(round, Ordering::SeqCst);
            if io.poll_ready(&mut cx, Direction::Read).is_pending() {
                parked += 1;
                let deadline = Instant::now() + Duration::from_secs(5);
                while count.get() == before {
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: the wake was lost"
                    );
                    std::thread::yield_now();
                }
            }
            while done.load(Ordering::SeqCst) < round {
                std::thread::yield_now();
            }
        }
        reactor.join().unwrap();
        assert!(parked > 0, "no round parked, so the race was never run");
    }

    /// Task A is parked; task B, on another thread, parks on the same direction while the
    /// reactor is taking A's waker; A runs and clears the readiness before B looks again. B
    /// found the slot being woken, so it stored nothing: it must be woken itself, or the next
    /// event has nobody to wake. The steps are played one by one, as two threads could.
    #[test]
    fn a_task_that_parks_while_the_slot_is_being_woken_is_woken_itself() {
        let io = ScheduledIo::new(0, false);
        let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (wake_a, wake_b) = (
            futures_task::waker(a.clone()),
            futures_task::waker(b.clone()),
        );
        let mut cx_a = Context::from_waker(&wake_a);
        let Poll::Ready(Ok(event)) = io.poll_ready(&mut cx_a, Direction::Read) else {
            unreachable!("a new source starts out ready")
        };
        io.clear_readiness(event);
        assert!(io.poll_ready(&mut cx_a, Direction::Read).is_pending());
        // The reactor sets readiness and starts `take`: WAKING is set on A's slot.
        io.readiness
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some((cur & READY_MASK) | READABLE | (1 << TICK_SHIFT))
            })
            .unwrap();
        assert_eq!(io.reader.state.fetch_or(WAKING, Ordering::AcqRel), FULL);
        // B registers now and finds WAKING.
        assert_eq!(io.reader.register(&wake_b), Registered::Yes);
        // The reactor finishes `take` and wakes A; A reads, gets WouldBlock, clears.
        // SAFETY: this test plays the reactor, which set WAKING above and owns the cell.
        let taken = unsafe { (*io.reader.waker.get()).take() };
        io.reader.state.store(EMPTY, Ordering::Release);
        taken.expect("A's waker").wake();
        let Some(Ok(event)) = io.check(Direction::Read) else {
            unreachable!()
        };
        assert!(io.clear_readiness(event));
        // B's look after registering finds the source not ready: B returns Pending.
        assert!(io.check_seqcst(Direction::Read).is_none());
        assert_eq!(a.get(), 1);
        assert_eq!(
            b.get(),
            1,
            "B parked with its waker stored nowhere, and was not woken"
        );
    }
}
