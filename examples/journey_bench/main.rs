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
//! The client is the same for every server and lives in this file: one thread, one `polling`
//! event loop, every connection doing ping-pong (send 64 bytes, wait for the whole echo, record
//! the round trip, send again). One thread drives 5,000 connections, so the client fits on one
//! core of a two-core machine. With `taskset` and two CPUs the server runs on CPU 0 and the
//! client on CPU 1.
//!
//! Run it with `cargo run --release --example journey_bench` (about four and a half minutes on
//! the project's two-core machine, building included) or
//! `cargo run --release --example journey_bench -- --quick` (about a minute and a half: the same
//! servers and levels, with a 0.25 s warm-up and two 0.4 s windows instead of 1 s and three
//! 1.5 s windows, and shorter set-up limits). `-- --models echo,journey_ripple` measures only the
//! named examples: any example that takes its listen address as its first argument and prints
//! `listening on ADDR` once bound will do. It builds the servers itself
//! (`cargo build --release --example ...`), prints one line per cell to stderr, and writes
//! `docs/journey.md` (machine, method, one table per figure, the reasons for every level not
//! served) with the charts `docs/journey_throughput.svg` and `docs/journey_memory.svg`; every
//! run, `--quick` and `--models` ones too, rewrites all three.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};
use socket2::{Domain, Socket, Type};

/// Errors that end the whole bench (a failed build of every server, an unwritable report).
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Concurrent connections per cell.
const LEVELS: [usize; 5] = [1, 10, 100, 1_000, 5_000];

/// Bytes per ping-pong message.
const MESSAGE: usize = 64;

/// Connects in flight at once. A server's accept queue holds only its backlog; connecting in
/// batches keeps a slow acceptor from seeing thousands of SYNs at the same instant.
const CONNECT_BATCH: usize = 100;

/// Connecting gives up after this long without a new connection. A SYN that finds the server's
/// accept queue full is dropped, and the kernel sends it again 1 s and 3 s later: a stall must
/// outlast both retries before it means the server has stopped accepting.
const CONNECT_STALL: Duration = Duration::from_millis(3_500);

/// How long a server may take to print `listening on ADDR`.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a killed server's processes may take to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// One server of the journey.
struct Model {
    /// The example that is the server (`cargo build --release --example NAME`).
    example: String,
    /// Its name in the report's tables and charts.
    label: String,
    /// What limits how many clients it serves at once: said first when some of them starve.
    limit: Option<&'static str>,
}

impl Model {
    /// The eight servers, in the order the teaching documents tell them.
    fn journey() -> Vec<Model> {
        let model = |example: &str, label: &str, limit| Model {
            example: example.into(),
            label: label.into(),
            limit,
        };
        vec![
            model(
                "journey_blocking",
                "1 blocking",
                Some("serves one client at a time"),
            ),
            model("journey_fork", "2 fork", None),
            model(
                "journey_thread_per_connection",
                "3 thread per connection",
                None,
            ),
            model(
                "journey_thread_pool",
                "4 thread pool (8)",
                Some("8 workers serve 8 clients at a time"),
            ),
            model("journey_busy_poll", "5 busy poll", None),
            model("journey_event_loop", "6 event loop", None),
            model("journey_tomcat_nio", "7 Tomcat NIO", None),
            model("journey_ripple", "8 ripple", None),
        ]
    }

    /// The journey's model called `example`, or a plain one for any other example.
    fn named(example: &str) -> Model {
        Model::journey()
            .into_iter()
            .find(|m| m.example == example)
            .unwrap_or_else(|| Model {
                example: example.into(),
                label: example.into(),
                limit: None,
            })
    }
}

/// The command line.
struct Args {
    /// `--quick`: shorter windows.
    quick: bool,
    /// `--models a,b`: the servers to measure (default: the journey).
    models: Vec<Model>,
}

impl Args {
    /// Parses `[--quick] [--models NAME,NAME...]`.
    fn parse() -> Result<Args> {
        let mut args = Args {
            quick: false,
            models: Model::journey(),
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            let names = match word.as_str() {
                "--quick" => {
                    args.quick = true;
                    continue;
                }
                "--models" => words.next().ok_or("--models needs a list of examples")?,
                other => match other.strip_prefix("--models=") {
                    Some(names) => names.to_string(),
                    None => {
                        return Err(format!(
                            "unknown argument {other:?}; usage: journey_bench [--quick] \
                             [--models NAME,NAME...]"
                        )
                        .into())
                    }
                },
            };
            args.models = names.split(',').map(str::trim).map(Model::named).collect();
        }
        Ok(args)
    }

    /// The command that reproduces this run, for the report.
    fn command() -> String {
        let words: Vec<String> = std::env::args().skip(1).collect();
        let mut command = String::from("cargo run --release --example journey_bench");
        if !words.is_empty() {
            let _ = write!(command, " -- {}", words.join(" "));
        }
        command
    }
}

/// How long each part of a cell lasts: the full run or `--quick`.
struct Plan {
    /// Full load before the measured windows.
    warmup: Duration,
    /// Measured windows in a row; the figures come from the one least disturbed by others.
    windows: usize,
    /// The length of each.
    window: Duration,
    /// How long each set-up phase may take at most: connecting every connection, then getting
    /// a first echo on each.
    setup_timeout: Duration,
    /// Priming also gives up after this long without a new first echo: a server that serves
    /// only some clients then costs this rather than the whole set-up time.
    stall: Duration,
}

impl Plan {
    /// The plan of a full run, or of a quick one.
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_millis(250),
                windows: 2,
                window: Duration::from_millis(400),
                setup_timeout: Duration::from_secs(5),
                stall: Duration::from_secs(1),
            }
        } else {
            Plan {
                warmup: Duration::from_secs(1),
                windows: 3,
                window: Duration::from_millis(1_500),
                setup_timeout: Duration::from_secs(10),
                stall: Duration::from_secs(2),
            }
        }
    }
}

/// What one server did at one level.
enum Cell {
    /// Every connection was served: the figures.
    Served(Figures),
    /// Not served, and why.
    NotServed(String),
}

