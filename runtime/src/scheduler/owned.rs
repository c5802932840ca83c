//! The owned-task registry: every live task of a scheduler, so that shutdown can reach them.
//!
//! A run queue knows only the tasks that are runnable. A task parked on a socket, a timer or a
//! channel is held by whatever will wake it, and by nothing the runtime can see. Yet dropping a
//! runtime must drop every task's future, so that its destructors run and its sockets close.
//! So every task is recorded here when it is spawned, and removed when it completes.
//!
//! The registry belongs to the thread that spawns (its slab needs no lock), but with several
//! worker threads a task may complete on another one: a worker that stole it. (On the
//! current-thread scheduler every task runs on the owner's thread.) That thread cannot touch the
//! slab; it leaves the task's slot number in a shared list instead, which the owner applies at
//! its next park ([`OwnedTasks::apply_released`]).

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use crate::loom::sync::atomic::AtomicBool;
use crate::loom::sync::Mutex;
use crate::slab::Slab;
use crate::task_core::{Runnable, TaskRef, NOT_OWNED};

/// A task's `owned_index` holds its owner's number above this bit and its slot below.
const OWNER_SHIFT: u32 = 32;

/// The owner thread's half: the slab of live tasks.
#[derive(Debug)]
pub(crate) struct OwnedTasks {
    /// Every live task, by slot. A task's `owned_index` names its slot and this registry's
    /// owner (see [`owner_of`]).
    tasks: RefCell<Slab<TaskRef>>,
    /// Which registry of its runtime this is: the worker's number (0 on the current-thread
    /// scheduler, which has one).
    owner: usize,
}

/// The half that any thread may reach: slots of tasks that completed off the owner's thread.
#[derive(Debug, Default)]
pub(crate) struct Released {
    /// The slots to free.
    slots: Mutex<Vec<usize>>,
    /// Whether `slots` may hold entries, so that the owner looks at the lock only then.
    pending: AtomicBool,
}

impl OwnedTasks {
    /// The empty registry of owner number `owner`.
    pub(crate) fn new(owner: usize) -> OwnedTasks {
        OwnedTasks {
            tasks: RefCell::new(Slab::new()),
            owner,
        }
    }

    /// Records `task`.
    pub(crate) fn insert(&self, task: &TaskRef) {
        let slot = self.tasks.borrow_mut().insert(task.clone());
        debug_assert!(slot >> OWNER_SHIFT == 0, "a slab of 2^32 tasks");
        task.owned_index()
            .store(slot | self.owner << OWNER_SHIFT, Ordering::Relaxed);
    }

    /// Whether `task` is recorded here already (a task spawned from another thread is recorded
    /// when the owner first takes it from the inject queue).
    pub(crate) fn contains(&self, task: &TaskRef) -> bool {
        task.owned_index().load(Ordering::Relaxed) != NOT_OWNED
    }

    /// Frees `slot`, which a completed task held (see [`take_slot`]), on the owner's thread.
    #[inline]
    pub(crate) fn remove(&self, slot: usize) {
        // Bind the removed reference so it drops after the borrow ends: dropping a task can run
        // user code that spawns.
        let removed = self.tasks.borrow_mut().remove(slot & SLOT_MASK);
        drop(removed);
    }

    /// Frees the slots that other threads released since the last call.
    #[inline]
    pub(crate) fn apply_released(&self, released: &Released) {
        if released.pending.load(Ordering::Acquire) {
            self.free_released(released);
        }
    }

    /// The rare half of `apply_released`.
    #[cold]
    fn free_released(&self, released: &Released) {
        let slots = std::mem::take(&mut *released.lock());
        released.pending.store(false, Ordering::Release);
        let removed: Vec<_> = {
            let mut tasks = self.tasks.borrow_mut();
            slots
                .into_iter()
                .filter_map(|i| tasks.remove(i & SLOT_MASK))
                .collect()
        };
        drop(removed);
    }

    /// Takes every task out, for shutdown. Slots released meanwhile by other threads are
    /// forgotten: they name slots of the slab being emptied, which new tasks may reuse.
    pub(crate) fn drain(&self, released: &Released) -> Vec<TaskRef> {
        released.lock().clear();
        let tasks = self.tasks.borrow_mut().drain();
        for task in &tasks {
            task.owned_index().store(NOT_OWNED, Ordering::Relaxed);
        }
        tasks
    }

    /// How many tasks are live.
    pub(crate) fn len(&self) -> usize {
        self.tasks.borrow().len()
    }
}

/// The slot part of an `owned_index`.
const SLOT_MASK: usize = (1 << OWNER_SHIFT) - 1;

/// Which registry (the owner's number) a slot taken by [`take_slot`] belongs to.
#[inline]
pub(crate) fn owner_of(slot: usize) -> usize {
    slot >> OWNER_SHIFT
}

/// Takes the registry slot of `task`, which has completed, if it still has one: whoever takes it
/// frees it, with [`OwnedTasks::remove`] on the owner's thread or [`Released::push`] elsewhere.
#[inline]
pub(crate) fn take_slot(task: &dyn Runnable) -> Option<usize> {
    let slot = task.owned_index().swap(NOT_OWNED, Ordering::Relaxed);
    (slot != NOT_OWNED).then_some(slot)
}

impl Released {
    /// Frees `slot`, which a task that completed on a thread that does not own the registry
    /// held (see [`take_slot`]), at the owner's next [`OwnedTasks::apply_released`].
    #[cold]
    pub(crate) fn push(&self, slot: usize) {
        self.lock().push(slot);
        self.pending.store(true, Ordering::Release);
    }

    /// The list, locked; a poisoned lock is taken as it is (each change is one `Vec` call).
    fn lock(&self) -> crate::loom::sync::MutexGuard<'_, Vec<usize>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task_core::{new_task, Schedule};
    use std::sync::Arc;

    /// A scheduler that releases into a shared list, as one whose task ran on another thread.
    #[derive(Default)]
    struct Elsewhere(Released);

    impl Schedule for Arc<Elsewhere> {
        fn schedule(&self, _: TaskRef) {}
        fn is_local(&self) -> bool {
            false
        }
        fn schedule_local(_: TaskRef) {}
        fn release(&self, task: &dyn Runnable) {
            if let Some(slot) = take_slot(task) {
                self.0.push(slot);
            }
        }
    }

    #[test]
    fn a_task_that_completes_on_another_thread_leaves_the_registry_at_the_next_park() {
        let owned = OwnedTasks::new(0);
        let scheduler = Arc::new(Elsewhere::default());
        let (task, handle) = new_task(async { 7 }, scheduler.clone(), 1);
        owned.insert(&task);
        assert_eq!(owned.len(), 1);
        let weak = Arc::downgrade(&task);
        // Run (and so complete and release) the task on another thread.
        std::thread::spawn(move || {
            task.run();
        })
        .join()
        .unwrap();
        assert_eq!(owned.len(), 1, "the owner has not applied the release yet");
        owned.apply_released(&scheduler.0);
        assert_eq!(owned.len(), 0);
        drop(handle);
        assert!(weak.upgrade().is_none(), "nothing keeps the task alive");
    }
}
