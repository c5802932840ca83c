//! Timers: `sleep`, `sleep_until`, `timeout` and `interval`.

mod util;

use std::future::{pending, poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use ripple::time::{interval, sleep, sleep_until, timeout, Instant};

use util::{count_polls, no_hang, oneshot, yield_times};

#[ripple::test]
async fn sleeps_complete_in_deadline_order() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            ripple::spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                order.lock().unwrap().push(ms);
            })
        })
        .collect();
    for handle in handles {
        no_hang(handle).await.expect("no hang").expect("task");
    }
    assert_eq!(*order.lock().unwrap(), [10, 20, 30]);
}

#[ripple::test]
async fn a_sleep_lasts_at_least_its_duration() {
    let start = Instant::now();
    sleep(Duration::from_millis(15)).await;
    assert!(start.elapsed() >= Duration::from_millis(15));
}

#[ripple::test]
async fn a_deadline_in_the_past_is_ready_at_the_first_poll() {
    let past = Instant::now()
        .checked_sub(Duration::from_secs(1))
        .unwrap_or_else(Instant::now);
    let mut late = pin!(sleep_until(past));
    let mut zero = pin!(sleep(Duration::ZERO));
    let (late, zero) =
        poll_fn(|cx| Poll::Ready((late.as_mut().poll(cx), zero.as_mut().poll(cx)))).await;
    assert!(late.is_ready(), "sleep_until(now - 1s)");
    assert!(zero.is_ready(), "sleep(0)");
}