/// The figures of a served cell.
struct Figures {
    /// Echoed messages per second over the window, all connections together.
    throughput: f64,
    /// The 99th percentile round trip of a message.
    p99: Duration,
    /// Threads, summed over the server's process tree.
    threads: u64,
    /// Resident memory summed over the tree, in bytes.
    rss: u64,
    /// Proportional memory (shared pages split among the processes that map them), summed over
    /// the tree, in bytes: what the tree really costs when its processes share pages.
    pss: u64,
    /// Processes in the tree.
    processes: usize,
    /// Server CPU time across the window, as a share of one core (1.0 is 100%).
    cpu_share: f64,
    /// Server CPU milliseconds per 1,000 echoed messages.
    cpu_per_1k: f64,
    /// The client's CPU time across the window, as a share of one core: near 1.0, the client
    /// rather than the server limited the throughput.
    client_share: f64,
    /// CPU time of everything else across the window, in cores: other processes (builds or
    /// benchmarks of others) and steal (the hypervisor's other virtual machines).
    others_share: f64,
}

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
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let open_files = raise_open_files_limit()?;
    become_subreaper()?;
    let unbuilt = build(&root, &args.models)?;
    // Pin after building, so that cargo gets both cores.
    let pinned = pin_client();
    if !pinned {
        eprintln!("journey: not pinned (needs taskset, two CPUs and sched_setaffinity)");
    }
    let bin = target_dir(&root).join("release/examples");
    let cells = args.models.len() * LEVELS.len();
    let mut results = Vec::new();
    for model in &args.models {
        let mut row = Vec::new();
        for level in LEVELS {
            let cell_started = Instant::now();
            let cell = if unbuilt.contains(&model.example) {
                Cell::NotServed("did not build (see cargo's errors)".into())
            } else {
                measure(&bin, model, level, &plan, pinned)
            };
            let done = results.len() * LEVELS.len() + row.len() + 1;
            eprintln!(
                "journey: [{done}/{cells}] {}, {}: {} ({:.1} s)",
                model.example,
                connections(level),
                describe(&cell),
                cell_started.elapsed().as_secs_f64()
            );
            row.push(cell);
        }
        results.push(row);
    }
    reap_orphans();
    let report = Report {
        args: &args,
        plan: &plan,
        results: &results,
        pinned,
        open_files,
        elapsed: started.elapsed(),
    };
    report.write(&root)?;
    eprintln!(
        "journey: done in {:.0} s; wrote docs/journey.md, docs/journey_throughput.svg and \
         docs/journey_memory.svg",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One line about a cell for the progress output.
fn describe(cell: &Cell) -> String {
    match cell {
        Cell::NotServed(why) => format!("not served: {why}"),
        Cell::Served(f) => format!(
            "{} msgs/s, p99 {}, threads {}, RSS {} MiB, CPU {:.0}% ({} ms per 1,000 msgs); \
             client CPU {:.0}%, others {:.0}%",
            number(f.throughput),
            latency(f.p99),
            f.threads,
            mib(f.rss),
            f.cpu_share * 100.0,
            decimal(f.cpu_per_1k),
            f.client_share * 100.0,
            f.others_share * 100.0
        ),
    }
}

/// The directory cargo builds into.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Builds every model's example in release mode; returns the ones that did not build.
///
/// One `cargo build` for all is fastest. If it fails (someone's work in progress), each is
/// built alone, so that one broken server costs only its own row.
fn build(root: &Path, models: &[Model]) -> Result<Vec<String>> {
    eprintln!("journey: building the servers (release)");
    let cargo = |examples: &[&String]| -> io::Result<bool> {
        let mut command = Command::new(env!("CARGO"));
        command.current_dir(root).args(["build", "--release"]);
        for example in examples {
            command.args(["--example", example]);
        }
        Ok(command.status()?.success())
    };
    let all: Vec<&String> = models.iter().map(|m| &m.example).collect();
    if cargo(&all)? {
        return Ok(Vec::new());
    }
    let mut unbuilt = Vec::new();
    for example in all {
        if !cargo(&[example])? {
            unbuilt.push(example.clone());
        }
    }
    if unbuilt.len() == models.len() {
        return Err("no server built".into());
    }
    Ok(unbuilt)
}

/// Measures one server at one level, from starting it to killing its whole process tree.
fn measure(bin: &Path, model: &Model, level: usize, plan: &Plan, pin: bool) -> Cell {
    let (mut server, addr) = match Server::start(&bin.join(&model.example), pin) {
        Ok(started) => started,
        Err(why) => return Cell::NotServed(why),
    };
    let run = match load(&server, addr, level, plan) {
        Ok(run) => run,
        Err(err) => return Cell::NotServed(format!("the client failed: {err}")),
    };
    judge(model, level, &run, server.death())
    // `server` drops here, which kills its tree.
}

/// What happened in one cell, before it is judged.
struct Run {
    /// Connections that connected.
    connected: usize,
    /// Connections that did not connect, counted by reason.
    connect_failures: BTreeMap<String, usize>,
    /// Connections that failed during the load, counted by reason.
    load_failures: BTreeMap<String, usize>,
    /// Open connections that got no echo during the whole load (priming, warm-up, windows).
    starved: usize,
    /// How long the load ran, from the first message to the end of the last window.
    load_time: Duration,
    /// The window the figures come from: the least disturbed (none if nothing connected).
    window: Option<Window>,
    /// PSS of the tree at the end of the last window, in bytes.
    pss: u64,
}

/// One measured window.
struct Window {
    /// Round trips of the messages echoed in it, in nanoseconds.
    latencies: Vec<u64>,
    /// How long it really lasted.
    length: Duration,
    /// The server's tree (and the machine's CPU time) at its start...
    before: TreeSample,
    /// ... and at its end.
    after: TreeSample,
}

impl Window {
    /// Echoed messages per second.
    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.length.as_secs_f64().max(1e-9)
    }

    /// The CPU time of (server tree, client, every other process) over the window, in seconds.
    fn cpu_seconds(&self) -> (f64, f64, f64) {
        let (before, after) = (&self.before, &self.after);
        let server = after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / 1e9;
        let client = after.client_ns.saturating_sub(before.client_ns) as f64 / 1e9;
        let ticks = after.machine_ticks.saturating_sub(before.machine_ticks);
        let machine = ticks as f64 / clock_ticks_per_second() as f64;
        (server, client, (machine - server - client).max(0.0))
    }
}

/// Connects `level` clients to the server at `addr`, primes and warms up, and measures the
/// plan's windows.
fn load(server: &Server, addr: SocketAddr, level: usize, plan: &Plan) -> io::Result<Run> {
    let mut client = Client::new()?;
    client.connect_all(addr, level, plan)?;
    let mut run = Run {
        connected: client.open(),
        connect_failures: std::mem::take(&mut client.failures),
        load_failures: BTreeMap::new(),
        starved: 0,
        load_time: Duration::ZERO,
        window: None,
        pss: 0,
    };
    if run.connected == 0 {
        return Ok(run);
    }
    let load_start = Instant::now();
    client.prime(load_start + plan.setup_timeout, plan.stall)?;
    client.drive(Instant::now() + plan.warmup)?;
    for _ in 0..plan.windows {
        let window = measure_window(&mut client, server.pid(), plan.window)?;
        // Keep the window in which other processes took the least CPU: on a shared machine,
        // the one closest to what the server does alone.
        let others = |w: &Window| w.cpu_seconds().2 / w.length.as_secs_f64();
        if run
            .window
            .as_ref()
            .map_or(true, |best| others(&window) < others(best))
        {
            run.window = Some(window);
        }
    }
    run.load_time = load_start.elapsed();
    run.pss = run.window.as_ref().map_or(0, |w| pss_bytes(&w.after.pids));
    run.starved = client.starved();
    run.load_failures = std::mem::take(&mut client.failures);
    Ok(run)
}

/// Drives the load for `length`, recording every round trip, between two samples of the tree
/// under `server`. The client pauses while a sample is read; the server does not.
fn measure_window(client: &mut Client, server: i32, length: Duration) -> io::Result<Window> {
    let before = TreeSample::take(server);
    client.recording = true;
    let start = Instant::now();
    client.drive(start + length)?;
    let length = start.elapsed();
    client.recording = false;
    Ok(Window {
        latencies: std::mem::take(&mut client.latencies),
        length,
        before,
        after: TreeSample::take(server),
    })
}

/// Turns a run into figures, or into the reasons the server did not serve the level.
fn judge(model: &Model, level: usize, run: &Run, death: Option<String>) -> Cell {
    let problems = problems(level, run, death);
    match &run.window {
        Some(window) if problems.is_empty() => Cell::Served(figures(run, window)),
        _ => {
            let mut why = problems.join("; ");
            // Starving clients is what the blocking server and the thread pool are known for.
            let starved_some = run.starved > 0 || run.connect_failures.values().sum::<usize>() > 0;
            if let (true, Some(limit)) = (starved_some, model.limit) {
                why = format!("{limit}: {why}");
            }
            let failed: usize = run.load_failures.values().sum();
            let served = run.connected.saturating_sub(failed + run.starved);
            let throughput = run.window.as_ref().map_or(0.0, Window::throughput);
            if served > 0 && throughput > 0.0 {
                let _ = write!(
                    why,
                    " (the {} served made {} msgs/s)",
                    number(served as f64),
                    number(throughput)
                );
            }
            Cell::NotServed(why)
        }
    }
}

