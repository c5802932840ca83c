//! A TCP echo server: every byte a client sends comes straight back.
//!
//! One task per connection, each a plain loop of `read` and `write_all`. While a task waits for
//! its client, the runtime's single thread serves the others: the seeds' event loop, written as
//! straight-line code.
//!
//! Run it with `cargo run --release --example echo [ADDR]` (default `127.0.0.1:8080`), then load
//! it with `cargo run --release --example echo_client -- 127.0.0.1:8080 50 2000 64` (50
//! connections, 2,000 messages of 64 bytes each), or send it one line with bash alone:
//! `bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; echo hello >&3; head -c 6 <&3'`.
//!
//! To watch the event loop work, add `--metrics` after the address: every second the server
//! prints what its runtime did in that second (from `Handle::metrics`). Under load, one epoll
//! wait returns many events: that ratio is the event loop's whole advantage. Or set
//! `RIPPLE_TRACE=1` to see every spawn, poll, wake and epoll wait as it happens.
//!
//! SIGINT (Ctrl-C) or SIGTERM shuts it down gracefully, at no cost to the echo loop: it stops
//! accepting, shuts down the read side of every connection (each one then echoes what it has
//! already received, reads end of stream and closes), waits at most 5 s for them (`--grace-ms N`
//! after the address changes that), says what it did, and exits 0. To reach the connections, it keeps a duplicate of each one's socket.
//!
//! A client that goes silent for a minute (`--idle-ms N`), or stops reading what it is sent for
//! 10 s (`--write-ms N`), is disconnected: otherwise each one would pin a task and its kernel
//! buffers for ever. Both are `ripple::time::Watchdog`s, one timeout per connection that the
//! runtime checks lazily, so they cost the echo loop almost nothing; a timed-out client is cut
//! off after one to two of those periods.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_lite::future::or;
use ripple::net::{TcpListener, TcpStream};
use ripple::runtime::{Handle, Metrics};
use ripple::signal::unix::{signal, SignalKind};
use ripple::task::JoinSet;
use ripple::time::Watchdog;

/// How long a graceful shutdown waits for the connections to finish, unless `--grace-ms` says.
const GRACE: Duration = Duration::from_secs(5);

/// How long a client may stay silent, unless `--idle-ms` says.
const IDLE: Duration = Duration::from_secs(60);

/// How long a client may leave our answer unread, unless `--write-ms` says.
const WRITE: Duration = Duration::from_secs(10);

/// A connection's two timeouts.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// Waiting for the client to send.
    idle: Duration,
    /// Waiting for the client to take what we send.
    write: Duration,
}

#[ripple::main]
async fn main() -> io::Result<()> {
    // ADDR, `--metrics`, `--grace-ms N`, `--idle-ms N` and `--write-ms N`, in any order.
    let (mut addr, mut metrics, mut grace) = (None, false, GRACE);
    let mut timeouts = Timeouts {
        idle: IDLE,
        write: WRITE,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut millis = || {
            let ms = args.next().and_then(|ms| ms.parse().ok());
            ms.map(Duration::from_millis).ok_or_else(|| {
                let message = format!("{arg} needs a number of milliseconds");
                io::Error::new(io::ErrorKind::InvalidInput, message)
            })
        };
        match arg.as_str() {
            "--metrics" => metrics = true,
            "--grace-ms" => grace = millis()?,
            "--idle-ms" => timeouts.idle = millis()?,
            "--write-ms" => timeouts.write = millis()?,
            _ => addr = Some(arg),
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr).await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    println!("listening on {}", listener.local_addr()?);
    if metrics {
        ripple::spawn(print_metrics_every_second());
    }
    // `open` holds a duplicate of each connection's socket, so that a shutdown can reach it;
    // the connection's task removes it (closing the duplicate) when it ends, however it ends.
    let mut connections = JoinSet::new();
    let open: Open = Arc::default();
    let mut next = 0u64;
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
                connections.spawn(echo(stream, timeouts, entry));
                // Forget the tasks that have ended.
                while connections.try_join_next().is_some() {}
            }
            // The listener itself is broken.
            Err(Err(err)) => return Err(err),
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
    let finished = ripple::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let _ = match finished {
        Ok(()) => writeln!(out, "all {count} connection(s) closed; bye"),
        Err(_) => writeln!(
            out,
            "{} connection(s) still busy after {} ms: closed; bye",
            connections.len(),
            grace.as_millis()
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

/// Sends back whatever arrives, until the client closes, the connection fails, or a timeout
/// runs out. `_entry` goes with it: its drop, when this future ends, forgets the connection.
async fn echo(mut stream: TcpStream, timeouts: Timeouts, _entry: Entry) {
    let mut buf = vec![0; 4096];
    let mut idle = Watchdog::new(timeouts.idle);
    let mut writing = Watchdog::new(timeouts.write);
    loop {
        match idle.watch(stream.read(&mut buf)).await {
            // End of stream, a failed read, or a client silent for too long.
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(n)) => match writing.watch(stream.write_all(&buf[..n])).await {
                Ok(Ok(())) => {}
                // A failed write, or a client that stopped reading.
                Ok(Err(_)) | Err(_) => return,
            },
        }
    }
}

/// Prints, once a second, what the runtime did during that second.
async fn print_metrics_every_second() {
    let mut ticks = ripple::time::interval(Duration::from_secs(1));
    let mut last = Metrics::default();
    loop {
        ticks.tick().await;
        let now = Handle::current().metrics();
        let waits = now.epoll_waits - last.epoll_waits;
        let events = now.events - last.events;
        println!(
            "{} polls, {} wakes by the reactor, {} epoll waits, {:.1} events per wait",
            now.polls - last.polls,
            now.wakes_by_reactor - last.wakes_by_reactor,
            waits,
            events as f64 / waits.max(1) as f64,
        );
        last = now;
    }
}
