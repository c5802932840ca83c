//! The executor: `block_on`, `spawn`, `JoinHandle`, `yield_now`, wakers and fairness.

mod util;

use std::future::{pending, poll_fn, Future};
use std::io;
use std::panic::catch_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ripple::runtime::{Builder, Runtime};
use ripple::task::yield_now;
use ripple::time::sleep;

use util::{drop_guard, no_hang, oneshot, panic_message, yield_times, LIMIT};

#[test]
fn block_on_returns_the_output_of_its_future() {
    assert_eq!(ripple::block_on(async { 6 * 7 }), 42);
    let rt = Runtime::new().expect("runtime");
    assert_eq!(rt.block_on(async { "first" }), "first");
    assert_eq!(rt.block_on(async { "second" }), "second");
}

#[ripple::test]
async fn spawned_tasks_deliver_their_output_through_the_join_handle() {
    let handles: Vec<_> = (0..10u64)
        .map(|i| ripple::spawn(async move { i * i }))
        .collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("the task completes"));
    }
    assert_eq!(outputs, (0..10u64).map(|i| i * i).collect::<Vec<_>>());
}

#[ripple::test]
async fn a_panicking_task_yields_a_join_error_and_the_runtime_keeps_working() {
    let err = ripple::spawn(async {
        yield_now().await;
        panic!("boom in a task");
    })
    .await
    .expect_err("a panicking task has no output");
    assert!(err.is_panic());
    assert!(!err.is_cancelled());
    assert_eq!(panic_message(&*err.into_panic()), "boom in a task");

    // The runtime survives: the caller goes on, and new tasks run.
    let after = ripple::spawn(async {
        yield_now().await;
        "still running"
    });
    assert_eq!(
        after.await.expect("a later task completes"),
        "still running"
    );
}

#[ripple::test]
async fn aborting_a_pending_task_cancels_it_and_drops_its_future() {
    let (guard, dropped) = drop_guard();
    let handle = ripple::spawn(async move {
        let _guard = guard;
        pending::<()>().await;
    });
    // Let it start and park.
    yield_times(3).await;
    assert!(!dropped.load(Ordering::SeqCst));
    assert!(!handle.is_finished());

    handle.abort();
    let err = no_hang(handle).await.expect("no hang").unwrap_err();
    assert!(err.is_cancelled());
    assert!(!err.is_panic());
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
}

#[ripple::test]
async fn aborting_a_task_before_it_first_runs_drops_it_unpolled() {
    let (guard, dropped) = drop_guard();
    let polled = Arc::new(AtomicBool::new(false));
    let polled_in_task = polled.clone();
    let handle = ripple::spawn(async move {
        let _guard = guard;
        polled_in_task.store(true, Ordering::SeqCst);
    });
    handle.abort();
    let err = no_hang(handle).await.expect("no hang").unwrap_err();
    assert!(err.is_cancelled());
    assert!(dropped.load(Ordering::SeqCst));
    assert!(
        !polled.load(Ordering::SeqCst),
        "an aborted task is never polled"
    );
}

#[ripple::test]
async fn aborting_a_finished_task_keeps_its_output() {
    let handle = ripple::spawn(async { 7 });
    yield_times(3).await;
    assert!(handle.is_finished());
    handle.abort();
    assert_eq!(handle.await.expect("output kept"), 7);
}

#[ripple::test]
async fn is_finished_turns_true_only_once_the_task_completes() {
    let (tx, rx) = oneshot::<u32>();
    let handle = ripple::spawn(async move { rx.await.expect("sent") + 1 });
    yield_times(3).await;
    assert!(!handle.is_finished(), "the task still waits for its value");

    tx.send(41);
    for _ in 0..100 {
        if handle.is_finished() {
            break;
        }
        yield_now().await;
    }
    assert!(handle.is_finished());
    assert_eq!(handle.await.expect("output"), 42);
}

