//! The `echo` example's twin on tokio's current-thread runtime, for side-by-side measurement
//! (`cargo bench --bench net`, `benches/echo_counts.sh`); with `multi_thread` after the address,
//! the twin of `echo_multi_thread` on tokio's multi-thread runtime (one worker per core, or
//! `TOKIO_WORKER_THREADS` of them).
//!
//! Same logic, line for line: one task per connection, a 4 KiB buffer, `read` then `write_all`,
//! and the same back-off when `accept` fails. `examples/echo.rs` is the original, written to be
//! read (it also has `--metrics`, which is ripple's); this copy lives with the harness that uses
//! it, and changes when the example's echo loop does. Run it with
//! `cargo run --release -p ripple-tools --bin echo_tokio [ADDR [multi_thread]]` (default
//! `127.0.0.1:8080`).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    // What `#[tokio::main]` and `#[tokio::main(flavor = "current_thread")]` build.
    let runtime = match std::env::args().nth(2).as_deref() {
        Some("multi_thread") => tokio::runtime::Builder::new_multi_thread(),
        Some(other) => {
            let message = format!("unknown flavor '{other}': use multi_thread, or nothing");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        None => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()?;
    runtime.block_on(serve(addr))
}

/// Accepts connections on `addr`, one task each.
async fn serve(addr: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(echo(stream));
            }
            // Out of file descriptors (EMFILE) or memory: the connection waits in the backlog.
            // Back off instead of spinning on an accept that keeps failing.
            Err(err) => {
                eprintln!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
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
