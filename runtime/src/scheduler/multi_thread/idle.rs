//! Which workers sleep, which search for work, and whom to wake when work appears.
//!
//! Waking every sleeping worker for every new task would make them all race for it; waking none
//! would leave work waiting while cores idle. The rule, after tokio's: when work appears and no
//! worker is already *searching* (looking through the queues for something to steal), wake one
//! sleeper, which starts out searching. A searcher that finds work stops searching, and if it
//! was the last searcher, wakes another sleeper to carry on: so while there is work, one worker
//! keeps looking, and at most half the workers search at once.
//!
//! Both counts live in one atomic word, so that a worker can change them together, and the
//! sleepers' list behind a lock that is taken only to fall asleep or to wake someone.

use std::sync::PoisonError;

use crate::loom::sync::atomic::{fence, AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};

/// Searching workers are counted in the low bits of the word, workers not asleep above them.
const UNPARKED_SHIFT: u32 = 16;
/// The searching count's bits.
const SEARCHING_MASK: usize = (1 << UNPARKED_SHIFT) - 1;
/// One searching worker, in the word.
const ONE_SEARCHING: usize = 1;
/// One worker not asleep, in the word.
const ONE_UNPARKED: usize = 1 << UNPARKED_SHIFT;

/// How a sleeping worker came to wake up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woke {
    /// Another thread woke it because work appeared: it counts as searching.
    ToSearch,
    /// An event, a timer or a spurious wake-up: it counts as awake, not searching.
    ByItself,
}

/// The idle bookkeeping of one runtime's workers.
#[derive(Debug)]
pub(crate) struct Idle {
    /// Searching workers (low bits) and workers not asleep (high bits).
    state: AtomicUsize,
    /// The workers asleep, by number.
    sleepers: Mutex<Vec<usize>>,
    /// How many workers there are.
    workers: usize,
}

