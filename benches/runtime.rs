//! Micro benchmarks of the executor and timers: ripple against tokio's current-thread runtime,
//! each group running both on the same workload so one `cargo bench --bench runtime` compares
//! them. The workloads have the shapes of tokio's own benchmarks.
//!
//! - `spawn_many`: spawn 10,000 tasks from inside the runtime, then await every handle.
//! - `chained_spawn`: a chain of 1,000 tasks, each spawning the next.
//! - `yield_many`: 200 tasks, each calling `yield_now` 1,000 times.
//! - `ping_pong`: 1,000 round trips between two tasks over the oneshot channel below (the same
//!   channel for both runtimes, so the runtime is what differs).
//! - `remote_wake`: a task woken 10,000 times from another OS thread.
//! - `timers_create_drop`: create and drop 100,000 sleeps without awaiting them.
//! - `timers_fire`: 10,000 sleeps of 0 to 10 ms, awaited to completion.
//! - `block_on`: `block_on` of a future that is ready at once, on an existing runtime.
//!
//! The `mt_*` groups run ripple's multi-thread runtime against tokio's, both with 2 workers, on
//! the code of tokio's `benches/rt_multi_threaded.rs` (module `mt` below), where the thread that
//! starts the work waits on a `std::sync::mpsc` channel and the workers do all of it:
//!
//! - `mt_spawn_many_local`: `block_on` spawns 10,000 tasks; the last one to run signals;
//! - `mt_spawn_many_remote` (tokio's `spawn_many_remote_idle`): 10,000 tasks spawned through
//!   the runtime object from outside, then awaited in `block_on`;
//! - `mt_yield_many`: 200 tasks spawned from outside, each yielding 1,000 times;
//! - `mt_ping_pong`: 1,000 tasks, each spawning a partner and trading a ping and a pong with it;
//! - `mt_chained_spawn`: a chain of 1,000 tasks, each spawning the next;
//! - `mt_cpu_scaling`: 64 tasks of pure computation on 1 and on 2 workers, for each runtime: the
//!   time on 1 worker over the time on 2 is its speed-up from a second core.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};

/// The two runtimes, behind the few operations the benchmarks need.
trait Rt {
    /// The benchmark's name for it.
    const NAME: &'static str;
    fn new() -> Self;
    fn block_on<F: Future>(&self, future: F) -> F::Output;
    /// A spawned task's handle (the runtime's own `JoinHandle`, unwrapped by the caller).
    type Join: Future<Output = Result<(), Self::JoinError>> + Send;
    /// Why a task has no output.
    type JoinError: std::fmt::Debug + Send;
    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) -> Self::Join;
    /// Spawns from outside the runtime, through the runtime object (`Runtime::spawn`).
    fn spawn_outside<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> Self::Join;
    fn yield_now() -> Pin<Box<dyn Future<Output = ()> + Send>>;
    fn sleep(duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// ripple's current-thread runtime (`WORKERS` 0), or its multi-thread one with `WORKERS`
/// workers.
struct Ripple<const WORKERS: usize = 0>(ripple::runtime::Runtime);
/// tokio's current-thread runtime (`WORKERS` 0), or its multi-thread one with `WORKERS`
/// workers.
struct Tokio<const WORKERS: usize = 0>(tokio::runtime::Runtime);

impl<const WORKERS: usize> Rt for Ripple<WORKERS> {
    const NAME: &'static str = if WORKERS == 1 {
        "ripple_1_worker"
    } else {
        "ripple"
    };
    fn new() -> Self {
        let builder = match WORKERS {
            0 => ripple::runtime::Builder::new_current_thread(),
            n => {
                let mut builder = ripple::runtime::Builder::new_multi_thread();
                builder.worker_threads(n);
                builder
            }
        };
        Ripple(builder.build().expect("ripple runtime"))
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    type Join = ripple::task::JoinHandle<()>;
    type JoinError = ripple::task::JoinError;
    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) -> Self::Join {
        ripple::spawn(future)
    }
    fn spawn_outside<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> Self::Join {
        self.0.spawn(future)
    }
    fn yield_now() -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(ripple::task::yield_now())
    }
    fn sleep(duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(ripple::time::sleep(duration))
    }
}

