//! A small HTTP/1.1 server that answers every request with `Hello, world!`.
//!
//! It shows what a real protocol looks like on ripple: one task per connection, reads that wait
//! under a timeout, and a parser ([`httparse`]) that works on whatever bytes have arrived so far.
//!
//! ```text
//! cargo run --release --example hello_http [ADDR]     # ADDR defaults to 127.0.0.1:8080
//! curl http://127.0.0.1:8080/
//! ```
//!
//! Once bound it prints `listening on ADDR` (useful with port 0). Idle connections are closed
//! after 10 s (to 20 s: the timeout is a `ripple::time::Watchdog`, checked lazily); set
//! `RIPPLE_HTTP_IDLE_MS` to change that (the tests use 300 ms).
//!
//! It is built to stay useful under attack, as a public server must:
//!
//! - A request must arrive whole within 10 s of its first byte (`--head-ms N`): its head, or
//!   the client gets `408 Request Timeout` and the connection closes; and the body we skip, or
//!   the connection closes. The idle timeout alone would not do: it restarts with every byte,
//!   so a client sending one byte every few seconds (a *slowloris*) could hold a connection for
//!   hours.
//! - It holds at most `--max-connections N` connections, by default as many as the process may
//!   open files (`RLIMIT_NOFILE`) less 32 for its own needs, so that `accept` itself never runs
//!   out of file descriptors. When a connection arrives at the limit, it is admitted by closing
//!   the open connection that has made the least progress: an idle keep-alive connection
//!   (the longest idle first), or else the request that has been arriving the longest (a new
//!   connection counts as a request arriving since it was accepted). If every connection is
//!   already closing, the new one is refused. So 300 slowloris clients against 256 file
//!   descriptors cannot lock out a client that sends its request at once.
//! - Should `accept` fail all the same (another process exhausting the system's files), it
//!   backs off (`TcpListener::incoming`) and logs one line when that starts and one when it
//!   ends.
//!
//! SIGINT (Ctrl-C) or SIGTERM shuts it down gracefully: it stops accepting, answers the
//! requests it has started to read (a pipelined batch already read is answered whole, the last
//! answer saying `Connection: close`), closes the idle keep-alive connections, waits at most 5 s
//! for the rest (`--grace-ms N` after the address changes that), says what it did, and exits 0.
//! The shutdown uses three pieces a real server would: `ripple::signal`, a `JoinSet` of the
//! connection tasks, and a closed `async_channel` as the broadcast "stop" (ripple leaves
//! channels to such crates).
//!
//! The design, in a few sentences. Each accepted connection gets its own task, which keeps the
//! connection open between requests (HTTP/1.1 keep-alive). A client may *pipeline*: send several
//! requests before reading any answer, so each read may hold many requests, or a fraction of
//! one. The task answers every complete request in its buffer with one write, then keeps the
//! unparsed rest for the next read. Request bodies announced by `Content-Length` are skipped;
//! chunked bodies (`Transfer-Encoding`) get `501 Not Implemented` to keep the example small. A
//! request head over 8 KiB gets `431`, a malformed one `400`, and both close the connection.
//! Closing waits briefly for the client to hang up first, so unread input cannot make the
//! kernel reset the connection and destroy the last answer.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Shutdown;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_lite::future::or;
use ripple::net::TcpStream;
use ripple::signal::unix::{signal, SignalKind};
use ripple::task::JoinSet;
use ripple::time::{sleep, timeout, Watchdog};

/// The largest request head (request line and headers) a connection may buffer.
///
/// The seeds' Tomcat lesson: its `maxHttpHeaderSize` is 8 KB by default, and it is the size of
/// a buffer every connection holds, so raising it costs memory on every connection. Like
/// Tomcat, we bound the head instead of buffering whatever a client sends.
const MAX_HEAD: usize = 8 * 1024;

/// The most headers one request may carry.
const MAX_HEADERS: usize = 32;

/// How long a connection may stay silent before it is closed.
const DEFAULT_IDLE: Duration = Duration::from_secs(10);

/// How long a graceful shutdown waits for the connections to finish.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How long a request head may take to arrive, from its first byte.
const DEFAULT_HEAD: Duration = Duration::from_secs(10);

/// File descriptors kept for the process itself when the connection limit is derived from
/// `RLIMIT_NOFILE`: standard streams, epoll, the listener, the signals' sockets, and a
/// connection being closed while its successor is accepted.
const RESERVED_FDS: u64 = 32;