#[ripple::test]
async fn dropping_a_join_handle_detaches_the_task_which_still_runs_to_completion() {
    let (tx, rx) = oneshot();
    let (guard, dropped) = drop_guard();
    drop(ripple::spawn(async move {
        let _guard = guard;
        sleep(Duration::from_millis(10)).await;
        tx.send("done");
    }));
    assert_eq!(no_hang(rx).await.expect("no hang"), Some("done"));
    yield_times(3).await;
    assert!(
        dropped.load(Ordering::SeqCst),
        "the detached task completed"
    );
}

#[ripple::test]
async fn yield_now_lets_other_runnable_tasks_run_first() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let task = |name: &'static str| {
        let log = log.clone();
        ripple::spawn(async move {
            for step in 0..3 {
                log.lock().unwrap().push(format!("{name}{step}"));
                yield_now().await;
            }
        })
    };
    let a = task("a");
    let b = task("b");
    a.await.expect("a");
    b.await.expect("b");
    assert_eq!(
        *log.lock().unwrap(),
        ["a0", "b0", "a1", "b1", "a2", "b2"],
        "each yield puts the task behind the other one"
    );
}

#[test]
fn spawn_outside_a_runtime_panics_with_a_clear_message() {
    let payload =
        catch_unwind(|| ripple::spawn(async {})).expect_err("spawn outside a runtime panics");
    let message = panic_message(&*payload);
    assert!(
        message.contains("outside a ripple runtime"),
        "unexpected panic message: {message}"
    );
}

#[ripple::test]
async fn block_on_inside_a_runtime_panics_and_the_outer_runtime_survives() {
    let payload = catch_unwind(|| ripple::block_on(async { 1 }))
        .expect_err("block_on inside block_on panics");
    let message = panic_message(&*payload);
    assert!(
        message.contains("block_on"),
        "unexpected message: {message}"
    );

    // The same from inside a spawned task.
    let in_task = ripple::spawn(async {
        let payload = catch_unwind(|| ripple::block_on(async { 1 })).expect_err("panics");
        panic_message(&*payload)
    });
    let message = in_task.await.expect("the task itself does not panic");
    assert!(
        message.contains("block_on"),
        "unexpected message: {message}"
    );

    // The outer runtime is still current and working.
    let after = ripple::spawn(async {
        sleep(Duration::from_millis(1)).await;
        5
    });
    assert_eq!(no_hang(after).await.expect("no hang").expect("output"), 5);
}

#[ripple::test]
async fn a_task_is_woken_from_another_os_thread() {
    let (tx, rx) = oneshot();
    let task = ripple::spawn(rx);
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        tx.send(String::from("from a thread"));
    });
    let got = no_hang(task).await.expect("no hang").expect("no panic");
    thread.join().expect("thread");
    assert_eq!(got.as_deref(), Some("from a thread"));
}

#[test]
fn handle_spawn_from_another_thread_wakes_a_runtime_parked_in_epoll() -> io::Result<()> {
    let rt = Runtime::new()?;
    let handle = rt.handle();
    let (tx, rx) = oneshot();
    let thread = thread::spawn(move || {
        // By now the runtime has nothing to do and sleeps in epoll.
        thread::sleep(Duration::from_millis(30));
        handle.spawn(async move {
            tx.send(thread::current().id());
            99
        })
    });
    let runner = rt.block_on(no_hang(rx))?.expect("sent");
    assert_eq!(
        runner,
        thread::current().id(),
        "tasks run on the runtime's thread"
    );
    let join = thread.join().expect("thread");
    assert_eq!(rt.block_on(no_hang(join))?.expect("output"), 99);
    Ok(())
}

/// Wakes itself twice per poll for `self_wakes` polls, then parks its waker in `parked` twice
/// (ready on the poll after the second park).
struct WakeTwice {
    /// Polls left during which the future wakes itself.
    self_wakes: usize,
    /// Parks left before completing.
    parks: usize,
    /// Where a parked poll leaves its waker for the test.
    parked: Arc<Mutex<Option<Waker>>>,
}

