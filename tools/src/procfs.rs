//! What the harnesses read from `/proc` (see proc(5)): a server's process tree at one moment
//! (processes, threads, resident pages, CPU time), one process's memory and open descriptors,
//! and the machine (busy CPU time, CPUs, memory).
//!
//! A server is measured from outside, as the kernel sees it: no counter inside the server is
//! needed, so ripple, tokio and a server that forks a process per client are measured the same
//! way.

use std::io;
use std::time::Instant;

/// A server's process tree (the server and its descendants) at one moment, summed, with the
/// CPU time of the client and of the whole machine at that moment.
#[derive(Debug)]
pub struct TreeSample {
    /// When the sample was read.
    pub at: Instant,
    /// CPU time of the calling thread (the client's event loop), in nanoseconds.
    pub client_ns: u64,
    /// Busy time of all CPUs together (everything but idle and I/O wait), in clock ticks.
    pub machine_ticks: u64,
    /// The processes of the tree, the server first.
    pub pids: Vec<i32>,
    /// CPU time (user plus system) of every thread, in nanoseconds.
    pub cpu_ns: u64,
    /// Threads.
    pub threads: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

impl TreeSample {
    /// Walks the tree under `root` in `/proc`, from each process to its children.
    ///
    /// Only the tree is read, never all of `/proc`: on a shared machine thousands of other
    /// processes would make every sample slow.
    pub fn take(root: i32) -> TreeSample {
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

/// What a [`TreeSample`] reads of one process.
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

/// The resident set size of process `pid` (`VmRSS` in `/proc/PID/status`), in bytes; `None` if
/// it cannot be read.
pub fn vm_rss_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}

/// How many file descriptors process `pid` has open: the entries of `/proc/PID/fd`.
pub fn open_fds(pid: i32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The proportional set size summed over `pids`, in bytes (0 where it cannot be read).
pub fn pss_bytes(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
            kib_field(&text, "Pss:")
        })
        .sum()
}

/// Clock ticks per second, the unit of CPU time in `/proc/PID/stat`.
pub fn clock_ticks_per_second() -> u64 {
    sysconf(libc::_SC_CLK_TCK).unwrap_or(100)
}

/// Bytes per page, the unit of RSS in `/proc/PID/stat`.
pub fn page_size() -> u64 {
    sysconf(libc::_SC_PAGESIZE).unwrap_or(4096)
}

/// The system constant `name` (`_SC_...`), if `sysconf` knows it.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: `sysconf` reads a system constant; it takes no pointers.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|&v| v > 0)
}

/// The machine's CPU count and model name, from `/proc/cpuinfo` (not from this process's
/// affinity, which pinning has narrowed to one CPU).
pub fn cpu_info() -> (usize, String) {
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
pub fn mem_total_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| kib_field(&info, "MemTotal:"))
        .unwrap_or(0)
}

/// The line of `text` that starts with `key` (`Pss:`, `MemTotal:`), a count of kB as `/proc`
/// writes them (`  1234 kB`), in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(key))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}
