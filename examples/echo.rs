//! A TCP echo server: every byte a client sends comes straight back.
//!
//! One task per connection, each a plain loop of `read` and `write_all`. While a task waits for
//! its client, the runtime's single thread serves the others: the seeds' event loop, written as
//! straight-line code.
//!
//! Run it with `cargo run --release --example echo [ADDR]` (default `127.0.0.1:8080`), then talk
//! to it with `nc 127.0.0.1 8080`, or load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 50 2000 64`.
//!
//! To watch the event loop work, add `--metrics` after the address: every second the server
//! prints what its runtime did in that second (from `Handle::metrics`). Under load, one epoll
//! wait returns many events: that ratio is the event loop's whole advantage. Or set
//! `RIPPLE_TRACE=1` to see every spawn, poll, wake and epoll wait as it happens.

use std::io;
use std::time::Duration;

use ripple::net::{TcpListener, TcpStream};
use ripple::runtime::{Handle, Metrics};

#[ripple::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    if std::env::args().nth(2).as_deref() == Some("--metrics") {
        ripple::spawn(print_metrics_every_second());
    }
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                ripple::spawn(echo(stream));
            }
            // Out of file descriptors (EMFILE) or memory: the connection waits in the backlog.
            // Back off instead of spinning on an accept that keeps failing.
            Err(err) => {
                eprintln!("accept failed: {err}");
                ripple::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Sends back whatever arrives, until the client closes or the connection fails.
async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
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
