//! The multi-thread runtime: tasks run on worker threads, idle workers steal, wakes from any
//! thread arrive, and faults (a panicking task, a runtime dropped with tasks alive, a misused
//! `block_on`) end in clear errors, never a hang.

mod util;

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use ripple::net::{TcpListener, TcpStream};
use ripple::runtime::{Builder, Handle, Runtime};

/// A multi-thread runtime with `n` workers.
fn runtime(n: usize) -> io::Result<Runtime> {
    Builder::new_multi_thread().worker_threads(n).build()
}

#[test]
fn tasks_run_on_the_worker_threads_and_block_on_runs_on_the_caller() -> io::Result<()> {
    let rt = runtime(2)?;
    let caller = std::thread::current().id();
    let (threads, on_caller) = rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                ripple::spawn(async {
                    // Keep each worker busy a moment, so that both get some of the tasks.
                    std::thread::sleep(Duration::from_millis(1));
                    std::thread::current().id()
                })
            })
            .collect();
        let mut threads = HashSet::new();
        for task in tasks {
            threads.insert(task.await.expect("task"));
        }
        (threads, std::thread::current().id() == caller)
    });
    assert!(on_caller, "the block_on future runs on the calling thread");
    assert!(
        !threads.contains(&caller),
        "tasks run on workers, not the caller"
    );
    assert_eq!(threads.len(), 2, "both workers ran tasks: {threads:?}");
    Ok(())
}

#[test]
fn a_task_spawned_on_a_busy_worker_is_stolen_by_an_idle_one() -> io::Result<()> {
    let rt = runtime(2)?;
    let stolen = rt.block_on(async {
        ripple::spawn(async {
            let busy = std::thread::current().id();
            let ran_on: Arc<Mutex<Option<ThreadId>>> = Arc::default();
            let record = ran_on.clone();
            let _task = ripple::spawn(async move {
                *record.lock().unwrap() = Some(std::thread::current().id());
            });
            // Hog this worker without yielding: only the other worker can run the task.
            let deadline = Instant::now() + util::LIMIT;
            while ran_on.lock().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the spawned task was never stolen"
                );
                std::thread::yield_now();
            }
            let other = ran_on.lock().unwrap().expect("ran");
            other != busy
        })
        .await
        .expect("task")
    });
    assert!(stolen, "the task ran on the idle worker");
    // A worker publishes its counts when it next sleeps: wait for that.
    let deadline = Instant::now() + util::LIMIT;
    loop {
        let steals: u64 = (0..2)
            .filter_map(|i| rt.worker_metrics(i))
            .map(|m| m.steals)
            .sum();
        if steals >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the steal was never counted");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(rt.worker_metrics(2).is_none());
    Ok(())
}

#[test]
fn every_wake_from_eight_threads_polls_its_task_and_none_is_lost() -> io::Result<()> {
    let rt = runtime(2)?;
    let handle = rt.handle();
    const THREADS: usize = 8;
    const TASKS: usize = 1_000;
    let (senders, done): (Vec<_>, Vec<_>) = (0..THREADS * TASKS)
        .map(|_| {
            let (tx, rx) = util::oneshot::<usize>();
            let task = handle.spawn(async move { rx.await.expect("sent") });
            (tx, task)
        })
        .unzip();
    // Wake them all from eight threads at once, while the workers run and steal.
    let mut senders = senders.into_iter();
    let wakers: Vec<_> = (0..THREADS)
        .map(|t| {
            let batch: Vec<_> = senders.by_ref().take(TASKS).collect();
            std::thread::spawn(move || {
                for (i, tx) in batch.into_iter().enumerate() {
                    tx.send(t * TASKS + i);
                }
            })
        })
        .collect();
    for waker in wakers {
        waker.join().expect("waking thread");
    }
    let sum: usize = rt.block_on(async {
        let mut sum = 0;
        for task in done {
            sum += util::no_hang(task).await.expect("no hang").expect("task");
        }
        sum
    });
    let n = THREADS * TASKS;
    assert_eq!(sum, n * (n - 1) / 2, "every task got its value");
    Ok(())
}