// Waking a clone by value is the point: it must count like `wake_by_ref`.
#[allow(clippy::waker_clone_wake)]
impl Future for WakeTwice {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.self_wakes > 0 {
            self.self_wakes -= 1;
            cx.waker().wake_by_ref();
            cx.waker().clone().wake();
            return Poll::Pending;
        }
        if self.parks > 0 {
            self.parks -= 1;
            *self.parked.lock().unwrap() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(())
    }
}

#[ripple::test]
#[allow(clippy::waker_clone_wake)]
async fn waking_an_already_scheduled_task_does_not_queue_it_twice() {
    let parked = Arc::new(Mutex::new(None));
    let (future, polls) = util::count_polls(WakeTwice {
        self_wakes: 5,
        parks: 2,
        parked: parked.clone(),
    });
    let handle = ripple::spawn(future);
    yield_times(20).await;
    // 5 self-waking polls, each queueing the task once, then the poll that parks. A task
    // queued twice per poll would have been polled many more times.
    assert_eq!(polls.load(Ordering::SeqCst), 6);

    // Three wakes while it is idle: one more poll, not three.
    let waker = parked.lock().unwrap().take().expect("parked");
    waker.wake_by_ref();
    waker.wake_by_ref();
    waker.clone().wake();
    yield_times(20).await;
    assert_eq!(polls.load(Ordering::SeqCst), 7);
    assert!(!handle.is_finished());

    parked.lock().unwrap().take().expect("parked again").wake();
    no_hang(handle).await.expect("no hang").expect("completes");
    assert_eq!(polls.load(Ordering::SeqCst), 8);
}

/// Collects the wakers a task sees in its first two polls.
struct CaptureWakers {
    /// The waker of the first poll, and a clone of it.
    first: Option<(Waker, Waker)>,
}

impl Future for CaptureWakers {
    /// (first poll's waker, its clone, second poll's waker)
    type Output = (Waker, Waker, Waker);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.first.take() {
            None => {
                self.first = Some((cx.waker().clone(), cx.waker().clone()));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some((a, b)) => Poll::Ready((a, b, cx.waker().clone())),
        }
    }
}

#[ripple::test]
async fn wakers_of_one_task_will_wake_each_other_and_not_another_tasks() {
    let (a, b, second_poll) = ripple::spawn(CaptureWakers { first: None })
        .await
        .expect("task");
    assert!(a.will_wake(&b), "two clones of one waker");
    assert!(
        a.will_wake(&second_poll),
        "wakers from two polls of the same task"
    );

    let (other, _, _) = ripple::spawn(CaptureWakers { first: None })
        .await
        .expect("task");
    assert!(!a.will_wake(&other), "another task's waker");
}

#[test]
fn a_task_spinning_on_yield_now_does_not_starve_timers_or_sockets() -> io::Result<()> {
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        // A std peer that writes from a plain thread a little later.
        let (mut client, server) = util::pair_with_std_peer().await?;
        let writer = thread::spawn(move || {
            use std::io::Write;
            thread::sleep(Duration::from_millis(20));
            (&server).write_all(b"ping")?;
            io::Result::Ok(server)
        });

        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicUsize::new(0));
        let spinner = ripple::spawn({
            let (stop, spins) = (stop.clone(), spins.clone());
            async move {
                // Give up after LIMIT so a starving runtime fails instead of hanging; timers
                // cannot be trusted to end the test if they are the thing being starved.
                let start = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    if start.elapsed() > LIMIT {
                        return false;
                    }
                    spins.fetch_add(1, Ordering::Relaxed);
                    yield_now().await;
                }
                true
            }
        });
        let timer = ripple::spawn(async {
            sleep(Duration::from_millis(10)).await;
        });
        let reader = ripple::spawn(async move {
            let mut buf = [0; 4];
            client.read_exact(&mut buf).await?;
            io::Result::Ok(buf)
        });

        timer.await?;
        let got = reader.await??;
        let spins_meanwhile = spins.load(Ordering::Relaxed);
        stop.store(true, Ordering::SeqCst);
        assert!(
            spinner.await?,
            "the timer and the socket only completed once the spinner gave up"
        );
        assert_eq!(&got, b"ping");
        assert!(spins_meanwhile > 0, "the spinner was running all along");
        writer.join().expect("writer")?;
        Ok(())
    })
}