/// Everything that went wrong in a run; empty if every connection was served.
fn problems(level: usize, run: &Run, death: Option<String>) -> Vec<String> {
    let mut problems: Vec<String> = death.into_iter().collect();
    let unconnected: usize = run.connect_failures.values().sum();
    if unconnected > 0 {
        problems.push(format!(
            "{} of {} connections did not connect ({})",
            number(unconnected as f64),
            number(level as f64),
            reasons(&run.connect_failures)
        ));
    }
    let failed: usize = run.load_failures.values().sum();
    if failed > 0 {
        problems.push(format!(
            "{} connections failed under load ({})",
            number(failed as f64),
            reasons(&run.load_failures)
        ));
    }
    if run.starved > 0 {
        problems.push(format!(
            "{} of {} connected got no echo in {:.1} s",
            number(run.starved as f64),
            number(run.connected as f64),
            run.load_time.as_secs_f64()
        ));
    }
    let echoed = run.window.as_ref().is_some_and(|w| !w.latencies.is_empty());
    if problems.is_empty() && !echoed {
        problems.push("no message was echoed in the window".into());
    }
    problems
}

/// The figures of a run in which every connection was served, from its chosen window.
fn figures(run: &Run, window: &Window) -> Figures {
    let (server, client, others) = window.cpu_seconds();
    let wall = window
        .after
        .at
        .duration_since(window.before.at)
        .as_secs_f64();
    let messages = window.latencies.len() as f64;
    Figures {
        throughput: window.throughput(),
        p99: percentile(&window.latencies, 0.99),
        threads: window.after.threads,
        rss: window.after.rss_pages * page_size(),
        pss: run.pss,
        processes: window.after.pids.len(),
        cpu_share: server / wall,
        cpu_per_1k: server * 1e3 / (messages / 1e3),
        client_share: client / wall,
        others_share: others / wall,
    }
}

/// "timed out: 12, Connection refused: 3": reasons with their counts, most common first.
fn reasons(counts: &BTreeMap<String, usize>) -> String {
    let mut sorted: Vec<(&String, &usize)> = counts.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1));
    let parts: Vec<String> = sorted
        .iter()
        .map(|(why, n)| format!("{why}: {}", number(**n as f64)))
        .collect();
    parts.join(", ")
}

/// The `q` quantile (0.99 for p99) of round trips given in nanoseconds.
fn percentile(nanos: &[u64], q: f64) -> Duration {
    if nanos.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = nanos.to_vec();
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    let (_, value, _) = sorted.select_nth_unstable(rank);
    Duration::from_nanos(*value)
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/// A server process; dropping it kills the server and every process it started.
struct Server {
    /// The server (`taskset` execs it, so this is the server itself). It leads its own process
    /// group, so the group id is its pid.
    child: Child,
    /// The last lines the server wrote to stderr, for the report when it dies.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The thread that reads stderr; it ends when every process of the tree has closed it.
    stderr_reader: JoinHandle<()>,
}

impl Server {
    /// Starts `program` on a port of the kernel's choice; waits for `listening on ADDR`.
    fn start(program: &Path, pin: bool) -> std::result::Result<(Server, SocketAddr), String> {
        let mut command = if pin {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", "0"]).arg(program);
            taskset
        } else {
            Command::new(program)
        };
        command
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: one signal then reaches every process it forks.
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|err| format!("could not start: {err}"))?;
        let addresses = watch_stdout(child.stdout.take().expect("stdout is piped"));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = keep_tail(
            child.stderr.take().expect("stderr is piped"),
            stderr.clone(),
        );
        // Guard the process before waiting for it, so that every error below still kills it.
        let mut server = Server {
            child,
            stderr,
            stderr_reader,
        };
        match addresses.recv_timeout(LISTEN_TIMEOUT) {
            Ok(Ok(addr)) => Ok((server, addr)),
            Ok(Err(line)) => Err(format!("printed an address we cannot parse: {line:?}")),
            // Stdout closed without the line: the server has exited (or is about to).
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(server
                .exited_within(Duration::from_secs(1))
                .map_or("closed stdout before listening".into(), |status| {
                    format!("exited before listening ({status}){}", server.stderr_tail())
                })),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "did not print `listening on ADDR` within {} s",
                LISTEN_TIMEOUT.as_secs()
            )),
        }
    }

    /// The server's pid, which is also its process group's id.
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Why the server is gone, if it is: its exit status and last words.
    fn death(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        Some(format!("the server died ({status}){}", self.stderr_tail()))
    }

    /// Waits up to `timeout` for the server to exit; its status if it did.
    fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `; stderr: "..."` with the server's last stderr lines, or nothing if it said nothing.
    fn stderr_tail(&self) -> String {
        // An exited server's last lines may still be in the pipe: give the reader a moment.
        let deadline = Instant::now() + Duration::from_millis(200);
        while !self.stderr_reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let lines = self.stderr.lock().expect("stderr lock");
        if lines.is_empty() {
            return String::new();
        }
        let joined: Vec<&str> = lines.iter().map(String::as_str).collect();
        format!("; stderr: {:?}", joined.join(" / "))
    }
}

impl Drop for Server {
    /// Kills the server's whole tree, reaps it, and waits until none of it is left.
    fn drop(&mut self) {
        let pid = self.pid();
        // A child that left the group (setsid) is still in the tree: signal both.
        let tree = TreeSample::take(pid).pids;
        send_kill(-pid);
        for member in tree {
            send_kill(member);
        }
        let _ = self.child.wait();
        if !reap_group(pid, KILL_TIMEOUT) {
            eprintln!("journey: warning: processes of group {pid} survived SIGKILL");
        }
    }
}

/// Reads the server's stdout on a thread: sends the address of `listening on ADDR` (or the line,
/// if the address does not parse), then keeps reading so that the server never blocks on a full
/// pipe. The channel closes if stdout ends first.
fn watch_stdout(stdout: ChildStdout) -> mpsc::Receiver<std::result::Result<SocketAddr, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().parse().map_err(|_| line.clone()));
            }
        }
    });
    rx
}

/// Reads the server's stderr on a thread, keeping its last few lines in `tail`.
fn keep_tail(stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let mut tail = tail.lock().expect("stderr lock");
            if tail.len() == 3 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    })
}