#[test]
fn echo_over_tcp_works_across_workers() -> io::Result<()> {
    let rt = runtime(2)?;
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = ripple::spawn(async move {
            for _ in 0..8 {
                let (mut stream, _) = listener.accept().await?;
                ripple::spawn(async move {
                    let mut buf = [0; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
            io::Result::Ok(())
        });
        let clients: Vec<_> = (0..8u8)
            .map(|i| {
                ripple::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    for round in 0..100u8 {
                        let message = [i, round, 7, 9];
                        stream.write_all(&message).await?;
                        let mut back = [0; 4];
                        stream.read_exact(&mut back).await?;
                        assert_eq!(back, message);
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for client in clients {
            util::no_hang(client).await???;
        }
        util::no_hang(server).await???;
        io::Result::Ok(())
    })
}

#[test]
fn a_sleep_on_a_worker_wakes_while_another_worker_waits_in_epoll() -> io::Result<()> {
    let rt = runtime(2)?;
    rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                ripple::spawn(async move {
                    let start = Instant::now();
                    ripple::time::sleep(Duration::from_millis(20 + i * 10)).await;
                    start.elapsed()
                })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let waited = util::no_hang(task).await?.expect("task");
            assert!(waited >= Duration::from_millis(20 + i as u64 * 10));
            assert!(
                waited < Duration::from_secs(2),
                "a timer was late: {waited:?}"
            );
        }
        io::Result::Ok(())
    })
}

#[test]
fn a_panicking_task_does_not_kill_its_worker() -> io::Result<()> {
    let rt = runtime(2)?;
    rt.block_on(async {
        for _ in 0..4 {
            let err = ripple::spawn(async { panic!("boom") })
                .await
                .expect_err("the panic comes back");
            assert!(err.is_panic());
        }
        let answers: Vec<_> = (0..16).map(|i| ripple::spawn(async move { i })).collect();
        let mut sum = 0;
        for answer in answers {
            sum += answer.await.expect("the workers still run tasks");
        }
        assert_eq!(sum, 120);
    });
    Ok(())
}

#[test]
fn dropping_the_runtime_drops_every_future_and_joins_the_workers() -> io::Result<()> {
    let rt = runtime(2)?;
    let (guards, flags): (Vec<_>, Vec<_>) = (0..20).map(|_| util::drop_guard()).unzip();
    let senders: Vec<_> = rt.block_on(async {
        guards
            .into_iter()
            .map(|guard| {
                let (tx, rx) = util::oneshot::<()>();
                ripple::spawn(async move {
                    let _guard = guard;
                    // Parked forever: nothing sends.
                    rx.await;
                });
                tx
            })
            .collect()
    });
    // One task parked on a socket too.
    let (socket_guard, socket_dropped) = util::drop_guard();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        ripple::spawn(async move {
            let _guard = socket_guard;
            let _ = listener.accept().await;
        });
        util::yield_times(3).await;
        io::Result::Ok(())
    })?;
    let start = Instant::now();
    drop(rt);
    assert!(start.elapsed() < util::LIMIT);
    assert!(
        flags.iter().all(|f| f.load(Ordering::SeqCst)),
        "every future was dropped"
    );
    assert!(socket_dropped.load(Ordering::SeqCst));
    drop(senders);
    Ok(())
}

#[test]
fn block_on_inside_a_worker_panics_with_advice() -> io::Result<()> {
    let rt = runtime(1)?;
    let err = rt
        .block_on(async {
            ripple::spawn(async {
                let inner = Runtime::new().expect("runtime");
                inner.block_on(async {});
            })
            .await
        })
        .expect_err("block_on in a worker panics");
    let message = util::panic_message(&*err.into_panic());
    assert!(
        message.contains("block_on was called from inside"),
        "{message}"
    );
    Ok(())
}

#[test]
fn zero_workers_or_a_bad_environment_variable_is_an_error_from_build() {
    let err = Builder::new_multi_thread()
        .worker_threads(0)
        .build()
        .expect_err("zero workers");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    util::in_child_process(
        "zero_workers_or_a_bad_environment_variable_is_an_error_from_build",
        None,
        || {
            // Only in the child: the variable is process-wide.
            std::env::set_var("RIPPLE_WORKER_THREADS", "many");
            let err = Builder::new_multi_thread().build().expect_err("unparsable");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("RIPPLE_WORKER_THREADS"), "{err}");
            std::env::set_var("RIPPLE_WORKER_THREADS", "3");
            let rt = Builder::new_multi_thread().build()?;
            assert!(rt.worker_metrics(2).is_some() && rt.worker_metrics(3).is_none());
            // An explicit count wins over the variable.
            let rt = Builder::new_multi_thread().worker_threads(1).build()?;
            assert!(rt.worker_metrics(1).is_none());
            Ok(())
        },
    )
    .expect("child");
}

#[test]
fn spawn_from_another_thread_through_a_handle_runs_on_the_workers() -> io::Result<()> {
    let rt = runtime(2)?;
    let handle = rt.handle();
    let task = std::thread::spawn(move || handle.spawn(async { 6 * 7 }))
        .join()
        .expect("thread");
    assert_eq!(rt.block_on(task).expect("task"), 42);
    assert_eq!(
        rt.block_on(async { Handle::current().spawn(async { 1 }).await })
            .expect("task"),
        1
    );
    Ok(())
}