impl<const WORKERS: usize> Rt for Tokio<WORKERS> {
    const NAME: &'static str = if WORKERS == 1 {
        "tokio_1_worker"
    } else {
        "tokio"
    };
    fn new() -> Self {
        // The current-thread runtime with timers only, as these groups have always measured it
        // (it then parks on a futex, not in epoll); the multi-thread one with everything.
        let mut builder = match WORKERS {
            0 => {
                let mut builder = tokio::runtime::Builder::new_current_thread();
                builder.enable_time();
                builder
            }
            n => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(n).enable_all();
                builder
            }
        };
        Tokio(builder.build().expect("tokio runtime"))
    }
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    type Join = tokio::task::JoinHandle<()>;
    type JoinError = tokio::task::JoinError;
    fn spawn<F: Future<Output = ()> + Send + 'static>(future: F) -> Self::Join {
        tokio::spawn(future)
    }
    fn spawn_outside<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> Self::Join {
        self.0.spawn(future)
    }
    fn yield_now() -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::task::yield_now())
    }
    fn sleep(duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The `mt_*` shapes: tokio's `benches/rt_multi_threaded.rs`, line for line, with the oneshot
/// channel below in place of tokio's (the same channel for both runtimes). As there, the thread
/// outside the workers waits on a `std::sync::mpsc` channel, even inside `block_on`: the workers
/// do all the work.
mod mt {
    use super::*;
    use std::sync::mpsc;

    /// Tasks spawned, and pings sent, per iteration.
    const NUM_SPAWN: usize = 10_000;
    const NUM_PINGS: usize = 1_000;
    /// `yield_many`'s tasks and each one's yields.
    const TASKS: usize = 200;
    const NUM_YIELD: usize = 1_000;
    /// `chained_spawn`'s chain length.
    const ITER: usize = 1_000;

    /// tokio's `spawn_many_local`: `block_on` spawns 10,000 tasks; the last to run signals.
    pub(super) fn spawn_many_local<R: Rt>(group: &mut Group<'_>) {
        let rt = R::new();
        let (tx, rx) = mpsc::sync_channel(1000);
        let rem = Arc::new(AtomicUsize::new(0));
        group.bench_function(R::NAME, |b| {
            b.iter(|| {
                rem.store(NUM_SPAWN, Ordering::Relaxed);
                rt.block_on(async {
                    for _ in 0..NUM_SPAWN {
                        let tx = tx.clone();
                        let rem = rem.clone();
                        drop(R::spawn(async move {
                            if 1 == rem.fetch_sub(1, Ordering::Relaxed) {
                                tx.send(()).expect("receiver alive");
                            }
                        }));
                    }
                    rx.recv().expect("sender alive");
                })
            })
        });
    }

    /// tokio's `spawn_many_remote_idle`: 10,000 tasks spawned from outside through the runtime
    /// object, then awaited in `block_on`.
    pub(super) fn spawn_many_remote<R: Rt>(group: &mut Group<'_>) {
        let rt = R::new();
        let mut handles = Vec::with_capacity(NUM_SPAWN);
        group.bench_function(R::NAME, |b| {
            b.iter(|| {
                for _ in 0..NUM_SPAWN {
                    handles.push(rt.spawn_outside(async {}));
                }
                rt.block_on(async {
                    for handle in handles.drain(..) {
                        handle.await.expect("task completes");
                    }
                })
            })
        });
    }

    /// tokio's `yield_many`: 200 tasks spawned from outside, each yielding 1,000 times.
    pub(super) fn yield_many<R: Rt>(group: &mut Group<'_>) {
        let rt = R::new();
        let (tx, rx) = mpsc::sync_channel(TASKS);
        group.bench_function(R::NAME, |b| {
            b.iter(|| {
                for _ in 0..TASKS {
                    let tx = tx.clone();
                    drop(rt.spawn_outside(async move {
                        for _ in 0..NUM_YIELD {
                            R::yield_now().await;
                        }
                        tx.send(()).expect("receiver alive");
                    }));
                }
                for _ in 0..TASKS {
                    rx.recv().expect("sender alive");
                }
            })
        });
    }

    /// tokio's `ping_pong`: a task spawns 1,000 tasks, each of which spawns a partner and
    /// trades one ping and one pong with it.
    pub(super) fn ping_pong<R: Rt>(group: &mut Group<'_>) {
        let rt = R::new();
        let (done_tx, done_rx) = mpsc::sync_channel(1000);
        let rem = Arc::new(AtomicUsize::new(0));
        group.bench_function(R::NAME, |b| {
            b.iter(|| {
                let done_tx = done_tx.clone();
                let rem = rem.clone();
                rem.store(NUM_PINGS, Ordering::Relaxed);
                rt.block_on(async {
                    drop(R::spawn(async move {
                        for _ in 0..NUM_PINGS {
                            let rem = rem.clone();
                            let done_tx = done_tx.clone();
                            drop(R::spawn(async move {
                                let (tx1, rx1) = oneshot::<()>();
                                let (tx2, rx2) = oneshot::<()>();
                                drop(R::spawn(async move {
                                    rx1.await;
                                    tx2.send(());
                                }));
                                tx1.send(());
                                rx2.await;
                                if 1 == rem.fetch_sub(1, Ordering::Relaxed) {
                                    done_tx.send(()).expect("receiver alive");
                                }
                            }));
                        }
                    }));
                    done_rx.recv().expect("sender alive");
                })
            })
        });
    }

    /// tokio's `chained_spawn`: a chain of 1,000 tasks, each spawning the next; the last
    /// signals.
    pub(super) fn chained_spawn<R: Rt>(group: &mut Group<'_>) {
        /// Spawns the next link until `n` reaches zero, then signals `done`.
        fn iter<R: Rt>(done: mpsc::SyncSender<()>, n: usize) {
            if n == 0 {
                done.send(()).expect("receiver alive");
            } else {
                drop(R::spawn(async move { iter::<R>(done, n - 1) }));
            }
        }
        let rt = R::new();
        let (done_tx, done_rx) = mpsc::sync_channel(1000);
        group.bench_function(R::NAME, |b| {
            b.iter(|| {
                let done_tx = done_tx.clone();
                rt.block_on(async {
                    drop(R::spawn(async move { iter::<R>(done_tx, ITER) }));
                    done_rx.recv().expect("sender alive");
                })
            })
        });
    }
}

/// A criterion group measuring wall time.
type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The same CPU work (64 tasks, each a loop of arithmetic) on the runtime's workers.
fn cpu_scaling<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let handles: Vec<_> = (0..64u64)
                    .map(|seed| {
                        R::spawn(async move {
                            let mut x = seed;
                            for _ in 0..200_000 {
                                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                            }
                            std::hint::black_box(x);
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.expect("task completes");
                }
            })
        })
    });
}

