//! The report: `journey.md` (machine, method, one table per figure, the reasons for every
//! level not served) and its two charts, and how a cell's figures print.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ripple_tools::procfs::{cpu_info, mem_total_bytes};
use ripple_tools::text::{command_output, number};
use ripple_tools::Result;

use crate::args::{Args, Plan};
use crate::client::{CONNECT_BATCH, CONNECT_STALL, MESSAGE};
use crate::measure::{Cell, Figures};
use crate::svg::{line_chart, Scale, Series, PALETTE};
use crate::LEVELS;

/// A table of the report: its title, and how a served cell's figures print in it.
type Column = (&'static str, fn(&Figures) -> String);

/// Everything `journey.md` says.
pub struct Report<'a> {
    /// The command line of this run.
    pub args: &'a Args,
    /// Its timings.
    pub plan: &'a Plan,
    /// `results[m][l]`: model `m` at level `LEVELS[l]`.
    pub results: &'a [Vec<Cell>],
    /// Whether server and client were pinned to a CPU each.
    pub pinned: bool,
    /// The open-files limit of the client and the servers.
    pub open_files: u64,
    /// How long the whole run took.
    pub elapsed: Duration,
}

impl Report<'_> {
    /// Writes `journey.md` and its two charts to the folder `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("journey.md"), self.markdown())?;
        let throughput = line_chart(
            "Throughput against connections",
            "messages per second",
            Scale::Linear,
            &self.series(|f| f.throughput),
        );
        std::fs::write(out.join("journey_throughput.svg"), throughput)?;
        let mut memory = self.series(|f| f.rss as f64 / (1024.0 * 1024.0));
        memory.extend(self.pss_series());
        let memory = line_chart(
            "Server memory against connections",
            "resident memory (RSS), MiB, log scale",
            Scale::Log,
            &memory,
        );
        std::fs::write(out.join("journey_memory.svg"), memory)?;
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
             `tools/src/bin/journey_bench/`.\n\n",
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

/// One line about a cell for the progress output.
pub fn describe(cell: &Cell) -> String {
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

/// "1 connection", "5,000 connections".
pub fn connections(count: usize) -> String {
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
