//! Which runtime this thread is running: a thread-local pointer that is set for a scope.
//!
//! Code deep inside a task needs to find the runtime it runs on without being handed it: a new
//! socket registers with the reactor of the current runtime (`Async::new`), a sleep with its
//! timers, a `spawn` with its scheduler. Each of those layers keeps its own "current" pointer, a
//! [`Scoped`] in a `thread_local!`, so that no layer has to name the types of the layers above it:
//! the reactor points at a reactor, the scheduler at a scheduler. Entering a runtime (in
//! `block_on`, or on a worker thread) sets all of them for the length of a closure, and puts
//! back whatever was current before when the closure returns or unwinds, so runtimes can nest.
//!
//! Reading a pointer costs one thread-local load, which is why the hot paths (a wake, a short
//! read) can afford it.

use std::cell::Cell;
use std::ptr;
use std::thread::LocalKey;

/// A pointer to a `T` that is current on this thread while a closure given to [`Scoped::set`]
/// runs.
///
/// # Invariant
/// Non-null only while a call of [`Scoped::set`] for that value runs on this thread; that call
/// borrows the value, and restores the previous pointer before it returns (or unwinds), so the
/// pointer never dangles. (A guard object that the caller keeps could be leaked with
/// `mem::forget`, leaving the pointer behind; a closure cannot.)
#[derive(Debug)]
pub(crate) struct Scoped<T> {
    /// The current value, or null.
    current: Cell<*const T>,
}

impl<T: 'static> Scoped<T> {
    /// Nothing is current.
    pub(crate) const fn new() -> Self {
        Scoped {
            current: Cell::new(ptr::null()),
        }
    }

    /// Runs `f` with `value` current on this thread, then makes current again what was before.
    pub(crate) fn set<R>(key: &'static LocalKey<Scoped<T>>, value: &T, f: impl FnOnce() -> R) -> R {
        /// Puts back the previous pointer, also when `f` unwinds.
        struct Restore<T: 'static> {
            /// The thread-local `set` changed.
            key: &'static LocalKey<Scoped<T>>,
            /// What was current before.
            prev: *const T,
        }
        impl<T: 'static> Drop for Restore<T> {
            fn drop(&mut self) {
                let prev = self.prev;
                self.key.with(|scoped| scoped.current.set(prev));
            }
        }
        let prev = key.with(|scoped| scoped.current.replace(value));
        let _restore = Restore { key, prev };
        f()
    }

    /// Runs `f` with the value current on this thread, if any.
    #[inline]
    pub(crate) fn with<R>(key: &'static LocalKey<Scoped<T>>, f: impl FnOnce(Option<&T>) -> R) -> R {
        let current = key.with(|scoped| scoped.current.get());
        // SAFETY: by the invariant on `Scoped`, a non-null pointer refers to a value that the
        // enclosing `Enter` guard borrows for at least as long as this call.
        f(unsafe { current.as_ref() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static CURRENT: Scoped<u32> = const { Scoped::new() };
    }

    #[test]
    fn a_nested_scope_restores_the_outer_value_when_it_ends() {
        let (outer, inner) = (1, 2);
        let current = || Scoped::with(&CURRENT, |v| v.copied());
        assert_eq!(current(), None);
        Scoped::set(&CURRENT, &outer, || {
            Scoped::set(&CURRENT, &inner, || assert_eq!(current(), Some(2)));
            assert_eq!(current(), Some(1));
            // A panic inside a scope restores the value around it, too.
            let unwound = std::panic::catch_unwind(|| {
                Scoped::set(&CURRENT, &inner, || panic!("unwinding"));
            });
            assert!(unwound.is_err());
            assert_eq!(current(), Some(1));
        });
        assert_eq!(current(), None);
    }
}
