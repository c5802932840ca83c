//! Journey, step 5: non-blocking sockets polled in a busy loop, all clients on one thread.
//!
//! In the guide: chapter 4, `docs/guide/04-non-blocking-and-polling.md`.
//!
//! This is the seeds' non-blocking polling model (다중 접속 서버로의 여정, "멀티플렉싱",
//! "논블로킹 폴링 모델"): why can one thread serve only one client? Because `read` blocks. So
//! switch every socket to non-blocking mode, where `accept`, `read` and `write` return
//! `WouldBlock` at once instead of waiting, and let one thread go round and round: accept
//! whoever is waiting, then try a read on every connection, echo what came, and start over.
//!
//! Trying one connection is `common::try_echo`: one read, then as much of the echo as the socket
//! takes, the rest kept for the next lap. Steps 6 and 7 take the same non-blocking step; what
//! changes is how they decide which connection to try.
//!
//! What it costs: one thread, and per client a socket and its unsent bytes, so thousands of
//! clients are fine for memory. But the thread never sleeps: with nobody connected it still
//! calls `accept` in a tight loop, and with N clients every lap makes N `read` calls, nearly all
//! answering "nothing yet". It burns 100% of a core even when idle (watch it in `top`), and each
//! client waits for a whole lap, so latency grows with the number of connections. The next
//! step asks the kernel which sockets are ready instead of asking every socket.
//!
//! Run it with `cargo run --release --example journey_busy_poll [ADDR]` (default
//! `127.0.0.1:8080`), then load it with the repository's client,
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

mod common;

/// A client and the echo we still owe it.
struct Connection {
    /// The client's socket, in non-blocking mode.
    stream: TcpStream,
    /// Bytes read but not yet written back: the socket's send buffer was full.
    unsent: Vec<u8>,
}

fn main() -> io::Result<()> {
    let listener = common::bind(&common::addr_from_args())?;
    listener.set_nonblocking(true)?;
    common::announce(&listener)?;

    let mut connections: Vec<Connection> = Vec::new();
    let mut buf = [0; 4096];
    // When `accept` last ran out of descriptors, the time to try it again.
    let mut resume_accept = Instant::now();
    let mut backoff = common::Backoff::default();
    loop {
        if Instant::now() >= resume_accept {
            match accept_all(&listener, &mut connections) {
                Ok(()) => backoff.accepted(),
                // Out of descriptors or memory: the clients wait in the backlog. Sleeping here
                // would stall every connection too, so we only stop accepting for a while.
                Err(err) => resume_accept = Instant::now() + backoff.failed(&err),
            }
        }
        // One lap: give every connection a try, and forget those that closed or failed (a
        // dropped `TcpStream` closes its socket).
        connections.retain_mut(|conn| {
            let open = common::try_echo(&mut conn.stream, &mut conn.unsent, &mut buf);
            matches!(open, Ok(true))
        });
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
            Err(err) if common::is_out_of_resources(&err) => return Err(err),
            // A client that gave up before we took it (ECONNABORTED, say): skip it, and take
            // the others on the next lap.
            Err(_) => return Ok(()),
        }
    }
}