/// Runs `ripple`'s and `tokio`'s benchmark in one criterion group of `samples` samples: ripple
/// first, or tokio first when `RUNTIME_BENCH_TOKIO_FIRST` is set (`benches/runtime_ratios.sh`
/// alternates, so that neither side always runs on a machine the other has just warmed or
/// tired).
fn both(
    c: &mut Criterion,
    name: &str,
    samples: usize,
    ripple: impl FnOnce(&mut Group<'_>),
    tokio: impl FnOnce(&mut Group<'_>),
) {
    let mut group = c.benchmark_group(name);
    group.sample_size(samples);
    if std::env::var_os("RUNTIME_BENCH_TOKIO_FIRST").is_some() {
        tokio(&mut group);
        ripple(&mut group);
    } else {
        ripple(&mut group);
        tokio(&mut group);
    }
    group.finish();
}

fn spawn_many<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let handles: Vec<_> = (0..10_000).map(|_| R::spawn(async {})).collect();
                for handle in handles {
                    handle.await.expect("task completes");
                }
            })
        })
    });
}

fn chained_spawn<R: Rt>(group: &mut Group<'_>) {
    /// Spawns the next link until `left` reaches zero, then signals `done`.
    fn link<R: Rt>(left: usize, done: Sender<()>) {
        if left == 0 {
            done.send(());
        } else {
            drop(R::spawn(async move { link::<R>(left - 1, done) }));
        }
    }
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let (done, finished) = oneshot();
                drop(R::spawn(async move { link::<R>(1_000, done) }));
                finished.await;
            })
        })
    });
}

fn yield_many<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let handles: Vec<_> = (0..200)
                    .map(|_| {
                        R::spawn(async {
                            for _ in 0..1_000 {
                                R::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.expect("task completes");
                }
            })
        })
    });
}

/// One ping: the channel for the pong, and the channel the next ping will come on.
struct Ping {
    /// Where to answer.
    pong: Sender<()>,
    /// Where the next ping arrives.
    next: Receiver<Ping>,
}

fn ping_pong<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let (mut pings, first) = oneshot::<Ping>();
                let ponger = R::spawn(async move {
                    let mut incoming = first;
                    for _ in 0..1_000 {
                        let Ping { pong, next } = incoming.await;
                        pong.send(());
                        incoming = next;
                    }
                });
                for _ in 0..1_000 {
                    let (next_tx, next_rx) = oneshot();
                    let (pong_tx, pong_rx) = oneshot();
                    pings.send(Ping {
                        pong: pong_tx,
                        next: next_rx,
                    });
                    pong_rx.await;
                    pings = next_tx;
                }
                ponger.await.expect("task completes");
            })
        })
    });
}

fn remote_wake<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let counter = Arc::new(RemoteCounter::default());
                let waker_thread = std::thread::spawn({
                    let counter = counter.clone();
                    move || counter.wake_times(10_000)
                });
                counter.wait_for(10_000).await;
                waker_thread.join().expect("waker thread");
            })
        })
    });
}

fn timers_create_drop<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                for i in 0..100_000u64 {
                    drop(std::hint::black_box(R::sleep(Duration::from_millis(
                        1 + i % 100,
                    ))));
                }
            })
        })
    });
}

