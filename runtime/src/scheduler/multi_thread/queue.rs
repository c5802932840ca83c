//! A worker's local run queue: a ring of 256 tasks that its owner pushes to and pops from with
//! no lock, and that idle workers steal half of.
//!
//! Only the owner writes tasks into the ring, at `tail`; tasks leave from `head`, taken by the
//! owner one at a time or by a stealer half at a time. A steal happens in two steps: the stealer
//! first *claims* a range (moving the head's `real` half past it), then copies the tasks out and
//! *releases* the range (moving the head's `steal` half up to `real`). While a range is claimed
//! the owner may go on popping, but must not write into the claimed slots, so it counts free
//! room from `steal`, not `real`. One steal at a time: a second stealer that finds a claim backs
//! off and tries another worker.
//!
//! The head is two 32-bit positions packed into one atomic, so that claiming, popping and
//! releasing each are a single compare-exchange. Positions only grow (wrapping); a slot is the
//! position modulo the capacity.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::scheduler::inject::Inject;
use crate::task_core::TaskRef;

/// Tasks the ring holds (four under loom, so that a model can fill it).
pub(crate) const CAPACITY: u32 = if cfg!(loom) { 4 } else { 256 };
/// A position's slot: `position & MASK`.
const MASK: u32 = CAPACITY - 1;

/// The ring, shared by its owner ([`Local`]) and its stealers ([`Steal`]).
struct Inner {
    /// `steal` in the high 32 bits, `real` in the low ones (see [`pack`]).
    ///
    /// # Invariant
    /// `steal <= real <= tail` (as wrapping distances from `steal`). Slots in `[real, tail)` hold
    /// tasks that nobody has taken; slots in `[steal, real)` hold tasks that a stealer claimed
    /// and is copying out; `steal == real` when no steal is under way.
    head: AtomicU64,
    /// Where the owner writes the next task. Written only by the owner.
    tail: AtomicU32,
    /// The slots.
    ///
    /// # Invariant
    /// A slot in `[steal, tail)` holds an initialised task, owned by the queue. Only the owner
    /// writes a slot, and only one outside `[steal, tail)`; a slot's task is read (moved out) by
    /// whoever took it from `head`.
    buffer: Box<[UnsafeCell<MaybeUninit<TaskRef>>]>,
}

// SAFETY: the slots are handed from the owner to one reader at a time by the protocol on `head`
// and `tail` (see the invariants), and `TaskRef` is `Send + Sync`.
unsafe impl Sync for Inner {}
// SAFETY: as above; the queue moves tasks between threads, which `TaskRef` allows.
unsafe impl Send for Inner {}

/// The owner's handle: push and pop. Lives on one worker thread (it is `Send` but not `Sync`).
pub(crate) struct Local {
    /// The ring.
    inner: Arc<Inner>,
    /// Not `Sync`: only the owner's thread pushes and pops.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

/// A stealer's handle, which any worker may hold.
#[derive(Clone)]
pub(crate) struct Steal(Arc<Inner>);

/// Packs the two head positions.
fn pack(steal: u32, real: u32) -> u64 {
    (u64::from(steal) << 32) | u64::from(real)
}

/// Unpacks the two head positions: `(steal, real)`.
fn unpack(head: u64) -> (u32, u32) {
    ((head >> 32) as u32, head as u32)
}

/// A new, empty queue: the owner's handle and a stealer's.
pub(crate) fn new() -> (Local, Steal) {
    let buffer = (0..CAPACITY)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let inner = Arc::new(Inner {
        head: AtomicU64::new(0),
        tail: AtomicU32::new(0),
        buffer,
    });
    let local = Local {
        inner: inner.clone(),
        _not_sync: PhantomData,
    };
    (local, Steal(inner))
}

impl Inner {
    /// Moves the task out of the slot of `position`.
    ///
    /// # Safety
    /// The caller took `position` from the head (a pop or a claimed steal), so the slot holds an
    /// initialised task that nobody else will read, and the owner will not overwrite it before
    /// the caller lets go of the position.
    unsafe fn take(&self, position: u32) -> TaskRef {
        self.buffer[(position & MASK) as usize].with(|slot| {
            // SAFETY: by this function's contract the slot is initialised and ours to move out
            // of.
            unsafe { (*slot).assume_init_read() }
        })
    }

