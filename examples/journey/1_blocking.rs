//! Journey, step 1: a blocking echo server on one thread, serving one client at a time.
//!
//! This is the seeds' single-process server (다중 접속 서버로의 여정, "단일 프로세스 서버"):
//! `socket`, `bind`, `listen`, then a loop of `accept` and a blocking `read`/`write` loop on the
//! accepted connection. It costs one thread and one 4 KiB buffer, and uses no CPU while it waits.
//!
//! Where it breaks: while one client is connected, the thread sits in `read` for that client, so
//! every other client waits in the kernel's accept queue (the listen backlog) until the first one
//! hangs up. A second `nc` gets connected by the kernel, but nothing it types comes back until
//! the first `nc` quits. Every later step exists to fix this.
//!
//! Run it with `cargo run --release --example journey_blocking [ADDR]` (default
//! `127.0.0.1:8080`), then talk to it with `nc 127.0.0.1 8080`, or load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64` (the ten clients are
//! served one after another).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = bind(&addr)?;
    // A harness waits for this line before it connects, so it must not sit in a buffer.
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    loop {
        match listener.accept() {
            // Serve this client to the end before accepting the next: the whole point of step 1.
            // An error (say, the peer reset) ends only this connection.
            Ok((stream, _peer)) => {
                let _ = echo(stream);
            }
            Err(err) => back_off_if_out_of_resources(&err),
        }
    }
}

/// Sends back whatever arrives, until the client closes the connection or it fails.
fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        // `read` blocks until at least one byte is there, and may return fewer bytes than the
        // client sent in one go: TCP is a byte stream, so we echo whatever we got.
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()), // The client closed its side: we are done.
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        // `write_all` loops over short writes, so every byte goes back.
        stream.write_all(&buf[..n])?;
    }
}

/// Binds a listener with `SO_REUSEADDR` (a restarted server can rebind at once) and a backlog of
/// 1024: std's `TcpListener::bind` asks for 128, too few when thousands connect at once.
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

/// Handles a failed `accept`. Out of file descriptors or memory, the connection stays in the
/// backlog and the next `accept` would fail the same way at once, so we log and sleep rather
/// than spin. Any other error (the client gave up before we accepted it) concerns only that
/// connection, and we skip it.
fn back_off_if_out_of_resources(err: &io::Error) {
    if let Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) = err.raw_os_error() {
        eprintln!("accept failed: {err}; retrying in 10 ms");
        std::thread::sleep(Duration::from_millis(10));
    }
}
