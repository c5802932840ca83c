//! Signals: `ctrl_c().await`, and a `Signal` stream for any Unix signal.
//!
//! A signal handler may do almost nothing: no lock, no allocation, no waker (it could interrupt
//! the very code that holds the lock). So the handler, installed once per signal for the whole
//! process, does two async-signal-safe things: it counts the delivery in an atomic, and it writes
//! one byte to a socket pair (the "self-pipe"). Each [`Signal`](unix::Signal) holds a duplicate
//! of the pair's read end, registered with its own runtime's reactor, so the write wakes
//! listeners on every runtime of the process. A woken listener empties the socket and compares
//! the count with the last one it saw. Emptying it can swallow the edge another listener's epoll
//! had not collected yet (epoll looks at the socket again when it reports), so whoever empties
//! it also wakes every waiting listener, from a list of wakers kept in ordinary memory (the
//! handler never touches it). Deliveries that come together may merge into one, as with tokio.
//! Installing the handler uses `signal-hook-registry`, which keeps any handler already there.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use ripple_runtime::reactor::Async;

/// Signal numbers the table covers (Linux's go up to 64).
const SIGNALS: usize = 65;

/// What the handlers share with the listeners, for the whole process.
struct Globals {
    /// Written (one byte) by a handler at each delivery; non-blocking.
    sender: UnixStream,
    /// The read end; each listener registers a duplicate of it.
    receiver: UnixStream,
    /// Deliveries of each signal so far, counted by its handler.
    deliveries: [AtomicU64; SIGNALS],
    /// Which signals have a handler installed (under the lock, so that two first listeners
    /// install it once).
    installed: Mutex<[bool; SIGNALS]>,
    /// The listeners waiting for a delivery, of any signal: woken by whoever empties the
    /// socket, since that may take their epoll edge.
    waiting: Mutex<Vec<std::task::Waker>>,
}

/// The process's signal globals, made at first use.
fn globals() -> io::Result<&'static Globals> {
    static GLOBALS: OnceLock<Globals> = OnceLock::new();
    if let Some(globals) = GLOBALS.get() {
        return Ok(globals);
    }
    let (sender, receiver) = UnixStream::pair()?;
    sender.set_nonblocking(true)?;
    receiver.set_nonblocking(true)?;
    // Another thread may have won the race; its pair is the one kept, ours is dropped.
    Ok(GLOBALS.get_or_init(|| Globals {
        sender,
        receiver,
        deliveries: [const { AtomicU64::new(0) }; SIGNALS],
        installed: Mutex::new([false; SIGNALS]),
        waiting: Mutex::new(Vec::new()),
    }))
}

/// Installs the handler of `signum`, once for the process.
fn install(globals: &'static Globals, signum: i32) -> io::Result<()> {
    // signal-hook-registry panics for these: they cannot be caught (KILL, STOP), or a handler
    // that returns from them leaves the program where it faulted.
    const FORBIDDEN: [i32; 5] = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
    ];
    let index = usize::try_from(signum)
        .ok()
        .filter(|&i| i > 0 && i < SIGNALS && !FORBIDDEN.contains(&signum))
        .ok_or_else(|| invalid(signum))?;
    let mut installed = globals
        .installed
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if installed[index] {
        return Ok(());
    }
    let fd = globals.sender.as_raw_fd();
    let action = move || {
        // Only async-signal-safe work here: an atomic add and a write(2). A full socket means
        // listeners have wake-ups pending already; there is nothing to do about an error.
        globals.deliveries[index].fetch_add(1, Ordering::SeqCst);
        // SAFETY: `fd` is the sender of the globals, which live (open) for the whole process;
        // the buffer is one readable byte.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    };
    // SAFETY: `action` is async-signal-safe (see above), and it reads only `'static` data.
    unsafe { signal_hook_registry::register(signum, action) }
        .map_err(|err| io::Error::new(err.kind(), format!("signal {signum}: {err}")))?;
    installed[index] = true;
    Ok(())
}

/// The error for a signal number that cannot be listened to.
fn invalid(signum: i32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("signal {signum} cannot be listened to"),
    )
}

/// Completes when the process receives SIGINT (Ctrl-C in a terminal). From the first call on,
/// SIGINT no longer ends the process by itself: the program decides what to do.
///
/// Fails if the handler cannot be installed, or if the runtime shuts down first.
pub async fn ctrl_c() -> io::Result<()> {
    let mut signal = unix::signal(unix::SignalKind::interrupt())?;
    signal
        .recv()
        .await
        .ok_or_else(|| io::Error::other("the runtime shut down while waiting for ctrl-c"))
}

/// Unix signals by kind, and the [`Signal`](unix::Signal) stream that listens to one.
pub mod unix {
    use super::*;

    /// Which signal to listen to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SignalKind(i32);

    impl SignalKind {
        /// A signal by its number. Listening to SIGKILL, SIGSTOP, SIGILL, SIGFPE or SIGSEGV is
        /// an error from [`signal`].
        pub const fn from_raw(signum: i32) -> SignalKind {
            SignalKind(signum)
        }

        /// The signal's number.
        pub const fn as_raw_value(&self) -> i32 {
            self.0
        }

