//! Network benchmarks: ripple against tokio, on the same example servers, measured in one run,
//! interleaved (ripple, tokio, ripple, tokio, ...): first the current-thread runtimes, then the
//! multi-thread ones with 2 workers each.
//!
//! `cargo bench --bench net` (about ten minutes) or `cargo bench --bench net -- --quick` (under
//! two). It builds the servers in release mode, starts each server as its own process on a
//! fresh port, and measures:
//!
//! - echo (`examples/echo.rs` against its tokio twin `tools/src/bin/echo_tokio.rs`, loaded by
//!   `examples/echo_client.rs`): messages per second, p50 and p99 latency, for 1, 50 and 500
//!   connections and 64- and 4096-byte messages;
//! - HTTP (`examples/hello_http.rs` against `tools/src/bin/hello_http_tokio.rs`, loaded by
//!   `wrk`): requests per second and p99 latency, for 50 and 256 connections;
//! - idle scale: the server's resident memory per idle connection, 10,000 connections opened from
//!   this process;
//! - syscalls and instructions per echoed message (`benches/echo_counts.sh`);
//! - multi-thread: the echo at 50 connections (`examples/echo_multi_thread.rs` against the tokio
//!   twin on tokio's multi-thread runtime, unpinned: two workers pinned to one CPU would measure
//!   one core), its counts, and the `mt_*` micro benchmarks of `benches/runtime.rs`
//!   (`benches/runtime_ratios.sh`), each ratio with its spread over the runs;
//! - hyper: `examples/hyper_hello.rs` (`ripple::hyper`) against the same service on tokio with
//!   hyper-util (`benches/hyper_counts.sh`): instructions per request, and requests per second
//!   at 50 and 256 connections; on the current-thread runtimes (pinned), then on the
//!   multi-thread ones (2 workers each, unpinned).
//!
//! With `taskset` on the machine the server runs on CPU 0 and the load on CPU 1. Every figure is
//! the median of the runs, every ratio the median of the per-pair ratios ripple/tokio. The
//! results go to stdout as a table and to `benchmarks.md` and `benchmarks.svg` in the folder
//! that `-- --out DIR` names. Without `--out`, a full run writes the committed report,
//! `docs/benchmarks.md` and `docs/benchmarks.svg`; a `--quick` run writes to a fresh temporary
//! folder, and says which.
//!
//! Starting, pinning and killing the servers, `/proc` and the report's text come from
//! `ripple-tools` (`tools/src/`), which `tools/src/bin/journey_bench/` uses too.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ripple_tools::procfs::{cpu_info, open_fds, vm_rss_bytes};
use ripple_tools::server::{can_pin, on_path, open_files_limit, pinned, Server};
use ripple_tools::text::{self, command_output, xml_escape};
use ripple_tools::{workspace, Result};

/// The programs the benchmark runs: examples, and the tokio twins of `tools/`.
const PROGRAMS: [&str; 6] = [
    "echo",
    "echo_multi_thread",
    "echo_tokio",
    "echo_client",
    "hello_http",
    "hello_http_tokio",
];

/// The command line: `cargo bench --bench net -- [--quick] [--out DIR]`.
struct Args {
    /// `--quick`: fewer and shorter runs.
    quick: bool,
    /// `--out DIR`: the folder the report goes to.
    out: Option<PathBuf>,
}

impl Args {
    /// Parses the arguments. Cargo adds `--bench` to a benchmark without criterion's harness,
    /// and `cargo bench FILTER` passes its filter to every benchmark: both are ignored.
    fn parse() -> Result<Args> {
        let mut args = Args {
            quick: false,
            out: None,
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            match word.as_str() {
                "--quick" => args.quick = true,
                "--out" => args.out = Some(words.next().ok_or("--out needs a folder")?.into()),
                "--bench" => {}
                other => match other.strip_prefix("--out=") {
                    Some(dir) => args.out = Some(dir.into()),
                    None => eprintln!("net: ignoring the argument {other:?}"),
                },
            }
        }
        Ok(args)
    }

    /// The command that reproduces this run, for the report.
    fn command(&self) -> String {
        let mut command = String::from("cargo bench --bench net");
        if self.quick || self.out.is_some() {
            command.push_str(" --");
        }
        if self.quick {
            command.push_str(" --quick");
        }
        if let Some(out) = &self.out {
            let _ = write!(command, " --out {}", out.display());
        }
        command
    }
}

