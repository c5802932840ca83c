//! Journey, step 5: non-blocking sockets polled in a busy loop, all clients on one thread.
//!
//! This is the seeds' non-blocking polling model (다중 접속 서버로의 여정, "멀티플렉싱",
//! "논블로킹 폴링 모델"): why can one thread serve only one client? Because `read` blocks. So
//! switch every socket to non-blocking mode, where `accept`, `read` and `write` return
//! `WouldBlock` at once instead of waiting, and let one thread go round and round: accept
//! whoever is waiting, then try a read on every connection, echo what came, and start over.
//!
//! What it costs: one thread, and per client a socket and its unsent bytes, so thousands of
//! clients are fine for memory. But the thread never sleeps: with nobody connected it still
//! calls `accept` in a tight loop, and with N clients every lap makes N `read` calls, nearly all
//! answering "nothing yet". It burns 100% of a core even when idle (watch it in `top`), and each
//! client waits for a whole lap, so latency grows with the number of connections. The next
//! step asks the kernel which sockets are ready instead of asking every socket.
//!
//! Run it with `cargo run --release --example journey_busy_poll [ADDR]` (default
//! `127.0.0.1:8080`), then talk to it with `nc 127.0.0.1 8080`, or load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// A client and the echo we still owe it.
struct Connection {
    /// The client's socket, in non-blocking mode.
    stream: TcpStream,
    /// Bytes read but not yet written back: the socket's send buffer was full.
    unsent: Vec<u8>,
}

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = bind(&addr)?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let mut connections: Vec<Connection> = Vec::new();
    let mut buf = [0; 4096];
    // When `accept` last ran out of descriptors, the time to try it again.
    let mut resume_accept = Instant::now();
    loop {
        if Instant::now() >= resume_accept {
            if let Err(err) = accept_all(&listener, &mut connections) {
                // Out of descriptors or memory: the clients wait in the backlog. Sleeping here
                // would stall every connection too, so we only stop accepting for 10 ms.
                eprintln!("accept failed: {err}; pausing accept for 10 ms");
                resume_accept = Instant::now() + Duration::from_millis(10);
            }
        }
        // One lap: give every connection a try, and forget those that closed or failed (a
        // dropped `TcpStream` closes its socket).
        connections.retain_mut(|conn| matches!(try_echo(conn, &mut buf), Ok(true)));
    }
}

/// Accepts everyone who is waiting. Returns an error only when the process is out of file
/// descriptors or memory; any other error concerns only the connection that failed.
fn accept_all(listener: &TcpListener, connections: &mut Vec<Connection>) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                // An accepted socket starts in blocking mode, whatever the listener's mode.
                if stream.set_nonblocking(true).is_ok() {
                    let unsent = Vec::new();
                    connections.push(Connection { stream, unsent });
                }
            }
            // The backlog is empty.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(err) if is_out_of_resources(&err) => return Err(err),
            // A client that gave up before we took it (ECONNABORTED, say): skip it, and take
            // the others on the next lap.
            Err(_) => return Ok(()),
        }
    }
}

/// Tries one read and the writes it calls for, without waiting. Returns whether the
/// connection is still open.
fn try_echo(conn: &mut Connection, buf: &mut [u8]) -> io::Result<bool> {
    // Read more only once the previous bytes are out, so a client that sends but never reads
    // cannot make us buffer without limit.
    if conn.unsent.is_empty() {
        match conn.stream.read(buf) {
            Ok(0) => return Ok(false), // The client closed its side.
            Ok(n) => conn.unsent.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(true), // Nothing yet.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(err) => return Err(err),
        }
    }
    // Write as much as the socket takes; what it does not take waits for the next lap.
    while !conn.unsent.is_empty() {
        match conn.stream.write(&conn.unsent) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                conn.unsent.drain(..n);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(true)
}

/// Binds a listener with `SO_REUSEADDR` and a backlog of 1024 (std's `bind` asks for 128).
fn bind(addr: &str) -> io::Result<TcpListener> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Whether a failed `accept` means the process is out of file descriptors or memory, in which
/// case the next `accept` would fail the same way at once.
fn is_out_of_resources(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
