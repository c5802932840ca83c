//! How the size of a TCP receive buffer (`SO_RCVBUF`) bounds each `read` and the throughput.
//!
//! The seed on streams says that a small kernel receive buffer means more `read` calls and less
//! throughput ("양동이로 떠오던 물을 물바가지에 떠오게 되므로": a ladle instead of a bucket).
//! This example measures it. For each buffer size, a sender thread writes 64 MiB over loopback
//! as fast as it can, and a receiver on ripple reads it into a 256 KiB user buffer. The receiver
//! counts the reads that returned data and the times its task parked because the socket was
//! empty (each a turn of the event loop: back to epoll, then woken again).
//!
//! What to expect, and why. The receive buffer is also the window the receiver advertises:
//! the sender may have at most that much data in flight that the receiver has not consumed yet.
//! So however big the user buffer is, one `read` returns at most what the kernel buffer holds,
//! and with a small buffer that is a few kilobytes. Then the sender stops (zero window), the
//! receiver parks until epoll reports more, and the next round starts: a round costs the same
//! syscalls and wake-ups whatever it carries, so reads per MiB and parks per MiB should fall as
//! the buffer grows, bytes per read and throughput rise. Past some size the gains flatten: the
//! window no longer stops the sender, and each read returns what arrived since the previous
//! one, so the pace of the two sides, not the window, sets the size of a read.
//!
//! Setting `SO_RCVBUF` turns off Linux's receive buffer autotuning for that socket. The last
//! row leaves the size alone: the kernel starts at `net.ipv4.tcp_rmem`'s middle value and grows
//! the buffer as the transfer goes (the `at end` column).
//!
//! The size is set on the listening socket before `listen`: accepted sockets inherit it, and
//! the window scale the receiver offers in the handshake is chosen from it. Linux doubles the
//! value asked for (half of it is bookkeeping overhead), and clamps it to `net.core.rmem_max`.
//!
//! Run it with `cargo run --release --example recv_buffer` (about five seconds). Each size
//! runs three times, in turn, and the table shows the run with the median throughput. On the
//! project's 2-core machine (Linux 6.18, x86_64), 2026-11-22, shared with other builds and
//! benchmarks (load average 4):
//!
//! ```text
//! requested       got    at end  reads/MiB  bytes/read  parks/MiB    MiB/s
//!     4 KiB     8 KiB     8 KiB      256.0        4096      256.0       46
//!    16 KiB    32 KiB    32 KiB       64.0       16388       64.0      177
//!    64 KiB   128 KiB   128 KiB       11.1       94387       11.1      722
//!   256 KiB   512 KiB   512 KiB        4.2      247634        1.6     1650
//!   default   128 KiB  5560 KiB        4.1      257122        0.4     2134
//! ```
//!
//! The small sizes behave exactly as the window predicts, in each of eleven runs: asking for
//! 4 KiB gives an 8 KiB buffer, about half of which is window, and reads return 4 KiB: 256
//! reads and 256 trips through epoll per MiB. 16 KiB gives 64 of each. At 64 KiB, reads return
//! around 100 KB, a sixth as many reads (and parks) as at 16 KiB; above that, some reads fill
//! the whole 256 KiB user buffer, and the task parks less often than it reads. Throughput
//! follows, though it is noisy on a shared machine: across those runs, 33 to 83 MiB/s at
//! 4 KiB, 96 to 309 at 16 KiB, 452 to 1,756 at 64 KiB, 643 to 2,462 at 256 KiB, and 592 to
//! 2,175 with the default (whose buffer autotuning grew to between 1.2 and 32 MiB). Reads per
//! MiB moved between 9 and 11 at 64 KiB, and between 4 and 9 above it.

use std::future::poll_fn;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use ripple::net::TcpStream;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// How many bytes each run sends.
const TOTAL: usize = 64 << 20;

/// The receiver's user buffer: big enough that it never limits a read.
const READ_BUF: usize = 256 << 10;

/// How many bytes the sender hands to each `write`.
const WRITE_CHUNK: usize = 1 << 20;

/// The receive buffer sizes to ask for; `None` leaves the kernel's default (and autotuning).
const SIZES: [Option<usize>; 5] = [
    Some(4 << 10),
    Some(16 << 10),
    Some(64 << 10),
    Some(256 << 10),
    None,
];

/// How many times each size runs; the table shows the run with the median throughput.
const ROUNDS: usize = 3;

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// `SO_RCVBUF` as the kernel reported it right after the connection was accepted.
    given: usize,
    /// `SO_RCVBUF` at the end of the transfer (autotuning may have grown it).
    at_end: usize,
    /// Reads that returned data.
    reads: u64,
    /// Times the receiving task parked: it found the socket empty (or, rarely, had used up its
    /// budget of 128 ready operations and yielded).
    parks: u64,
    /// From accepting the connection to reading its end.
    elapsed: Duration,
}