/// Sends SIGKILL to `pid` (or to the group `-pid`); a process already gone is not an error.
fn send_kill(pid: i32) {
    // SAFETY: `kill` only sends a signal; it touches no memory of ours. The pids are the
    // server's tree and group, which we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Reaps the dead of process group `pgid` until none is left, for up to `timeout`; whether the
/// group is gone.
///
/// Orphans (the fork server's children, once it is killed) come to us, not to init, because
/// this process is a subreaper; reaping them is ours to do.
fn reap_group(pgid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: a null status pointer is allowed; WNOHANG never blocks.
        while unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        // SAFETY: signal 0 only checks that the group exists; it touches no memory.
        let gone = unsafe { libc::kill(-pgid, 0) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reaps any child that is left over (one that left its group before it died).
fn reap_orphans() {
    // SAFETY: as in `reap_group`: a null status pointer, and WNOHANG never blocks.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

// ---------------------------------------------------------------------------------------------
// The process tree, from /proc
// ---------------------------------------------------------------------------------------------

/// A server's process tree (the server and its descendants) at one moment, summed, with the
/// CPU time of the client and of the whole machine at that moment.
struct TreeSample {
    /// When the sample was read.
    at: Instant,
    /// CPU time of the calling thread (the client's event loop), in nanoseconds.
    client_ns: u64,
    /// Busy time of all CPUs together (everything but idle and I/O wait), in clock ticks.
    machine_ticks: u64,
    /// The processes of the tree, the server first.
    pids: Vec<i32>,
    /// CPU time (user plus system) of every thread, in nanoseconds.
    cpu_ns: u64,
    /// Threads.
    threads: u64,
    /// Resident pages.
    rss_pages: u64,
}

impl TreeSample {
    /// Walks the tree under `root` in `/proc`, from each process to its children.
    ///
    /// Only the tree is read, never all of `/proc`: on a shared machine thousands of other
    /// processes would make every sample slow.
    fn take(root: i32) -> TreeSample {
        let mut sample = TreeSample {
            at: Instant::now(),
            client_ns: thread_cpu_ns(),
            machine_ticks: machine_busy_ticks(),
            pids: Vec::new(),
            cpu_ns: 0,
            threads: 0,
            rss_pages: 0,
        };
        let mut queue = vec![root];
        while let Some(pid) = queue.pop() {
            // A process that exits while we look is simply not counted.
            let Some(process) = Process::read(pid) else {
                continue;
            };
            sample.pids.push(pid);
            sample.cpu_ns += process.cpu_ns;
            sample.threads += process.threads;
            sample.rss_pages += process.rss_pages;
            queue.extend(process.children);
        }
        sample
    }
}

/// What the bench reads of one process.
struct Process {
    /// CPU time (user plus system) of all its threads, in nanoseconds.
    cpu_ns: u64,
    /// Its threads.
    threads: u64,
    /// Its resident pages.
    rss_pages: u64,
    /// The processes it started that are still running.
    children: Vec<i32>,
}

impl Process {
    /// Reads process `pid` from `/proc/PID/stat` and each thread's `/proc/PID/task/TID/`
    /// files (see proc(5)); `None` if it is gone.
    ///
    /// The CPU time comes from each thread's `schedstat`, in nanoseconds: `utime + stime` in
    /// `stat` count whole clock ticks (10 ms) and round down per process, so 5,000 forked
    /// children that each ran 5 ms in a window would sum to nothing. The ticks are the fallback
    /// where `schedstat` cannot be read. The children come from each thread's `children` file
    /// (any thread may have forked them).
    fn read(pid: i32) -> Option<Process> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 2, the command name, is in parentheses and may hold spaces: start after the
        // last ')'. Then `fields[0]` is field 3 of proc(5), so field n is `fields[n - 3]`.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = field(14)? + field(15)?;
        let mut process = Process {
            cpu_ns: 0,
            threads: field(20)?,
            rss_pages: field(24)?,
            children: Vec::new(),
        };
        let mut exact = true;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let read = |name: &str| std::fs::read_to_string(task.path().join(name));
            match read("schedstat").ok().and_then(|t| first_number(&t)) {
                Some(ns) => process.cpu_ns += ns,
                None => exact = false,
            }
            let children = read("children").unwrap_or_default();
            process.children.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
        if !exact {
            process.cpu_ns = ticks * 1_000_000_000 / clock_ticks_per_second();
        }
        Some(process)
    }
}

/// The first whitespace-separated number of `text`.
fn first_number(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The CPU time of the calling thread so far, in nanoseconds (0 if it cannot be read).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| first_number(&text))
        .unwrap_or(0)
}

/// The busy time of all CPUs together since boot, in clock ticks: the first line of
/// `/proc/stat` (see proc(5)) without idle and iowait. The guest fields are left out: user
/// time already counts them.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user, nice, system, [idle, iowait], irq, softirq, steal.
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum()
}

/// The proportional set size summed over `pids`, in bytes (0 where it cannot be read).
fn pss_bytes(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
            let line = text.lines().find_map(|l| l.strip_prefix("Pss:"))?;
            let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
        .sum()
}

/// Clock ticks per second, the unit of CPU time in `/proc/PID/stat`.
fn clock_ticks_per_second() -> u64 {
    // SAFETY: `sysconf` reads a system constant; it takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// Bytes per page, the unit of RSS in `/proc/PID/stat`.
fn page_size() -> u64 {
    // SAFETY: `sysconf` reads a system constant; it takes no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

// ---------------------------------------------------------------------------------------------
// The bench process: limits, reaping, pinning
// ---------------------------------------------------------------------------------------------

/// Raises the soft limit on open files to the hard limit; returns the new limit.
///
/// 5,000 connections need 5,000 descriptors here and as many in the server, which inherits this
/// process's limits when it is started.
fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit, read by the call only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Makes this process a subreaper: the orphans of a killed server become our children, so that
/// we can reap them rather than leave zombies to an init that may not.
fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins this process (the client) to CPU 1 if the server can be pinned to CPU 0 with
/// `taskset`; whether both are pinned.
fn pin_client() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 || !on_path("taskset") {
        return false;
    }
    // SAFETY: `cpu_set_t` is a plain bit mask, for which all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 1 is within the set's bits (`cpu_set_t` holds 1,024 CPUs).
    unsafe { libc::CPU_SET(1, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and the size passed is its own.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Whether `program` is an executable on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

// ---------------------------------------------------------------------------------------------
// The client: one event loop on `polling`
// ---------------------------------------------------------------------------------------------

/// Where a connection of the load is.
#[derive(PartialEq)]
enum State {
    /// Its non-blocking `connect` is in flight.
    Connecting,
    /// Connected, doing ping-pong.
    Open,
    /// Gone: did not connect, or failed under load. Its socket is closed.
    Failed,
}

/// One connection of the load.
struct Conn {
    /// The socket; `None` once the connection has failed.
    ///
    /// # Invariant
    /// While it is `Some`, it is registered with the client's poller (key: its index), and it is
    /// deleted from the poller before it is dropped.
    stream: Option<TcpStream>,
    /// Where the connection is.
    state: State,
    /// Bytes of the current message written so far.
    written: usize,
    /// Bytes of its echo read so far.
    read: usize,
    /// The echo as it arrives.
    echo: [u8; MESSAGE],
    /// When the current message was written.
    sent_at: Instant,
    /// Whether the poller also watches for writability (a message is half written).
    wants_write: bool,
    /// Echoes received since the load started.
    echoes: u64,
}

/// The load generator: every connection in one poller, driven by one thread.
struct Client {
    /// Readiness of every connection. Level-triggered: a socket with unread data keeps being
    /// reported, so a handler may stop reading at the end of one echo.
    poller: Poller,
    /// The connections; a connection's key in the poller is its index here.
    conns: Vec<Conn>,
    /// Connections that failed, counted by reason (connecting, then load).
    failures: BTreeMap<String, usize>,
    /// Whether round trips are being recorded (the window is open).
    recording: bool,
    /// Whether an echoed connection holds its next message (while priming).
    holding: bool,
    /// The round trips recorded, in nanoseconds.
    latencies: Vec<u64>,
    /// The message every connection sends.
    message: [u8; MESSAGE],
}

impl Client {
    /// A client with no connections yet.
    fn new() -> io::Result<Client> {
        let mut message = [0; MESSAGE];
        for (i, byte) in message.iter_mut().enumerate() {
            *byte = b'a' + (i % 26) as u8;
        }
        Ok(Client {
            poller: Poller::new()?,
            conns: Vec::new(),
            failures: BTreeMap::new(),
            recording: false,
            holding: false,
            latencies: Vec::new(),
            message,
        })
    }

    /// Connects `count` connections to `addr`, at most `CONNECT_BATCH` in flight at once. Those
    /// not connected when the plan's set-up time is over, or when no connect has completed for
    /// `CONNECT_STALL`, count as failures.
    fn connect_all(&mut self, addr: SocketAddr, count: usize, plan: &Plan) -> io::Result<()> {
        let deadline = Instant::now() + plan.setup_timeout;
        let mut events = Events::with_capacity(NonZeroUsize::new(1024).expect("nonzero"));
        let (mut started, mut pending, mut progress_at) = (0, 0, Instant::now());
        while started < count || pending > 0 {
            let give_up = deadline.min(progress_at + CONNECT_STALL);
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            while started < count && pending < CONNECT_BATCH {
                started += 1;
                match self.start_connect(addr) {
                    Ok(()) => pending += 1,
                    Err(err) => *self.failures.entry(err.to_string()).or_default() += 1,
                }
            }
            events.clear();
            self.poller.wait(&mut events, Some(give_up - now))?;
            for event in events.iter() {
                if self.conns[event.key].state == State::Connecting {
                    self.finish_connect(event.key);
                    pending -= 1;
                    progress_at = Instant::now();
                }
            }
        }
        // What is still in flight, or never started, did not make it in time.
        let why = if Instant::now() >= deadline {
            format!("not within the {} s limit", plan.setup_timeout.as_secs())
        } else {
            format!("no connect completed for {} s", CONNECT_STALL.as_secs_f64())
        };
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Connecting {
                self.fail(i, why.clone());
            }
        }
        if started < count {
            *self.failures.entry(why).or_default() += count - started;
        }
        Ok(())
    }

    /// Starts a non-blocking connect and registers it, watching for writability (connected).
    fn start_connect(&mut self, addr: SocketAddr) -> io::Result<()> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        // One small message in flight: never let Nagle's algorithm hold it back.
        socket.set_nodelay(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err),
        }
        let stream = TcpStream::from(socket);
        let key = self.conns.len();
        // SAFETY: the stream is stored in `conns[key]` below, and `Client::fail` and
        // `Client::drop` delete it from the poller before they drop it (the invariant on
        // `Conn::stream`).
        unsafe {
            self.poller
                .add_with_mode(&stream, Event::writable(key), PollMode::Level)?;
        }
        self.conns.push(Conn {
            stream: Some(stream),
            state: State::Connecting,
            written: 0,
            read: 0,
            echo: [0; MESSAGE],
            sent_at: Instant::now(),
            wants_write: true,
            echoes: 0,
        });
        Ok(())
    }

    /// A connecting socket became writable: it connected, or it failed.
    fn finish_connect(&mut self, i: usize) {
        let stream = self.conns[i]
            .stream
            .as_ref()
            .expect("connecting has a stream");
        let outcome = match stream.take_error() {
            Ok(None) => self
                .poller
                .modify_with_mode(stream, Event::readable(i), PollMode::Level),
            Ok(Some(err)) | Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => {
                self.conns[i].state = State::Open;
                self.conns[i].wants_write = false;
            }
            Err(err) => self.fail(i, err.to_string()),
        }
    }

    /// Connections that are open.
    fn open(&self) -> usize {
        self.open_where(|_| true)
    }

    /// Open connections that got no echo since the load started.
    fn starved(&self) -> usize {
        self.open_where(|c| c.echoes == 0)
    }

    /// Open connections for which `test` holds.
    fn open_where(&self, test: impl Fn(&Conn) -> bool) -> usize {
        self.conns
            .iter()
            .filter(|c| c.state == State::Open && test(c))
            .count()
    }

    /// Sends one message on every open connection and waits until each has its echo, so that
    /// the measured load starts with every connection accepted and served once (a fork server
    /// must not fork its last children while the first ones already compete for its core).
    /// Echoed connections hold their next message until then. Gives up at `deadline`, or when
    /// no connection got its first echo for `stall` (a server that serves only some clients).
    fn prime(&mut self, deadline: Instant, stall: Duration) -> io::Result<()> {
        self.holding = true;
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Open {
                self.send(i);
            }
        }
        let (mut served, mut progress_at) = (0, Instant::now());
        loop {
            let now = Instant::now();
            let served_now = self.open_where(|c| c.echoes > 0);
            if served_now > served {
                (served, progress_at) = (served_now, now);
            }
            if served_now == self.open() || now >= deadline || now >= progress_at + stall {
                break;
            }
            self.drive((now + Duration::from_millis(20)).min(deadline))?;
        }
        // Release the held connections: each whose echo is complete sends its next message.
        self.holding = false;
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Open && self.conns[i].read == MESSAGE {
                self.send(i);
            }
        }
        Ok(())
    }

    /// Runs the event loop until `until`.
    fn drive(&mut self, until: Instant) -> io::Result<()> {
        let mut events = Events::with_capacity(NonZeroUsize::new(1024).expect("nonzero"));
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            events.clear();
            self.poller.wait(&mut events, Some(until - now))?;
            for event in events.iter() {
                if self.conns[event.key].state != State::Open {
                    continue;
                }
                if event.writable && self.conns[event.key].written < MESSAGE {
                    self.write(event.key);
                }
                if event.readable && self.conns[event.key].state == State::Open {
                    self.read(event.key);
                }
            }
        }
    }

    /// Starts a new message on connection `i`.
    fn send(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        conn.written = 0;
        conn.read = 0;
        conn.sent_at = Instant::now();
        self.write(i);
    }

    /// Writes what is left of connection `i`'s message; watches for writability if the socket
    /// could not take all of it.
    fn write(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let stream = conn.stream.as_mut().expect("open has a stream");
        while conn.written < MESSAGE {
            match stream.write(&self.message[conn.written..]) {
                Ok(n) => conn.written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => return self.fail(i, err.to_string()),
            }
        }
        let wants_write = conn.written < MESSAGE;
        if wants_write != conn.wants_write {
            conn.wants_write = wants_write;
            let interest = if wants_write {
                Event::all(i)
            } else {
                Event::readable(i)
            };
            let stream = conn.stream.as_ref().expect("open has a stream");
            if let Err(err) = self
                .poller
                .modify_with_mode(stream, interest, PollMode::Level)
            {
                self.fail(i, err.to_string());
            }
        }
    }

    /// Reads connection `i`'s echo; when it is whole, records the round trip and sends again.
    fn read(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let stream = conn.stream.as_mut().expect("open has a stream");
        // A connection holding after its echo expects nothing: read one byte to tell a close
        // from bytes it was never sent.
        let mut extra = [0; 1];
        let idle = conn.read == MESSAGE;
        loop {
            let buf = if idle {
                &mut extra[..]
            } else {
                &mut conn.echo[conn.read..]
            };
            match stream.read(buf) {
                Ok(0) => return self.fail(i, "closed by the server".into()),
                Ok(_) if idle => return self.fail(i, "echoed bytes it was not sent".into()),
                Ok(n) => conn.read += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // Level-triggered: the poller will report the rest when it arrives.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => return self.fail(i, err.to_string()),
            }
            if conn.read == MESSAGE {
                break;
            }
        }
        if conn.echo != self.message {
            return self.fail(i, "echoed other bytes".into());
        }
        conn.echoes += 1;
        if self.recording {
            self.latencies
                .push(conn.sent_at.elapsed().as_nanos() as u64);
        }
        // While priming, the connection waits (its `read` stays at MESSAGE) for the others.
        if self.holding {
            return;
        }
        self.send(i);
    }

    /// Ends connection `i` for `reason`: deletes it from the poller, closes it, counts it.
    fn fail(&mut self, i: usize, reason: String) {
        let conn = &mut self.conns[i];
        if let Some(stream) = conn.stream.take() {
            let _ = self.poller.delete(&stream);
        }
        conn.state = State::Failed;
        *self.failures.entry(reason).or_default() += 1;
    }
}

