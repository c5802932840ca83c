//! Helpers shared by the unit tests and the loom models: a scheduler that runs nothing, one that
//! keeps its tasks for the test to run, a task of the first, and a waker that counts its wakes.

use std::sync::Arc;

use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::task_core::{new_task, Runnable, Schedule, TaskRef};

/// A scheduler that does nothing with what it is given: for tests that only move tasks around.
#[derive(Debug)]
pub(crate) struct Nowhere;

impl Schedule for Arc<Nowhere> {
    fn schedule(&self, _: TaskRef) {}
    fn is_local(&self) -> bool {
        false
    }
    fn schedule_local(_: TaskRef) {}
    fn release(&self, _: &dyn Runnable) {}
}

/// A scheduler that keeps what it is given, for the test or model to run afterwards.
#[derive(Default)]
pub(crate) struct Recorder(pub(crate) crate::loom::sync::Mutex<Vec<TaskRef>>);

impl Recorder {
    /// The tasks queued so far, taken.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn take(&self) -> Vec<TaskRef> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Schedule for Arc<Recorder> {
    fn schedule(&self, task: TaskRef) {
        self.0.lock().unwrap().push(task);
    }
    fn is_local(&self) -> bool {
        false
    }
    fn schedule_local(_: TaskRef) {
        unreachable!("is_local is false")
    }
    fn release(&self, _: &dyn Runnable) {}
}

/// An empty task of [`Nowhere`], numbered `id`.
pub(crate) fn task(id: u64) -> TaskRef {
    new_task(async {}, Arc::new(Nowhere), id).0
}

/// A waker that counts its wakes (with loom's atomic under loom, so that loom sees them).
#[derive(Debug, Default)]
pub(crate) struct Count(AtomicUsize);

impl Count {
    /// Wakes so far.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl futures_task::ArcWake for Count {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}
