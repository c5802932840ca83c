//! An echo server where one kind of request blocks the thread, and three ways of handling it.
//!
//! In the guide: chapter 8b, `docs/guide/08b-blocking-inside-a-task.md`.
//!
//! Every task of a current-thread runtime runs on one thread. A task gives that thread back only
//! at an `.await` that is pending. A plain blocking call (`std::thread::sleep` here; in real code
//! a blocking file read, a DNS lookup with `getaddrinfo`, a slow library, a long computation) has
//! no `.await` inside, so while it runs no other task runs, no socket is read and no timer fires.
//!
//! A read that starts with `!` is a slow request: its handler blocks for `--block-ms` (default
//! 50), then echoes the bytes like any other read. The second argument says how:
//!
//! - `block` (the default): calls `std::thread::sleep` in the task. Every other client waits.
//! - `yield`: awaits `ripple::task::yield_now()` first, then blocks the same way. Not a fix:
//!   the yield lets the tasks that are already runnable go first, once, but the blocking call
//!   itself still holds the thread for its whole length.
//! - `spawn_blocking`: runs the blocking call on the runtime's blocking pool
//!   (`ripple::task::spawn_blocking`) and awaits its `JoinHandle`. Only the slow request's own
//!   task waits; the runtime's thread keeps serving everyone else.
//!
//! Each blocking call prints one line on stderr when it starts (`--quiet` turns that off).
//! `--slow-every-ms N` starts a slow client in this process: a plain thread, outside the runtime,
//! that connects to the server and sends a slow request every N ms, each as soon as the previous
//! one is answered if that took longer.
//!
//! Run it with `cargo run --release --example blocking_in_task [ADDR [MODE]]` (default
//! `127.0.0.1:8080` and `block`), for example
//! `cargo run --release --example blocking_in_task -- 127.0.0.1:8080 block --slow-every-ms 100`,
//! then measure the other clients with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 50 500 64` and compare the
//! `p99_us` it prints for each mode. `tests/blocking_in_task.rs` checks the two outcomes.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ripple::net::{TcpListener, TcpStream};

/// The first byte of a request that blocks.
const SLOW: u8 = b'!';

/// How long a slow request blocks, unless `--block-ms` says.
const BLOCK: Duration = Duration::from_millis(50);

/// How a slow request's blocking call is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In the task, on the runtime's thread.
    Block,
    /// In the task, after a `yield_now`.
    Yield,
    /// On the blocking pool, awaited.
    SpawnBlocking,
}

/// What the command line asked for.
#[derive(Debug, Clone, Copy)]
struct Config {
    /// How slow requests are handled.
    mode: Mode,
    /// How long a slow request blocks.
    block: Duration,
    /// Whether to stay silent about each blocking call.
    quiet: bool,
}

#[ripple::main]
async fn main() -> io::Result<()> {
    // ADDR and MODE, then `--block-ms N`, `--slow-every-ms N` and `--quiet`, in any order.
    let (mut addr, mut slow_every) = (None, None);
    let mut config = Config {
        mode: Mode::Block,
        block: BLOCK,
        quiet: false,
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
            "block" => config.mode = Mode::Block,
            "yield" => config.mode = Mode::Yield,
            "spawn_blocking" => config.mode = Mode::SpawnBlocking,
            "--block-ms" => config.block = millis()?,
            "--slow-every-ms" => slow_every = Some(millis()?),
            "--quiet" => config.quiet = true,
            _ if addr.is_none() && !arg.starts_with('-') => addr = Some(arg),
            _ => {
                let message = format!(
                    "unknown argument {arg:?}; usage: blocking_in_task [ADDR] \
                     [block|yield|spawn_blocking] [--block-ms N] [--slow-every-ms N] [--quiet]"
                );
                return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
            }
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("listening on {local}");
    io::stdout().flush()?;
    if let Some(every) = slow_every {
        std::thread::spawn(move || slow_client(local, every));
    }
    // Accepts, pausing (and saying so, once) while the process is out of file descriptors.
    let mut incoming = listener.incoming();
    loop {
        let (stream, _peer) = incoming.accept().await?;
        ripple::spawn(serve(stream, config));
    }
}

/// Echoes whatever arrives, until the client closes the connection or it fails; a read that
/// starts with [`SLOW`] first runs a blocking call, the way `config.mode` says.
async fn serve(mut stream: TcpStream, config: Config) {
    let mut buf = vec![0; 4096];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if buf[0] == SLOW {
            slow_request(config).await;
        }
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The blocking call of a slow request, run the way `config.mode` says.
async fn slow_request(config: Config) {
    let Config { mode, block, quiet } = config;
    let say = move |place: &str| {
        if !quiet {
            eprintln!("blocking for {} ms {place}", block.as_millis());
        }
    };
    match mode {
        Mode::Block => {
            say("on the runtime's thread");
            std::thread::sleep(block);
        }
        Mode::Yield => {
            // Every task that is runnable now runs once before this one goes on...
            ripple::task::yield_now().await;
            // ...and then this call holds the thread exactly as long as in `Mode::Block`.
            say("on the runtime's thread, after a yield");
            std::thread::sleep(block);
        }
        Mode::SpawnBlocking => {
            let blocking = ripple::task::spawn_blocking(move || {
                say("on a thread of the blocking pool");
                std::thread::sleep(block);
            });
            // Only this task waits: the runtime's thread polls the others meanwhile.
            if blocking.await.is_err() {
                eprintln!("the blocking call panicked");
            }
        }
    }
}

/// A client on a plain thread that sends a slow request every `every`, or as soon as the
/// previous one is answered if that took longer.
fn slow_client(server: SocketAddr, every: Duration) {
    // A server bound to 0.0.0.0 is reached through the loopback address.
    let target = if server.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, server.port()))
    } else {
        server
    };
    let run = || -> io::Result<()> {
        let mut stream = std::net::TcpStream::connect(target)?;
        stream.set_nodelay(true)?;
        let mut next = Instant::now();
        let mut echo = [0; 1];
        loop {
            stream.write_all(&[SLOW])?;
            stream.read_exact(&mut echo)?;
            next += every;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
    };
    if let Err(err) = run() {
        eprintln!("the slow client stopped: {err}");
    }
}