    /// Writes `task` into the slot of `position`.
    ///
    /// # Safety
    /// Only the owner calls this, for a position outside `[steal, tail)`: no task is there, and
    /// no stealer reads the slot until the owner publishes it by moving `tail` past it.
    unsafe fn put(&self, position: u32, task: TaskRef) {
        self.buffer[(position & MASK) as usize].with_mut(|slot| {
            // SAFETY: by this function's contract the slot is free and only the owner touches it.
            unsafe { (*slot).write(task) };
        });
    }

    /// Tasks in the queue that nobody has taken.
    fn len(&self) -> u32 {
        let (_, real) = unpack(self.head.load(Ordering::Acquire));
        self.tail.load(Ordering::Acquire).wrapping_sub(real)
    }
}

impl Local {
    /// Tasks waiting in this queue.
    pub(crate) fn len(&self) -> usize {
        self.inner.len() as usize
    }

    /// Pushes `task` at the back. When the ring is full, half of it (the oldest tasks) and
    /// `task` move to `overflow`, where idle workers and the other workers' regular looks find
    /// them.
    pub(crate) fn push_back(&self, task: TaskRef, overflow: &Inject) {
        let inner = &*self.inner;
        let mut task = task;
        loop {
            let head = inner.head.load(Ordering::Acquire);
            let (steal, real) = unpack(head);
            // Only this thread writes `tail`.
            let tail = inner.tail.load(Ordering::Relaxed);
            if tail.wrapping_sub(steal) < CAPACITY {
                // SAFETY: the slot of `tail` is outside `[steal, tail)` (there is room), and this
                // is the owner.
                unsafe { inner.put(tail, task) };
                inner.tail.store(tail.wrapping_add(1), Ordering::Release);
                return;
            }
            if steal != real {
                // Full, and a stealer is emptying part of it right now: leave the ring alone.
                overflow.push(task);
                return;
            }
            match self.push_overflow(task, real, tail, overflow) {
                Ok(()) => return,
                // A stealer or the owner's own pop moved the head meanwhile: try again.
                Err(back) => task = back,
            }
        }
    }

    /// Moves the older half of a full ring, and `task`, to `overflow`. Fails (giving `task`
    /// back) if the head moved since it was read as `real` (with no steal under way).
    fn push_overflow(
        &self,
        task: TaskRef,
        real: u32,
        tail: u32,
        overflow: &Inject,
    ) -> Result<(), TaskRef> {
        let half = CAPACITY / 2;
        debug_assert_eq!(tail.wrapping_sub(real), CAPACITY, "the ring is full");
        let claimed = pack(real.wrapping_add(half), real.wrapping_add(half));
        if self
            .inner
            .head
            .compare_exchange(
                pack(real, real),
                claimed,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(task);
        }
        // The positions `[real, real + half)` are this thread's now.
        // SAFETY: taken from the head just above; only the owner writes slots.
        let moved = (0..half).map(|i| unsafe { self.inner.take(real.wrapping_add(i)) });
        overflow.push_batch(moved.chain(std::iter::once(task)));
        Ok(())
    }

    /// Pops the task at the front.
    pub(crate) fn pop(&self) -> Option<TaskRef> {
        let inner = &*self.inner;
        let mut head = inner.head.load(Ordering::Acquire);
        let position = loop {
            let (steal, real) = unpack(head);
            if real == inner.tail.load(Ordering::Relaxed) {
                return None;
            }
            let next_real = real.wrapping_add(1);
            // With no steal under way both halves move; otherwise the stealer releases `steal`.
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                pack(steal, next_real)
            };
            match inner
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break real,
                Err(actual) => head = actual,
            }
        };
        // SAFETY: `position` was taken from the head above, and only the owner writes slots.
        Some(unsafe { inner.take(position) })
    }
}