/// How much work each part does: the full run or `--quick`.
struct Plan {
    /// Ripple/tokio pairs for the echo and HTTP loads.
    pairs: usize,
    /// Echo messages per run, over all connections...
    echo_messages: usize,
    /// ... but at least this many per connection...
    echo_min_per_connection: usize,
    /// ... and at most this many.
    echo_max_per_connection: usize,
    /// Seconds per `wrk` run.
    wrk_seconds: u32,
    /// Idle connections per server, before the fd limit is applied.
    idle_connections: usize,
    /// Ripple/tokio pairs for the idle-scale measurement.
    idle_pairs: usize,
    /// Ripple/tokio pairs for the syscall and instruction counts (they barely vary).
    count_pairs: usize,
    /// Echo messages per connection for those counts.
    count_messages: usize,
    /// Runs of the multi-thread micro benchmarks...
    micro_runs: usize,
    /// ... and criterion's measurement time in each, in seconds.
    micro_seconds: u32,
    /// Ripple/tokio pairs for hyper's requests per second.
    hyper_pairs: usize,
}

/// A server to start: its program, and what it needs besides its address.
struct Launch {
    /// The example or tokio twin.
    program: &'static str,
    /// Its arguments after the address.
    args: &'static [&'static str],
    /// Worker threads, for a multi-thread runtime (both runtimes' variables are set).
    workers: Option<usize>,
}

/// The current-thread echo servers.
const ECHO: [Launch; 2] = [
    Launch {
        program: "echo",
        args: &[],
        workers: None,
    },
    Launch {
        program: "echo_tokio",
        args: &[],
        workers: None,
    },
];

/// The multi-thread echo servers, with 2 workers each.
const ECHO_MULTI_THREAD: [Launch; 2] = [
    Launch {
        program: "echo_multi_thread",
        args: &[],
        workers: Some(2),
    },
    Launch {
        program: "echo_tokio",
        args: &["multi_thread"],
        workers: Some(2),
    },
];

impl Launch {
    /// Starts the server, pinned to CPU 0 if `pin`.
    fn start(&self, pin: bool) -> Result<(Server, std::net::SocketAddr)> {
        let started = Server::start_with(&workspace::program(self.program), pin, |command| {
            command.args(self.args);
            if let Some(workers) = self.workers {
                command
                    .env("RIPPLE_WORKER_THREADS", workers.to_string())
                    .env("TOKIO_WORKER_THREADS", workers.to_string());
            }
        });
        Ok(started?)
    }
}

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

/// One row of the result table.
struct Figure {
    name: String,
    better: Better,
    ripple: f64,
    tokio: f64,
    /// The median of the per-pair ratios ripple/tokio.
    ratio: f64,
    /// The smallest and the largest of those ratios.
    spread: (f64, f64),
}