impl Idle {
    /// All `workers` awake, none searching.
    pub(crate) fn new(workers: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(workers * ONE_UNPARKED),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            workers,
        }
    }

    /// The sleepers' list, locked (each change is one `Vec` call, so a poisoned lock is fine).
    fn lock(&self) -> MutexGuard<'_, Vec<usize>> {
        self.sleepers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Work appeared: the worker to wake, if any. `None` when a worker already searches (it will
    /// find the work) or nobody sleeps. The worker returned counts as awake and searching.
    pub(crate) fn worker_to_wake(&self) -> Option<usize> {
        // The caller has just queued work. This fence orders that push before the look at the
        // counts, as the sleeper's fence orders its count change before its look at the queues
        // (`Worker::sleep`): so either the sleeper sees the work, or this sees the sleeper.
        fence(Ordering::SeqCst);
        if self.nobody_to_wake() {
            return None;
        }
        let mut sleepers = self.lock();
        // Look again under the lock: a worker may have woken or started searching.
        if self.nobody_to_wake() {
            return None;
        }
        let worker = sleepers.pop()?;
        self.state
            .fetch_add(ONE_SEARCHING + ONE_UNPARKED, Ordering::SeqCst);
        Some(worker)
    }

    /// Whether waking someone would be useless: a worker searches already, or all are awake.
    fn nobody_to_wake(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        state & SEARCHING_MASK != 0 || state >> UNPARKED_SHIFT >= self.workers
    }

    /// A worker with nothing to run wants to search the others' queues. Allowed while fewer
    /// than half the workers search; returns whether it may.
    pub(crate) fn start_searching(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        if 2 * (state & SEARCHING_MASK) >= self.workers {
            return false;
        }
        self.state.fetch_add(ONE_SEARCHING, Ordering::SeqCst);
        true
    }

    /// A searching worker found work (or gave up). Returns whether it was the last searcher,
    /// in which case it should wake another sleeper to keep looking.
    pub(crate) fn stop_searching(&self) -> bool {
        let prev = self.state.fetch_sub(ONE_SEARCHING, Ordering::SeqCst);
        prev & SEARCHING_MASK == 1
    }

    /// Worker `worker` goes to sleep (searching or not). Returns whether it was the last
    /// searcher: then it must look at every queue once more before it sleeps, because work that
    /// appeared just before may have found a searcher (this one) and woken nobody.
    pub(crate) fn sleep(&self, worker: usize, searching: bool) -> bool {
        let mut sleepers = self.lock();
        let leaving = ONE_UNPARKED + if searching { ONE_SEARCHING } else { 0 };
        let prev = self.state.fetch_sub(leaving, Ordering::SeqCst);
        sleepers.push(worker);
        searching && prev & SEARCHING_MASK == 1
    }

    /// Worker `worker` woke up: says whether someone woke it to search (then
    /// [`Idle::worker_to_wake`] already took it off the list and counted it as searching), or it
    /// woke by itself (an I/O event, a timer: it is taken off the list here, and counts as awake,
    /// not searching).
    pub(crate) fn woke(&self, worker: usize) -> Woke {
        let mut sleepers = self.lock();
        match sleepers.iter().position(|&w| w == worker) {
            Some(at) => {
                sleepers.swap_remove(at);
                self.state.fetch_add(ONE_UNPARKED, Ordering::SeqCst);
                Woke::ByItself
            }
            None => Woke::ToSearch,
        }
    }

    /// Whether worker `worker` is asleep.
    #[cfg(test)]
    pub(crate) fn is_asleep(&self, worker: usize) -> bool {
        self.lock().contains(&worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_wakes_one_sleeper_and_a_searcher_keeps_the_others_asleep() {
        let idle = Idle::new(4);
        // Workers 1, 2 and 3 go to sleep; worker 0 runs.
        for w in 1..4 {
            assert!(!idle.sleep(w, false));
        }
        let woken = idle.worker_to_wake().expect("a sleeper");
        assert_eq!(idle.worker_to_wake(), None, "one searcher is enough");
        assert_eq!(idle.woke(woken), Woke::ToSearch);
        assert!(idle.stop_searching(), "it was the last searcher");
        assert!(
            idle.worker_to_wake().is_some(),
            "so another one may be woken"
        );
    }

    #[test]
    fn a_worker_that_wakes_by_itself_leaves_the_list_and_searches_only_if_allowed() {
        let idle = Idle::new(2);
        assert!(!idle.sleep(1, false));
        assert!(idle.is_asleep(1));
        assert_eq!(idle.woke(1), Woke::ByItself, "nobody woke it: an event did");
        assert!(!idle.is_asleep(1));
        assert!(idle.start_searching());
        assert!(
            !idle.start_searching(),
            "at most half of two workers search"
        );
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::thread;
    use crate::scheduler::inject::Inject;
    use crate::scheduler::multi_thread::queue;
    use crate::task_core::new_task;
    use crate::testing::Nowhere;
    use std::sync::Arc;

    #[test]
    fn loom_work_pushed_while_the_last_searcher_falls_asleep_is_never_stranded() {
        crate::loom::model(|| {
            let idle = Arc::new(Idle::new(1));
            let inject = Arc::new(Inject::default());
            assert!(idle.start_searching());
            // Another thread queues a task and wakes a worker if none searches.
            let pusher = {
                let (idle, inject) = (idle.clone(), inject.clone());
                thread::spawn(move || {
                    let task = new_task(async {}, Arc::new(Nowhere), 1).0;
                    assert!(inject.push(task));
                    idle.worker_to_wake()
                })
            };
            // The only worker found nothing and goes to sleep; as the last searcher it looks
            // at the queue once more (as `Worker::sleep` does).
            let last = idle.sleep(0, true);
            crate::loom::sync::atomic::fence(Ordering::SeqCst);
            let found = last && !inject.is_empty();
            let woken = pusher.join().unwrap();
            assert!(
                found || woken == Some(0),
                "the task waits in the queue while its only worker sleeps"
            );
        });
    }

    /// The same race as the model above, but with the push a busy worker makes for a task it
    /// spawns or wakes (`Worker::spawn`): onto its own ring, not the inject queue. The ring's
    /// tail is a plain release store, so only the two `SeqCst` fences (the pusher's in
    /// `Idle::worker_to_wake`, the sleeper's in `Worker::sleep`) keep the sleeper from missing
    /// the task while the pusher misses the sleeper.
    #[test]
    fn loom_work_pushed_onto_a_workers_own_ring_as_the_last_searcher_sleeps_is_never_stranded() {
        crate::loom::model(|| {
            // Worker 0 runs a task; worker 1 is the only searcher.
            let idle = Arc::new(Idle::new(2));
            let inject = Arc::new(Inject::default());
            let (local, steal) = queue::new();
            assert!(idle.start_searching());
            // Worker 0 queues a task on its own ring, then wakes a worker if none searches.
            let pusher = {
                let (idle, inject) = (idle.clone(), inject.clone());
                thread::spawn(move || {
                    local.push_back(new_task(async {}, Arc::new(Nowhere), 1).0, &inject);
                    // The ring comes back with the answer: dropping it here would pop the task
                    // while the sleeper looks, a race that is not the one modelled.
                    (idle.worker_to_wake(), local)
                })
            };
            // Worker 1 found nothing and goes to sleep; as the last searcher it looks once more
            // at every queue, its sibling's ring included (as `Worker::sleep` does).
            let last = idle.sleep(1, true);
            crate::loom::sync::atomic::fence(Ordering::SeqCst);
            let found = last && (!steal.is_empty() || !inject.is_empty());
            let (woken, _local) = pusher.join().expect("the pusher does not panic");
            assert!(
                found || woken == Some(1),
                "the task waits on a busy worker's ring while the only other worker sleeps"
            );
        });
    }
}
