//! Signals: every listener woken for each delivery, on both flavours and across runtimes,
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