impl Figure {
    /// Builds a row from paired runs: `runs[i]` is (ripple, tokio) of pair `i`.
    fn from_pairs(name: String, better: Better, runs: &[(f64, f64)]) -> Figure {
        let ripple = median(runs.iter().map(|r| r.0).collect());
        let tokio = median(runs.iter().map(|r| r.1).collect());
        let ratios: Vec<f64> = runs.iter().map(|&(r, t)| r / t).collect();
        let spread = (
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        Figure {
            name,
            better,
            ripple,
            tokio,
            ratio: median(ratios),
            spread,
        }
    }

    /// The ratio turned so that above 1.0 always means ripple is better.
    fn normalized(&self) -> f64 {
        match self.better {
            Better::Higher => self.ratio,
            Better::Lower => 1.0 / self.ratio,
        }
    }
}

/// Adds one figure per measured column: `runs[i]` holds pair `i`'s (ripple, tokio) values, and
/// `columns[j]` names column `j` and says which way it is better.
fn push_columns<const N: usize>(
    figures: &mut Vec<Figure>,
    runs: &[([f64; N], [f64; N])],
    columns: [(String, Better); N],
) {
    for (i, (name, better)) in columns.into_iter().enumerate() {
        let pairs: Vec<(f64, f64)> = runs.iter().map(|(r, t)| (r[i], t[i])).collect();
        figures.push(Figure::from_pairs(name, better, &pairs));
    }
}

fn main() {
    if let Err(err) = run() {
        eprintln!("net benchmark failed: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let started = Instant::now();
    let args = Args::parse()?;
    // The report's folder first, so that a bad `--out` fails before the long run.
    let out = workspace::out_dir(args.out.clone(), !args.quick, "ripple-net-bench")?;
    let plan = if args.quick {
        Plan {
            pairs: 2,
            echo_messages: 20_000,
            echo_min_per_connection: 100,
            echo_max_per_connection: 10_000,
            wrk_seconds: 1,
            idle_connections: 1_000,
            idle_pairs: 1,
            count_pairs: 1,
            count_messages: 300,
            micro_runs: 1,
            micro_seconds: 1,
            hyper_pairs: 1,
        }
    } else {
        Plan {
            pairs: 5,
            echo_messages: 100_000,
            echo_min_per_connection: 400,
            echo_max_per_connection: 50_000,
            wrk_seconds: 3,
            idle_connections: 10_000,
            idle_pairs: 3,
            count_pairs: 2,
            count_messages: 2_000,
            micro_runs: 5,
            micro_seconds: 3,
            hyper_pairs: 7,
        }
    };
    eprintln!("net: building the servers and the client (release)");
    if !workspace::build(&PROGRAMS)? {
        return Err("cargo build failed".into());
    }
    let pin = can_pin();
    if !pin {
        eprintln!("net: no pinning (needs taskset and two CPUs)");
    }

    let mut figures = Vec::new();
    let mut notes = Vec::new();
    if !pin {
        notes.push(
            "Servers and load were not pinned to CPUs: `taskset` or a second CPU is missing."
                .to_string(),
        );
    }
    for connections in [1, 50, 500] {
        for size in [64, 4096] {
            echo_load(&plan, pin, &ECHO, connections, size, "", &mut figures)?;
        }
    }
    http_load(&plan, pin, &mut figures, &mut notes)?;
    idle_scale(&plan, pin, &mut figures, &mut notes)?;
    counts(&plan, None, &mut figures, &mut notes)?;
    // The multi-thread runtimes, unpinned: two workers pinned to one CPU would measure one core.
    let multi = "multi-thread, 2 workers: ";
    echo_load(
        &plan,
        false,
        &ECHO_MULTI_THREAD,
        50,
        64,
        multi,
        &mut figures,
    )?;
    counts(&plan, Some(multi), &mut figures, &mut notes)?;
    micro(&plan, multi, &mut figures, &mut notes)?;
    hyper(&plan, None, &mut figures, &mut notes)?;
    hyper(&plan, Some(multi), &mut figures, &mut notes)?;

    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("net: done in {elapsed:.0} s");
    print!("{}", table(&figures));
    for note in &notes {
        println!("note: {note}");
    }
    write_report(&out, &args.command(), &plan, &figures, &notes, elapsed)?;
    Ok(())
}

/// Echo throughput and latency at `connections` connections of `size`-byte messages, for the
/// two `servers` (ripple's, then tokio's); the figures' names start with `prefix`.
fn echo_load(
    plan: &Plan,
    pin: bool,
    servers: &[Launch; 2],
    connections: usize,
    size: usize,
    prefix: &str,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    // Enough messages per connection that the client's start-up skew (hundreds of threads on
    // one CPU) stays small against the run.
    let per_connection = (plan.echo_messages / connections)
        .clamp(plan.echo_min_per_connection, plan.echo_max_per_connection);
    // (msgs/s, p50, p99) of ripple and tokio, per pair.
    let mut runs = Vec::new();
    for pair in 0..plan.pairs {
        let one = |server: &Launch| -> Result<[f64; 3]> {
            let (_server, addr) = server.start(pin)?;
            let output = pinned(pin, 1, &workspace::program("echo_client"))
                .arg(addr.to_string())
                .arg(connections.to_string())
                .arg(per_connection.to_string())
                .arg(size.to_string())
                .stderr(Stdio::inherit())
                .output()?;
            if !output.status.success() {
                return Err(format!("echo_client failed: {}", output.status).into());
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let field = |key: &str| -> Result<f64> {
                text.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("no {key} in echo_client output: {text}").into())
            };
            Ok([field("msgs_per_sec")?, field("p50_us")?, field("p99_us")?])
        };
        let r = one(&servers[0])?;
        let t = one(&servers[1])?;
        eprintln!(
            "net: {prefix}echo {connections} conns x {size} B, pair {}/{}: ripple {:.0} msgs/s \
             p50 {} p99 {} us; tokio {:.0} msgs/s p50 {} p99 {} us",
            pair + 1,
            plan.pairs,
            r[0],
            r[1],
            r[2],
            t[0],
            t[1],
            t[2]
        );
        runs.push((r, t));
    }
    let label = format!("{connections} conn x {size} B");
    push_columns(
        figures,
        &runs,
        [
            (format!("{prefix}echo msgs/s, {label}"), Better::Higher),
            (
                format!("{prefix}echo p50 latency (µs), {label}"),
                Better::Lower,
            ),
            (
                format!("{prefix}echo p99 latency (µs), {label}"),
                Better::Lower,
            ),
        ],
    );
    Ok(())
}

/// HTTP requests per second and p99 latency with `wrk`, if it is there or can be installed.
fn http_load(
    plan: &Plan,
    pin: bool,
    figures: &mut Vec<Figure>,
    notes: &mut Vec<String>,
) -> Result<()> {
    if !on_path("wrk") {
        eprintln!("net: wrk is not on PATH; trying `apt-get install -y wrk`");
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !on_path("wrk") {
            let why = match installed {
                Err(err) => format!("running apt-get failed ({err})"),
                Ok(status) => format!("`apt-get install -y wrk` failed ({status})"),
            };
            eprintln!("net: HTTP skipped: {why}");
            notes.push(format!(
                "HTTP load skipped: `wrk` is not on PATH and {why}."
            ));
            return Ok(());
        }
    }
    for connections in [50, 256] {
        // (req/s, p99 µs) of ripple and tokio, per pair.
        let mut runs = Vec::new();
        for pair in 0..plan.pairs {
            let one = |server: &str| -> Result<[f64; 2]> {
                let (_server, addr) = Server::start(&workspace::program(server), pin)?;
                let output = pinned(pin, 1, Path::new("wrk"))
                    .arg("-t1")
                    .arg(format!("-c{connections}"))
                    .arg(format!("-d{}s", plan.wrk_seconds))
                    .arg("--latency")
                    .arg(format!("http://{addr}/"))
                    .output()?;
                if !output.status.success() {
                    return Err(format!("wrk failed: {}", output.status).into());
                }
                parse_wrk(&String::from_utf8_lossy(&output.stdout))
            };
            let r = one("hello_http")?;
            let t = one("hello_http_tokio")?;
            eprintln!(
                "net: http {connections} conns, pair {}/{}: ripple {:.0} req/s p99 {:.0} us; \
                 tokio {:.0} req/s p99 {:.0} us",
                pair + 1,
                plan.pairs,
                r[0],
                r[1],
                t[0],
                t[1]
            );
            runs.push((r, t));
        }
        push_columns(
            figures,
            &runs,
            [
                (
                    format!("HTTP requests/s, {connections} conns (wrk)"),
                    Better::Higher,
                ),
                (
                    format!("HTTP p99 latency (µs), {connections} conns (wrk)"),
                    Better::Lower,
                ),
            ],
        );
    }
    Ok(())
}

/// Requests per second and the 99% latency in microseconds from `wrk --latency` output.
fn parse_wrk(text: &str) -> Result<[f64; 2]> {
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output: {text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_us(v.trim()))
        .ok_or_else(|| format!("no 99% latency in wrk output: {text}"))?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("net: wrk reported errors:\n{text}");
    }
    Ok([rps, p99])
}

/// A `wrk` duration such as `512.00us`, `1.23ms` or `2.00s`, in microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        _ => return None,
    };
    Some(number * scale)
}

