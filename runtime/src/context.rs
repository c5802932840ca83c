//! Which runtime this thread is running: a thread-local pointer that is set for a scope.
//!
//! Code deep inside a task needs to find the runtime it runs on without being handed it: a new
//! socket registers with the reactor of the current runtime (`Async::new`), a sleep with its
//! timers, a `spawn` with its scheduler. Each of those layers keeps its own "current" pointer, a
//! [`Scoped`] in a `thread_local!`, so that no layer has to name the types of the layers above it:
//! the reactor points at a reactor, the scheduler at a scheduler. Entering a runtime (in
//! `block_on`, or on a worker thread) sets all of them, and the guards put back whatever was
//! current before when the scope ends, so runtimes can nest and unwind.
//!
//! Reading a pointer costs one thread-local load, which is why the hot paths (a wake, a short
//! read) can afford it.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr;
use std::thread::LocalKey;

/// A pointer to a `T` that is current on this thread while an [`Enter`] guard for it lives.
///
/// # Invariant
/// Non-null only while an [`Enter`] guard made by [`Scoped::enter`] for that value is alive on
/// this thread; the guard borrows the value, so the pointer never dangles.
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

    /// Makes `value` current on this thread until the returned guard is dropped.
    pub(crate) fn enter<'a>(key: &'static LocalKey<Scoped<T>>, value: &'a T) -> Enter<'a, T> {
        let prev = key.with(|scoped| scoped.current.replace(value));
        Enter {
            key,
            prev,
            _value: PhantomData,
        }
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

/// Keeps a value current on this thread; puts back the previous one when dropped.
#[derive(Debug)]
pub(crate) struct Enter<'a, T: 'static> {
    /// The thread-local this guard set.
    key: &'static LocalKey<Scoped<T>>,
    /// What was current before.
    prev: *const T,
    /// Ties the guard to the value it made current.
    _value: PhantomData<&'a T>,
}

impl<T: 'static> Drop for Enter<'_, T> {
    fn drop(&mut self) {
        let prev = self.prev;
        self.key.with(|scoped| scoped.current.set(prev));
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
        assert_eq!(Scoped::with(&CURRENT, |v| v.copied()), None);
        let _outer = Scoped::enter(&CURRENT, &outer);
        {
            let _inner = Scoped::enter(&CURRENT, &inner);
            assert_eq!(Scoped::with(&CURRENT, |v| v.copied()), Some(2));
        }
        assert_eq!(Scoped::with(&CURRENT, |v| v.copied()), Some(1));
        drop(_outer);
        assert_eq!(Scoped::with(&CURRENT, |v| v.copied()), None);
    }
}
