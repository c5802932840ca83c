//! The echo server, thread-per-core: N threads, each a current-thread runtime with a listener of
//! its own on the same port (`SO_REUSEPORT`), so the kernel spreads the connections over them.
//!
//! This is the shape of monoio and pingora: no work is ever moved between threads, so nothing is
//! shared and no task is stolen. It is the yardstick for the work-stealing runtime
//! (`Builder::new_multi_thread()`): as fast as it gets when the load is even, and helpless when it
//! is not (a busy connection keeps its thread busy while the others idle).
//!
//! Run it with `cargo run --release --example echo_per_core [ADDR] [THREADS]` (default
//! `127.0.0.1:8080`, one thread per core), then load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 50 2000 64`.

use std::io;
use std::net::SocketAddr;

use ripple::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

fn main() -> io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    let threads = match std::env::args().nth(2) {
        Some(n) => n
            .parse()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    // Every listener is bound before any thread starts, so that the banner is true. The first
    // one fixes the port (the kernel picks one for port 0); the others share it.
    let first = reuse_port_listener(addr)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(reuse_port_listener(addr)?);
    }
    println!("listening on {addr} with {threads} threads");
    let workers: Vec<_> = listeners
        .into_iter()
        .map(|listener| std::thread::spawn(move || serve(listener)))
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| io::Error::other("a server thread panicked"))??;
    }
    Ok(())
}

/// A listening socket on `addr` that other sockets may share (`SO_REUSEPORT`).
fn reuse_port_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// One thread: a current-thread runtime that accepts on its own listener.
fn serve(listener: std::net::TcpListener) -> io::Result<()> {
    ripple::block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        // Accepts, pausing (and saying so, once) while the process is out of file descriptors.
        let mut incoming = listener.incoming();
        loop {
            let (stream, _peer) = incoming.accept().await?;
            ripple::spawn(echo(stream));
        }
    })
}

/// Echoes everything the client sends until it closes or fails.
async fn echo(mut stream: TcpStream) {
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        if stream.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}