impl Drop for Client {
    /// Deletes every socket from the poller before the sockets close (`polling`'s contract).
    fn drop(&mut self) {
        for conn in &self.conns {
            if let Some(stream) = &conn.stream {
                let _ = self.poller.delete(stream);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// A table of the report: its title, and how a served cell's figures print in it.
type Column = (&'static str, fn(&Figures) -> String);

/// Everything `docs/journey.md` says.
struct Report<'a> {
    /// The command line of this run.
    args: &'a Args,
    /// Its timings.
    plan: &'a Plan,
    /// `results[m][l]`: model `m` at level `LEVELS[l]`.
    results: &'a [Vec<Cell>],
    /// Whether server and client were pinned to a CPU each.
    pinned: bool,
    /// The open-files limit of the client and the servers.
    open_files: u64,
    /// How long the whole run took.
    elapsed: Duration,
}

impl Report<'_> {
    /// Writes `docs/journey.md` and its two charts.
    fn write(&self, root: &Path) -> Result<()> {
        let docs = root.join("docs");
        std::fs::create_dir_all(&docs)?;
        std::fs::write(docs.join("journey.md"), self.markdown())?;
        let throughput = line_chart(
            "Throughput against connections",
            "messages per second",
            Scale::Linear,
            &self.series(|f| f.throughput),
        );
        std::fs::write(docs.join("journey_throughput.svg"), throughput)?;
        let mut memory = self.series(|f| f.rss as f64 / (1024.0 * 1024.0));
        memory.extend(self.pss_series());
        let memory = line_chart(
            "Server memory against connections",
            "resident memory (RSS), MiB, log scale",
            Scale::Log,
            &memory,
        );
        std::fs::write(docs.join("journey_memory.svg"), memory)?;
        Ok(())
    }

    /// The whole Markdown document.
    fn markdown(&self) -> String {
        let notes = self.footnotes();
        let mut md = String::from("# The journey, measured\n\n");
        md.push_str(
            "The eight echo servers of the journey (`examples/journey/`), from a blocking \
             server that serves one client at a time to async/await on ripple, under the same \
             ping-pong load at 1 to 5,000 concurrent connections. Written by \
             `examples/journey_bench.rs`.\n\n",
        );
        md.push_str(&self.setting());
        md.push_str(&self.method());
        md.push_str("## Charts\n\n");
        md.push_str("![Throughput against connections](journey_throughput.svg)\n\n");
        md.push_str("![Server memory against connections](journey_memory.svg)\n\n");
        md.push_str(
            "A missing point is a level the server did not serve; the reasons are under the \
             tables. In the memory chart, a dashed line with hollow points is the PSS of a \
             server that runs as several processes (see *Memory of a process tree* below).\n\n",
        );
        md.push_str("## Results\n\n");
        md.push_str(&self.tables(&notes));
        md.push_str(&self.reasons(&notes));
        md.push_str(&self.memory_note());
        md.push_str(&self.checks());
        md
    }

    /// What the check table says, in words: where the client limited the throughput, and
    /// where other processes disturbed the measurement.
    fn checks(&self) -> String {
        let cells = |test: &dyn Fn(&Figures) -> bool| -> Vec<String> {
            let mut found = Vec::new();
            for (model, row) in self.args.models.iter().zip(self.results) {
                for (cell, level) in row.iter().zip(LEVELS) {
                    if served(cell).is_some_and(test) {
                        found.push(format!("{} at {}", model.label, number(level as f64)));
                    }
                }
            }
            found
        };
        let busy_client = cells(&|f| f.client_share >= 0.9);
        let disturbed = cells(&|f| f.others_share >= 0.1);
        let mut md = String::from("### What the checks say\n\n");
        if busy_client.is_empty() {
            md.push_str("The client never used 90% of its core: the servers set the pace.\n\n");
        } else {
            let _ = writeln!(
                md,
                "The client used 90% or more of its core in {} cells ({}). There the client is \
                 as much the limit as the server, and two servers near the same throughput are \
                 better compared by their CPU per 1,000 messages.\n",
                busy_client.len(),
                busy_client.join(", ")
            );
        }
        if disturbed.is_empty() {
            md.push_str("Other processes never used 10% of a core during a window.\n");
        } else {
            let _ = writeln!(
                md,
                "Other processes used 10% of a core or more during the window of {} cells ({}): \
                 read those figures as disturbed, and run the bench again on a quiet machine.",
                disturbed.len(),
                disturbed.join(", ")
            );
        }
        md
    }

    /// Date, machine and command.
    fn setting(&self) -> String {
        let (cpus, model) = cpu_info();
        let mut md = String::new();
        let _ = writeln!(
            md,
            "- Date: {}",
            command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        );
        let _ = writeln!(
            md,
            "- Machine: {cpus} CPUs ({model}), {} GiB of memory, {}",
            decimal(mem_total_bytes() as f64 / (1u64 << 30) as f64),
            command_output("uname", &["-srm"])
        );
        let _ = writeln!(
            md,
            "- Command: `{}` (took {:.0} s, building included)\n",
            Args::command(),
            self.elapsed.as_secs_f64()
        );
        md
    }

    /// How the figures were made.
    fn method(&self) -> String {
        let plan = self.plan;
        let pinning = if self.pinned {
            "Each server ran pinned to CPU 0 (`taskset -c 0`, inherited by its threads and \
             children) and the client to CPU 1 (`sched_setaffinity`), so the server has one core \
             whatever its model."
        } else {
            "Server and client were **not** pinned to CPUs (`taskset` or a second CPU was \
             missing), so they competed for the same cores."
        };
        let mut md = String::from("## Method\n\n");
        let _ = writeln!(
            md,
            "- Server: each model is built in release mode and started anew for every cell as \
             its own process on 127.0.0.1 (a port of the kernel's choice), in its own process \
             group; after the cell the whole group is killed and reaped. {pinning} The \
             open-files limit of client and servers is {}.",
            number(self.open_files as f64)
        );
        let _ = writeln!(
            md,
            "- Client: one thread in this harness, one `polling` event loop (level-triggered \
             epoll) over every connection; each connection does ping-pong with a {MESSAGE}-byte \
             message: send it, wait for the whole echo, record the round trip, send again.",
        );
        let _ = writeln!(
            md,
            "- Phases of a cell: (1) connect, with non-blocking connects, at most \
             {CONNECT_BATCH} in flight at once; (2) prime: one message on every connection, \
             and each echoed connection waits until all have their echo, so the measured load \
             starts with every connection accepted and served once; (3) {} s of warm-up at full \
             load; (4) {} measured windows of {} s in a row, at full load. Phases 1 and 2 give \
             up after {} s each, or after {} s without a new connection (longer than the \
             kernel's SYN retries at 1 and 3 s: on loopback a connect fails only by timing out, \
             when the server's accept queue stays full) and {} s without a new first echo.",
            plan.warmup.as_secs_f64(),
            plan.windows,
            plan.window.as_secs_f64(),
            plan.setup_timeout.as_secs(),
            CONNECT_STALL.as_secs_f64(),
            plan.stall.as_secs_f64()
        );
        md.push_str(
            "- Figures: every figure of a cell comes from one window: the one in which \
             everything else on the machine (the check below) used the least CPU; the choice \
             looks only at that, never at the server's figures. Throughput is the messages \
             echoed in that window divided by its length; p99 is the 99th percentile of their \
             round trips. The level is not served if a connection did not connect, failed, or \
             got no echo at all by the end of the last window. Even so, on a shared virtual \
             machine throughput moves between runs by tens of percent while the check shows no \
             interference: compare the shapes of the curves and differences of 2x or more, not \
             small gaps.\n",
        );
        let _ = writeln!(
            md,
            "- Server resources, summed over the server's process tree (the server and its \
             descendants: the fork server's children count): threads and resident memory (RSS) \
             from `/proc/PID/stat` at the end of the window, with every connection open and a \
             message in flight on each; CPU time (user + system) as the difference between the \
             start and the end of the window. The CPU time is each thread's run time in \
             nanoseconds from `/proc/PID/task/TID/schedstat`, not `utime + stime` from \
             `/proc/PID/stat`: those count whole 10 ms clock ticks and round down per process, \
             so a thousand forked children that each run a few milliseconds would add up to \
             nothing."
        );
        let _ = writeln!(
            md,
            "- CPU is shown two ways. **CPU ms per 1,000 messages** is the headline: the cost of \
             one unit of work, comparable across models and loads (a server pinned to one core \
             saturates at 100% anyway, so the percentage alone hides how much each message \
             costs). **CPU %** of one core shows whether the server was saturated, or burns a \
             core while idle (the busy poll)."
        );
        let _ = writeln!(
            md,
            "- The last table checks the measurement itself: the client's CPU time in the window \
             (near 100%, the client and not the server limited the throughput) and the CPU time \
             of everything else: other processes, and time the hypervisor gave to other \
             virtual machines (steal). It is the busy time of all CPUs in `/proc/stat` minus \
             server and client; on a shared machine it shows whose figures were disturbed.\n"
        );
        md
    }

    /// Numbers the cells that were not served, in table order: `notes[m][l]`.
    fn footnotes(&self) -> Vec<Vec<Option<usize>>> {
        let mut next = 0;
        self.results
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| match cell {
                        Cell::Served(_) => None,
                        Cell::NotServed(_) => {
                            next += 1;
                            Some(next)
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// One table per figure, models down, levels across.
    fn tables(&self, notes: &[Vec<Option<usize>>]) -> String {
        let tables: [Column; 7] = [
            ("Throughput (messages per second)", |f| number(f.throughput)),
            ("p99 latency", |f| latency(f.p99)),
            ("Threads (whole process tree)", |f| number(f.threads as f64)),
            ("Resident memory (RSS, MiB, whole process tree)", |f| {
                mib(f.rss)
            }),
            ("Server CPU, ms per 1,000 messages", |f| {
                decimal(f.cpu_per_1k)
            }),
            ("Server CPU, % of one core", |f| {
                format!("{:.0}%", f.cpu_share * 100.0)
            }),
            (
                "Check: client CPU, % of its core / other processes, % of a core",
                |f| {
                    format!(
                        "{:.0}% / {:.0}%",
                        f.client_share * 100.0,
                        f.others_share * 100.0
                    )
                },
            ),
        ];
        let mut md = String::new();
        for (title, value) in tables {
            let _ = writeln!(md, "### {title}\n");
            md.push_str("| model |");
            for level in LEVELS {
                let _ = write!(md, " {} |", number(level as f64));
            }
            md.push_str("\n|---|");
            md.push_str(&"---:|".repeat(LEVELS.len()));
            md.push('\n');
            for (m, row) in self.results.iter().enumerate() {
                let _ = write!(md, "| {} |", self.args.models[m].label);
                for (l, cell) in row.iter().enumerate() {
                    let text = match cell {
                        Cell::Served(f) => value(f),
                        Cell::NotServed(_) => format!("✗ ({})", notes[m][l].unwrap_or(0)),
                    };
                    let _ = write!(md, " {text} |");
                }
                md.push('\n');
            }
            md.push('\n');
        }
        md
    }

    /// The numbered reasons of the cells marked ✗.
    fn reasons(&self, notes: &[Vec<Option<usize>>]) -> String {
        let mut md = String::from("### Levels not served\n\n");
        let mut any = false;
        for (m, row) in self.results.iter().enumerate() {
            for (l, cell) in row.iter().enumerate() {
                if let (Cell::NotServed(why), Some(n)) = (cell, notes[m][l]) {
                    any = true;
                    let _ = writeln!(
                        md,
                        "{n}. {}, {}: {}",
                        self.args.models[m].label,
                        connections(LEVELS[l]),
                        why
                    );
                }
            }
        }
        if !any {
            md.push_str("Every server served every level.\n");
        }
        md.push('\n');
        md
    }

    /// For servers of several processes: RSS counts every shared page once per process.
    fn memory_note(&self) -> String {
        let mut md = String::from(
            "### Memory of a process tree\n\nRSS counts a page once in every process that maps \
             it, so the sum over a tree of forked processes counts the pages they share (the \
             program, the C library, the parent's heap before `fork`) many times over. The \
             proportional set size (PSS, from `/proc/PID/smaps_rollup`) splits each shared page \
             among the processes that map it, so its sum is what the tree really occupies.\n\n\
             | model | connections | processes | RSS (MiB) | PSS (MiB) |\n\
             |---|---:|---:|---:|---:|\n",
        );
        let mut any = false;
        for (model, row) in self.args.models.iter().zip(self.results) {
            for (cell, level) in row.iter().zip(LEVELS) {
                if let Some(f) = served(cell).filter(|f| f.processes > 1) {
                    any = true;
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} |",
                        model.label,
                        number(level as f64),
                        number(f.processes as f64),
                        mib(f.rss),
                        mib(f.pss)
                    );
                }
            }
        }
        md.push('\n');
        if any {
            md
        } else {
            String::new()
        }
    }

    /// A line per model of one figure against the level.
    fn series(&self, value: impl Fn(&Figures) -> f64) -> Vec<Series> {
        let models = self.args.models.iter().zip(self.results).enumerate();
        models
            .map(|(m, (model, row))| Series {
                label: model.label.clone(),
                color: PALETTE[m % PALETTE.len()],
                dashed: false,
                points: row.iter().map(|cell| served(cell).map(&value)).collect(),
            })
            .collect()
    }

    /// A dashed PSS line for each model that ran as several processes (the fork server), whose
    /// summed RSS counts shared pages many times over.
    fn pss_series(&self) -> Vec<Series> {
        let several = |row: &Vec<Cell>| row.iter().filter_map(served).any(|f| f.processes > 1);
        self.series(|f| f.pss as f64 / (1024.0 * 1024.0))
            .into_iter()
            .zip(self.results)
            .filter(|(_, row)| several(row))
            .map(|(mut line, _)| {
                line.label.push_str(", PSS");
                line.dashed = true;
                line
            })
            .collect()
    }
}

/// A cell's figures, if it was served.
fn served(cell: &Cell) -> Option<&Figures> {
    match cell {
        Cell::Served(figures) => Some(figures),
        Cell::NotServed(_) => None,
    }
}

/// The output of a command, trimmed, or `unknown`.
fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The machine's CPU count and model name, from `/proc/cpuinfo` (not from this process's
/// affinity, which pinning has narrowed to one CPU).
fn cpu_info() -> (usize, String) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let count = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| Some(l.split_once(':')?.1.trim().to_string()))
        .unwrap_or_else(|| "unknown model".into());
    (count, model)
}

/// The machine's memory from `/proc/meminfo`, in bytes.
fn mem_total_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
            line.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// A count with thousands separated: `12,345`.
fn number(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// "1 connection", "5,000 connections".
fn connections(count: usize) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{} connection{plural}", number(count as f64))
}

/// A figure with about three significant digits: `0.123`, `1.23`, `12.3`, `1,234`.
fn decimal(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => number(value),
        v if v >= 10.0 => format!("{value:.1}"),
        v if v >= 1.0 => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

/// Bytes as MiB, with a decimal below 10.
fn mib(bytes: u64) -> String {
    decimal(bytes as f64 / (1024.0 * 1024.0))
}

/// A latency in the unit that suits it: `85 µs`, `1.2 ms`, `2.4 s`.
fn latency(duration: Duration) -> String {
    let us = duration.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{} ms", decimal(us / 1e3))
    } else {
        format!("{} s", decimal(us / 1e6))
    }
}

// ---------------------------------------------------------------------------------------------
// SVG line charts, by hand
// ---------------------------------------------------------------------------------------------

/// How a chart's y axis maps values.
#[derive(Clone, Copy, PartialEq)]
enum Scale {
    /// From zero, evenly.
    Linear,
    /// A decade per step, for figures that span several orders of magnitude.
    Log,
}

/// One line of a chart.
struct Series {
    /// The model, for the legend.
    label: String,
    /// Its color.
    color: &'static str,
    /// Whether the line is dashed (a second figure of the same model).
    dashed: bool,
    /// Its value at each of `LEVELS`, `None` where it did not serve.
    points: Vec<Option<f64>>,
}

/// Eight colors that stay apart from one another (Tableau 10, without the grays).
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
];

/// The plot area in the SVG: left, top, right, bottom.
const PLOT: (f64, f64, f64, f64) = (90.0, 50.0, 560.0, 380.0);

/// An SVG line chart: x is the connection level on a log scale, y one figure.
fn line_chart(title: &str, y_label: &str, scale: Scale, series: &[Series]) -> String {
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().flatten().copied());
    let axis = YAxis::fit(scale, values);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"440\" \
         viewBox=\"0 0 800 440\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"800\" height=\"440\" fill=\"white\"/>\n\
         <text x=\"400\" y=\"28\" font-size=\"16\" font-weight=\"bold\" \
         text-anchor=\"middle\">{}</text>",
        xml_escape(title)
    );
    svg.push_str(&x_axis());
    svg.push_str(&axis.draw(y_label));
    for s in series {
        svg.push_str(&polyline(s, &axis));
    }
    svg.push_str(&legend(series));
    svg.push_str("</svg>\n");
    svg
}