/// Resident memory per idle connection: VmRSS before and after opening the connections.
fn idle_scale(
    plan: &Plan,
    pin: bool,
    figures: &mut Vec<Figure>,
    notes: &mut Vec<String>,
) -> Result<()> {
    // Each connection takes one descriptor here and one in the server (which inherits our limit).
    let limit = open_files_limit()?;
    let margin = 200;
    let connections = plan
        .idle_connections
        .min(limit.saturating_sub(margin) as usize);
    if connections < plan.idle_connections {
        notes.push(format!(
            "Idle scale used {connections} connections, not {}: the open-files soft limit is \
             {limit} (kept a margin of {margin}).",
            plan.idle_connections
        ));
    }
    if connections == 0 {
        return Ok(());
    }
    let mut runs = Vec::new();
    for pair in 0..plan.idle_pairs {
        let r = idle_once("echo", pin, connections)?;
        let t = idle_once("echo_tokio", pin, connections)?;
        eprintln!(
            "net: idle {connections} conns, pair {}/{}: ripple {r:.0} B/conn; tokio {t:.0} B/conn",
            pair + 1,
            plan.idle_pairs
        );
        runs.push((r, t));
    }
    figures.push(Figure::from_pairs(
        format!("idle RSS per connection (bytes), {connections} conns"),
        Better::Lower,
        &runs,
    ));
    Ok(())
}

