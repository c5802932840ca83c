//! A load generator for the echo servers: N connections, each sending M messages of S bytes and
//! waiting for each echo before the next (a ping-pong), then a report of throughput and latency.
//!
//! It uses plain blocking sockets and one OS thread per connection, so it measures every server
//! the same way whatever runtime the server uses.
//!
//! `cargo run --release --example echo_client -- ADDR CONNECTIONS MESSAGES SIZE`
//! (defaults: `127.0.0.1:8080 50 2000 64`). Prints one line:
//! `messages=... seconds=... msgs_per_sec=... p50_us=... p99_us=...`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let addr = arg(1, "127.0.0.1:8080");
    let connections: usize = arg(2, "50").parse().expect("CONNECTIONS is a number");
    let messages: usize = arg(3, "2000").parse().expect("MESSAGES is a number");
    let size: usize = arg(4, "64").parse().expect("SIZE is a number");

    // Connect everyone first, then start together, so the run measures steady state.
    let barrier = Arc::new(Barrier::new(connections + 1));
    let mut threads = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(&addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let barrier = barrier.clone();
        threads.push(std::thread::spawn(move || {
            ping_pong(stream, messages, size, &barrier)
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(connections * messages);
    for thread in threads {
        latencies.extend(thread.join().expect("client thread panicked")?);
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "messages={} seconds={seconds:.3} msgs_per_sec={:.0} p50_us={} p99_us={}",
        latencies.len(),
        latencies.len() as f64 / seconds,
        percentile(0.50).as_micros(),
        percentile(0.99).as_micros(),
    );
    Ok(())
}

/// Sends `messages` messages of `size` bytes, each after the previous echo came back.
fn ping_pong(
    mut stream: TcpStream,
    messages: usize,
    size: usize,
    barrier: &Barrier,
) -> io::Result<Vec<Duration>> {
    let out = vec![b'x'; size];
    let mut back = vec![0; size];
    let mut latencies = Vec::with_capacity(messages);
    barrier.wait();
    for _ in 0..messages {
        let sent = Instant::now();
        stream.write_all(&out)?;
        stream.read_exact(&mut back)?;
        latencies.push(sent.elapsed());
    }
    if back != out {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
    }
    Ok(latencies)
}
