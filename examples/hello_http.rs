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
//! after 10 s; set `RIPPLE_HTTP_IDLE_MS` to change that (the tests use 300 ms).
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

use std::io::{self, Write};
use std::net::Shutdown;
use std::pin::pin;
use std::time::Duration;

use futures_lite::future::or;
use ripple::net::TcpStream;
use ripple::signal::unix::{signal, SignalKind};
use ripple::task::JoinSet;
use ripple::time::{sleep, timeout};

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

#[ripple::main]
async fn main() -> io::Result<()> {
    let (addr, grace) = args()?;
    let idle = std::env::var("RIPPLE_HTTP_IDLE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(DEFAULT_IDLE, Duration::from_millis);

    let listener = ripple::net::TcpListener::bind(&addr).await?;
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
    let signal_name = loop {
        // The signals are looked at first, so that a flood of connections cannot hide them.
        let signalled = async {
            or(async { interrupt.recv().await.map(|()| "SIGINT") }, async {
                terminate.recv().await.map(|()| "SIGTERM")
            })
            .await
        };
        let accepted = async { Err(listener.accept().await) };
        match or(async { Ok(signalled.await) }, accepted).await {
            Ok(name) => break name.unwrap_or("the runtime shutting down"),
            // A failed connection only ends its own task; its error has nobody to go to.
            Err(Ok((stream, _peer))) => {
                let stopping = stopping.clone();
                connections.spawn(async move {
                    let _ = serve(stream, idle, stopping).await;
                });
                // Forget the connections that have ended since the last accept.
                while connections.try_join_next().is_some() {}
            }
            // Out of file descriptors (EMFILE) fails again at once: wait for some to close.
            Err(Err(err)) => {
                eprintln!("accept failed: {err}");
                sleep(Duration::from_millis(10)).await;
            }
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
    let finished = timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let _ = match finished {
        Ok(()) => writeln!(out, "all {open} connection(s) closed; bye"),
        Err(_) => writeln!(
            out,
            "{} connection(s) still busy after {} ms: closed; bye",
            connections.len(),
            grace.as_millis()
        ),
    };
    // Dropping the set aborts what is left.
    Ok(())
}

/// The address to listen on (the first argument; default `127.0.0.1:8080`) and the graceful
/// shutdown's limit (`--grace-ms N`).
fn args() -> io::Result<(String, Duration)> {
    let mut addr = None;
    let mut grace = DEFAULT_GRACE;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--grace-ms" {
            let ms = args.next().and_then(|ms| ms.parse().ok()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "--grace-ms needs a number")
            })?;
            grace = Duration::from_millis(ms);
        } else if addr.is_none() {
            addr = Some(arg);
        } else {
            let message =
                format!("unexpected argument {arg:?}; usage: hello_http [ADDR] [--grace-ms N]");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:8080".into()), grace))
}

/// Serves one connection until the client leaves, stays idle too long, a request asks to close
/// it, or the server shuts down (`stopping` is closed): then a connection between requests
/// closes at once, and one in the middle of a request answers it first.
async fn serve(
    mut stream: TcpStream,
    idle: Duration,
    stopping: async_channel::Receiver<()>,
) -> io::Result<()> {
    // Answers go out as soon as they are written, not after Nagle's algorithm waits for more.
    stream.set_nodelay(true)?;
    let mut chunk = vec![0; MAX_HEAD];
    let mut buf = Vec::new(); // Bytes received but not yet parsed.
    let mut out = Vec::new(); // Answers to the requests of one read.
    let mut body_left = 0; // Body bytes of an answered request that have yet to arrive.
                           // Completes when the server starts shutting down (the channel is never sent on, so `recv`
                           // returns only once it is closed). Made once and kept: each `recv()` would register anew.
    let mut stop = pin!(stopping.recv());

    loop {
        // Each read waits at most `idle`, between requests and in the middle of one. (A client
        // trickling one byte at a time could still stretch a request; a production server
        // would also bound the time a whole request head may take.)
        let read = timeout(idle, stream.read(&mut chunk));
        let read = if buf.is_empty() && body_left == 0 {
            // Between requests: a shutdown closes the connection.
            let stopped = async {
                let _ = stop.as_mut().await;
                None
            };
            match or(async { Some(read.await) }, stopped).await {
                Some(read) => read,
                None => return Ok(()),
            }
        } else {
            // In the middle of a request: finish it, even while shutting down.
            read.await
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
                }
            }
        }
        buf.drain(..start);
        // Shutting down: the last answer of this batch says so, and the connection closes.
        if stopping.is_closed() && !close && !out.is_empty() {
            out.truncate(out.len() - HELLO.len());
            out.extend_from_slice(HELLO_CLOSE);
            close = true;
        }
        // A client that stops reading our answers is as idle as one that stops sending.
        match timeout(idle, stream.write_all(&out)).await {
            Ok(written) => written?,
            Err(_elapsed) => return Ok(()),
        }
        out.clear();
        if close {
            return linger(stream, &mut chunk, idle).await;
        }
    }
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
async fn linger(mut stream: TcpStream, chunk: &mut [u8], idle: Duration) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let drain = async { while let Ok(1..) = stream.read(chunk).await {} };
    let _ = timeout(idle, drain).await;
    Ok(())
}
