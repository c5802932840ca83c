//! The wait itself: `epoll_wait` on the poller's epoll fd, and the eventfd that interrupts it.
//!
//! `polling` adds, modifies and deletes the sources; the driver waits on the same epoll
//! instance with one `epoll_wait(2)` of its own. `polling`'s `Poller::wait` is built for any
//! caller on any OS: around each `epoll_wait` it re-arms a timerfd (for a timeout finer than a
//! millisecond) and its notification eventfd, five syscalls per wait where one will do. A
//! runtime parks thousands of times a second under load, so the driver pays that price once,
//! here, instead: the timeout is given to `epoll_wait` in milliseconds (rounded up, so a timer
//! is never early; tokio's timers have the same resolution), and the wake-up is an eventfd of
//! the reactor's own, registered edge-triggered, which is never read: each write is a fresh edge
//! that makes the current or the next wait return.
//!
//! What this relies on from `polling`, which are details of its epoll backend rather than its
//! API (so the workspace pins `polling` to 3.11.x, and a test below checks the first): it stores
//! an event's key as the epoll data of the fd; and its own eventfd and timerfd report under
//! `usize::MAX`, the eventfd only after `Poller::notify` (never called here) and the timerfd only
//! once its own wait has armed it (never called here either).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use polling::{Event, PollMode, Poller};

/// The key of the reactor's own eventfd. Address 0 is no source's (see `key.rs`).
pub(super) const WAKE_KEY: usize = 0;
/// The key of the timers' alarm (a timerfd). Address 1 is no source's either: sources are
/// aligned.
pub(super) const ALARM_KEY: usize = 1;
/// The key `polling` gives its own notifier and timerfd.
const POLLING_KEY: usize = usize::MAX;
/// Events one wait reports at most; the rest wait for the next one.
const CAPACITY: usize = 1024;

/// One reported event: the source's key and its directions. `polling`'s mapping: a hang-up or
/// an error counts as both readable and writable, so both directions wake and find the error in
/// their next read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    /// The key the source was registered under.
    pub(crate) key: usize,
    /// Readable, peer shut down, hung up or failed.
    pub(crate) readable: bool,
    /// Writable, hung up or failed.
    pub(crate) writable: bool,
}

/// epoll's output buffer, reused across waits.
pub(crate) struct Events {
    /// Entries `0..len` were filled by the last wait. Its length never changes: the kernel may
    /// write every entry.
    buffer: Vec<libc::epoll_event>,
    /// How many the last wait filled.
    len: usize,
    /// Whether the last wait reported the alarm.
    alarm: bool,
}

impl Events {
    /// An empty buffer for [`CAPACITY`] events.
    pub(crate) fn new() -> Events {
        Events {
            buffer: vec![libc::epoll_event { events: 0, u64: 0 }; CAPACITY],
            len: 0,
            alarm: false,
        }
    }

    /// Whether the last wait reported the timers' alarm: a deadline has come.
    pub(crate) fn alarm(&self) -> bool {
        self.alarm
    }

    /// How many sources' events the last wait reported.
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// The sources' events of the last wait (the reactor's own wake-ups left out).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Ready> + '_ {
        self.buffer[..self.len].iter().filter_map(|event| {
            // Copied out by value: the struct is packed on x86-64.
            let (flags, key) = (event.events, event.u64 as usize);
            if key == WAKE_KEY || key == ALARM_KEY || key == POLLING_KEY {
                return None;
            }
            let is = |mask: libc::c_int| flags & mask as u32 != 0;
            Some(Ready {
                key,
                readable: is(libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLHUP | libc::EPOLLERR),
                writable: is(libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR),
            })
        })
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("len", &self.len).finish()
    }
}

/// The eventfd that interrupts a wait, and whether it has been written since the last wait.
///
/// # Invariant
/// `notified` is true only while a write to `fd` has been made (or is about to be) that no
/// returned wait has consumed yet: set by the notify that writes, cleared (`SeqCst`) by every
/// wait once `epoll_wait` returns. A notify that finds it set skips its write; that is safe
/// because one thread at a time waits (the driver is owned by one thread, or locked), and a
/// caller re-checks everything a notify may signal (queues, drained sources, flags) after each
/// wait returns: the skipped notify's news is seen either by the wait its predecessor's write
/// ends, or by that re-check.
#[derive(Debug)]
pub(super) struct Wake {
    /// Registered edge-triggered under [`WAKE_KEY`]; never read.
    fd: OwnedFd,
    /// Whether a write is on its way to the current or next wait (see the invariant).
    notified: AtomicBool,
}

