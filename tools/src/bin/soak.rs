//! The soak run: `examples/echo.rs` and `examples/hello_http.rs` hold 10,000 connections (half
//! each) with traffic on every one for 10 minutes, while each server's resident memory (VmRSS)
//! and open file descriptors are sampled every second. Then every connection closes, and the
//! same number is opened and closed again in waves, to see what a peak leaves behind. Writes
//! `docs/soak.md` and `docs/soak.svg` (RSS over time).
//!
//! ```text
//! cargo run --release -p ripple-tools --bin soak               # 10,000 connections, 600 s
//! cargo run --release -p ripple-tools --bin soak -- --quick    # 1,000 connections, 30 s
//! ```
//!
//! `--connections N`, `--seconds N` and `--waves N` change the run; `--out DIR` writes the
//! report elsewhere (a run that is not the full one writes to a fresh temporary folder unless
//! told). The load is a tokio client in this process: every connection sends a message (an
//! echo of 64 bytes, or a keep-alive `GET /`) once a second, at a random phase, and checks the
//! answer. The verdict: zero errors, and each server's RSS at the end at most 5% above its RSS
//! at the end of the warm-up (the first tenth of the run, at least 10 s).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ripple_tools::procfs::{open_fds, vm_rss_bytes};
use ripple_tools::server::{raise_open_files_limit, Server};
use ripple_tools::text::{command_output, number, xml_escape};
use ripple_tools::workspace;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most RSS may grow after the warm-up, as a fraction.
const GROWTH_LIMIT: f64 = 0.05;

/// What to run.
#[derive(Debug, Clone)]
struct Plan {
    /// Connections in all, half to each server.
    connections: usize,
    /// How long the traffic lasts.
    seconds: u64,
    /// Waves of opening and closing every connection, after the run.
    waves: usize,
    /// Where the report goes.
    out: PathBuf,
    /// The command line, for the report.
    command: String,
}

/// The two servers.
const SERVERS: [&str; 2] = ["echo", "hello_http"];

/// One second's sample of one server.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the traffic started.
    at: f64,
    /// Resident memory, bytes.
    rss: u64,
    /// Open file descriptors.
    fds: usize,
}

/// The load's counters, shared by every connection's task.
#[derive(Debug, Default)]
struct Counters {
    /// Messages answered correctly.
    ok: AtomicU64,
    /// Failures: a connection that could not open, a wrong answer, an error.
    errors: AtomicU64,
    /// The first few failures, for the report.
    first_errors: std::sync::Mutex<Vec<String>>,
}

impl Counters {
    /// Counts a failure, keeping the first ten.
    fn fail(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if first.len() < 10 {
            first.push(what);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plan = plan()?;
    let fds = raise_open_files_limit()?;
    // This process holds every connection; each server half of them (the echo server two fds
    // for each: it keeps a duplicate for its graceful shutdown).
    let needed = plan.connections as u64 + 100;
    if fds < needed {
        return Err(format!("{needed} open files are needed, the limit is {fds}").into());
    }
    if !workspace::build(&SERVERS)? {
        return Err("the build failed".into());
    }
    let mut servers = Vec::new();
    for name in SERVERS {
        let (server, addr) = Server::start(&workspace::program(name), false)?;
        servers.push((name, server, addr));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&plan, &servers))?;
    for (name, server, _) in &mut servers {
        if let Some(death) = server.death() {
            return Err(format!("{name}: {death}").into());
        }
    }
    std::fs::create_dir_all(&plan.out)?;
    std::fs::write(plan.out.join("soak.md"), &report.markdown)?;
    std::fs::write(plan.out.join("soak.svg"), &report.svg)?;
    println!("{}", report.summary);
    println!("report: {}", plan.out.join("soak.md").display());
    if report.passed {
        Ok(())
    } else {
        Err("the soak run failed its targets (see the report)".into())
    }
}

/// The plan from the command line.
fn plan() -> Result<Plan, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut connections, mut seconds, mut waves) = (10_000, 600, 3);
    let (mut out, mut full) = (None, true);
    let given: Vec<String> = std::env::args().skip(1).collect();
    let command = if given.is_empty() {
        "soak".to_string()
    } else {
        format!("soak -- {}", given.join(" "))
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                (connections, seconds, waves) = (1_000, 30, 2);
                full = false;
            }
            "--connections" => {
                connections = value()?.parse()?;
                full = false;
            }
            "--seconds" => {
                seconds = value()?.parse()?;
                full = false;
            }
            "--waves" => waves = value()?.parse()?,
            "--out" => out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let out = workspace::out_dir(out, full, "soak")?;
    Ok(Plan {
        connections: connections.max(2),
        seconds: seconds.max(10),
        waves,
        out,
        command,
    })
}

/// What a run gives.
struct Report {
    /// `soak.md`.
    markdown: String,
    /// `soak.svg`.
    svg: String,
    /// A few lines for the terminal.
    summary: String,
    /// Whether the targets were met.
    passed: bool,
}

