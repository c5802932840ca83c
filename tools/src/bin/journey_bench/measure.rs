//! One cell, measured: start the server, load it, keep the least disturbed window, and turn it
//! into figures or into the reasons the server did not serve the level.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ripple_tools::procfs::{clock_ticks_per_second, page_size, pss_bytes, TreeSample};
use ripple_tools::server::Server;
use ripple_tools::text::number;
use ripple_tools::workspace;

use crate::args::{Model, Plan};
use crate::client::Client;
use crate::report::{connections, describe};
use crate::LEVELS;

/// What one server did at one level.
pub enum Cell {
    /// Every connection was served: the figures.
    Served(Figures),
    /// Not served, and why.
    NotServed(String),
}

/// The figures of a served cell.
pub struct Figures {
    /// Echoed messages per second over the window, all connections together.
    pub throughput: f64,
    /// The 99th percentile round trip of a message.
    pub p99: Duration,
    /// Threads, summed over the server's process tree.
    pub threads: u64,
    /// Resident memory summed over the tree, in bytes.
    pub rss: u64,
    /// Proportional memory (shared pages split among the processes that map them), summed over
    /// the tree, in bytes: what the tree really costs when its processes share pages.
    pub pss: u64,
    /// Processes in the tree.
    pub processes: usize,
    /// Server CPU time across the window, as a share of one core (1.0 is 100%).
    pub cpu_share: f64,
    /// Server CPU milliseconds per 1,000 echoed messages.
    pub cpu_per_1k: f64,
    /// The client's CPU time across the window, as a share of one core: near 1.0, the client
    /// rather than the server limited the throughput.
    pub client_share: f64,
    /// CPU time of everything else across the window, in cores: other processes (builds or
    /// benchmarks of others) and steal (the hypervisor's other virtual machines).
    pub others_share: f64,
}

/// Measures every model at every level, in order, and prints a line per cell to stderr;
/// `results[m][l]` is model `m` at level `LEVELS[l]`. A model in `unbuilt` is not started: each
/// of its cells says it did not build.
pub fn measure_all(models: &[Model], unbuilt: &[String], plan: &Plan, pin: bool) -> Vec<Vec<Cell>> {
    let cells = models.len() * LEVELS.len();
    let mut results = Vec::new();
    for model in models {
        let mut row = Vec::new();
        for level in LEVELS {
            let cell_started = Instant::now();
            let cell = if unbuilt.contains(&model.example) {
                Cell::NotServed("did not build (see cargo's errors)".into())
            } else {
                measure(model, level, plan, pin)
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
    results
}

/// Measures one server at one level, from starting it to killing its whole process tree.
fn measure(model: &Model, level: usize, plan: &Plan, pin: bool) -> Cell {
    let (mut server, addr) = match Server::start(&workspace::program(&model.example), pin) {
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
