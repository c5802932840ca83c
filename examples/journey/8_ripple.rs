//! Journey, step 8: the same echo server on ripple, an async runtime.
//!
//! In the guide: chapter 8, `docs/guide/08-async-await-on-ripple.md`.
//!
//! Step 6's event loop, with the state machines written for us. Each connection is a task, a
//! plain loop of `read` and `write_all` like step 1's; at each `.await` where the socket is not
//! ready, the compiler-generated state machine saves its place and the runtime's one thread
//! runs other tasks, then sleeps in epoll until a socket is ready (see the README's "Follow one
//! read"). The seeds' event loop (다중 접속 서버로의 여정, "이벤트루프"), as straight-line code.
//!
//! What it costs: one thread, no CPU while idle, and per client a socket and a task of a few
//! hundred bytes plus its 4 KiB buffer. Where it breaks: like step 6, it runs on one core, and a
//! task that blocks or computes for long stalls everyone else.
//!
//! Run it with `cargo run --release --example journey_ripple [ADDR]` (default
//! `127.0.0.1:8080`), then load it with the repository's client,
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::io::{self, Write};

use ripple::net::{TcpListener, TcpStream};

#[ripple::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    // ripple's listener already sets SO_REUSEADDR and a backlog of 1024.
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    // Accepts, pausing (and saying so, once) while the process is out of file descriptors
    // (EMFILE): the connection waits in the backlog, and retrying at once would spin.
    let mut incoming = listener.incoming();
    loop {
        let (stream, _peer) = incoming.accept().await?;
        ripple::spawn(echo(stream));
    }
}

/// Sends back whatever arrives, until the client closes the connection or it fails.
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
