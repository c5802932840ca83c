//! `JoinSet`: results in the order tasks finish, panics and aborts as `JoinError`s, a drop that
//! aborts, detaching, shutdown, and many tasks on both runtime flavours.

mod util;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ripple::runtime::{Builder, Runtime};
use ripple::task::JoinSet;
use ripple::time::sleep;

use util::{drop_guard, no_hang, oneshot, yield_times};

/// Both flavours, for tests that must hold on each.
fn runtimes() -> io::Result<Vec<Runtime>> {
    Ok(vec![
        Builder::new_current_thread().build()?,
        Builder::new_multi_thread().worker_threads(2).build()?,
    ])
}

#[test]
fn results_come_back_in_the_order_the_tasks_finish() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let mut set = JoinSet::new();
            // Spawned slowest first: awaiting the handles in order would give 60, 20, 40.
            for ms in [60u64, 20, 40] {
                set.spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    ms
                });
            }
            assert_eq!(set.len(), 3);
            let mut order = Vec::new();
            while let Some(result) = no_hang(set.join_next()).await? {
                order.push(result.expect("no task fails"));
            }
            assert_eq!(order, [20, 40, 60]);
            assert!(set.is_empty());
            assert!(set.join_next().await.is_none(), "an empty set ends at once");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_panic_and_an_abort_are_join_errors_and_the_other_tasks_still_join() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async { panic!("planted panic") });
            set.spawn(async { 7 });
            let mut panics = 0;
            let mut outputs = Vec::new();
            while let Some(result) = no_hang(set.join_next()).await? {
                match result {
                    Ok(n) => outputs.push(n),
                    Err(err) => {
                        assert!(err.is_panic(), "{err:?}");
                        panics += 1;
                    }
                }
            }
            assert_eq!((panics, outputs), (1, vec![7]));

            // A task that never ends, aborted: joined as cancelled.
            set.spawn(std::future::pending::<i32>());
            set.abort_all();
            let result = no_hang(set.join_next()).await?.expect("one task");
            assert!(result.expect_err("aborted").is_cancelled());
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn dropping_the_set_aborts_its_tasks_and_their_destructors_run() -> io::Result<()> {
    for rt in runtimes()? {
        let (guard, dropped) = drop_guard();
        let (started_tx, started) = oneshot();
        rt.block_on(async {
            let mut set = JoinSet::new();
            set.spawn(async move {
                let _guard = guard;
                started_tx.send(());
                std::future::pending::<()>().await;
            });
            no_hang(started).await?;
            drop(set);
            // The runtime drops an aborted task's future when it next runs it (within 5 s, even
            // on a loaded machine).
            for _ in 0..5_000 {
                if dropped.load(Ordering::SeqCst) {
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
            io::Result::Ok(())
        })?;
        assert!(
            dropped.load(Ordering::SeqCst),
            "the task's future was dropped"
        );
    }
    Ok(())
}

#[test]
fn try_join_next_never_waits_and_detach_all_lets_the_tasks_run_on() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let mut set = JoinSet::new();
            let (go_tx, go) = oneshot::<()>();
            set.spawn(async move {
                go.await;
                1
            });
            assert!(set.try_join_next().is_none(), "the task waits for go");
            go_tx.send(());
            // On the multi-thread runtime the task runs on a worker: give it up to 5 s.
            let mut result = None;
            for _ in 0..5_000 {
                result = set.try_join_next();
                if result.is_some() {
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(result.expect("finished within 5 s").expect("no failure"), 1);

            let ran = Arc::new(AtomicBool::new(false));
            let (done_tx, done) = oneshot();
            set.spawn({
                let ran = ran.clone();
                async move {
                    sleep(Duration::from_millis(10)).await;
                    ran.store(true, Ordering::SeqCst);
                    done_tx.send(());
                    2
                }
            });
            set.detach_all();
            assert!(set.is_empty());
            drop(set);
            no_hang(done).await?;
            assert!(ran.load(Ordering::SeqCst), "a detached task runs on");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn shutdown_aborts_everything_and_waits_for_it() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let mut set = JoinSet::new();
            let drops = Arc::new(AtomicUsize::new(0));
            for _ in 0..10 {
                // Moved in, so dropped with the future even if it never ran.
                let count = CountDrop(drops.clone());
                set.spawn(async move {
                    let _count = count;
                    std::future::pending::<()>().await;
                });
            }
            no_hang(set.shutdown()).await?;
            assert!(set.is_empty());
            assert_eq!(drops.load(Ordering::SeqCst), 10, "every future was dropped");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn ten_thousand_tasks_are_all_joined_once() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let mut set = JoinSet::new();
            for i in 0..10_000u64 {
                set.spawn(async move {
                    if i % 3 == 0 {
                        yield_times(1).await;
                    }
                    i
                });
            }
            let mut seen = vec![false; 10_000];
            while let Some(result) = no_hang(set.join_next()).await? {
                let i = result.expect("no failure") as usize;
                assert!(!seen[i], "task {i} joined twice");
                seen[i] = true;
            }
            assert!(seen.iter().all(|&s| s), "every task joined");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn spawn_on_works_from_a_thread_outside_the_runtime() -> io::Result<()> {
    let rt = Builder::new_multi_thread().worker_threads(2).build()?;
    let handle = rt.handle().clone();
    let mut set = std::thread::spawn(move || {
        let mut set = JoinSet::new();
        for i in 0..4 {
            set.spawn_on(async move { i * 10 }, &handle);
        }
        set
    })
    .join()
    .expect("the spawning thread");
    let mut sum = 0;
    rt.block_on(async {
        while let Some(result) = no_hang(set.join_next()).await? {
            sum += result.expect("no failure");
        }
        io::Result::Ok(())
    })?;
    assert_eq!(sum, 60);
    Ok(())
}

/// Counts its drops into a shared counter.
struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