impl Steal {
    /// Steals half of this queue's tasks (rounded up) into `dst`, the thief's own queue, and
    /// returns one of them to run at once, with how many it took. `None` if the queue is empty,
    /// another steal from it is under way, or `dst` has no room for half a ring.
    pub(crate) fn steal_into(&self, dst: &Local) -> Option<(TaskRef, u32)> {
        let src = &*self.0;
        let dst_inner = &*dst.inner;
        let (dst_steal, _) = unpack(dst_inner.head.load(Ordering::Acquire));
        let dst_tail = dst_inner.tail.load(Ordering::Relaxed);
        if dst_tail.wrapping_sub(dst_steal) > CAPACITY / 2 {
            return None;
        }

        // 1. Claim: move `real` past half of the tasks, leaving `steal` where it is.
        let mut head = src.head.load(Ordering::Acquire);
        let (first, n) = loop {
            let (steal, real) = unpack(head);
            if steal != real {
                return None;
            }
            let available = src.tail.load(Ordering::Acquire).wrapping_sub(real);
            let n = available - available / 2;
            if n == 0 {
                return None;
            }
            let next = pack(steal, real.wrapping_add(n));
            match src
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (real, n),
                Err(actual) => head = actual,
            }
        };

        // 2. Copy the claimed tasks to the free slots after `dst`'s tail (its owner is this
        //    thread; nobody reads them before `dst`'s tail moves).
        for i in 0..n {
            // SAFETY: position `first + i` was claimed above; the source's owner does not write
            // into claimed slots, and `dst`'s slots past its tail are free (checked for room).
            unsafe {
                let task = src.take(first.wrapping_add(i));
                dst_inner.put(dst_tail.wrapping_add(i), task);
            }
        }

        // 3. Release the claim: `steal` catches up with `real` (which the owner may have moved
        //    on by popping meanwhile).
        let mut head = src.head.load(Ordering::Acquire);
        loop {
            let (_, real) = unpack(head);
            match src.head.compare_exchange(
                head,
                pack(real, real),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }

        // Run the last one now; publish the others in `dst`.
        let last = dst_tail.wrapping_add(n - 1);
        // SAFETY: written just above by this thread, not yet published.
        let task = unsafe { dst_inner.take(last) };
        if n > 1 {
            dst_inner.tail.store(last, Ordering::Release);
        }
        Some((task, n))
    }

    /// Whether the queue looks empty (it may change at once).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Tasks in the queue, as of this look.
    pub(crate) fn len(&self) -> usize {
        self.0.len() as usize
    }
}

impl Drop for Local {
    /// Drops the tasks still queued. The worker empties its queue at shutdown, so this only
    /// runs on a panic path.
    fn drop(&mut self) {
        while let Some(task) = self.pop() {
            drop(task);
        }
    }
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").field("len", &self.len()).finish()
    }
}

