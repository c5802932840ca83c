//! The `echo` example's twin on tokio's current-thread runtime, for side-by-side measurement
//! (`cargo bench --bench net`, `benches/echo_counts.sh`); with `multi_thread` after the address,
//! the twin of `echo_multi_thread` on tokio's multi-thread runtime (one worker per core, or
//! `TOKIO_WORKER_THREADS` of them).
//!
//! Same logic, line for line: one task per connection, a 4 KiB buffer, `read` then `write_all`
//! under the same idle and write timeouts (through `tokio::time::timeout`, as tokio is used for
//! them), the same back-off when `accept` fails, and the same graceful shutdown on SIGINT and
//! SIGTERM.
//! `examples/echo.rs` is the original, written to be
//! read (it also has `--metrics`, which is ripple's); this copy lives with the harness that uses
//! it, and changes when the example's echo loop does. Run it with
//! `cargo run --release -p ripple-tools --bin echo_tokio [ADDR [multi_thread]]` (default
//! `127.0.0.1:8080`).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_lite::future::or;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;
use tokio::time::timeout;

/// How long a graceful shutdown waits for the connections to finish.
const GRACE: Duration = Duration::from_secs(5);

/// How long a client may stay silent (the example's default).
const IDLE: Duration = Duration::from_secs(60);

/// How long a client may leave our answer unread (the example's default).
const WRITE: Duration = Duration::from_secs(10);

fn main() -> io::Result<()> {
    let (addr, runtime) = ripple_tools::twin::args_and_runtime()?;
    runtime.block_on(serve(addr))
}

/// Accepts connections on `addr`, one task each, until SIGINT or SIGTERM; then shuts down
/// gracefully, as the example does.
async fn serve(addr: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    println!("listening on {}", listener.local_addr()?);
    // `open` holds a duplicate of each connection's socket, so that a shutdown can reach it;
    // the connection's task removes it (closing the duplicate) when it ends, however it ends.
    let mut connections = JoinSet::new();
    let open: Open = Arc::default();
    let mut next = 0u64;
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
            Err(Ok((stream, _peer))) => {
                let id = next;
                next += 1;
                // One `dup` per connection: the echo loop itself stays as it was.
                if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
                    lock(&open).insert(id, std::net::TcpStream::from(fd));
                }
                let entry = Entry {
                    id,
                    open: open.clone(),
                };
                connections.spawn(echo(stream, entry));
                // Forget the tasks that have ended.
                while connections.try_join_next().is_some() {}
            }
            // Out of file descriptors (EMFILE) or memory: the connection waits in the backlog.
            // Back off instead of spinning on an accept that keeps failing.
            Err(Err(err)) => {
                eprintln!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    // Stop accepting, then end every connection's reads: what a client sent before this is
    // still echoed; its next read sees end of stream, and its task ends.
    drop(listener);
    while connections.try_join_next().is_some() {}
    let count = connections.len();
    for socket in lock(&open).values() {
        let _ = socket.shutdown(Shutdown::Read);
    }
    // `let _ =`: a closed stdout must not turn a clean shutdown into a panic.
    let mut out = io::stdout();
    let _ = writeln!(
        out,
        "{signal_name}: shutting down, {count} connection(s) open"
    );
    let finished = tokio::time::timeout(GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let _ = match finished {
        Ok(()) => writeln!(out, "all {count} connection(s) closed; bye"),
        Err(_) => writeln!(
            out,
            "{} connection(s) still busy after {} s: closed; bye",
            connections.len(),
            GRACE.as_secs()
        ),
    };
    Ok(())
}

/// Duplicates of the open connections' sockets, by connection number.
type Open = Arc<Mutex<HashMap<u64, std::net::TcpStream>>>;

/// A connection's entry in [`Open`]: dropped with the connection's task, which removes the
/// entry and so closes the duplicate.
struct Entry {
    /// The connection's number.
    id: u64,
    /// Where its duplicate is.
    open: Open,
}

impl Drop for Entry {
    fn drop(&mut self) {
        lock(&self.open).remove(&self.id);
    }
}

/// The map of open sockets, locked (each change is one map call, so a poisoned lock is fine).
fn lock(open: &Open) -> std::sync::MutexGuard<'_, HashMap<u64, std::net::TcpStream>> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends back whatever arrives, until the client closes or the connection fails. `_entry` goes
/// with it: its drop, when this future ends, forgets the connection.
async fn echo(mut stream: TcpStream, _entry: Entry) {
    let mut buf = vec![0; 4096];
    loop {
        // The example's timeouts, the way tokio is used for them: `timeout` on each operation.
        match timeout(IDLE, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(n)) => match timeout(WRITE, stream.write_all(&buf[..n])).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            },
        }
    }
}