/// The x position of a connection level: log scale, from the first level to the last.
fn x_of(level: usize) -> f64 {
    let (left, _, right, _) = PLOT;
    let (lo, hi) = (
        (LEVELS[0] as f64).log10(),
        (LEVELS[LEVELS.len() - 1] as f64).log10(),
    );
    left + (right - left) * ((level as f64).log10() - lo) / (hi - lo)
}

/// The x axis: a tick and label at every level, and the axis title.
fn x_axis() -> String {
    let (left, top, right, bottom) = PLOT;
    let mut svg = format!(
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\n"
    );
    for level in LEVELS {
        let x = x_of(level);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#e6e6e6\"/>\n\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 18.0,
            number(level as f64)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">concurrent connections (log scale)</text>",
        (left + right) / 2.0,
        bottom + 42.0
    );
    svg
}

/// A y axis fitted to the values it shows.
struct YAxis {
    /// Linear or log.
    scale: Scale,
    /// The value at the bottom of the plot.
    low: f64,
    /// The value at the top.
    high: f64,
    /// The values that get a tick and a grid line.
    ticks: Vec<f64>,
}

impl YAxis {
    /// Fits an axis to `values`: from zero to a round number above the largest (linear), or
    /// from the decade below the smallest to the decade above the largest (log).
    fn fit(scale: Scale, values: impl Iterator<Item = f64>) -> YAxis {
        let (mut min, mut max) = (f64::INFINITY, 0.0_f64);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        if max == 0.0 {
            (min, max) = (1.0, 10.0);
        }
        match scale {
            Scale::Linear => {
                let step = nice_step(max / 5.0);
                let high = (max / step).ceil() * step;
                let ticks = (0..=((high / step).round() as usize))
                    .map(|i| i as f64 * step)
                    .collect();
                YAxis {
                    scale,
                    low: 0.0,
                    high,
                    ticks,
                }
            }
            Scale::Log => {
                let (lo, hi) = (min.log10().floor() as i32, max.log10().ceil() as i32);
                let hi = hi.max(lo + 1);
                YAxis {
                    scale,
                    low: 10f64.powi(lo),
                    high: 10f64.powi(hi),
                    ticks: log_ticks(lo, hi),
                }
            }
        }
    }

