//! Signals: every listener woken for each delivery, on both flavours and across runtimes (and
//! when listeners on three runtimes race to empty the self-pipe),
//! `ctrl_c` resolved by SIGINT, `None` once the listener's runtime is gone, and clear errors for
//! the signals that cannot be caught. Each test uses a signal of its own: signals are
//! process-wide, and the tests of this file run side by side.

mod util;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::Context;

use ripple::runtime::Builder;
use ripple::signal::unix::{signal, SignalKind};

use util::LIMIT;

/// `future`'s output, if it completes within `util::LIMIT` because it was woken. Unlike
/// `util::no_hang`, the limit's timer is looked at first and ends the wait without polling
/// `future` again, so a lost wake-up fails the test instead of being rescued by that last poll.
async fn no_hang<F: Future>(future: F) -> io::Result<F::Output> {
    let mut future = pin!(future);
    let mut limit = pin!(ripple::time::sleep(LIMIT));
    std::future::poll_fn(|cx| {
        if limit.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        future.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// Sends `signum` to this process.
fn raise(signum: i32) {
    // SAFETY: kill(2) with this process's own id and a valid signal number.
    let sent = unsafe { libc::kill(libc::getpid(), signum) };
    assert_eq!(sent, 0, "kill failed");
}

#[test]
fn two_listeners_of_one_signal_are_both_woken_for_each_delivery() -> io::Result<()> {
    for rt in [
        Builder::new_current_thread().build()?,
        Builder::new_multi_thread().worker_threads(2).build()?,
    ] {
        rt.block_on(async {
            let mut first = signal(SignalKind::user_defined1())?;
            let mut second = signal(SignalKind::user_defined1())?;
            for _ in 0..3 {
                raise(libc::SIGUSR1);
                assert_eq!(no_hang(first.recv()).await?, Some(()));
                assert_eq!(no_hang(second.recv()).await?, Some(()));
            }
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn listeners_on_two_runtimes_both_hear_one_delivery() -> io::Result<()> {
    let current = Builder::new_current_thread().build()?;
    let multi = Builder::new_multi_thread().worker_threads(2).build()?;
    let mut on_current = current.block_on(async { signal(SignalKind::user_defined2()) })?;
    let mut on_multi = multi.block_on(async { signal(SignalKind::user_defined2()) })?;
    let waiter =
        std::thread::spawn(move || multi.block_on(async move { no_hang(on_multi.recv()).await }));
    raise(libc::SIGUSR2);
    assert_eq!(
        current.block_on(async { no_hang(on_current.recv()).await })?,
        Some(())
    );
    assert_eq!(
        waiter.join().expect("the other runtime's thread")?,
        Some(())
    );
    Ok(())
}

#[test]
fn sigint_resolves_ctrl_c() -> io::Result<()> {
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        let mut ctrl_c = pin!(ripple::signal::ctrl_c());
        // One poll installs the handler (before it, SIGINT would end the test process).
        let waker = std::task::Waker::noop();
        assert!(ctrl_c
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending());
        raise(libc::SIGINT);
        no_hang(ctrl_c).await?
    })
}

#[test]
fn recv_is_none_once_the_listeners_runtime_has_shut_down() -> io::Result<()> {
    let rt = Builder::new_current_thread().build()?;
    let mut hangups = rt.block_on(async { signal(SignalKind::hangup()) })?;
    drop(rt);
    let other = Builder::new_current_thread().build()?;
    let got = other.block_on(async { no_hang(hangups.recv()).await })?;
    assert_eq!(got, None, "the listener's runtime is gone");
    Ok(())
}

#[test]
fn uncatchable_or_unknown_signals_are_errors() -> io::Result<()> {
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        for signum in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -1, 1000] {
            let err = signal(SignalKind::from_raw(signum)).expect_err("cannot be listened to");
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::Other
                ),
                "signal {signum}: {err}"
            );
        }
    });
    Ok(())
}

/// The signal of the racing test: a real-time one, which nothing outside the test sends (a
/// terminal resize would send SIGWINCH).
fn racing_signal() -> i32 {
    libc::SIGRTMIN() + 3
}

/// Listeners on three runtimes (two current-thread runtimes on threads of their own, and both
/// workers of a multi-thread one), each in its own task, racing to empty the self-pipe they
/// share: for each of 200 deliveries every one must wake. A listener that empties the pipe before
/// another runtime's epoll has collected that runtime's edge swallows it (epoll drops an edge
/// whose file is no longer readable when collected), so the one that empties it must wake the
/// others.
#[test]
fn listeners_racing_on_three_runtimes_each_wake_for_every_delivery() -> io::Result<()> {
    const LISTENERS: usize = 4;
    let (heard, hearings) = std::sync::mpsc::channel();
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let listen = move |listener: usize| {
        let heard = heard.clone();
        let stopped = stopped.clone();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let task = async move {
            let mut winches = signal(SignalKind::from_raw(racing_signal()))?;
            ready.send(()).expect("the test waits");
            // Until the test closes `stop`.
            let stopping = || async {
                let _ = stopped.recv().await;
                None
            };
            while let Some(()) = futures_lite::future::or(winches.recv(), stopping()).await {
                heard.send(listener).expect("the test listens");
            }
            io::Result::Ok(())
        };
        (task, is_ready)
    };
    let mut threads = Vec::new();
    for listener in 0..2 {
        let (task, is_ready) = listen(listener);
        threads.push(std::thread::spawn(move || {
            Builder::new_current_thread().build()?.block_on(task)
        }));
        is_ready.recv().expect("the listener started");
    }
    let multi = Builder::new_multi_thread().worker_threads(2).build()?;
    let mut on_multi = Vec::new();
    for listener in 2..LISTENERS {
        let (task, is_ready) = listen(listener);
        on_multi.push(multi.spawn(task));
        is_ready.recv().expect("the listener started");
    }
    for delivery in 0..200 {
        raise(racing_signal());
        // Every listener reports this delivery (the next is raised only once all have, so no
        // two deliveries merge).
        let mut seen = [false; LISTENERS];
        while seen.contains(&false) {
            let listener = hearings
                .recv_timeout(LIMIT)
                .unwrap_or_else(|_| panic!("delivery {delivery}: heard by {seen:?} only"));
            assert!(
                !seen[listener],
                "delivery {delivery}: listener {listener} woke twice"
            );
            seen[listener] = true;
        }
    }
    stop.close();
    for thread in threads {
        thread.join().expect("a listener's thread")?;
    }
    for handle in on_multi {
        multi.block_on(handle).expect("a listener's task")?;
    }
    Ok(())
}
