//! Journey, step 3: a thread per connection.
//!
//! This is the seeds' multi-thread server (다중 접속 서버로의 여정, "멀티스레드 서버", the
//! Spring MVC model): the main thread accepts and hands each connection to a new thread that
//! runs step 1's blocking echo loop. A thread is cheaper to start than a process, and a client
//! that waits blocks only its own thread.
//!
//! What it costs: a thread per client. The kernel keeps a task for each, and each has its own
//! stack. Rust's default stack is 2 MiB (the JVM's is about 1 MiB, as the seed says); we ask for
//! 64 KiB, plenty for a 4 KiB buffer and a few calls, and only the pages a thread touches are
//! ever backed by memory: about 7 KiB per idle client, measured with 1,000. Where it breaks: thousands of clients mean thousands of threads, so
//! the scheduler juggles them and memory grows with the client count; at the user's process
//! limit (`ulimit -u`) or `threads-max`, `spawn` fails, and this server then drops that one
//! connection and backs off instead of panicking.
//!
//! Run it with `cargo run --release --example journey_thread_per_connection [ADDR]` (default
//! `127.0.0.1:8080`), then talk to it with `nc 127.0.0.1 8080`, or load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// The stack each connection's thread gets: `echo` needs a few kilobytes.
const STACK_SIZE: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = bind(&addr)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    loop {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                back_off_if_out_of_resources(&err);
                continue;
            }
        };
        // The thread owns the connection; we never join it, it ends when its client leaves.
        // An error (a reset, say) ends only that client's thread.
        let spawned = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let _ = echo(stream);
            });
        // Out of threads or memory: the connection (moved into the failed closure) is already
        // closed. Pause so the threads that are running can finish and free their slots.
        if let Err(err) = spawned {
            eprintln!("spawn failed: {err}; dropped the connection, retrying in 10 ms");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends back whatever arrives, until the client closes the connection or it fails.
fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        stream.write_all(&buf[..n])?;
    }
}

/// Binds a listener with `SO_REUSEADDR` and a backlog of 1024 (std's `bind` asks for 128).
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

/// Handles a failed `accept`: out of descriptors or memory, log and sleep rather than spin; any
/// other error concerns only the connection that failed, and we skip it.
fn back_off_if_out_of_resources(err: &io::Error) {
    if let Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) = err.raw_os_error() {
        eprintln!("accept failed: {err}; retrying in 10 ms");
        thread::sleep(Duration::from_millis(10));
    }
}
