//! Spawn-and-join cost, ripple against tokio's current-thread runtime, in one criterion group.
//!
//! `spawn_many`: from inside the runtime, spawn 10,000 tasks that return at once, then await
//! every handle (the shape of tokio's own `spawn_many` benchmark). The figure divided by 10,000
//! is the cost of one spawn, one poll, one completion and one join.
//!
//! `cargo bench --bench spawn`

use criterion::{criterion_group, criterion_main, Criterion};

/// Tasks per iteration.
const TASKS: usize = 10_000;

fn spawn_many(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_many");
    let ripple = ripple::runtime::Builder::new_current_thread()
        .build()
        .expect("ripple runtime");
    group.bench_function("ripple", |b| {
        b.iter(|| {
            ripple.block_on(async {
                let handles: Vec<_> = (0..TASKS)
                    .map(|i| ripple::spawn(async move { i }))
                    .collect();
                let mut sum = 0;
                for handle in handles {
                    sum += handle.await.expect("task completes");
                }
                sum
            })
        })
    });
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    group.bench_function("tokio", |b| {
        b.iter(|| {
            tokio.block_on(async {
                let handles: Vec<_> = (0..TASKS).map(|i| tokio::spawn(async move { i })).collect();
                let mut sum = 0;
                for handle in handles {
                    sum += handle.await.expect("task completes");
                }
                sum
            })
        })
    });
    group.finish();
}

criterion_group!(benches, spawn_many);
criterion_main!(benches);
