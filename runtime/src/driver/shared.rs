//! A driver that several threads take turns to park in.
//!
//! With many worker threads there is still one epoll instance and one set of timers, so only one
//! thread at a time can wait in them. Whoever parks first and finds the driver free takes it
//! and blocks in epoll; the others sleep on a condition variable of their own. This is the
//! seeds' Tomcat Poller, chosen afresh at every park: any worker may be the Poller this time.
//!
//! Waking a parked thread ([`Unparker::unpark`]) must reach it wherever it sleeps, so each
//! thread's [`Parker`] keeps a state word saying where that is: in the driver (then the unpark
//! is an eventfd write that makes epoll return), on its condvar (a notify), or nowhere (then the
//! unpark is remembered and its next park returns at once). Timers stay correct because they
//! belong to the driver, not to a thread: their alarm is a timerfd in the driver's epoll, set
//! for the earliest deadline of every thread's sleeps, so whoever waits there is woken when it
//! rings (`time/mod.rs`).

use std::io;
use std::sync::{Arc, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use super::{Driver, Handle, Local};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Condvar, Mutex};
use crate::metrics::LocalCounters;

/// The thread is running (or about to park): an unpark now is remembered as `NOTIFIED`.
const EMPTY: usize = 0;
/// The thread sleeps on its condvar.
const PARKED_CONDVAR: usize = 1;
/// The thread holds the driver and waits in epoll.
const PARKED_DRIVER: usize = 2;
/// An unpark came; the thread's next park (or its current one) returns.
const NOTIFIED: usize = 3;

/// A driver shared by several threads.
#[derive(Debug)]
pub(crate) struct SharedDriver {
    /// The driver; a thread that finds it locked parks on its condvar instead.
    driver: Mutex<Driver>,
    /// Its shared half, for unparking whoever holds it.
    handle: Handle,
}

/// One thread's way to park in a [`SharedDriver`].
#[derive(Debug)]
pub(crate) struct Parker {
    /// Where this thread sleeps, shared with its unparkers.
    inner: Arc<Inner>,
    /// The driver it takes turns in.
    shared: Arc<SharedDriver>,
}

/// Wakes the thread of one [`Parker`], from any thread.
#[derive(Debug, Clone)]
pub(crate) struct Unparker {
    /// Where that thread sleeps.
    inner: Arc<Inner>,
    /// The driver, to wake it there.
    shared: Arc<SharedDriver>,
}

/// What a parker and its unparkers share.
#[derive(Debug, Default)]
struct Inner {
    /// `EMPTY`, `PARKED_CONDVAR`, `PARKED_DRIVER` or `NOTIFIED`.
    state: AtomicUsize,
    /// Held while the thread checks `state` and goes to sleep on `condvar`, and by an unparker
    /// just before it notifies, so that the notify cannot fall between the two.
    mutex: Mutex<()>,
    /// Where the thread sleeps while another holds the driver.
    condvar: Condvar,
}

/// How a [`Parker::park`] ended up waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParkedIn {
    /// It held the driver and waited in epoll.
    Driver,
    /// Another thread held the driver: it waited on its condvar (or, for a zero timeout, not at
    /// all).
    Condvar,
    /// An unpark had come already: it did not wait.
    Notified,
}

impl SharedDriver {
    /// Shares `driver` between threads.
    pub(crate) fn new(driver: Driver) -> Arc<SharedDriver> {
        let handle = driver.handle().clone();
        Arc::new(SharedDriver {
            driver: Mutex::new(driver),
            handle,
        })
    }

    /// A parker for one thread, and the unparker that wakes it.
    pub(crate) fn parker(self: &Arc<Self>) -> (Parker, Unparker) {
        let inner = Arc::new(Inner::default());
        let parker = Parker {
            inner: inner.clone(),
            shared: self.clone(),
        };
        let unparker = Unparker {
            inner,
            shared: self.clone(),
        };
        (parker, unparker)
    }
}