        /// SIGINT: Ctrl-C in a terminal.
        pub const fn interrupt() -> SignalKind {
            SignalKind(libc::SIGINT)
        }

        /// SIGTERM: the polite request to stop (`kill`, systemd, Kubernetes).
        pub const fn terminate() -> SignalKind {
            SignalKind(libc::SIGTERM)
        }

        /// SIGHUP: the terminal went away, or "reload your configuration".
        pub const fn hangup() -> SignalKind {
            SignalKind(libc::SIGHUP)
        }

        /// SIGQUIT: Ctrl-\\ in a terminal.
        pub const fn quit() -> SignalKind {
            SignalKind(libc::SIGQUIT)
        }

        /// SIGUSR1, free for the program's own use.
        pub const fn user_defined1() -> SignalKind {
            SignalKind(libc::SIGUSR1)
        }

        /// SIGUSR2, free for the program's own use.
        pub const fn user_defined2() -> SignalKind {
            SignalKind(libc::SIGUSR2)
        }

        /// SIGCHLD: a child process ended or stopped.
        pub const fn child() -> SignalKind {
            SignalKind(libc::SIGCHLD)
        }

        /// SIGPIPE: a write to a closed pipe (ripple's sockets never raise it).
        pub const fn pipe() -> SignalKind {
            SignalKind(libc::SIGPIPE)
        }

        /// SIGWINCH: the terminal changed size.
        pub const fn window_change() -> SignalKind {
            SignalKind(libc::SIGWINCH)
        }
    }

    /// A stream of deliveries of one signal, made by [`signal`].
    pub struct Signal {
        /// A duplicate of the self-pipe's read end, registered with this runtime's reactor.
        io: Async<UnixStream>,
        /// The signal's deliveries, counted by its handler.
        deliveries: &'static AtomicU64,
        /// The process's signal globals (the list of waiting listeners).
        globals: &'static Globals,
        /// The count this listener has reported up to.
        seen: u64,
        /// The signal's number.
        signum: i32,
    }

    /// Listens to `kind`: installs its handler (once per process), and returns a stream of its
    /// deliveries from now on. Must be called inside a ripple runtime.
    ///
    /// ```no_run
    /// use ripple_net::signal::unix::{signal, SignalKind};
    ///
    /// ripple_runtime::block_on(async {
    ///     let mut hangups = signal(SignalKind::hangup())?;
    ///     while hangups.recv().await.is_some() {
    ///         println!("reloading the configuration");
    ///     }
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let signum = kind.0;
        let globals = globals()?;
        // Registered first: outside a runtime this fails before any handler changes what the
        // signal does to the process.
        let io = Async::new(globals.receiver.try_clone()?)?;
        install(globals, signum)?;
        let deliveries = &globals.deliveries[signum as usize];
        Ok(Signal {
            io,
            seen: deliveries.load(Ordering::SeqCst),
            deliveries,
            globals,
            signum,
        })
    }

    impl Signal {
        /// Waits for the next delivery. `None` once the runtime this listener was made on has
        /// shut down.
        pub async fn recv(&mut self) -> Option<()> {
            poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// The polling form of [`recv`](Self::recv).
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            loop {
                let now = self.deliveries.load(Ordering::SeqCst);
                if now != self.seen {
                    self.seen = now;
                    return Poll::Ready(Some(()));
                }
                // Nothing new: wait for a byte on the self-pipe. An error here means the
                // runtime has shut down.
                let event = match self.io.poll_read_ready(cx) {
                    Poll::Pending => return self.wait(cx),
                    Poll::Ready(Err(_)) => return Poll::Ready(None),
                    Poll::Ready(Ok(event)) => event,
                };
                // Empty the socket, forget the readiness, and look at the count again: a
                // delivery after this point writes a new byte, which wakes this listener anew.
                let mut sink = [0u8; 64];
                let mut socket = self.io.get_ref();
                let mut emptied = false;
                loop {
                    match socket.read(&mut sink) {
                        Ok(n) if n > 0 => emptied = true,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        _ => break,
                    }
                }
                self.io.clear_readiness(event);
                if emptied {
                    // The bytes taken may have been other listeners' only wake-up.
                    let waiting = std::mem::take(&mut *self.lock_waiting());
                    for waker in waiting {
                        waker.wake();
                    }
                }
            }
        }
    }

    impl Signal {
        /// The waiting listeners, locked.
        fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<std::task::Waker>> {
            self.globals
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        }

        /// Parks: joins the list of waiting listeners (in case another listener empties the
        /// socket before this one's epoll reports it), then looks at the count once more, since
        /// a listener that emptied the socket before this joined the list woke nobody.
        fn wait(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            {
                let mut waiting = self.lock_waiting();
                if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    waiting.push(cx.waker().clone());
                }
            }
            let now = self.deliveries.load(Ordering::SeqCst);
            if now != self.seen {
                self.seen = now;
                return Poll::Ready(Some(()));
            }
            Poll::Pending
        }
    }

    impl fmt::Debug for Signal {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Signal")
                .field("signum", &self.signum)
                .field("seen", &self.seen)
                .finish()
        }
    }
}