#[ripple::test]
async fn a_block_on_future_that_spins_does_not_starve_tasks_or_timers() {
    let done = Arc::new(AtomicBool::new(false));
    let task_done = done.clone();
    drop(ripple::spawn(async move {
        sleep(Duration::from_millis(5)).await;
        task_done.store(true, Ordering::SeqCst);
    }));
    let start = Instant::now();
    // The main future spins without ever waiting on anything that is not ready right away.
    poll_fn(|cx| {
        if done.load(Ordering::SeqCst) || start.elapsed() > LIMIT {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    assert!(done.load(Ordering::SeqCst), "the sleeping task never ran");
}

#[test]
fn a_join_handle_can_be_awaited_on_another_runtime_on_another_thread() -> io::Result<()> {
    let rt = Runtime::new()?;
    let (tx, rx) = oneshot::<u32>();
    let handle = rt.spawn(async move { rx.await.expect("sent") * 2 });
    // Another thread with its own runtime awaits the handle while this one drives the task.
    let joiner = thread::spawn(move || ripple::block_on(no_hang(handle)));
    rt.block_on(async {
        sleep(Duration::from_millis(10)).await;
        tx.send(21);
        // Keep driving the runtime until the task has run.
        sleep(Duration::from_millis(10)).await;
    });
    let output = joiner.join().expect("joiner thread")?;
    assert_eq!(output.expect("task output"), 42);
    Ok(())
}

#[ripple::test]
async fn a_task_reading_an_always_ready_socket_yields_to_timers_and_other_tasks() -> io::Result<()>
{
    // A socket whose peer has closed is always readable: every read returns Ok(0) at once, so
    // a loop of reads never meets WouldBlock. Only the I/O budget makes such a task yield.
    let (mut client, server) = util::pair_with_std_peer().await?;
    drop(server);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = ripple::spawn({
        let stop = stop.clone();
        async move {
            let mut reads = 0u64;
            let mut buf = [0; 16];
            // Bounded, so that a runtime without a budget fails instead of hanging.
            while !stop.load(Ordering::Relaxed) && reads < 50_000_000 {
                assert_eq!(client.read(&mut buf).await?, 0);
                reads += 1;
            }
            io::Result::Ok(reads)
        }
    });
    sleep(Duration::from_millis(5)).await;
    stop.store(true, Ordering::Relaxed);
    let reads = no_hang(reader).await???;
    assert!(
        reads < 50_000_000,
        "the timer only fired after the reader gave up"
    );
    Ok(())
}

#[ripple::test]
async fn an_aborted_task_drops_its_pinned_future_where_it_was_polled() {
    /// Records where it was polled; its destructor checks it was not moved since.
    struct Pinned {
        polled_at: Arc<Mutex<Option<usize>>>,
        dropped_at: Arc<Mutex<Option<usize>>>,
        _pin: std::marker::PhantomPinned,
    }
    impl Future for Pinned {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            *self.polled_at.lock().unwrap() = Some(&*self as *const Self as usize);
            Poll::Pending
        }
    }
    impl Drop for Pinned {
        fn drop(&mut self) {
            *self.dropped_at.lock().unwrap() = Some(self as *const Self as usize);
        }
    }
    let polled_at = Arc::new(Mutex::new(None));
    let dropped_at = Arc::new(Mutex::new(None));
    let task = ripple::spawn(Pinned {
        polled_at: polled_at.clone(),
        dropped_at: dropped_at.clone(),
        _pin: std::marker::PhantomPinned,
    });
    yield_now().await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let polled = polled_at.lock().unwrap().expect("polled once");
    assert_eq!(*dropped_at.lock().unwrap(), Some(polled));
}
