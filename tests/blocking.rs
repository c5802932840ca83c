//! `spawn_blocking`: blocking work on a pool of its own threads, on both runtime flavours, with
//! the runtime current inside, panics and aborts reported through the `JoinHandle`, and a
//! shutdown that a blocking task cannot hang.

mod util;

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ripple::reactor::Async;
use ripple::runtime::{Builder, Handle, Runtime};
use ripple::task::spawn_blocking;

/// Both flavours, for tests that must hold on each.
fn runtimes() -> io::Result<Vec<Runtime>> {
    Ok(vec![
        Builder::new_current_thread().build()?,
        Builder::new_multi_thread().worker_threads(2).build()?,
    ])
}

#[test]
fn blocking_work_runs_on_another_thread_with_the_runtime_current() -> io::Result<()> {
    for rt in runtimes()? {
        let caller = std::thread::current().id();
        rt.block_on(async move {
            let out = spawn_blocking(move || {
                assert_ne!(std::thread::current().id(), caller);
                // The runtime is current here: handles, spawns and I/O objects work.
                let handle = Handle::current();
                let task = handle.spawn(async { 5 });
                let (a, _b) = UnixStream::pair()?;
                a.set_nonblocking(true)?;
                let _registered = Async::new(a)?;
                io::Result::Ok(task)
            })
            .await
            .expect("blocking task")?;
            assert_eq!(out.await.expect("spawned from the blocking thread"), 5);
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_blocking_call_no_longer_stalls_the_other_tasks() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let (release, wait) = mpsc::channel::<()>();
            let blocked = spawn_blocking(move || wait.recv_timeout(util::LIMIT).is_ok());
            // A sleep on the runtime finishes while the blocking call still waits.
            ripple::time::sleep(Duration::from_millis(10)).await;
            assert!(!blocked.is_finished(), "the blocking call is still waiting");
            release.send(()).expect("the blocking task waits");
            assert!(blocked.await.expect("blocking task"));
        });
    }
    Ok(())
}

#[test]
fn a_panic_in_blocking_work_is_a_join_error() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let err = spawn_blocking(|| panic!("blocking boom"))
                .await
                .expect_err("the panic comes back");
            assert!(err.is_panic());
            assert!(err.to_string().contains("blocking boom"), "{err}");
        });
    }
    Ok(())
}

#[test]
fn abort_cancels_blocking_work_that_has_not_started() -> io::Result<()> {
    let rt = Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()?;
    rt.block_on(async {
        let (release, wait) = mpsc::channel::<()>();
        let first = spawn_blocking(move || wait.recv_timeout(util::LIMIT).is_ok());
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        // The only thread is busy: this one waits in the queue, and is aborted there.
        let second = spawn_blocking(move || flag.store(true, Ordering::SeqCst));
        second.abort();
        release.send(()).expect("the first task waits");
        assert!(first.await.expect("first"));
        let err = second.await.expect_err("aborted");
        assert!(err.is_cancelled());
        assert!(!ran.load(Ordering::SeqCst), "the aborted closure never ran");
    });
    Ok(())
}

#[test]
fn idle_blocking_threads_exit_after_the_keep_alive() -> io::Result<()> {
    let name = "blk-keepalive";
    let rt = Builder::new_current_thread()
        .thread_name(name)
        .thread_keep_alive(Duration::from_millis(30))
        .build()?;
    rt.block_on(async { spawn_blocking(|| ()).await })
        .expect("task");
    let deadline = Instant::now() + util::LIMIT;
    while threads_named(name)? > 0 {
        assert!(Instant::now() < deadline, "the idle thread never exited");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A new thread starts on demand.
    rt.block_on(async { spawn_blocking(|| 3).await })
        .expect("task");
    Ok(())
}

/// How many threads of this process are named `name` (`/proc/self/task/*/comm`).
fn threads_named(name: &str) -> io::Result<usize> {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        n += usize::from(comm.trim_end() == name);
    }
    Ok(n)
}

#[test]
fn shutdown_timeout_returns_when_a_blocking_task_never_ends() -> io::Result<()> {
    let rt = Builder::new_multi_thread().worker_threads(1).build()?;
    let (release, wait) = mpsc::channel::<()>();
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    let _task = rt.spawn_blocking(move || {
        flag.store(true, Ordering::SeqCst);
        let _ = wait.recv();
    });
    while !started.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let start = Instant::now();
    assert!(
        !rt.shutdown_timeout(Duration::from_millis(50)),
        "it did not finish"
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(50) && took < util::LIMIT,
        "{took:?}"
    );
    drop(release);
    Ok(())
}

#[test]
fn dropping_a_runtime_waits_ten_seconds_at_most_for_blocking_work() -> io::Result<()> {
    let rt = Runtime::new()?;
    let (release, wait) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let _task = rt.spawn_blocking(move || {
        started_tx.send(()).expect("the test waits");
        let _ = wait.recv();
    });
    started.recv().expect("the blocking task started");
    let start = Instant::now();
    drop(rt);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(15),
        "the drop waited {took:?}"
    );
    drop(release);
    Ok(())
}

#[test]
fn spawn_blocking_outside_a_runtime_panics_with_advice() {
    let panic = std::panic::catch_unwind(|| spawn_blocking(|| ())).expect_err("no runtime");
    let message = util::panic_message(&*panic);
    assert!(message.contains("outside a ripple runtime"), "{message}");
}

#[test]
fn a_runtime_dropped_on_its_own_blocking_thread_panics() -> io::Result<()> {
    let rt = Runtime::new()?;
    let handle = rt.handle();
    let task = handle.spawn_blocking(move || drop(rt));
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

/// An output whose destructor panics.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("the output's destructor panics");
    }
}

#[test]
fn a_blocking_output_that_panics_when_dropped_does_not_cost_the_pool_its_thread() -> io::Result<()>
{
    let rt = Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()?;
    rt.block_on(async {
        // Nobody awaits the output: it is dropped (and panics) on the pool's thread.
        drop(spawn_blocking(|| PanicOnDrop));
        let next = spawn_blocking(|| 3);
        assert_eq!(util::no_hang(next).await?.expect("task"), 3);
        io::Result::Ok(())
    })
}

#[test]
fn two_spawns_in_a_row_do_not_count_on_the_same_idle_thread() -> io::Result<()> {
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        // One thread exists and is idle.
        spawn_blocking(|| ()).await.expect("warm-up");
        // A waits for B: if both were handed to the one idle thread, A would wait forever.
        let (tx, rx) = mpsc::channel::<()>();
        let a = spawn_blocking(move || rx.recv_timeout(util::LIMIT).is_ok());
        let b = spawn_blocking(move || tx.send(()).is_ok());
        assert!(util::no_hang(b).await?.expect("b"));
        assert!(util::no_hang(a).await?.expect("a"), "A got B's message");
        io::Result::Ok(())
    })
}