/// Takes `raw`, the result of a call that makes a new fd (negative: the call failed), and adds
/// it to `poller` edge-triggered and readable under `key`: the reactor's own eventfd and timerfd,
/// which are never read.
fn own_and_add(poller: &Poller, raw: libc::c_int, key: usize) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `fd` lives in the reactor beside the poller, and is closed (leaving epoll by
    // itself) only when the reactor is dropped.
    unsafe {
        poller.add_with_mode(fd.as_raw_fd(), Event::readable(key), PollMode::Edge)?;
    }
    Ok(fd)
}

impl Wake {
    /// A new eventfd, added to `poller`.
    pub(super) fn new(poller: &Poller) -> io::Result<Wake> {
        // SAFETY: eventfd takes no pointer; a negative result is an error, checked by
        // `own_and_add`.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        let fd = own_and_add(poller, raw, WAKE_KEY)?;
        Ok(Wake {
            fd,
            notified: AtomicBool::new(false),
        })
    }

    /// Makes the current wait return, or the next one if no thread waits now. One write per
    /// wait at most: a wake-up already on its way is enough.
    pub(super) fn notify(&self) {
        if self.notified.swap(true, Ordering::SeqCst) {
            return;
        }
        let one = 1u64.to_ne_bytes();
        loop {
            // SAFETY: `one` is 8 readable bytes, as an eventfd write requires.
            let written = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8) };
            if written == 8 {
                return;
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                // The counter is full (after 2^64 - 2 writes): read it back to zero and write
                // again. A full counter has been readable all along, so no edge is lost.
                io::ErrorKind::WouldBlock => {
                    let mut sink = [0u8; 8];
                    // SAFETY: `sink` is 8 writable bytes, as an eventfd read requires.
                    unsafe { libc::read(self.fd.as_raw_fd(), sink.as_mut_ptr().cast(), 8) };
                }
                // Nothing else can fail on a valid eventfd. Should it, let the next notify try
                // again rather than skip its write for good.
                _ => {
                    self.notified.store(false, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

/// The timers' alarm clock: a timerfd on `CLOCK_MONOTONIC`, registered edge-triggered under
/// [`ALARM_KEY`] and never read. Setting it (`timerfd_settime`) clears its expirations, and each
/// expiry is a fresh edge, so one event comes per alarm set. The kernel keeps the time: a park
/// needs no clock and no timeout for the timers, only the alarm's event when a deadline comes.
#[derive(Debug)]
pub(super) struct Alarm {
    /// The timerfd.
    fd: OwnedFd,
}

impl Alarm {
    /// A new timerfd, unset, added to `poller`.
    pub(super) fn new(poller: &Poller) -> io::Result<Alarm> {
        // SAFETY: timerfd_create takes no pointer; a negative result is an error, checked by
        // `own_and_add`.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        };
        let fd = own_and_add(poller, raw, ALARM_KEY)?;
        Ok(Alarm { fd })
    }

    /// Rings at `at`, nanoseconds on `CLOCK_MONOTONIC` (at once if that has passed), instead of
    /// whenever it was set for.
    pub(super) fn set(&self, at: u64) {
        // Zero would disarm it: the earliest time that still rings is 1 ns.
        let at = at.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (at / 1_000_000_000) as libc::time_t,
                tv_nsec: (at % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for (null). On a
        // valid timerfd with a valid time this cannot fail.
        unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
    }
}

/// Waits on `poller`'s epoll instance at most `timeout` (`None`: no limit; zero: only look),
/// filling `events`. An interrupted wait (a signal) returns no event, as a spurious wake-up.
pub(super) fn wait(
    poller: &Poller,
    wake: &Wake,
    events: &mut Events,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let timeout_ms = match timeout {
        None => -1,
        Some(timeout) => {
            // Rounded up: a wait for a deadline must not return before it. (In `u64`: a `u128`
            // division costs a call on every wait.)
            let ms = timeout
                .as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(timeout.subsec_nanos()).div_ceil(1_000_000));
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    };
    let capacity = libc::c_int::try_from(events.buffer.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: the buffer holds at least `capacity` initialised entries, which the kernel may
    // overwrite; the epoll fd is open for as long as `poller` lives.
    let n = unsafe {
        libc::epoll_wait(
            poller.as_raw_fd(),
            events.buffer.as_mut_ptr(),
            capacity,
            timeout_ms,
        )
    };
    // Whatever woke this wait, a notify from now on must write again. `SeqCst`, with the
    // notify's swap, so that a notify that still sees `true` here happened before this clear,
    // and its news is visible to the caller's re-check.
    wake.notified.store(false, Ordering::SeqCst);
    if n < 0 {
        events.len = 0;
        events.alarm = false;
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::Interrupted => Ok(()),
            _ => Err(err),
        };
    }
    events.len = n as usize;
    events.alarm = events.buffer[..events.len]
        .iter()
        .any(|event| event.u64 as usize == ALARM_KEY);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// The test's poller and wake-up, as a reactor holds them.
    fn poller() -> (Poller, Wake) {
        let poller = Poller::new().expect("poller");
        let wake = Wake::new(&poller).expect("eventfd");
        (poller, wake)
    }

    #[test]
    #[cfg_attr(miri, ignore = "builds an epoll instance, which Miri cannot run")]
    fn a_source_added_through_polling_comes_back_under_its_key() {
        let (poller, wake) = poller();
        let (a, mut b) = UnixStream::pair().expect("socket pair");
        a.set_nonblocking(true).expect("non-blocking");
        let key = 0x7f00_1234_5678;
        // SAFETY: `a` outlives its registration (deleted below).
        unsafe { poller.add_with_mode(a.as_raw_fd(), Event::all(key), PollMode::Edge) }
            .expect("add");
        b.write_all(b"x").expect("write");
        let mut events = Events::new();
        wait(&poller, &wake, &mut events, Some(Duration::from_secs(5))).expect("wait");
        let ready: Vec<_> = events.iter().collect();
        assert_eq!(
            ready,
            [Ready {
                key,
                readable: true,
                writable: true
            }],
            "polling no longer stores the key as the epoll data, or the flags changed"
        );
        drop(b);
        wait(&poller, &wake, &mut events, Some(Duration::from_secs(5))).expect("wait");
        let hung_up: Vec<_> = events.iter().collect();
        assert!(
            hung_up.len() == 1 && hung_up[0].readable,
            "the peer's close is readable: {hung_up:?}"
        );
        poller.delete(&a).expect("delete");
    }

    #[test]
    #[cfg_attr(miri, ignore = "builds an epoll instance, which Miri cannot run")]
    fn a_notify_ends_the_current_or_next_wait_once() {
        let (poller, wake) = poller();
        let mut events = Events::new();
        wake.notify();
        wake.notify();
        wait(&poller, &wake, &mut events, None).expect("the notify before the wait ends it");
        assert_eq!(events.len(), 0, "the wake-up is not a source's event");
        // Both notifies were consumed by that one wait: the next one times out.
        let start = std::time::Instant::now();
        wait(&poller, &wake, &mut events, Some(Duration::from_millis(20))).expect("wait");
        assert!(start.elapsed() >= Duration::from_millis(20), "woke early");
        // And a notify from another thread ends a wait in progress.
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                wake.notify();
            });
            wait(&poller, &wake, &mut events, None).expect("ended by the other thread");
        });
    }

    #[test]
    #[cfg_attr(miri, ignore = "builds an epoll instance, which Miri cannot run")]
    fn a_timeout_is_rounded_up_to_whole_milliseconds() {
        let (poller, wake) = poller();
        let mut events = Events::new();
        let start = std::time::Instant::now();
        wait(
            &poller,
            &wake,
            &mut events,
            Some(Duration::from_micros(1_500)),
        )
        .expect("wait");
        assert!(
            start.elapsed() >= Duration::from_micros(1_500),
            "returned early"
        );
    }
}
