//! The echo server on the work-stealing runtime: `echo.rs`'s echo loop (with its idle and write
//! timeouts, at their defaults), on every core.
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
use ripple::time::Watchdog;

#[ripple::main(flavor = "multi_thread")]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    // Accepts, pausing (and saying so, once) while the process is out of file descriptors.
    let mut incoming = listener.incoming();
    loop {
        let (stream, _peer) = incoming.accept().await?;
        ripple::spawn(echo(stream));
    }
}

/// How long a client may stay silent.
const IDLE: Duration = Duration::from_secs(60);

/// How long a client may leave our answer unread.
const WRITE: Duration = Duration::from_secs(10);

/// Sends back whatever arrives, until the client closes, the connection fails, or a timeout
/// runs out (as in `echo.rs`).
async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0; 4096];
    let mut idle = Watchdog::new(IDLE);
    let mut writing = Watchdog::new(WRITE);
    loop {
        match idle.watch(stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(n)) => match writing.watch(stream.write_all(&buf[..n])).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            },
        }
    }
}