impl std::fmt::Debug for Steal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steal").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::task;

    #[test]
    fn the_owner_pops_in_order_and_a_full_ring_moves_half_to_the_inject_queue() {
        let (local, _steal) = new();
        let inject = Inject::default();
        for id in 0..u64::from(CAPACITY) + 1 {
            local.push_back(task(id), &inject);
        }
        // The oldest half and the task that did not fit went to the inject queue.
        assert_eq!(local.len(), CAPACITY as usize / 2);
        let mut overflowed = Vec::new();
        while let Some(t) = inject.pop() {
            overflowed.push(t.id());
        }
        let expected: Vec<u64> = (0..u64::from(CAPACITY) / 2)
            .chain([u64::from(CAPACITY)])
            .collect();
        assert_eq!(overflowed, expected);
        let popped: Vec<u64> = std::iter::from_fn(|| local.pop()).map(|t| t.id()).collect();
        let expected: Vec<u64> = (u64::from(CAPACITY) / 2..u64::from(CAPACITY)).collect();
        assert_eq!(popped, expected);
    }

    #[test]
    fn a_steal_takes_half_rounded_up_and_returns_one_to_run() {
        let (victim, steal) = new();
        let (thief, _) = new();
        let inject = Inject::default();
        for id in 0..5 {
            victim.push_back(task(id), &inject);
        }
        let (first, taken) = steal.steal_into(&thief).expect("a task to run");
        assert_eq!(taken, 3);
        assert_eq!(
            first.id(),
            2,
            "three were taken (0, 1, 2); the last one runs"
        );
        assert_eq!(thief.len(), 2);
        assert_eq!(victim.len(), 2);
        assert_eq!(thief.pop().map(|t| t.id()), Some(0));
        assert_eq!(victim.pop().map(|t| t.id()), Some(3));
    }

    /// The owner pushes and pops while three threads steal, round after round: every task is
    /// taken exactly once.
    #[test]
    fn every_task_is_taken_once_while_the_owner_races_the_stealers() {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        const TASKS: u64 = 20_000;
        let (owner, steal) = new();
        let inject = Arc::new(Inject::default());
        let seen: Arc<Vec<AtomicUsize>> =
            Arc::new((0..TASKS).map(|_| AtomicUsize::new(0)).collect());
        let done = Arc::new(AtomicBool::new(false));
        let thieves: Vec<_> = (0..3)
            .map(|_| {
                let (steal, seen, done) = (steal.clone(), seen.clone(), done.clone());
                std::thread::spawn(move || {
                    let (mine, _) = new();
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        if let Some((t, _)) = steal.steal_into(&mine) {
                            seen[t.id() as usize].fetch_add(1, Ordering::Relaxed);
                        }
                        while let Some(t) = mine.pop() {
                            seen[t.id() as usize].fetch_add(1, Ordering::Relaxed);
                        }
                        if finished && steal.is_empty() {
                            break;
                        }
                    }
                })
            })
            .collect();
        for id in 0..TASKS {
            owner.push_back(task(id), &inject);
            if id % 3 == 0 {
                if let Some(t) = owner.pop() {
                    seen[t.id() as usize].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        while let Some(t) = owner.pop() {
            seen[t.id() as usize].fetch_add(1, Ordering::Relaxed);
        }
        done.store(true, Ordering::Release);
        for thief in thieves {
            thief.join().unwrap();
        }
        while let Some(t) = inject.pop() {
            seen[t.id() as usize].fetch_add(1, Ordering::Relaxed);
        }
        let wrong: Vec<usize> = (0..TASKS as usize)
            .filter(|&i| seen[i].load(Ordering::Relaxed) != 1)
            .collect();
        assert!(wrong.is_empty(), "tasks not taken exactly once: {wrong:?}");
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::sync::atomic::AtomicUsize;
    use crate::loom::thread;
    use crate::testing::task;

    /// Counts each task id taken.
    fn take(seen: &[AtomicUsize], task: TaskRef) {
        seen[task.id() as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A thread that steals once from `steal` into a queue of its own and takes all it got.
    fn steal_all_in_a_thread(steal: Steal, seen: Arc<Vec<AtomicUsize>>) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let (mine, _) = new();
            if let Some((t, _)) = steal.steal_into(&mine) {
                take(&seen, t);
            }
            while let Some(t) = mine.pop() {
                take(&seen, t);
            }
        })
    }

    /// Checks that every task was taken exactly once.
    fn assert_each_taken_once(seen: &[AtomicUsize]) {
        for (id, n) in seen.iter().enumerate() {
            assert_eq!(n.load(Ordering::Relaxed), 1, "task {id}");
        }
    }

    #[test]
    fn loom_a_steal_racing_the_owners_pops_takes_every_task_once() {
        crate::loom::model(|| {
            let (owner, steal) = new();
            let inject = Inject::default();
            for id in 0..3 {
                owner.push_back(task(id), &inject);
            }
            let seen: Arc<Vec<AtomicUsize>> =
                Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
            let thief = steal_all_in_a_thread(steal, seen.clone());
            while let Some(t) = owner.pop() {
                take(&seen, t);
            }
            thief.join().unwrap();
            while let Some(t) = owner.pop() {
                take(&seen, t);
            }
            assert_each_taken_once(&seen);
        });
    }

    #[test]
    fn loom_an_overflow_racing_a_steal_loses_and_doubles_no_task() {
        crate::loom::model(|| {
            let (owner, steal) = new();
            let inject = Arc::new(Inject::default());
            let total = CAPACITY as usize + 1;
            for id in 0..CAPACITY {
                owner.push_back(task(u64::from(id)), &inject);
            }
            let seen: Arc<Vec<AtomicUsize>> =
                Arc::new((0..total).map(|_| AtomicUsize::new(0)).collect());
            let thief = steal_all_in_a_thread(steal, seen.clone());
            // The ring is full: this push moves half of it to the inject queue, unless the
            // steal made room first.
            owner.push_back(task(u64::from(CAPACITY)), &inject);
            thief.join().unwrap();
            while let Some(t) = owner.pop() {
                take(&seen, t);
            }
            while let Some(t) = inject.pop() {
                take(&seen, t);
            }
            assert_each_taken_once(&seen);
        });
    }
}
