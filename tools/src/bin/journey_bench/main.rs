//! The journey, measured: the eight echo servers of the teaching documents under the same load.
//!
//! The journey goes from a blocking server that serves one client at a time, through a process
//! and a thread per connection, a thread pool, a busy-polling loop, a hand-written event loop and
//! Tomcat's NIO connector, to async/await on ripple (`examples/journey/`). This harness starts
//! each server as its own process, loads it with 1, 10, 100, 1,000 and 5,000 concurrent
//! connections, and measures, for every server and level (a *cell*):
//!
//! - throughput: echoed 64-byte messages per second, over all connections;
//! - p99 latency: the 99th percentile of one message's round trip;
//! - threads and resident memory (RSS) of the server, summed over its process tree (the fork
//!   server's children count), sampled at the end of a measured window while every connection
//!   is still open;
//! - CPU time of the server (user + system, summed over every thread of the tree) across the
//!   window, as milliseconds per 1,000 messages and as a share of one core.
//!
//! A server that cannot serve a level (the blocking server at 10 clients, the thread pool above
//! 8, a server that dies or was never written) gets the reason in its cell instead of figures.
//!
//! The client is the same for every server and lives in `client.rs`: one thread, one `polling`
//! event loop, every connection doing ping-pong (send 64 bytes, wait for the whole echo, record
//! the round trip, send again). One thread drives 5,000 connections, so the client fits on one
//! core of a two-core machine. With `taskset` and two CPUs the server runs on CPU 0 and the
//! client on CPU 1.
//!
//! Run it with `cargo run --release -p ripple-tools --bin journey_bench` (about four and a half
//! minutes on the project's two-core machine, building included): it builds the servers itself
//! (`cargo build --release --example ...`), prints one line per cell to stderr, and writes
//! `docs/journey.md` (machine, method, one table per figure, the reasons for every level not
//! served) with the charts `docs/journey_throughput.svg` and `docs/journey_memory.svg`.
//!
//! Options, after `--`:
//! - `--quick`: about a minute and a half, with the same servers and levels, a 0.25 s warm-up
//!   and two 0.4 s windows instead of 1 s and three 1.5 s windows, and shorter set-up limits.
//! - `--models echo,journey_ripple`: only the named examples. Any example that takes its listen
//!   address as its first argument and prints `listening on ADDR` once bound will do, and so will
//!   the tokio twins of this package (`--models echo,echo_tokio`).
//! - `--out DIR`: the folder the report and its charts go to. Without it, only a full run of the
//!   whole journey writes to `docs/`; a `--quick` or `--models` run writes to a fresh temporary
//!   folder, and says which, so it never overwrites the committed report.
//!
//! The code, in the order a run goes: `args.rs` (the command line and the plan of a cell),
//! `client.rs` (the load), `measure.rs` (one cell, from starting its server to its figures),
//! `report.rs` (the Markdown) and `svg.rs` (the charts). What it shares with `benches/net.rs` is
//! this package's library (`tools/src/`): `workspace.rs` (building the servers), `server.rs`
//! (starting, pinning and killing them), `procfs.rs` (what `/proc` says about a server's process
//! tree and the machine) and `text.rs` (numbers and text for the report).

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]

mod args;
mod client;
mod measure;
mod report;
mod svg;

use std::time::Instant;

use ripple_tools::server::{become_subreaper, pin_client, raise_open_files_limit, reap_orphans};
use ripple_tools::{workspace, Result};

use args::{Args, Model, Plan};
use measure::measure_all;
use report::Report;

/// Concurrent connections per cell.
const LEVELS: [usize; 5] = [1, 10, 100, 1_000, 5_000];

/// Runs the bench; an error that ends it is printed, with exit status 1.
fn main() {
    if let Err(err) = run() {
        eprintln!("journey: {err}");
        std::process::exit(1);
    }
}

/// Builds the servers, measures every cell, writes the report.
fn run() -> Result<()> {
    let started = Instant::now();
    let args = Args::parse()?;
    let plan = Plan::new(args.quick);
    // Before any server starts: they inherit the limit, and their orphans come back to us.
    let open_files = raise_open_files_limit()?;
    become_subreaper()?;
    let unbuilt = build(&args.models)?;
    // Pin after building, so that cargo gets both cores.
    let pinned = pin_client();
    if !pinned {
        eprintln!("journey: not pinned (needs taskset, two CPUs and sched_setaffinity)");
    }
    let results = measure_all(&args.models, &unbuilt, &plan, pinned);
    reap_orphans();
    let out = workspace::out_dir(args.out.clone(), args.is_committed_run(), "journey")?;
    let report = Report {
        args: &args,
        plan: &plan,
        results: &results,
        pinned,
        open_files,
        elapsed: started.elapsed(),
    };
    report.write(&out)?;
    eprintln!(
        "journey: done in {:.0} s; wrote journey.md, journey_throughput.svg and \
         journey_memory.svg to {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// Builds every model's example in release mode; returns the ones that did not build.
///
/// One `cargo build` for all is fastest. If it fails (someone's work in progress), each is
/// built alone, so that one broken server costs only its own row.
fn build(models: &[Model]) -> Result<Vec<String>> {
    eprintln!("journey: building the servers (release)");
    let all: Vec<&str> = models.iter().map(|m| m.example.as_str()).collect();
    if workspace::build(&all)? {
        return Ok(Vec::new());
    }
    let mut unbuilt = Vec::new();
    for example in all {
        if !workspace::build(&[example])? {
            unbuilt.push(example.to_string());
        }
    }
    if unbuilt.len() == models.len() {
        return Err("no server built".into());
    }
    Ok(unbuilt)
}
