//! `Incoming`: an accept loop that rides out running out of file descriptors.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ripple_runtime::time::sleep;

/// The first pause after a failed `accept`.
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The longest pause between two attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// How long `accept` must keep working for an episode to be over.
const QUIET: Duration = Duration::from_secs(1);

/// The connections of a listener, from [`TcpListener::incoming`](crate::TcpListener::incoming)
/// or [`UnixListener::incoming`](crate::UnixListener::incoming).
///
/// When the process (`EMFILE`) or the system (`ENFILE`) has no file descriptor left, or the
/// kernel no memory for a socket (`ENOBUFS`, `ENOMEM`), `accept` fails, and the connection stays
/// in the listener's backlog. Retrying at once fails again at once: a loop that does so spins a
/// core, and one that logs each failure writes thousands of lines a second. Nor is it a reason to
/// stop serving: the condition ends when some connections close.
///
/// So [`Incoming::accept`] backs off: it sleeps 1 ms, then 2, 4, ... up to 1 s between attempts,
/// and goes back to accepting at full speed after the first success. It writes one line to
/// standard error when such an episode starts and one when it ends, with the number of failed
/// attempts, however long it lasts. An episode is over once `accept` has kept working for a
/// second (the line is written at the first success after that second): a server at its limit
/// flaps (one connection closes, one is accepted, the next accept fails again), and that is one
/// episode, not one per flap. Errors of a single connection (reset or aborted before it
/// was accepted) are skipped by the listener itself; any other error is returned.
///
/// ```no_run
/// # ripple_runtime::block_on(async {
/// let listener = ripple_net::TcpListener::bind("127.0.0.1:8080").await?;
/// let mut incoming = listener.incoming();
/// loop {
///     let (stream, peer) = incoming.accept().await?;
///     ripple_runtime::spawn(async move {
///         // serve `stream`...
///         # drop((stream, peer));
///     });
/// }
/// # std::io::Result::Ok(())
/// # });
/// ```
#[derive(Debug)]
pub struct Incoming<'a, L> {
    /// The listener.
    listener: &'a L,
    /// The episode of failures under way, if any.
    episode: Option<Episode>,
}

/// A run of `accept` failures for want of resources.
#[derive(Debug)]
struct Episode {
    /// When the first failure came.
    since: Instant,
    /// Failed attempts so far.
    failures: u64,
    /// Since when `accept` has worked without a failure, if it has since the last one.
    working_since: Option<Instant>,
    /// The pause before the next attempt.
    pause: Duration,
}

impl Episode {
    /// Writes the episode's last line.
    fn report_end(&self) {
        let lasted = self.working_since.unwrap_or_else(Instant::now) - self.since;
        eprintln!(
            "accept: working again after {} failed attempt(s) in {:.1} s",
            self.failures,
            lasted.as_secs_f64()
        );
    }
}

/// A listener that [`Incoming`] can accept from (sealed: ripple's own listeners).
pub trait Accept: sealed::Sealed {
    /// The accepted connection.
    type Stream;
    /// The peer's address.
    type Addr;
    /// Accepts one connection, or parks the task until one arrives.
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>>;
}

/// The seal of [`Accept`].
mod sealed {
    /// Implemented only for ripple's listeners.
    pub trait Sealed {}
    impl Sealed for crate::TcpListener {}
    impl Sealed for crate::UnixListener {}
}

impl Accept for crate::TcpListener {
    type Stream = crate::TcpStream;
    type Addr = std::net::SocketAddr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>> {
        crate::TcpListener::poll_accept(self, cx)
    }
}

impl Accept for crate::UnixListener {
    type Stream = crate::UnixStream;
    type Addr = std::os::unix::net::SocketAddr;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Stream, Self::Addr)>> {
        crate::UnixListener::poll_accept(self, cx)
    }
}

impl<'a, L: Accept> Incoming<'a, L> {
    /// The connections of `listener`.
    pub(crate) fn new(listener: &'a L) -> Self {
        Incoming {
            listener,
            episode: None,
        }
    }

    /// The next connection, with its peer's address. While there are no resources for it, waits
    /// with growing pauses (see [`Incoming`]) instead of failing. Returns the errors
    /// that are neither a single connection's nor a lack of resources (the listener is broken).
    pub async fn accept(&mut self) -> io::Result<(L::Stream, L::Addr)> {
        loop {
            match poll_fn(|cx| self.listener.poll_accept(cx)).await {
                Ok(accepted) => {
                    if let Some(episode) = &mut self.episode {
                        // Full speed again; the episode is over once failures stay away.
                        episode.pause = FIRST_PAUSE;
                        let working_since = *episode.working_since.get_or_insert_with(Instant::now);
                        if working_since.elapsed() >= QUIET {
                            episode.report_end();
                            self.episode = None;
                        }
                    }
                    return Ok(accepted);
                }
                Err(err) if is_lack_of_resources(&err) => {
                    // Working for a while since the last episode: that one is over.
                    let over = self.episode.as_ref().is_some_and(|e| {
                        e.working_since
                            .is_some_and(|since| since.elapsed() >= QUIET)
                    });
                    if over {
                        if let Some(episode) = self.episode.take() {
                            episode.report_end();
                        }
                    }
                    let episode = self.episode.get_or_insert_with(|| {
                        eprintln!(
                            "accept: {err}; retrying with pauses of up to {} s until \
                             connections close",
                            LONGEST_PAUSE.as_secs()
                        );
                        Episode {
                            since: Instant::now(),
                            failures: 0,
                            working_since: None,
                            pause: FIRST_PAUSE,
                        }
                    });
                    episode.failures += 1;
                    episode.working_since = None;
                    let pause = episode.pause;
                    episode.pause = (pause * 2).min(LONGEST_PAUSE);
                    sleep(pause).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Whether `err` says the process or the system is out of file descriptors or memory.
fn is_lack_of_resources(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    ) || err.kind() == io::ErrorKind::OutOfMemory
}