fn timers_fire<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| {
            rt.block_on(async {
                let handles: Vec<_> = (0..10_000u64)
                    .map(|i| R::spawn(R::sleep(Duration::from_micros(i % 10_001))))
                    .collect();
                for handle in handles {
                    handle.await.expect("task completes");
                }
            })
        })
    });
}

fn block_on<R: Rt>(group: &mut Group<'_>) {
    let rt = R::new();
    group.bench_function(R::NAME, |b| {
        b.iter(|| rt.block_on(async { std::hint::black_box(1) }))
    });
}

fn benches(c: &mut Criterion) {
    both(
        c,
        "spawn_many",
        100,
        spawn_many::<Ripple>,
        spawn_many::<Tokio>,
    );
    both(
        c,
        "chained_spawn",
        100,
        chained_spawn::<Ripple>,
        chained_spawn::<Tokio>,
    );
    both(
        c,
        "yield_many",
        100,
        yield_many::<Ripple>,
        yield_many::<Tokio>,
    );
    both(c, "ping_pong", 100, ping_pong::<Ripple>, ping_pong::<Tokio>);
    both(
        c,
        "remote_wake",
        100,
        remote_wake::<Ripple>,
        remote_wake::<Tokio>,
    );
    both(
        c,
        "timers_create_drop",
        100,
        timers_create_drop::<Ripple>,
        timers_create_drop::<Tokio>,
    );
    both(
        c,
        "timers_fire",
        10,
        timers_fire::<Ripple>,
        timers_fire::<Tokio>,
    );
    both(c, "block_on", 100, block_on::<Ripple>, block_on::<Tokio>);
    both(
        c,
        "mt_spawn_many_local",
        100,
        mt::spawn_many_local::<Ripple<2>>,
        mt::spawn_many_local::<Tokio<2>>,
    );
    both(
        c,
        "mt_spawn_many_remote",
        100,
        mt::spawn_many_remote::<Ripple<2>>,
        mt::spawn_many_remote::<Tokio<2>>,
    );
    both(
        c,
        "mt_yield_many",
        100,
        mt::yield_many::<Ripple<2>>,
        mt::yield_many::<Tokio<2>>,
    );
    both(
        c,
        "mt_ping_pong",
        100,
        mt::ping_pong::<Ripple<2>>,
        mt::ping_pong::<Tokio<2>>,
    );
    both(
        c,
        "mt_chained_spawn",
        100,
        mt::chained_spawn::<Ripple<2>>,
        mt::chained_spawn::<Tokio<2>>,
    );
    both(
        c,
        "mt_cpu_scaling",
        10,
        |g| {
            cpu_scaling::<Ripple<1>>(g);
            cpu_scaling::<Ripple<2>>(g);
        },
        |g| {
            cpu_scaling::<Tokio<1>>(g);
            cpu_scaling::<Tokio<2>>(g);
        },
    );
}

criterion_group!(runtime_benches, benches);
criterion_main!(runtime_benches);

/// The sending half of a runtime-agnostic oneshot channel.
struct Sender<T>(Arc<Mutex<Slot<T>>>);
/// The receiving half: a future of the value.
struct Receiver<T>(Arc<Mutex<Slot<T>>>);
/// The shared state of one channel.
struct Slot<T> {
    /// The value, once sent.
    value: Option<T>,
    /// The receiver's waker, while it waits.
    waker: Option<Waker>,
}

/// A oneshot channel that works on any executor.
fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    fn send(self, value: T) {
        let waker = {
            let mut slot = self.0.lock().expect("slot lock");
            slot.value = Some(value);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.lock().expect("slot lock");
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A counter bumped from another thread, waking the task that waits on it each time.
#[derive(Default)]
struct RemoteCounter {
    /// Wakes so far.
    count: AtomicUsize,
    /// The waiting task.
    waker: Mutex<Option<Waker>>,
    /// The waiting task has registered its waker at least once.
    ready: AtomicBool,
}

impl RemoteCounter {
    /// From the other thread: bump and wake, `times` times.
    fn wake_times(&self, times: usize) {
        while !self.ready.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        for _ in 0..times {
            self.count.fetch_add(1, Ordering::Release);
            if let Some(waker) = self.waker.lock().expect("waker lock").as_ref() {
                waker.wake_by_ref();
            }
        }
    }

    /// From the task: wait until the count reaches `target`.
    async fn wait_for(&self, target: usize) {
        std::future::poll_fn(|cx| {
            *self.waker.lock().expect("waker lock") = Some(cx.waker().clone());
            self.ready.store(true, Ordering::Release);
            if self.count.load(Ordering::Acquire) >= target {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
