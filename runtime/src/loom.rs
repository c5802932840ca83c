//! The synchronisation types of the cross-thread protocols: std's normally, loom's under
//! `--cfg loom`.
//!
//! [loom](https://docs.rs/loom) checks concurrent code by running a test under every
//! interleaving of its threads (up to a bound) and every outcome the memory model allows for its
//! atomics. It can only see operations on its own types, so the code whose races matter (the
//! task's state word, the waker slot, the run queues, the parkers) takes its atomics, locks and
//! cells from here. The models themselves are the `loom_*` tests, run by
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test -p ripple-runtime --lib --release loom
//! ```

#[cfg(not(loom))]
pub(crate) mod sync {
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

    /// Atomics.
    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        };
    }
}

#[cfg(loom)]
pub(crate) mod sync {
    pub(crate) use ::loom::sync::{Condvar, Mutex, MutexGuard};

    /// Atomics.
    pub(crate) mod atomic {
        pub(crate) use ::loom::sync::atomic::{
            fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        };
    }
}

/// Under loom, a `SeqCst` fence; otherwise nothing.
///
/// loom treats `SeqCst` loads and stores as `AcqRel`, so it cannot see the single total order
/// that a pair of "store, then load the other's flag" protocols relies on (the waker slot and
/// the readiness word; see `WakerSlot::register`), and reports lost wakes that the real memory
/// model rules out. A `SeqCst` fence, which loom does model, placed between the two accesses
/// gives loom that order back. The real build needs no fence there: its accesses are `SeqCst`.
#[inline(always)]
pub(crate) fn seqcst_order_for_loom() {
    #[cfg(loom)]
    sync::atomic::fence(sync::atomic::Ordering::SeqCst);
}

#[cfg(not(loom))]
pub(crate) mod cell {
    /// `std::cell::UnsafeCell` with loom's interface: access through a closure, so that loom can
    /// see each access (and std compiles it to the plain pointer).
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A cell holding `value`.
        pub(crate) fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a pointer to read through.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with a pointer to write through.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

#[cfg(loom)]
pub(crate) use ::loom::cell;

/// Runs `f` under loom's model checker (under `--cfg loom`), or once (otherwise).
#[cfg(all(test, loom))]
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    ::loom::model(f);
}

/// Spawns a thread: loom's under `--cfg loom`, std's otherwise.
#[cfg(all(test, loom))]
pub(crate) use ::loom::thread;