/// Opens the connections, runs the traffic while sampling, then the waves; writes the report.
async fn run(plan: &Plan, servers: &[(&str, Server, SocketAddr)]) -> io::Result<Report> {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let pids: Vec<i32> = servers.iter().map(|(_, s, _)| s.pid()).collect();
    let idle: Vec<Sample> = pids.iter().map(|&pid| sample(pid, 0.0)).collect();

    // Open every connection (paced, so that the backlog never overflows), each in a task that
    // then sends a message a second until told to stop.
    let ramp = Instant::now();
    let mut tasks = Vec::with_capacity(plan.connections);
    for i in 0..plan.connections {
        let (name, _, addr) = &servers[i % 2];
        let stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(err) => {
                counters.fail(format!("{name}: connect: {err}"));
                continue;
            }
        };
        let (counters, stop) = (counters.clone(), stop.clone());
        let http = *name == "hello_http";
        // A phase spread evenly over the second.
        let phase = Duration::from_micros((i as u64 * 1_000_003) % 1_000_000);
        tasks.push(tokio::spawn(traffic(stream, http, phase, counters, stop)));
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let ramp = ramp.elapsed();

    // The traffic, sampled every second.
    let start = Instant::now();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    while start.elapsed() < Duration::from_secs(plan.seconds) {
        ticks.tick().await;
        let at = start.elapsed().as_secs_f64();
        for (series, &pid) in samples.iter_mut().zip(&pids) {
            series.push(sample(pid, at));
        }
    }
    let ok = counters.ok.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    // Every connection is closed: what stays behind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed: Vec<Sample> = pids.iter().map(|&pid| sample(pid, 0.0)).collect();

    // The waves: open every connection at once, hold them a moment, close them all.
    let mut waves: Vec<Vec<(Sample, Sample)>> = vec![Vec::new(); servers.len()];
    for _ in 0..plan.waves {
        let mut held = Vec::with_capacity(plan.connections);
        for i in 0..plan.connections {
            let (name, _, addr) = &servers[i % 2];
            match TcpStream::connect(addr).await {
                Ok(stream) => held.push(stream),
                Err(err) => counters.fail(format!("{name}: connect in a wave: {err}")),
            }
            if i % 500 == 499 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let peak: Vec<Sample> = pids.iter().map(|&pid| sample(pid, 0.0)).collect();
        drop(held);
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (k, &pid) in pids.iter().enumerate() {
            waves[k].push((peak[k], sample(pid, 0.0)));
        }
    }

    let errors = counters.errors.load(Ordering::Relaxed);
    let first_errors = counters
        .first_errors
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let warm_up = (plan.seconds as f64 / 10.0).max(10.0);
    let mut passed = errors == 0;
    let mut md = String::new();
    let _ = writeln!(md, "# Soak run\n");
    let _ = writeln!(
        md,
        "`examples/echo.rs` and `examples/hello_http.rs`, release builds, each holding half of \
         {} connections for {} s, every connection sending a message a second (64 bytes to \
         echo, or a keep-alive `GET /`) and checking the answer; each server's VmRSS and open \
         fds sampled every second. Then every connection closed, and {} waves of opening and \
         closing them all again. Written by `tools/src/bin/soak.rs`.\n",
        number(plan.connections as f64),
        plan.seconds,
        plan.waves
    );
    let _ = writeln!(
        md,
        "- Date: {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(md, "- Linux {}", command_output("uname", &["-r"]));
    let _ = writeln!(
        md,
        "- Command: `cargo run --release -p ripple-tools --bin {}`",
        plan.command
    );
    let _ = writeln!(
        md,
        "- Opening the connections took {:.1} s; messages answered: {}; errors: {}\n",
        ramp.as_secs_f64(),
        number(ok as f64),
        errors
    );
    for error in &first_errors {
        let _ = writeln!(md, "  - {error}");
    }
    let _ = writeln!(md, "## Memory during the run\n");
    let _ = writeln!(
        md,
        "The warm-up is the first {warm_up:.0} s. Growth is from the end of the warm-up to the \
         end of the run (target: under {:.0}%).\n",
        GROWTH_LIMIT * 100.0
    );
    let _ = writeln!(
        md,
        "| server | RSS idle | RSS after warm-up | RSS at the end | growth | most fds | RSS \
         once all closed |\n|---|---|---|---|---|---|---|"
    );
    let mut summary = format!(
        "soak: {} connections, {} s, {} messages, {} errors",
        plan.connections, plan.seconds, ok, errors
    );
    for (k, (name, _, _)) in servers.iter().enumerate() {
        let series = &samples[k];
        let after_warm_up = series
            .iter()
            .find(|s| s.at >= warm_up)
            .or(series.last())
            .map_or(0, |s| s.rss);
        let end = series.last().map_or(0, |s| s.rss);
        let growth = end as f64 / after_warm_up.max(1) as f64 - 1.0;
        passed &= growth < GROWTH_LIMIT;
        let most_fds = series.iter().map(|s| s.fds).max().unwrap_or(0);
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {:+.1}% | {} | {} |",
            mib(idle[k].rss),
            mib(after_warm_up),
            mib(end),
            growth * 100.0,
            number(most_fds as f64),
            mib(closed[k].rss)
        );
        let _ = write!(
            summary,
            "\n  {name}: RSS growth after warm-up {:+.1}%",
            growth * 100.0
        );
    }
    let _ = writeln!(md, "\n![RSS over time](soak.svg)\n");
    let _ = writeln!(md, "## After a peak\n");
    let _ = writeln!(
        md,
        "Each wave opens all {} connections again (half to each server), holds them 2 s, and \
         closes them; RSS is read at the peak and 2 s after the close.\n",
        number(plan.connections as f64)
    );
    let _ = writeln!(
        md,
        "| server | wave | RSS at the peak | RSS after the close |"
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for (k, (name, _, _)) in servers.iter().enumerate() {
        for (w, (peak, after)) in waves[k].iter().enumerate() {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} |",
                w + 1,
                mib(peak.rss),
                mib(after.rss)
            );
        }
    }
    let _ = writeln!(
        md,
        "\nVerdict: **{}** (zero errors, and growth under {:.0}% for both servers).",
        if passed { "passed" } else { "failed" },
        GROWTH_LIMIT * 100.0
    );
    let _ = write!(
        summary,
        "\n  verdict: {}",
        if passed { "passed" } else { "failed" }
    );
    let svg = rss_chart(
        &servers.iter().map(|(name, _, _)| *name).collect::<Vec<_>>(),
        &samples,
    );
    Ok(Report {
        markdown: md,
        svg,
        summary,
        passed,
    })
}