#[test]
fn an_idle_runtime_uses_no_cpu() -> io::Result<()> {
    let rt = runtime(2)?;
    rt.block_on(async { ripple::spawn(async {}).await })
        .expect("task");
    // Let the workers finish their last park (and publish what they did before it): wait until
    // the counts stop moving.
    let deadline = Instant::now() + util::LIMIT;
    let mut last = rt.metrics();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = rt.metrics();
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the counts never settled");
        last = now;
    }
    let polls_before = rt.metrics().polls;
    let parks_before: u64 = (0..2)
        .filter_map(|i| rt.worker_metrics(i))
        .map(|m| m.parks)
        .sum();
    std::thread::sleep(Duration::from_millis(200));
    let parks_after: u64 = (0..2)
        .filter_map(|i| rt.worker_metrics(i))
        .map(|m| m.parks)
        .sum();
    assert_eq!(rt.metrics().polls, polls_before, "nothing ran");
    assert!(
        parks_after - parks_before <= 2,
        "idle workers sleep instead of spinning: {parks_before} -> {parks_after} parks"
    );
    Ok(())
}

#[test]
fn counters_sum_the_workers_polls_and_wakes() -> io::Result<()> {
    let rt = runtime(2)?;
    let done = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let done = done.clone();
                ripple::spawn(async move {
                    ripple::task::yield_now().await;
                    done.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
    // Each worker publishes at its next park; give them a moment to get there.
    let deadline = Instant::now() + util::LIMIT;
    while rt.metrics().polls < 20 {
        assert!(Instant::now() < deadline, "{:?}", rt.metrics());
        std::thread::sleep(Duration::from_millis(5));
    }
    let m = rt.metrics();
    assert_eq!(m.tasks_spawned, 10);
    assert!(m.polls >= 20, "two polls per task: {m:?}");
    assert_eq!(done.load(Ordering::SeqCst), 10);
    Ok(())
}

#[test]
fn a_runtime_dropped_on_its_own_worker_panics_instead_of_waiting_for_itself() -> io::Result<()> {
    let rt = runtime(1)?;
    let handle = rt.handle();
    let cell = Arc::new(Mutex::new(Some(rt)));
    let inside = cell.clone();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let task = handle.spawn(async move {
        let rt = inside.lock().unwrap().take();
        flag.store(true, Ordering::SeqCst);
        drop(rt);
    });
    // Wait for the outcome from a plain thread (the runtime is inside the task).
    let deadline = Instant::now() + util::LIMIT;
    while !(finished.load(Ordering::SeqCst) && task.is_finished()) {
        assert!(Instant::now() < deadline, "the drop hung");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = Runtime::new()?
        .block_on(task)
        .expect_err("the drop panicked");
    let message = util::panic_message(&*err.into_panic());
    assert!(
        message.contains("own worker or blocking threads"),
        "{message}"
    );
    Ok(())
}

#[test]
fn yield_now_on_a_worker_lets_a_queued_task_run_first() -> io::Result<()> {
    let rt = runtime(1)?;
    rt.block_on(async {
        ripple::spawn(async {
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let other = ripple::spawn(async move { flag.store(true, Ordering::SeqCst) });
            // The other task is queued behind this one: one yield lets it run.
            ripple::task::yield_now().await;
            assert!(
                ran.load(Ordering::SeqCst),
                "the yield went to the back of the queue"
            );
            other.await.expect("task");
        })
        .await
        .expect("task");
    });
    Ok(())
}

#[test]
fn shutdown_timeout_returns_while_a_task_blocks_its_worker() -> io::Result<()> {
    let rt = runtime(1)?;
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let _hog = rt.spawn(async move {
        flag.store(true, Ordering::SeqCst);
        // A task that blocks its worker's thread (what spawn_blocking is for).
        std::thread::sleep(Duration::from_secs(2));
    });
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(50));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the shutdown waited {took:?}"
    );
    Ok(())
}

#[test]
fn a_queued_task_dropped_at_shutdown_finds_the_runtime_in_its_destructor() -> io::Result<()> {
    /// Records whether a runtime was current when it was dropped.
    struct SeesRuntime(Arc<Mutex<Option<bool>>>);
    impl Drop for SeesRuntime {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(Handle::try_current().is_some());
        }
    }
    let rt = runtime(1)?;
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    // Keep the only worker busy, so that the next task stays in the inject queue.
    let _hog = rt.spawn(async move {
        flag.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
    });
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let seen = Arc::new(Mutex::new(None));
    let guard = SeesRuntime(seen.clone());
    let _queued = rt.handle().spawn(async move {
        let _guard = guard;
    });
    drop(rt);
    assert_eq!(
        *seen.lock().unwrap(),
        Some(true),
        "dropped, with the runtime current"
    );
    Ok(())
}
