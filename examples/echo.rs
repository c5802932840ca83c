//! A TCP echo server: every byte a client sends comes straight back.
//!
//! One task per connection, each a plain loop of `read` and `write_all`. While a task waits for
//! its client, the runtime's single thread serves the others: the seeds' event loop, written as
//! straight-line code.
//!
//! Run it with `cargo run --release --example echo [ADDR]` (default `127.0.0.1:8080`), then talk
//! to it with `nc 127.0.0.1 8080`, or load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 50 2000 64`.

use std::io;
use std::time::Duration;

use ripple::net::{TcpListener, TcpStream};

#[ripple::main]
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