impl Run {
    /// Throughput, in MiB per second.
    fn mib_per_s(&self) -> f64 {
        mib(TOTAL) / self.elapsed.as_secs_f64()
    }
}

fn main() -> io::Result<()> {
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); SIZES.len()];
    // Rounds go through every size in turn, so that a noisy moment hits all sizes alike.
    for _ in 0..ROUNDS {
        for (size, runs) in SIZES.iter().zip(&mut runs) {
            runs.push(measure(*size)?);
        }
    }

    println!(
        "{} MiB over loopback per run, read into a {} KiB buffer, median of {ROUNDS} runs",
        TOTAL >> 20,
        READ_BUF >> 10
    );
    println!(
        "{:>9} {:>9} {:>9} {:>10} {:>11} {:>10} {:>8}",
        "requested", "got", "at end", "reads/MiB", "bytes/read", "parks/MiB", "MiB/s"
    );
    for (size, runs) in SIZES.iter().zip(&mut runs) {
        runs.sort_by(|a, b| a.mib_per_s().total_cmp(&b.mib_per_s()));
        let run = runs[runs.len() / 2];
        let requested = size.map_or("default".to_string(), kib);
        println!(
            "{requested:>9} {:>9} {:>9} {:>10.1} {:>11.0} {:>10.1} {:>8.0}",
            kib(run.given),
            kib(run.at_end),
            run.reads as f64 / mib(TOTAL),
            TOTAL as f64 / run.reads as f64,
            run.parks as f64 / mib(TOTAL),
            run.mib_per_s(),
        );
    }
    Ok(())
}

/// Sends [`TOTAL`] bytes through a connection whose receiving end asked for a receive buffer
/// of `requested` bytes, and measures the receiving end.
fn measure(requested: Option<usize>) -> io::Result<Run> {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(size) = requested {
        // Before `listen`: the accepted socket inherits it, window scale included.
        listener.set_recv_buffer_size(size)?;
    }
    let any_port: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    listener.bind(&any_port.into())?;
    listener.listen(1)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .expect("an IPv4 listener has an IP address");

    let sender = thread::spawn(move || send(addr));
    // If the sender cannot connect, a plain accept would wait forever: poll for it instead.
    listener.set_nonblocking(true)?;
    let socket = loop {
        match listener.accept() {
            Ok((socket, _)) => break socket,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && !sender.is_finished() => {
                thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                return Err(match sender.join() {
                    Ok(Err(err)) => err,
                    _ => io::Error::other("the sender ended before it connected"),
                });
            }
            Err(err) => return Err(err),
        }
    };
    socket.set_nonblocking(false)?;
    let given = socket.recv_buffer_size()?;
    // Everything that touches the ripple stream runs inside the runtime, which owns its
    // registration with epoll.
    let (reads, parks, elapsed, at_end) = ripple::block_on(async {
        let stream = TcpStream::from_std(socket.into())?;
        let start = Instant::now();
        let (reads, parks) = receive(&stream).await?;
        let elapsed = start.elapsed();
        let at_end = SockRef::from(&stream).recv_buffer_size()?;
        io::Result::Ok((reads, parks, elapsed, at_end))
    })?;
    sender.join().expect("the sender thread panicked")?;
    Ok(Run {
        given,
        at_end,
        reads,
        parks,
        elapsed,
    })
}

/// Connects to `addr` and writes [`TOTAL`] bytes with blocking writes, then closes.
fn send(addr: SocketAddr) -> io::Result<()> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    let chunk = vec![0x5a; WRITE_CHUNK];
    for _ in 0..TOTAL / WRITE_CHUNK {
        stream.write_all(&chunk)?;
    }
    Ok(())
}

/// Reads `stream` to its end; returns how many reads returned data and how many times the
/// task parked because the socket was empty.
async fn receive(stream: &TcpStream) -> io::Result<(u64, u64)> {
    let mut buf = vec![0; READ_BUF];
    let (mut bytes, mut reads, mut parks) = (0, 0, 0);
    loop {
        // `poll_read` by hand, to count the `Pending`s: each one sends the task back to the
        // event loop until epoll reports new data. (A few are the runtime's I/O budget instead:
        // after 128 ready reads in one poll, a task yields even though data is waiting.)
        let n = poll_fn(|cx| {
            let poll = stream.poll_read(cx, &mut buf);
            parks += u64::from(poll.is_pending());
            poll
        })
        .await?;
        if n == 0 {
            break;
        }
        bytes += n;
        reads += 1;
    }
    if bytes != TOTAL {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("received {bytes} of {TOTAL} bytes"),
        ));
    }
    Ok((reads, parks))
}

/// `bytes` in MiB.
fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// `bytes` in KiB, for the table.
fn kib(bytes: usize) -> String {
    format!("{} KiB", bytes >> 10)
}