impl Parker {
    /// Waits until unparked, or until I/O or a timer wakes the driver, or at most `timeout`
    /// (`None`: no limit; zero: only look), in the driver if it is free and on this thread's
    /// condvar otherwise. `local` and `counters` are this thread's, as for [`Driver::park`].
    pub(crate) fn park(
        &self,
        local: &Local,
        timeout: Option<Duration>,
        counters: &LocalCounters,
    ) -> io::Result<ParkedIn> {
        let state = &self.inner.state;
        // An unpark that came while this thread was running: consume it instead of sleeping.
        if state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Ok(ParkedIn::Notified);
        }
        match self.shared.driver.try_lock() {
            Ok(mut driver) => self.park_driver(&mut driver, local, timeout, counters),
            Err(TryLockError::Poisoned(poisoned)) => {
                self.park_driver(&mut poisoned.into_inner(), local, timeout, counters)
            }
            Err(TryLockError::WouldBlock) => Ok(self.park_condvar(local, timeout)),
        }
    }

    /// Parks in the driver, which this thread holds.
    fn park_driver(
        &self,
        driver: &mut Driver,
        local: &Local,
        timeout: Option<Duration>,
        counters: &LocalCounters,
    ) -> io::Result<ParkedIn> {
        let state = &self.inner.state;
        if let Err(actual) =
            state.compare_exchange(EMPTY, PARKED_DRIVER, Ordering::SeqCst, Ordering::SeqCst)
        {
            // Only an unparker changes the state of a running thread: to NOTIFIED.
            debug_assert_eq!(actual, NOTIFIED);
            state.store(EMPTY, Ordering::SeqCst);
            return Ok(ParkedIn::Notified);
        }
        // An unpark from here on writes the driver's eventfd, which makes this wait return
        // even if it comes before the wait begins.
        let parked = driver.park(local, timeout, counters);
        // An unpark that came during the wait (NOTIFIED) has done its job: the thread is awake.
        state.swap(EMPTY, Ordering::SeqCst);
        parked.map(|()| ParkedIn::Driver)
    }

    /// Sleeps on this thread's condvar while another thread holds the driver.
    fn park_condvar(&self, local: &Local, timeout: Option<Duration>) -> ParkedIn {
        // The thread in the driver re-checks drained sources before it waits; ours must not sit
        // here while this one sleeps.
        local.io.flush_drained();
        if timeout == Some(Duration::ZERO) {
            return ParkedIn::Condvar;
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let state = &self.inner.state;
        let mut guard = self
            .inner
            .mutex
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state
            .compare_exchange(EMPTY, PARKED_CONDVAR, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            state.store(EMPTY, Ordering::SeqCst);
            return ParkedIn::Notified;
        }
        loop {
            guard = match deadline {
                None => self
                    .inner
                    .condvar
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    self.inner
                        .condvar
                        .wait_timeout(guard, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            // Woken by an unpark, or timed out; anything else is spurious.
            let unparked = state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if unparked || deadline.is_some_and(|d| Instant::now() >= d) {
                state.store(EMPTY, Ordering::SeqCst);
                return ParkedIn::Condvar;
            }
        }
    }
}

impl Unparker {
    /// Wakes the parker's thread wherever it sleeps; if it is running, its next park returns at
    /// once.
    pub(crate) fn unpark(&self) {
        match self.inner.state.swap(NOTIFIED, Ordering::SeqCst) {
            EMPTY | NOTIFIED => {}
            PARKED_CONDVAR => {
                // Take the lock the sleeper holds between its state check and its wait, so that
                // the notify cannot come in between and be lost.
                drop(
                    self.inner
                        .mutex
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                );
                self.inner.condvar.notify_one();
            }
            PARKED_DRIVER => self.shared.handle.unpark(),
            other => unreachable!("a parker's state is never {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Interest;
    use std::future::Future;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::pin::pin;
    use std::sync::mpsc;
    use std::task::{Context, Poll};

    use crate::testing::Count;

    /// A thread that parks in the shared driver each time it is told to, and reports how.
    struct Worker {
        /// Tells it to park once more.
        go: mpsc::Sender<()>,
        /// Its parks' outcomes.
        parked: mpsc::Receiver<ParkedIn>,
        /// Wakes it.
        unparker: Unparker,
        /// Where it sleeps.
        inner: Arc<Inner>,
    }

    impl Worker {
        fn start(shared: &Arc<SharedDriver>) -> Worker {
            let (parker, unparker) = shared.parker();
            let inner = parker.inner.clone();
            let local = shared.handle.local();
            let (go, go_rx) = mpsc::channel::<()>();
            let (parked_tx, parked) = mpsc::channel();
            std::thread::spawn(move || {
                let counters = LocalCounters::default();
                for () in go_rx {
                    let how = parker.park(&local, None, &counters).expect("park");
                    if parked_tx.send(how).is_err() {
                        break;
                    }
                }
            });
            Worker {
                go,
                parked,
                unparker,
                inner,
            }
        }

        /// Tells it to park, and waits until it sleeps in `state` (in the driver, it may not
        /// have reached `epoll_wait` yet: an alarm or an unpark from now on still ends that
        /// wait, since both are edges in the epoll instance).
        fn park_in(&self, state: usize) {
            self.go.send(()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let asleep = || self.inner.state.load(Ordering::SeqCst) == state;
            while !asleep() {
                assert!(
                    Instant::now() < deadline,
                    "the worker never parked in {state}"
                );
                std::thread::yield_now();
            }
        }

        /// Waits for its current park to end; returns how it parked.
        fn returned(&self) -> ParkedIn {
            self.parked
                .recv_timeout(Duration::from_secs(5))
                .expect("the park never returned: a wake-up was lost")
        }
    }

    /// Waits (at most 5 s) for `count` to reach `n`.
    fn wait_for(count: &Count, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while count.get() < n {
            assert!(Instant::now() < deadline, "{what} was lost");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "builds an epoll instance, which Miri cannot run")]
    fn two_threads_take_turns_in_the_driver_and_lose_no_event_timer_or_unpark() -> io::Result<()> {
        let shared = SharedDriver::new(Driver::new(crate::trace::Tracer::default())?);
        let (one, two) = (Worker::start(&shared), Worker::start(&shared));

        // A source with a task parked on it. Its first edge (writable, reported when it is
        // added) is taken by a look that does not block, before any worker parks.
        let (a, mut b) = UnixStream::pair()?;
        a.set_nonblocking(true)?;
        // SAFETY: `a` outlives its registration (deleted at the end of the test).
        let (source, _) = unsafe { shared.handle.io.add(a.as_fd())? };
        let local = shared.handle.local();
        let counters = LocalCounters::default();
        shared
            .driver
            .lock()
            .unwrap()
            .park(&local, Some(Duration::ZERO), &counters)?;
        let reader = Arc::new(Count::default());
        let waker = futures_task::waker(reader.clone());
        let mut cx = Context::from_waker(&waker);
        if let Poll::Ready(Ok(event)) = source.poll_ready(&mut cx, Interest::Read) {
            source.clear_readiness(event);
        }
        assert!(source.poll_ready(&mut cx, Interest::Read).is_pending());

        // One holds the driver, two waits on its condvar. An I/O event reaches the parked task.
        one.park_in(PARKED_DRIVER);
        two.park_in(PARKED_CONDVAR);
        b.write_all(b"x")?;
        assert_eq!(one.returned(), ParkedIn::Driver);
        wait_for(&reader, 1, "the I/O event");

        // Swap: two, unparked from its condvar, takes the driver; one waits on its condvar.
        two.unparker.unpark();
        assert_eq!(two.returned(), ParkedIn::Condvar);
        two.park_in(PARKED_DRIVER);
        one.park_in(PARKED_CONDVAR);

        // A sleep registered by a third thread sets the alarm, which ends the (unbounded) wait
        // of two when the deadline comes; that park fires it.
        let sleeper = Arc::new(Count::default());
        let sleep_waker = futures_task::waker(sleeper.clone());
        let start = Instant::now();
        let mut sleep = pin!(crate::time::sleep(Duration::from_millis(50)));
        let polled = local.enter(|| sleep.as_mut().poll(&mut Context::from_waker(&sleep_waker)));
        assert!(polled.is_pending());
        assert_eq!(two.returned(), ParkedIn::Driver, "the alarm woke two");
        wait_for(&sleeper, 1, "the timer");
        assert!(start.elapsed() >= Duration::from_millis(50));

        // Unparks reach each thread where it sleeps, and one that comes first is kept.
        one.unparker.unpark();
        assert_eq!(one.returned(), ParkedIn::Condvar);
        two.park_in(PARKED_DRIVER);
        two.unparker.unpark();
        assert_eq!(two.returned(), ParkedIn::Driver);
        one.unparker.unpark();
        one.go.send(()).unwrap();
        assert_eq!(one.returned(), ParkedIn::Notified);

        shared.handle.io.delete(Some(a.as_fd()), &source)?;
        Ok(())
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::loom::thread;

    #[test]
    fn loom_an_unpark_racing_a_park_on_the_condvar_is_never_lost() {
        crate::loom::model(|| {
            let shared =
                SharedDriver::new(Driver::new(crate::trace::Tracer::default()).expect("epoll"));
            let (parker, unparker) = shared.parker();
            let local = shared.handle.local();
            // Another thread holds the driver: the parker must sleep on its condvar.
            let held = shared.driver.lock().unwrap();
            let sleeper = thread::spawn(move || {
                let counters = LocalCounters::default();
                parker.park(&local, None, &counters).expect("park")
            });
            unparker.unpark();
            // If the unpark were lost, the sleeper would never return and loom would report
            // every thread blocked.
            let how = sleeper.join().unwrap();
            assert_ne!(how, ParkedIn::Driver);
            drop(held);
        });
    }
}
