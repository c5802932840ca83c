//! Work stealing, watched: one task spawns eight others on its worker, and the idle worker takes
//! half of them.
//!
//! Every task spawned on a worker goes to the back of that worker's own queue. Here one task
//! spawns eight busy tasks (each about 10 ms of arithmetic) and then waits for them, so they
//! all start out queued on one worker. A spawn wakes a sleeping worker if none is searching already;
//! that worker finds its own queue empty, steals half of its sibling's, and from then on both
//! cores compute. The program prints how long the eight took against one task's time: close to
//! four tasks' worth on two workers, eight on one.
//!
//! Run it with `RIPPLE_TRACE=1 cargo run --release --example work_stealing` to see it happen:
//! `worker 0: task N spawned`, then `worker 1: stole 4 task(s) from worker 0`, then each task
//! `polled -> ready` on the worker that ran it. `RIPPLE_WORKER_THREADS=1` takes stealing away.

use std::time::Instant;

#[ripple::main(flavor = "multi_thread")]
async fn main() {
    let start = Instant::now();
    busy(0);
    let one = start.elapsed();
    let start = Instant::now();
    // Spawned from a task, so that the eight land on a worker's own queue (a spawn from the
    // main thread, outside the workers, would go to the shared inject queue instead).
    ripple::spawn(async {
        let tasks: Vec<_> = (0..8)
            .map(|seed| ripple::spawn(async move { busy(seed) }))
            .collect();
        for task in tasks {
            task.await.expect("a busy task does not panic");
        }
    })
    .await
    .expect("the spawning task does not panic");
    let all = start.elapsed();
    println!(
        "one busy task: {one:.1?}; eight on the runtime: {all:.1?}, {:.1} tasks' worth",
        all.as_secs_f64() / one.as_secs_f64()
    );
}

/// About 10 ms of arithmetic on this machine, with nothing to wait for.
fn busy(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..80_000_000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x)
}