/// One connection's traffic: a message a second, from `phase` on, until `stop`.
async fn traffic(
    mut stream: TcpStream,
    http: bool,
    phase: Duration,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let _ = stream.set_nodelay(true);
    tokio::time::sleep(phase).await;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut buf = vec![0; 4096];
    let message: &[u8] = if http {
        b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"
    } else {
        &[b'x'; 64]
    };
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        let answered = async {
            stream.write_all(message).await?;
            if http {
                // One answer: the head, then the 13 bytes of `Hello, world!`.
                let mut got = Vec::new();
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.ends_with(b"Hello, world!") {
                        return Ok(got.starts_with(b"HTTP/1.1 200"));
                    }
                }
            } else {
                stream.read_exact(&mut buf[..64]).await?;
                Ok(buf[..64] == *message)
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), answered).await {
            Ok(Ok(true)) => {
                counters.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(false)) => counters.fail("a wrong answer".into()),
            Ok(Err(err)) => {
                counters.fail(format!(
                    "{}: {err}",
                    if http { "hello_http" } else { "echo" }
                ));
                return;
            }
            Err(_) => {
                counters.fail("no answer within 10 s".into());
                return;
            }
        }
    }
}

/// The server's RSS and open fds now.
fn sample(pid: i32, at: f64) -> Sample {
    Sample {
        at,
        rss: vm_rss_bytes(pid).unwrap_or(0),
        fds: open_fds(pid).unwrap_or(0),
    }
}

/// `bytes` in MiB, one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// An SVG chart of each server's RSS over the run.
fn rss_chart(names: &[&str], samples: &[Vec<Sample>]) -> String {
    const COLORS: [&str; 2] = ["#4e79a7", "#e15759"];
    let (left, top, right, bottom) = (80.0, 40.0, 760.0, 360.0);
    let end = samples
        .iter()
        .flatten()
        .map(|s| s.at)
        .fold(1.0_f64, f64::max);
    let most = samples
        .iter()
        .flatten()
        .map(|s| s.rss as f64 / 1048576.0)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let x = |at: f64| left + (right - left) * at / end;
    let y = |mib: f64| bottom - (bottom - top) * mib / most;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"420\" \
         viewBox=\"0 0 800 420\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"800\" height=\"420\" fill=\"white\"/>\n\
         <text x=\"420\" y=\"24\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">\
         Server RSS during the soak run (MiB)</text>\n\
         <line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>\n\
         <text x=\"420\" y=\"400\" text-anchor=\"middle\">seconds</text>"
    );
    for i in 0..=5 {
        let (t, m) = (end * i as f64 / 5.0, most * i as f64 / 5.0);
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{t:.0}</text>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{m:.0}</text>\n\
             <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{right}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            x(t),
            bottom + 16.0,
            left - 6.0,
            y(m) + 4.0,
            y(m),
            y(m)
        );
    }
    for (k, series) in samples.iter().enumerate() {
        let points: Vec<String> = series
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.at), y(s.rss as f64 / 1048576.0)))
            .collect();
        let color = COLORS[k % COLORS.len()];
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n\
             <text x=\"{}\" y=\"{}\" fill=\"{color}\">{}</text>",
            points.join(" "),
            left + 10.0,
            top + 16.0 * (k as f64 + 1.0),
            xml_escape(names[k])
        );
    }
    svg.push_str("</svg>\n");
    svg
}