    /// The y position of `value`.
    fn y_of(&self, value: f64) -> f64 {
        let (_, top, _, bottom) = PLOT;
        let share = match self.scale {
            Scale::Linear => (value - self.low) / (self.high - self.low),
            Scale::Log => {
                (value.max(self.low).log10() - self.low.log10())
                    / (self.high.log10() - self.low.log10())
            }
        };
        bottom - (bottom - top) * share.clamp(0.0, 1.0)
    }

    /// The axis line, ticks, grid lines, tick labels and the rotated title.
    fn draw(&self, label: &str) -> String {
        let (left, top, right, bottom) = PLOT;
        let mut svg = format!(
            "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>\n"
        );
        for &tick in &self.ticks {
            let y = self.y_of(tick);
            let text = if tick < 1.0 {
                format!("{tick}")
            } else {
                number(tick)
            };
            let _ = writeln!(
                svg,
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{right}\" y2=\"{y:.1}\" \
                 stroke=\"#e6e6e6\"/>\n\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{text}</text>",
                left - 6.0,
                y + 4.0
            );
        }
        let middle = (top + bottom) / 2.0;
        let _ = writeln!(
            svg,
            "<text x=\"20\" y=\"{middle}\" text-anchor=\"middle\" \
             transform=\"rotate(-90 20 {middle})\">{}</text>",
            xml_escape(label)
        );
        svg
    }
}

