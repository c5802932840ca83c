//! The echo server on the work-stealing runtime: `echo.rs` with one line changed, the
//! attribute, so that its connections are served by every core.
//!
//! `#[ripple::main(flavor = "multi_thread")]` starts one worker per core (or
//! `RIPPLE_WORKER_THREADS` of them). The accept loop runs on the main thread, in `block_on`;
//! every connection is a task on the workers. A connection's task is woken by whichever worker
//! is waiting in epoll at the time, lands in that worker's queue, and an idle worker steals it
//! if that one is busy. Compare `echo_per_core.rs`, where nothing ever moves between threads.
//!
//! Run it with `cargo run --release --example echo_multi_thread [ADDR]` (default
//! `127.0.0.1:8080`), then load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 50 2000 64`.
//! `RIPPLE_TRACE=1` shows which worker polls which task, and every steal.

use std::io;
use std::time::Duration;

use ripple::net::{TcpListener, TcpStream};

#[ripple::main(flavor = "multi_thread")]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
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
