//! The plumbing the journey's servers share, steps 1 to 7, so each step's file holds only its
//! concurrency model.
//!
//! Steps 1 to 4 run *the same* per-connection echo loop, [`echo_blocking`]: a blocking `read`,
//! then `write_all`, until the client hangs up. What changes from step to step is who runs it:
//! the main thread, one client after another (step 1), a child process per client (step 2), a
//! thread per client (step 3), or a worker from a fixed pool (step 4).
//!
//! Steps 5 to 7 may not block, so a connection cannot wait for its client inside a loop. They
//! share a non-blocking step instead, [`try_echo`]: read what is there, echo as much as the
//! socket takes now, and keep the rest for later. Steps 5 and 7 call it as it is; step 6 spells
//! the same step out as a state machine, over its two halves [`try_read`] and [`write_now`].
//! What changes is who decides when to take the step: a busy loop that tries every socket (step
//! 5), epoll on one thread (step 6), or a Poller thread that hands ready sockets to Workers
//! (step 7).
//!
//! The rest is set-up every step needs: [`addr_from_args`] and [`bind`] make the listener,
//! [`announce`] prints the line a harness waits for, and [`accept_blocking`] (steps 1 to 4 and
//! 7) and [`Backoff`] with [`is_out_of_resources`] (steps 5 and 6) deal with an `accept` that
//! fails for want of file descriptors: pauses growing from 1 ms to 1 s, and one log line when
//! that starts and one when it ends, never a line per attempt (ripple's
//! `TcpListener::incoming` does the same for step 8).
//!
//! Step 8 does without this module: ripple's `TcpListener` and an `async fn` do all of it.

// Each example includes this file with `mod common;` and is a crate of its own, which uses only
// part of it: the blocking steps never call `try_echo`, the non-blocking ones never call
// `echo_blocking`. What one step leaves unused is not dead.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// The address to listen on: the first command-line argument, or `127.0.0.1:8080`.
pub fn addr_from_args() -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
}

/// Binds a listener with `SO_REUSEADDR` (a restarted server can rebind at once) and a backlog of
/// 1024: std's `TcpListener::bind` asks for 128, too few when thousands connect at once.
pub fn bind(addr: &str) -> io::Result<TcpListener> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Prints `listening on ADDR`, with the port the listener really got (`127.0.0.1:0` asks for any
/// free one). A harness waits for this line before it connects, so it must not sit in a buffer.
pub fn announce(listener: &TcpListener) -> io::Result<()> {
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()
}

/// Whether a failed `accept` means the process is out of file descriptors or memory. The
/// connection then stays in the backlog, and the next `accept` would fail the same way at once.
/// Any other error (the client gave up before we accepted it) concerns only that connection.
pub fn is_out_of_resources(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A run of `accept`s that fail for want of descriptors or memory: how long to pause before the
/// next attempt (1 ms, doubling up to 1 s), and one log line when the run starts and one when
/// it ends (once accepting has kept working for a second), however long it lasts.
#[derive(Debug, Default)]
pub struct Backoff {
    /// The run under way: when it started, its failed attempts, the next pause, and since when
    /// `accept` has worked again (if it has).
    episode: Option<(Instant, u64, Duration, Option<Instant>)>,
}

impl Backoff {
    /// An `accept` failed with `err`, for want of resources: returns how long to pause.
    pub fn failed(&mut self, err: &io::Error) -> Duration {
        if let Some((_, _, _, Some(working))) = self.episode {
            if working.elapsed() >= Duration::from_secs(1) {
                self.end();
            }
        }
        let (_, failures, pause, working) = self.episode.get_or_insert_with(|| {
            eprintln!("accept: {err}; retrying with pauses of up to 1 s until connections close");
            (Instant::now(), 0, Duration::from_millis(1), None)
        });
        *failures += 1;
        *working = None;
        let now = *pause;
        *pause = (now * 2).min(Duration::from_secs(1));
        now
    }

    /// An `accept` worked (or found no client waiting, which is not a failure either).
    pub fn accepted(&mut self) {
        if let Some((_, _, pause, working)) = &mut self.episode {
            *pause = Duration::from_millis(1);
            if working.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(1) {
                self.end();
            }
        }
    }

    /// Writes the run's last line, and forgets it.
    fn end(&mut self) {
        if let Some((since, failures, _, working)) = self.episode.take() {
            let lasted = working.unwrap_or_else(Instant::now) - since;
            eprintln!(
                "accept: working again after {failures} failed attempt(s) in {:.1} s",
                lasted.as_secs_f64()
            );
        }
    }
}

thread_local! {
    /// The [`Backoff`] of the thread that calls [`accept_blocking`].
    static BACKOFF: std::cell::RefCell<Backoff> = std::cell::RefCell::new(Backoff::default());
}

/// Waits in `accept` for the next client, on a thread that does nothing else (steps 1 to 4, and
/// step 7's Acceptor). Out of descriptors or memory, it sleeps (see [`Backoff`]) rather than
/// spin; any other failure concerns only one connection, which it skips. Steps 5 and 6 must not
/// sleep, which would stall every connection: they stop accepting for a while instead.
pub fn accept_blocking(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                BACKOFF.with(|backoff| backoff.borrow_mut().accepted());
                return stream;
            }
            Err(err) if is_out_of_resources(&err) => {
                let pause = BACKOFF.with(|backoff| backoff.borrow_mut().failed(&err));
                thread::sleep(pause);
            }
            Err(_) => {}
        }
    }
}

/// The echo loop of steps 1 to 4: sends back whatever arrives, until the client closes the
/// connection or it fails. It waits in `read` whenever the client is quiet, so whoever runs it
/// (the main thread, a child process, a thread, a pool worker) is taken for the connection's
/// whole life.
pub fn echo_blocking(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        // `read` blocks until at least one byte is there, and may return fewer bytes than the
        // client sent in one go: TCP is a byte stream, so we echo whatever we got.
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()), // The client closed its side: we are done.
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        // `write_all` loops over short writes, so every byte goes back.
        stream.write_all(&buf[..n])?;
    }
}

/// The non-blocking step of steps 5 and 7: one read of what the socket has, then as much of the
/// echo as it takes, without waiting. `unsent` holds what the socket did not take, for a later
/// call; `scratch` receives the read. Returns whether the connection is still open.
pub fn try_echo(
    stream: &mut TcpStream,
    unsent: &mut Vec<u8>,
    scratch: &mut [u8],
) -> io::Result<bool> {
    // Read more only once the previous bytes are out, so a client that sends but never reads
    // cannot make us buffer without limit.
    if unsent.is_empty() {
        match try_read(stream, scratch)? {
            Some(0) => return Ok(false), // The client closed its side.
            Some(n) => unsent.extend_from_slice(&scratch[..n]),
            None => return Ok(true), // Nothing yet.
        }
    }
    let written = write_now(stream, unsent)?;
    unsent.drain(..written);
    Ok(true)
}

/// One read from a non-blocking socket. As with `read`, `Some(0)` means the client closed its
/// side. `None` means there was nothing to take after all: the read would have blocked
/// (`WouldBlock`), or a signal interrupted it, and the caller comes back later.
pub fn try_read(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match stream.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(err) => Err(err),
    }
}

/// Writes as much of `bytes` as a non-blocking socket takes now, and returns how much that was.
/// `WouldBlock` means the kernel's send buffer is full: the caller keeps the rest until the
/// socket is writable again.
pub fn write_now(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(written)
}