/// Ticks from 10^`lo` to 10^`hi`: every decade, and 2 and 5 within it when there are few
/// decades (a log axis with only 1, 10 and 100 is hard to read values from).
fn log_ticks(lo: i32, hi: i32) -> Vec<f64> {
    let steps: &[f64] = if hi - lo <= 3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks: Vec<f64> = (lo..hi)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .collect();
    ticks.push(10f64.powi(hi));
    ticks
}

/// The round step (1, 2 or 5 times a power of ten) at or above `rough`.
fn nice_step(rough: f64) -> f64 {
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power)
}

/// One model's line: segments between served levels, a dot on each.
fn polyline(series: &Series, axis: &YAxis) -> String {
    let mut svg = String::new();
    let mut run: Vec<String> = Vec::new();
    // A level not served breaks the line, so a segment never jumps over a gap.
    for (level, point) in LEVELS.iter().zip(&series.points) {
        match point {
            Some(v) => run.push(format!("{:.1},{:.1}", x_of(*level), axis.y_of(*v))),
            None => {
                svg.push_str(&segment(&run, series));
                run.clear();
            }
        }
    }
    svg.push_str(&segment(&run, series));
    svg
}

/// A stretch of consecutive points: a polyline through them and a dot on each.
fn segment(points: &[String], series: &Series) -> String {
    let mut svg = String::new();
    if points.len() > 1 {
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" {}/>",
            points.join(" "),
            stroke(series)
        );
    }
    for point in points {
        let (x, y) = point.split_once(',').expect("x,y");
        svg.push_str(&dot(x, y, series));
    }
    svg
}

/// The stroke attributes of a series' line.
fn stroke(series: &Series) -> String {
    let dash = if series.dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    format!("stroke=\"{}\" stroke-width=\"2.5\"{dash}", series.color)
}

/// A series' marker at (`x`, `y`): filled, or hollow for a dashed series.
fn dot(x: impl std::fmt::Display, y: impl std::fmt::Display, series: &Series) -> String {
    let (fill, edge) = if series.dashed {
        ("white", series.color)
    } else {
        (series.color, "white")
    };
    format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"4\" fill=\"{fill}\" stroke=\"{edge}\"/>\n")
}

/// The legend, right of the plot: a line and a label per model.
fn legend(series: &[Series]) -> String {
    let (_, top, right, _) = PLOT;
    let x = right + 30.0;
    let mut svg = format!(
        "<text x=\"{x}\" y=\"{}\" font-weight=\"bold\">server</text>\n",
        top + 4.0
    );
    for (i, s) in series.iter().enumerate() {
        let y = top + 26.0 + 22.0 * i as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" {}/>\n{}\
             <text x=\"{}\" y=\"{}\">{}</text>",
            x + 28.0,
            stroke(s),
            dot(x + 14.0, y, s),
            x + 36.0,
            y + 4.0,
            xml_escape(&s.label)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{x}\" y=\"{}\" fill=\"#666\">no point: level not served</text>",
        top + 26.0 + 22.0 * series.len() as f64 + 8.0
    );
    svg
}

/// Text made safe for SVG.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
