//! A measuring harness, not a tutorial: spawns and joins empty tasks on ripple or on tokio's
//! current-thread runtime, so that `valgrind --tool=callgrind` can count the user-space
//! instructions one spawn, run and join costs on each (`benches/spawn_counts.sh` does that).
//!
//! `cargo run --release --example spawn_join -- ripple|tokio [ROUNDS]`: ROUNDS (default 50)
//! rounds of 10,000 tasks, each spawned, then all joined, as criterion's `spawn_many` does.

use std::time::Instant;

/// Tasks per round.
const TASKS: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = args.get(1).map(String::as_str).unwrap_or("ripple");
    let rounds: usize = args
        .get(2)
        .map(|n| n.parse().expect("ROUNDS is a number"))
        .unwrap_or(50);
    let start = Instant::now();
    match runtime {
        "ripple" => {
            let rt = ripple::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            for _ in 0..rounds {
                rt.block_on(async {
                    let handles: Vec<_> = (0..TASKS).map(|_| ripple::spawn(async {})).collect();
                    for handle in handles {
                        handle.await.expect("an empty task completes");
                    }
                });
            }
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime");
            for _ in 0..rounds {
                rt.block_on(async {
                    let handles: Vec<_> = (0..TASKS).map(|_| tokio::spawn(async {})).collect();
                    for handle in handles {
                        handle.await.expect("an empty task completes");
                    }
                });
            }
        }
        other => {
            eprintln!("unknown runtime '{other}': use ripple or tokio");
            std::process::exit(2);
        }
    }
    println!(
        "tasks={} seconds={:.3}",
        rounds * TASKS,
        start.elapsed().as_secs_f64()
    );
}
