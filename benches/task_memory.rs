//! Memory per idle task, ripple against tokio's current-thread runtime.
//!
//! Each runtime spawns 100,000 tasks that park forever on a future that never completes (each
//! holds a 64-byte state, like a small connection handler), and the growth of the process's
//! resident memory (`/proc/self/statm`) is divided by the task count. Each runtime runs in a
//! child process of its own so that one's freed memory cannot be reused by the other; runs
//! alternate ripple, tokio, ripple, ... and the median of five is reported.
//!
//! `cargo bench --bench task_memory`

use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};

/// Idle tasks per measurement.
const TASKS: usize = 100_000;
/// Alternating runs per runtime.
const RUNS: usize = 5;

/// Never completes; its 64 bytes stand for a small task's state.
struct Idle([u8; 64]);

impl Future for Idle {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        std::hint::black_box(&self.0);
        Poll::Pending
    }
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm's second field is resident pages");
    pages * 4096
}

/// Bytes of resident memory per idle task on `runtime`, measured in this process.
fn measure(runtime: &str) -> f64 {
    match runtime {
        "ripple" => {
            let rt = ripple::runtime::Runtime::new().expect("ripple runtime");
            rt.block_on(async {
                let before = resident_bytes();
                let handles: Vec<_> = (0..TASKS).map(|_| ripple::spawn(Idle([0; 64]))).collect();
                // Let every task run once and park.
                ripple::task::yield_now().await;
                let after = resident_bytes();
                drop(handles);
                (after - before) as f64 / TASKS as f64
            })
        }
        _ => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("tokio runtime");
            rt.block_on(async {
                let before = resident_bytes();
                let handles: Vec<_> = (0..TASKS).map(|_| tokio::spawn(Idle([0; 64]))).collect();
                tokio::task::yield_now().await;
                let after = resident_bytes();
                drop(handles);
                (after - before) as f64 / TASKS as f64
            })
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if let Ok(runtime) = std::env::var("TASK_MEMORY_CHILD") {
        println!("{}", measure(&runtime));
        return;
    }
    // `cargo bench` passes `--bench`; a plain `cargo test` run of benches passes nothing.
    let exe = std::env::current_exe().expect("current exe");
    let mut results = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (slot, runtime) in ["ripple", "tokio"].iter().enumerate() {
            let output = Command::new(&exe)
                .env("TASK_MEMORY_CHILD", runtime)
                .output()
                .expect("run child");
            let bytes: f64 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .expect("child prints bytes per task");
            results[slot].push(bytes);
        }
    }
    let [ripple, tokio] = results.map(median);
    println!(
        "task_memory: bytes per idle task (median of {RUNS}): ripple {ripple:.0}, tokio {tokio:.0}, ratio {:.2}",
        ripple / tokio
    );
}