/// Opens `connections` idle connections to a fresh `server`; returns its RSS growth per
/// connection in bytes.
fn idle_once(name: &str, pin: bool, connections: usize) -> Result<f64> {
    let (server, addr) = Server::start(&workspace::program(name), pin)?;
    let pid = server.pid();
    // Let the server settle after start-up.
    std::thread::sleep(Duration::from_millis(200));
    let fds_before = open_fds(pid)?;
    let before = vm_rss(pid)?;
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        streams.push(TcpStream::connect(addr)?);
    }
    // Wait until the server has accepted every connection, then let it poll the new tasks.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds(pid)? < fds_before + connections {
        if Instant::now() > deadline {
            return Err(format!("{name} did not accept {connections} connections in 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = vm_rss(pid)?;
    drop(server);
    drop(streams);
    Ok(after.saturating_sub(before) as f64 / connections as f64)
}

/// The resident set size of process `pid`, in bytes.
fn vm_rss(pid: i32) -> Result<u64> {
    Ok(vm_rss_bytes(pid).ok_or("no VmRSS in /proc/PID/status")?)
}

/// The median of `values` (`NaN` if there are none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A figure for the table: thousands separated when large, two decimals when small.
fn number(value: f64) -> String {
    if value.is_finite() && value.abs() < 100.0 && value.fract() != 0.0 {
        format!("{value:.2}")
    } else {
        text::number(value)
    }
}

fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}")
    } else {
        "n/a".into()
    }
}

/// The result table in Markdown.
fn table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| figure | better | ripple | tokio | ripple/tokio | spread |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for f in figures {
        let better = match f.better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        let _ = writeln!(
            out,
            "| {} | {better} | {} | {} | {} | {}–{} |",
            f.name,
            number(f.ripple),
            number(f.tokio),
            ratio(f.ratio),
            ratio(f.spread.0),
            ratio(f.spread.1)
        );
    }
    out
}