/// The answer to every request, on a connection that stays open.
const HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\
Connection: keep-alive\r\n\r\nHello, world!";
/// The answer to a request that asked to close the connection afterwards.
const HELLO_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\
Connection: close\r\n\r\nHello, world!";
/// The answer to a request we cannot parse.
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The answer to a request head over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers.
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\
Connection: close\r\n\r\n";
/// The answer to a chunked request body.
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The answer to a request head that took too long to arrive.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The server's settings: `hello_http [ADDR] [--grace-ms N] [--head-ms N]
/// [--max-connections N]`, and `RIPPLE_HTTP_IDLE_MS`.
#[derive(Debug, Clone)]
struct Config {
    /// Where to listen.
    addr: String,
    /// How long a graceful shutdown waits.
    grace: Duration,
    /// How long a connection may stay silent, and leave an answer unread.
    idle: Duration,
    /// How long a request head may take to arrive.
    head: Duration,
    /// The most connections open at once.
    max_connections: usize,
}

#[ripple::main]
async fn main() -> io::Result<()> {
    let config = config()?;
    let listener = ripple::net::TcpListener::bind(&config.addr).await?;
    // SIGINT and SIGTERM start a graceful shutdown (listening to them also stops them from
    // killing the process outright).
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    // Print the bound address, not the requested one: with port 0 the kernel picks the port.
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    // Closing `stop` tells every connection at once to finish what it has started and close.
    let (stop, stopping) = async_channel::bounded::<()>(1);
    let mut connections = JoinSet::new();
    let registry = Arc::new(Registry::default());
    // Accepts, pausing (and saying so, once) while the process is out of file descriptors.
    let mut incoming = listener.incoming();
    let signal_name = loop {
        // The signals are looked at first, so that a flood of connections cannot hide them.
        let signalled = async {
            or(async { interrupt.recv().await.map(|()| "SIGINT") }, async {
                terminate.recv().await.map(|()| "SIGTERM")
            })
            .await
        };
        let accepted = async { Err(incoming.accept().await) };
        match or(async { Ok(signalled.await) }, accepted).await {
            Ok(name) => break name.unwrap_or("the runtime shutting down"),
            // A failed connection only ends its own task; its error has nobody to go to.
            Err(Ok((stream, _peer))) => {
                // At the limit, close the connection that has made the least progress. Its
                // task must run to close it: let it, before accepting more.
                let room = registry.make_room(config.max_connections);
                if room == Room::Full {
                    drop(stream);
                    ripple::task::yield_now().await;
                    continue;
                }
                let (conn, evict) = registry.admit(stream);
                let (config, stopping) = (config.clone(), stopping.clone());
                connections.spawn(async move {
                    let _ = serve(conn, evict, &config, stopping).await;
                });
                // Forget the connections that have ended since the last accept.
                while connections.try_join_next().is_some() {}
                if room == Room::Evicted {
                    ripple::task::yield_now().await;
                }
            }
            // The listener itself is broken.
            Err(Err(err)) => return Err(err),
        }
    };

    // Stop accepting (new connections are refused from here on), then tell the others.
    drop(listener);
    while connections.try_join_next().is_some() {}
    let open = connections.len();
    // `let _ =`: a closed stdout must not turn a clean shutdown into a panic.
    let mut out = io::stdout();
    let _ = writeln!(
        out,
        "{signal_name}: shutting down, {open} connection(s) open"
    );
    stop.close();
    let finished = timeout(config.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let _ = match finished {
        Ok(()) => writeln!(out, "all {open} connection(s) closed; bye"),
        Err(_) => writeln!(
            out,
            "{} connection(s) still busy after {} ms: closed; bye",
            connections.len(),
            config.grace.as_millis()
        ),
    };
    // Dropping the set aborts what is left.
    Ok(())
}

/// The settings, from the arguments (ADDR, `--grace-ms N`, `--head-ms N`,
/// `--max-connections N`) and `RIPPLE_HTTP_IDLE_MS`.
fn config() -> io::Result<Config> {
    let idle = std::env::var("RIPPLE_HTTP_IDLE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(DEFAULT_IDLE, Duration::from_millis);
    let mut config = Config {
        addr: "127.0.0.1:8080".into(),
        grace: DEFAULT_GRACE,
        idle,
        head: DEFAULT_HEAD,
        max_connections: default_max_connections(),
    };
    let (mut addr, mut args) = (None, std::env::args().skip(1));
    while let Some(arg) = args.next() {
        let mut number = || {
            args.next().and_then(|n| n.parse().ok()).ok_or_else(|| {
                let message = format!("{arg} needs a number");
                io::Error::new(io::ErrorKind::InvalidInput, message)
            })
        };
        match arg.as_str() {
            "--grace-ms" => config.grace = Duration::from_millis(number()?),
            "--head-ms" => config.head = Duration::from_millis(number()?),
            "--max-connections" => config.max_connections = number()?.max(1) as usize,
            _ if addr.is_none() && !arg.starts_with("--") => addr = Some(arg),
            _ => {
                let message = format!(
                    "unexpected argument {arg:?}; usage: hello_http [ADDR] [--grace-ms N] \
                     [--head-ms N] [--max-connections N]"
                );
                return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
            }
        }
    }
    if let Some(addr) = addr {
        config.addr = addr;
    }
    Ok(config)
}

/// As many connections as the process may open files, less [`RESERVED_FDS`]: then `accept`
/// never meets `EMFILE` because of the connections alone.
fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the limit into `limit`, a valid, exclusively borrowed struct.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let files = if got == 0 { limit.rlim_cur } else { 1024 };
    usize::try_from(files.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX)
}

/// The open connections, and how far each has got: what the accept loop looks at to choose a
/// connection to close when the server is full.
#[derive(Debug, Default)]
struct Registry {
    /// Every open connection, by number.
    open: Mutex<HashMap<u64, Tracked>>,
    /// The next connection's number.
    next: AtomicU64,
    /// Counts every change of phase of every connection: the order in which they happened.
    clock: AtomicU64,
}

/// A connection, as the registry sees it.
#[derive(Debug)]
struct Tracked {
    /// What it is doing, as its task last said.
    progress: Arc<Progress>,
    /// Closes it (see [`serve`]); `None` once used.
    evict: Option<oneshot::Sender<()>>,
}

/// What a connection is doing, and since when (by the registry's clock): its phase in the top
/// two bits, the clock below. Written by the connection's task, read by the accept loop.
#[derive(Debug, Default)]
struct Progress(AtomicU64);

/// Receiving a request (its head, or the body we skip), or accepted and waiting for its first.
const IN_REQUEST: u64 = 1 << 62;
/// The phase bits of a [`Progress`].
const PHASE: u64 = 3 << 62;
// Idle between two requests is phase 0, so that the idle connections sort first.

impl Registry {
    /// Locks the map (each change is one map call, so a poisoned lock is fine).
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Tracked>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection; returns it, and the receiver that says it must close.
    fn admit(self: &Arc<Self>, stream: TcpStream) -> (Conn, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let progress = Arc::new(Progress(AtomicU64::new(IN_REQUEST | (now & !PHASE))));
        let (evict, evicted) = oneshot::channel();
        let tracked = Tracked {
            progress: progress.clone(),
            evict: Some(evict),
        };
        self.lock().insert(id, tracked);
        let conn = Conn {
            stream,
            progress,
            registry: self.clone(),
            id,
        };
        (conn, evicted)
    }

    /// Makes room for one more connection under `max`: with `max` or more open, tells the one
    /// that has made the least progress to close (the longest idle, or else the request
    /// arriving the longest). `Full` if every open connection is already closing.
    fn make_room(&self, max: usize) -> Room {
        let mut open = self.lock();
        if open.len() < max {
            return Room::Free;
        }
        let victim = open
            .values_mut()
            .filter(|tracked| tracked.evict.is_some())
            .min_by_key(|tracked| tracked.progress.0.load(Ordering::Relaxed));
        match victim.and_then(|tracked| tracked.evict.take()) {
            // A closed receiver: that task is ending anyway.
            Some(evict) => {
                let _ = evict.send(());
                Room::Evicted
            }
            None => Room::Full,
        }
    }
}

/// What [`Registry::make_room`] did.
#[derive(Debug, PartialEq)]
enum Room {
    /// There was room.
    Free,
    /// A connection was told to close to make room.
    Evicted,
    /// Every connection is closing already: there is no room.
    Full,
}

/// An open connection: its stream, and its place in the registry.
struct Conn {
    /// The stream.
    stream: TcpStream,
    /// What it is doing, shared with the registry.
    progress: Arc<Progress>,
    /// Where it is registered.
    registry: Arc<Registry>,
    /// Its number there.
    id: u64,
}

impl Conn {
    /// Records that the connection has entered `phase` (0 for idle, or [`IN_REQUEST`]).
    fn enter(&self, phase: u64) {
        let now = self.registry.clock.fetch_add(1, Ordering::Relaxed);
        self.progress
            .0
            .store(phase | (now & !PHASE), Ordering::Relaxed);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// Serves one connection until the client leaves, stays idle too long, a request asks to close
/// it, the server needs its place for a new one (`evicted` completes), or the server shuts down
/// (`stopping` is closed): then a connection between requests closes at once, and one in the
/// middle of a request answers it first.
async fn serve(
    mut conn: Conn,
    mut evicted: oneshot::Receiver<()>,
    config: &Config,
    stopping: async_channel::Receiver<()>,
) -> io::Result<()> {
    // Answers go out as soon as they are written, not after Nagle's algorithm waits for more.
    conn.stream.set_nodelay(true)?;
    let mut chunk = vec![0; MAX_HEAD];
    let mut buf = Vec::new(); // Bytes received but not yet parsed.
    let mut out = Vec::new(); // Answers to the requests of one read.
    let mut body_left = 0; // Body bytes of an answered request that have yet to arrive.

    // Completes when the server starts shutting down (the channel is never sent on, so `recv`
    // returns only once it is closed). Made once and kept: each `recv()` would register anew.
    let mut stop = pin!(stopping.recv());
    // One timeout for all the reads, one for all the writes: a client may stay silent, or
    // leave an answer unread, for `idle` (to twice that).
    let (mut reading, mut writing) = (Watchdog::new(config.idle), Watchdog::new(config.idle));
    // The deadline of the request being received (its head, then the body we skip), armed at
    // its first byte.
    let mut deadline = sleep(config.head);
    let mut in_request = false;
    // Until its first answer, a connection ranks as a request arriving since it was accepted
    // (the registry's view), not as an idle one.
    let mut answered = false;

    loop {
        let between_requests = buf.is_empty() && body_left == 0;
        if between_requests && answered {
            conn.enter(0);
        }
        let read = reading.watch(conn.stream.read(&mut chunk));
        let read = if between_requests {
            // Between requests: a shutdown, or a new connection that needs the place, closes
            // the connection.
            let closed = async {
                let stopped = async {
                    let _ = stop.as_mut().await;
                };
                let evict = async {
                    let _ = (&mut evicted).await;
                };
                or(stopped, evict).await;
                None
            };
            match or(async { Some(read.await) }, closed).await {
                Some(read) => read,
                None => return Ok(()),
            }
        } else {
            // In a request: it must arrive whole by its deadline (even while shutting down),
            // and a new connection may take the place of one that is this slow.
            let in_head = !buf.is_empty();
            let late = async {
                (&mut deadline).await;
                true
            };
            let evict = async {
                let _ = (&mut evicted).await;
                false
            };
            match or(async { Ok(read.await) }, async {
                Err(or(late, evict).await)
            })
            .await
            {
                Ok(read) => read,
                // Too slow: a head gets its 408 (a skipped body's request was answered).
                Err(true) if in_head => {
                    return close_with(conn, REQUEST_TIMEOUT, &mut chunk, config).await
                }
                Err(_) => return Ok(()),
            }
        };
        let n = match read {
            Ok(read) => read?,
            Err(_elapsed) => return Ok(()),
        };
        if n == 0 {
            return Ok(()); // The client closed the connection.
        }
        // A request body we already answered is skipped, never parsed as a request.
        let skip = n.min(body_left);
        body_left -= skip;
        buf.extend_from_slice(&chunk[skip..n]);

        // Answer every complete request in the buffer; pipelined answers share one write.
        let mut start = 0;
        let mut close = false;
        while !close {
            match parse(&buf[start..]) {
                Parsed::Partial => break,
                Parsed::Reject(answer) => {
                    out.extend_from_slice(answer);
                    close = true;
                }
                Parsed::Request {
                    head,
                    body,
                    keep_alive,
                } => {
                    out.extend_from_slice(if keep_alive { HELLO } else { HELLO_CLOSE });
                    close = !keep_alive;
                    // The part of the body already here is skipped now, the rest as it arrives.
                    let here = body.min(buf.len() - start - head);
                    start += head + here;
                    body_left = body - here;
                    // That request is whole; its body (if any is left) starts a new deadline.
                    in_request = false;
                }
            }
        }
        buf.drain(..start);
        // The first bytes of a request head, or a body still to skip: its deadline starts now.
        if (!buf.is_empty() || body_left > 0) && !in_request && !close {
            in_request = true;
            deadline.reset(Instant::now() + config.head);
            conn.enter(IN_REQUEST);
        }
        // Shutting down: the last answer of this batch says so, and the connection closes.
        if stopping.is_closed() && !close && !out.is_empty() {
            out.truncate(out.len() - HELLO.len());
            out.extend_from_slice(HELLO_CLOSE);
            close = true;
        }
        // A client that stops reading our answers is as idle as one that stops sending.
        match writing.watch(conn.stream.write_all(&out)).await {
            Ok(written) => written?,
            Err(_elapsed) => return Ok(()),
        }
        answered |= !out.is_empty();
        out.clear();
        if close {
            return linger(conn, &mut chunk, config.idle).await;
        }
    }
}

/// Sends `answer` (if the socket takes it at once: this client is slow, and we do not wait for
/// it), then closes the connection.
async fn close_with(
    mut conn: Conn,
    answer: &[u8],
    chunk: &mut [u8],
    config: &Config,
) -> io::Result<()> {
    let _ = timeout(Duration::ZERO, conn.stream.write_all(answer)).await;
    linger(conn, chunk, config.idle).await
}

/// What the front of the buffer holds.
enum Parsed {
    /// Not a whole request head yet: read more.
    Partial,
    /// A request to refuse with this answer, then close the connection.
    Reject(&'static [u8]),
    /// A request whose head is `head` bytes long, followed by a body of `body` bytes.
    Request {
        /// The length of the request line and headers, blank line included.
        head: usize,
        /// The `Content-Length` of the body.
        body: usize,
        /// Whether the connection stays open after the answer.
        keep_alive: bool,
    },
}

/// Parses the request at the front of `buf`.
fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(buf) {
        // A head may arrive in one read, so the limit applies to complete heads too.
        Ok(httparse::Status::Complete(head)) if head <= MAX_HEAD => head,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
        // Too long (complete or not), or too many headers.
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(TOO_LARGE),
        Err(_) => return Parsed::Reject(BAD_REQUEST),
    };

    let (mut body, mut close, mut keep_alive) = (None, false, false);
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Reject(NOT_IMPLEMENTED);
        } else if name.eq_ignore_ascii_case("content-length") {
            // Two lengths could make us and a proxy disagree on where a request ends.
            match (body, parse_length(header.value)) {
                (None, Some(length)) => body = Some(length),
                _ => return Parsed::Reject(BAD_REQUEST),
            }
        } else if name.eq_ignore_ascii_case("connection") {
            close |= has_token(header.value, "close");
            keep_alive |= has_token(header.value, "keep-alive");
        }
    }
    // HTTP/1.1 keeps connections open unless told otherwise; HTTP/1.0 only when asked to.
    let keep_alive = match request.version {
        Some(1) => !close,
        _ => keep_alive && !close,
    };
    Parsed::Request {
        head,
        body: body.unwrap_or(0),
        keep_alive,
    }
}

/// A `Content-Length` value as a number.
fn parse_length(value: &[u8]) -> Option<usize> {
    let value = std::str::from_utf8(value).ok()?.trim();
    // Digits only: `parse` alone would also accept a leading `+`.
    if value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse().ok()
    } else {
        None
    }
}

/// Whether a comma-separated header value such as `keep-alive, Upgrade` contains `token`.
fn has_token(value: &[u8], token: &str) -> bool {
    std::str::from_utf8(value).is_ok_and(|value| {
        value
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// Closes the connection without losing the last answer.
///
/// Closing a socket that still has unread input makes the kernel send a reset, which can
/// destroy the answer before the client reads it. So we only shut down our side, then read
/// and discard until the client closes too, or `idle` has passed.
async fn linger(mut conn: Conn, chunk: &mut [u8], idle: Duration) -> io::Result<()> {
    conn.stream.shutdown(Shutdown::Write)?;
    let drain = async { while let Ok(1..) = conn.stream.read(chunk).await {} };
    let _ = timeout(idle, drain).await;
    Ok(())
}