#[ripple::test]
async fn timeout_gives_elapsed_for_a_slow_future_and_the_output_of_a_fast_one() {
    let slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(3600))).await;
    assert!(slow.is_err(), "a one-hour sleep within 10 ms");
    let never = timeout(Duration::from_millis(5), pending::<()>()).await;
    assert!(never.is_err());

    assert_eq!(timeout(Duration::from_secs(10), async { 5 }).await, Ok(5));
    let fast = timeout(Duration::from_secs(10), async {
        sleep(Duration::from_millis(1)).await;
        "fast"
    })
    .await;
    assert_eq!(fast, Ok("fast"));

    let err: std::io::Error = slow.unwrap_err().into();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn dropping_a_sleep_cancels_it_so_block_on_returns_promptly() {
    let start = Instant::now();
    ripple::block_on(async {
        let mut long = Box::pin(sleep(Duration::from_secs(3600)));
        // Register it with the runtime, then drop it unfired.
        let first = poll_fn(|cx| Poll::Ready(long.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        drop(long);
        sleep(Duration::from_millis(1)).await;
    });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "block_on waited for a dropped sleep"
    );
}

#[ripple::test]
async fn a_dropped_sleep_never_wakes_the_task_that_polled_it() {
    let (tx, rx) = oneshot::<()>();
    let (task, polls) = count_polls(async move {
        let mut short = Box::pin(sleep(Duration::from_millis(5)));
        let first = poll_fn(|cx| Poll::Ready(short.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        drop(short);
        rx.await
    });
    let handle = ripple::spawn(task);
    // Long past the dropped sleep's deadline.
    sleep(Duration::from_millis(40)).await;
    assert_eq!(polls.load(Ordering::SeqCst), 1, "woken by a dropped sleep");
    tx.send(());
    no_hang(handle).await.expect("no hang").expect("task");
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

#[ripple::test]
async fn a_hundred_thousand_live_timers_all_fire() {
    const TASKS: usize = 100_000;
    let fired = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let fired = fired.clone();
            ripple::spawn(async move {
                // 1..=50 ms, spread evenly.
                sleep(Duration::from_millis(1 + (i % 50) as u64)).await;
                fired.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let mut completed = 0;
    for handle in handles {
        no_hang(handle).await.expect("no hang").expect("task");
        completed += 1;
    }
    assert_eq!(completed, TASKS);
    assert_eq!(fired.load(Ordering::Relaxed), TASKS);
}

#[ripple::test]
async fn an_interval_ticks_at_once_and_then_once_per_period() {
    let period = Duration::from_millis(5);
    let start = Instant::now();
    let mut ticker = interval(period);
    let first = poll_fn(|cx| Poll::Ready(ticker.poll_tick(cx))).await;
    let Poll::Ready(first) = first else {
        panic!("the first tick is immediate");
    };
    assert!(first <= Instant::now());

    let mut ticks = vec![first];
    for _ in 0..5 {
        ticks.push(no_hang(ticker.tick()).await.expect("no hang"));
    }
    assert_eq!(ticks.len(), 6);
    for (k, tick) in ticks.iter().enumerate() {
        assert_eq!(*tick, first + period * k as u32, "tick {k} is on schedule");
    }
    assert!(start.elapsed() >= period * 5, "ticks do not come early");
}

#[ripple::test]
async fn a_sleep_polled_by_another_task_after_it_moved_wakes_the_new_task() {
    // A sleep registered by one task, then moved into another and awaited there.
    let mut moved = Box::pin(sleep(Duration::from_millis(10)));
    assert!(poll_fn(|cx| Poll::Ready(moved.as_mut().poll(cx)))
        .await
        .is_pending());
    let handle = ripple::spawn(async move {
        moved.await;
        "woken"
    });
    yield_times(2).await;
    assert_eq!(
        no_hang(handle).await.expect("no hang").expect("task"),
        "woken"
    );
}

#[test]
fn a_sleep_that_outlives_its_runtime_finishes_on_the_next_one() {
    let first = ripple::runtime::Runtime::new().expect("runtime");
    let mut nap = Box::pin(sleep(Duration::from_millis(30)));
    // Register the sleep with the first runtime, then drop that runtime.
    first.block_on(poll_fn(|cx| {
        assert!(nap.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    }));
    drop(first);
    let second = ripple::runtime::Runtime::new().expect("runtime");
    let start = Instant::now();
    // A sleep still parked on the dead runtime would only complete when this timeout polls it
    // at its own deadline, 5 s on: so the elapsed time, not the result, tells the two apart.
    second
        .block_on(timeout(Duration::from_secs(5), nap))
        .expect("the sleep completes");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the sleep was not woken by the second runtime"
    );
}

#[ripple::test]
async fn an_interval_is_a_stream_of_its_ticks_that_never_ends() {
    use futures_core::Stream;
    let period = Duration::from_millis(5);
    let mut ticks = interval(period);
    assert_eq!(
        Stream::size_hint(&ticks),
        (usize::MAX, None),
        "it never ends"
    );
    let mut ticks = std::pin::Pin::new(&mut ticks);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let tick = no_hang(poll_fn(|cx| ticks.as_mut().poll_next(cx)))
            .await
            .expect("no hang");
        seen.push(tick.expect("an interval yields a tick every time"));
    }
    // The ticks are the scheduled times, one period apart, and none came early.
    assert_eq!(seen[1] - seen[0], period);
    assert_eq!(seen[2] - seen[1], period);
    assert!(Instant::now() >= seen[2]);
}

#[ripple::test]
async fn a_sleep_reset_later_waits_for_the_new_deadline_and_one_reset_earlier_for_that() {
    // Later: the entry stays at the old deadline (no lock, no map change); when it fires, the
    // sleep registers anew instead of completing.
    let start = Instant::now();
    let mut later = pin!(sleep(Duration::from_millis(20)));
    assert!(futures_lite::future::poll_once(later.as_mut())
        .await
        .is_none());
    later.as_mut().reset(start + Duration::from_millis(120));
    no_hang(later).await.expect("no hang");
    assert!(start.elapsed() >= Duration::from_millis(120));

    // Earlier: the sleep leaves its entry and takes the new deadline.
    let start = Instant::now();
    let mut earlier = pin!(sleep(Duration::from_secs(60)));
    assert!(futures_lite::future::poll_once(earlier.as_mut())
        .await
        .is_none());
    earlier.as_mut().reset(start + Duration::from_millis(20));
    no_hang(earlier)
        .await
        .expect("an earlier reset is honoured");
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[ripple::test]
async fn a_watchdog_passes_quick_operations_for_many_periods_and_fails_a_stuck_one_within_two() {
    let period = Duration::from_millis(100);
    let mut dog = ripple::time::Watchdog::new(period);
    // Ten operations of 25 ms: 250 ms in all, more than two periods, none of them late.
    for _ in 0..10 {
        let done = dog.watch(sleep(Duration::from_millis(25))).await;
        assert!(done.is_ok(), "a quick operation timed out");
    }
    // An operation that never ends fails after one to two periods.
    let start = Instant::now();
    let stuck = no_hang(dog.watch(pending::<()>())).await.expect("no hang");
    let waited = start.elapsed();
    assert!(stuck.is_err());
    assert!(
        waited >= period && waited < 2 * period + Duration::from_millis(400),
        "failed after {waited:?}"
    );
    // And the watchdog goes on working for the next operation.
    assert!(dog.watch(async { 7 }).await == Ok(7));
}