/// Syscalls and user-space instructions per echoed message: counts that do not drift with the
/// machine's noise. `benches/echo_counts.sh` does the measuring (strace -c -f with 50
/// connections, callgrind with 10); each mode is skipped, with a note, if its tool is missing.
/// `multi`, if given, is the prefix of the multi-thread figures: then the script measures the
/// multi-thread servers (`ECHO_FLAVOR=multi_thread`).
fn counts(
    plan: &Plan,
    multi: Option<&str>,
    figures: &mut Vec<Figure>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let prefix = multi.unwrap_or("");
    // callgrind runs one thread at a time: a multi-thread server's count adds up its threads'.
    let serialised = if multi.is_some() {
        ", threads serialised"
    } else {
        ""
    };
    let modes = [
        (
            "strace",
            "strace",
            format!("{prefix}syscalls per echoed message, 50 conns (strace -c -f)"),
        ),
        (
            "callgrind",
            "valgrind",
            format!(
                "{prefix}user-space instructions per echoed 64 B message, 10 conns \
                 (callgrind{serialised})"
            ),
        ),
    ];
    for (mode, tool, name) in modes {
        if !on_path(tool) {
            notes.push(format!("{name}: skipped, `{tool}` is not installed."));
            continue;
        }
        eprintln!("net: {mode} counts");
        let output = Command::new("bash")
            .arg(workspace::root().join("benches/echo_counts.sh"))
            .args([mode, &plan.count_pairs.to_string()])
            .env("ECHO_MESSAGES", plan.count_messages.to_string())
            .env(
                "ECHO_FLAVOR",
                if multi.is_some() {
                    "multi_thread"
                } else {
                    "current_thread"
                },
            )
            .output()?;
        let Some(pairs) = script_pairs(&output.stdout) else {
            notes.push(format!(
                "{name}: benches/echo_counts.sh gave no figures ({}).",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
            continue;
        };
        figures.push(Figure::from_pairs(name, Better::Lower, &pairs));
    }
    Ok(())
}

/// The (ripple, tokio) pairs of a `benches/*_counts.sh` run, from the line ending with
/// "(median of N pairs: ripple a b ...; tokio c d ...)"; `None` if it has none.
fn script_pairs(stdout: &[u8]) -> Option<Vec<(f64, f64)>> {
    let text = String::from_utf8_lossy(stdout);
    let runs = |label: &str| -> Vec<f64> {
        text.split(label)
            .nth(1)
            .unwrap_or("")
            .split([';', ')'])
            .next()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let (ripple, tokio) = (runs("pairs: ripple "), runs("; tokio "));
    (!ripple.is_empty() && ripple.len() == tokio.len())
        .then(|| ripple.into_iter().zip(tokio).collect())
}

/// hyper on ripple against hyper on tokio (`benches/hyper_counts.sh`): user-space instructions
/// per request, and requests per second with `wrk` at 50 and 256 connections; on the
/// current-thread runtimes (pinned), or, with `multi` (the figures' prefix), on the multi-thread
/// ones (`HYPER_FLAVOR=multi_thread`: 2 workers each, unpinned).
fn hyper(
    plan: &Plan,
    multi: Option<&str>,
    figures: &mut Vec<Figure>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let modes = [
        (
            "callgrind",
            "hyper: user-space instructions per request, wrk -c10 (callgrind)",
            Better::Lower,
        ),
        ("rps50", "hyper: requests/s, 50 conns (wrk)", Better::Higher),
        (
            "rps256",
            "hyper: requests/s, 256 conns (wrk)",
            Better::Higher,
        ),
    ];
    let flavor = if multi.is_some() {
        "multi_thread"
    } else {
        "current_thread"
    };
    for (mode, name, better) in modes {
        let name = format!("{}{name}", multi.unwrap_or(""));
        if mode == "callgrind" && !on_path("valgrind") {
            notes.push(format!("{name}: skipped, `valgrind` is not installed."));
            continue;
        }
        eprintln!("net: hyper {mode} ({flavor})");
        let pairs = if mode == "callgrind" {
            plan.count_pairs
        } else {
            plan.hyper_pairs
        };
        let output = Command::new("bash")
            .arg(workspace::root().join("benches/hyper_counts.sh"))
            .args([mode, &pairs.to_string()])
            .env("HYPER_FLAVOR", flavor)
            .output()?;
        let Some(pairs) = script_pairs(&output.stdout) else {
            notes.push(format!(
                "{name}: benches/hyper_counts.sh gave no figures ({}).",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
            continue;
        };
        figures.push(Figure::from_pairs(name, better, &pairs));
    }
    Ok(())
}

/// The multi-thread micro benchmarks (`benches/runtime_ratios.sh mt_`): per group, the median
/// times and the median ratio with its spread over the runs; for `mt_cpu_scaling`, each
/// runtime's speed-up from a second worker.
fn micro(
    plan: &Plan,
    prefix: &str,
    figures: &mut Vec<Figure>,
    notes: &mut Vec<String>,
) -> Result<()> {
    eprintln!("net: multi-thread micro benchmarks");
    let output = Command::new("bash")
        .arg(workspace::root().join("benches/runtime_ratios.sh"))
        .args(["mt_", &plan.micro_runs.to_string()])
        .env("RATIO_TIME", plan.micro_seconds.to_string())
        .output()?;
    // Each line: GROUP RATIO MIN-MAX RIPPLE TOKIO (N runs)
    let text = String::from_utf8_lossy(&output.stdout);
    let mut found = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [group, ratio, spread, ripple, tokio, ..] = words[..] else {
            continue;
        };
        let (Ok(ratio), Some((Ok(low), Ok(high))), Ok(ripple), Ok(tokio)) = (
            ratio.parse::<f64>(),
            spread
                .split_once('-')
                .map(|(l, h)| (l.parse::<f64>(), h.parse::<f64>())),
            ripple.parse::<f64>(),
            tokio.parse::<f64>(),
        ) else {
            continue;
        };
        let (name, better) = match group.strip_prefix("mt_") {
            Some("cpu_scaling") => (
                format!("{prefix}CPU-bound speed-up from 1 to 2 workers (cpu_scaling)"),
                Better::Higher,
            ),
            Some(shape) => (format!("{prefix}{shape} time (µs)"), Better::Lower),
            None => continue,
        };
        found = true;
        figures.push(Figure {
            name,
            better,
            ripple,
            tokio,
            ratio,
            spread: (low, high),
        });
    }
    if !found {
        notes.push(format!(
            "The multi-thread micro benchmarks gave no figures ({}).",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// Writes `benchmarks.md` and `benchmarks.svg` to the folder `out`; `command` is the one that
/// reproduces the run.
fn write_report(
    out: &Path,
    command: &str,
    plan: &Plan,
    figures: &[Figure],
    notes: &[String],
    elapsed: f64,
) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let kernel = command_output("uname", &["-r"]);
    let (cpus, model) = cpu_info();

    let mut md = String::new();
    let _ = writeln!(md, "# ripple network benchmarks\n");
    let _ = writeln!(
        md,
        "Ripple against tokio on the same example servers: the current-thread runtimes, then \
         (the rows that start with \"multi-thread\") the multi-thread ones with 2 worker \
         threads each.\n"
    );
    let _ = writeln!(md, "- Date: {date}");
    let _ = writeln!(md, "- Machine: {cpus} CPUs ({model}), Linux {kernel}");
    let _ = writeln!(md, "- Command: `{command}` (took {elapsed:.0} s)\n");
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "Each server runs as its own release-mode process on 127.0.0.1 with a fresh port, \
         started anew for every run, with the server pinned to CPU 0 and the load to CPU 1 \
         (`taskset`; a note below says so if it was not available). Runs are interleaved ripple, tokio, ripple, tokio, ...; each figure is the \
         median of the runs and each ratio the median of the per-pair ratios ripple/tokio, \
         with the smallest and the largest of those ratios (the spread) beside it.\n"
    );
    let _ = writeln!(
        md,
        "- Echo: `examples/echo.rs` against `tools/src/bin/echo_tokio.rs`, loaded by \
         `examples/echo_client.rs` (ping-pong, one blocking thread per connection), {} messages \
         per run over all connections (at least {} and at most {} per connection), {} pairs.",
        number(plan.echo_messages as f64),
        number(plan.echo_min_per_connection as f64),
        number(plan.echo_max_per_connection as f64),
        plan.pairs
    );
    let _ = writeln!(
        md,
        "- HTTP: `examples/hello_http.rs` against `tools/src/bin/hello_http_tokio.rs`, loaded by \
         `wrk -t1 -cN -d{}s --latency`, {} pairs.",
        plan.wrk_seconds, plan.pairs
    );
    let _ = writeln!(
        md,
        "- Idle scale: the benchmark opens idle TCP connections to a fresh echo server, waits \
         until the server holds them all, and divides the growth of the server's VmRSS \
         (`/proc/PID/status`) by their number; {} pair(s).\n",
        plan.idle_pairs
    );
    let _ = writeln!(
        md,
        "- Multi-thread: `examples/echo_multi_thread.rs` against `tools/src/bin/echo_tokio.rs \
         ADDR multi_thread`, 2 workers each (`RIPPLE_WORKER_THREADS`, `TOKIO_WORKER_THREADS`), \
         not pinned (two workers on one CPU would measure one core), so the client shares the \
         two CPUs with the server; the counts by `ECHO_FLAVOR=multi_thread \
         benches/echo_counts.sh`, where callgrind runs one thread at a time and adds up every \
         thread's instructions; the micro benchmarks by `benches/runtime_ratios.sh mt_ {}` \
         (criterion, {} s per measurement; the code of tokio's `benches/rt_multi_threaded.rs`, \
         see `benches/runtime.rs`).\n",
        plan.micro_runs, plan.micro_seconds
    );
    let _ = writeln!(
        md,
        "- hyper: `examples/hyper_hello.rs` (`ripple::hyper`) against \
         `tools/src/bin/hyper_hello_tokio.rs` (the same service on tokio, through hyper-util), \
         by `benches/hyper_counts.sh`: instructions per request under `wrk -t1 -c10 -d2s` ({} \
         pair(s)), requests per second with `wrk -t1 -cN -d3s` ({} pairs); on the \
         current-thread runtimes, pinned, then (the rows that start with \"multi-thread\") \
         `hyper_hello ADDR multi_thread` against `hyper_hello_tokio ADDR multi_thread`, 2 \
         workers each, unpinned (`HYPER_FLAVOR=multi_thread`).\n",
        plan.count_pairs, plan.hyper_pairs
    );
    let _ = writeln!(md, "## Results\n");
    md.push_str(&table(figures));
    md.push('\n');
    for note in notes {
        let _ = writeln!(md, "Note: {note}\n");
    }
    let _ = writeln!(
        md,
        "![ratios, normalized so that right of 1.0 means ripple is better](benchmarks.svg)"
    );
    std::fs::write(out.join("benchmarks.md"), md)?;
    std::fs::write(out.join("benchmarks.svg"), svg(figures))?;
    eprintln!(
        "net: wrote benchmarks.md and benchmarks.svg to {}",
        out.display()
    );
    Ok(())
}

/// A horizontal bar chart of the normalized ratios.
fn svg(figures: &[Figure]) -> String {
    // Room for the longest label (about 6.3 px a character at 12 px), so none is cut off.
    let longest = figures
        .iter()
        .map(|f| f.name.chars().count() + " (inverted)".len())
        .max()
        .unwrap_or(0);
    let label_w = (longest as f64 * 6.3 + 16.0).max(420.0).round();
    let (chart_w, row_h, top) = (440.0, 22.0, 70.0);
    let width = label_w + chart_w + 70.0;
    let height = top + row_h * figures.len() as f64 + 40.0;
    let max = figures
        .iter()
        .map(Figure::normalized)
        .filter(|v| v.is_finite())
        .fold(2.0_f64, f64::max)
        .ceil();
    let x = |v: f64| label_w + chart_w * (v / max).clamp(0.0, 1.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">ripple vs tokio: bars right \
         of 1.0 mean ripple is better</text>\n\
         <text x=\"10\" y=\"42\">higher-is-better figures show ripple/tokio, lower-is-better \
         figures show tokio/ripple</text>"
    );
    for (i, f) in figures.iter().enumerate() {
        let y = top + row_h * i as f64;
        let v = f.normalized();
        let name = match f.better {
            Better::Higher => f.name.clone(),
            Better::Lower => format!("{} (inverted)", f.name),
        };
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + 15.0,
            xml_escape(&name)
        );
        if v.is_finite() {
            let color = if v >= 1.0 { "#2e7d32" } else { "#c62828" };
            let _ = writeln!(
                out,
                "<rect x=\"{label_w}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"{color}\"/>\n\
                 <text x=\"{:.1}\" y=\"{}\">{v:.2}</text>",
                y + 3.0,
                x(v) - label_w,
                row_h - 6.0,
                x(v) + 4.0,
                y + 15.0
            );
        }
    }
    let bottom = top + row_h * figures.len() as f64;
    let _ = writeln!(
        out,
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{bottom}\" stroke=\"black\" \
         stroke-dasharray=\"4 3\"/>\n\
         <line x1=\"{label_w}\" y1=\"{1}\" x2=\"{label_w}\" y2=\"{bottom}\" stroke=\"#888\"/>",
        x(1.0),
        top - 4.0
    );
    for tick in 0..=(max as u32) {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{tick}.0</text>",
            x(tick as f64),
            bottom + 16.0
        );
    }
    out.push_str("</svg>\n");
    out
}
