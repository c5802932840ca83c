//! Dropping a runtime: every task's future is dropped, join handles report cancellation,
//! sockets close, and wakers or I/O objects that outlive it are harmless.

mod util;

use std::future::{pending, Future};
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use ripple::runtime::Runtime;
use ripple::time::sleep;

use util::{drop_guard, no_hang, yield_times, LIMIT};

#[test]
fn dropping_a_runtime_drops_every_task_future_and_cancels_their_handles() -> io::Result<()> {
    let rt = Runtime::new()?;
    let (io_guard, io_dropped) = drop_guard();
    let (timer_guard, timer_dropped) = drop_guard();
    let (pending_guard, pending_dropped) = drop_guard();
    let (unpolled_guard, unpolled_dropped) = drop_guard();
    let (remote_guard, remote_dropped) = drop_guard();

    let (io_task, timer_task, pending_task, unpolled_task, _client) = rt.block_on(async {
        let (client, mut server) = util::connected_pair().await?;
        let io_task = ripple::spawn(async move {
            let _guard = io_guard;
            let mut buf = [0; 8];
            server.read(&mut buf).await
        });
        let timer_task = ripple::spawn(async move {
            let _guard = timer_guard;
            sleep(Duration::from_secs(3600)).await;
        });
        let pending_task = ripple::spawn(async move {
            let _guard = pending_guard;
            pending::<()>().await;
        });
        // Let them run until each is parked on its socket, timer or nothing.
        yield_times(5).await;
        // Spawned last, never polled: block_on returns first.
        let unpolled_task = ripple::spawn(async move {
            let _guard = unpolled_guard;
        });
        io::Result::Ok((io_task, timer_task, pending_task, unpolled_task, client))
    })?;
    // Queued from another thread, while nobody drives the runtime.
    let handle = rt.handle();
    let remote_task = thread::spawn(move || {
        handle.spawn(async move {
            let _guard = remote_guard;
        })
    })
    .join()
    .expect("thread");

    assert!(!io_dropped.load(Ordering::SeqCst));
    assert!(!timer_dropped.load(Ordering::SeqCst));
    drop(rt);
    assert!(io_dropped.load(Ordering::SeqCst), "task parked on a socket");
    assert!(
        timer_dropped.load(Ordering::SeqCst),
        "task parked on a timer"
    );
    assert!(
        pending_dropped.load(Ordering::SeqCst),
        "task parked forever"
    );
    assert!(unpolled_dropped.load(Ordering::SeqCst), "task never polled");
    assert!(
        remote_dropped.load(Ordering::SeqCst),
        "task spawned remotely"
    );

    // The handles are awaited on another runtime.
    ripple::block_on(async {
        assert!(no_hang(io_task).await?.unwrap_err().is_cancelled());
        assert!(no_hang(timer_task).await?.unwrap_err().is_cancelled());
        assert!(no_hang(pending_task).await?.unwrap_err().is_cancelled());
        assert!(no_hang(unpolled_task).await?.unwrap_err().is_cancelled());
        assert!(no_hang(remote_task).await?.unwrap_err().is_cancelled());
        io::Result::Ok(())
    })
}

#[test]
fn a_dropped_runtime_closes_the_sockets_of_its_tasks() -> io::Result<()> {
    let rt = Runtime::new()?;
    let listener = rt.block_on(ripple::net::TcpListener::bind("127.0.0.1:0"))?;
    let mut peer = std::net::TcpStream::connect(listener.local_addr()?)?;
    peer.set_read_timeout(Some(LIMIT))?;
    rt.block_on(async {
        let (mut stream, _) = no_hang(listener.accept()).await??;
        // The task holds the accepted stream, parked on a read that never completes.
        drop(ripple::spawn(async move {
            let mut buf = [0; 1];
            let _ = stream.read(&mut buf).await;
        }));
        yield_times(3).await;
        io::Result::Ok(())
    })?;
    drop(listener);
    drop(rt);
    let mut buf = [0; 1];
    // Ok(0) is end of stream; a hang would be a read timeout error instead.
    assert_eq!(peer.read(&mut buf)?, 0, "the peer reads EOF");
    Ok(())
}

/// Leaves its waker in `slot` and stays pending.
struct StoreWaker {
    /// Where the waker goes.
    slot: Arc<Mutex<Option<Waker>>>,
}

impl Future for StoreWaker {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
// The block_on future returns a JoinHandle on purpose, to await it on another runtime.
#[allow(clippy::async_yields_async)]
fn wakers_that_outlive_their_runtime_are_harmless() -> io::Result<()> {
    let task_waker = Arc::new(Mutex::new(None));
    let main_waker = Arc::new(Mutex::new(None));
    let rt = Runtime::new()?;
    let task = rt.block_on(async {
        let task = ripple::spawn(StoreWaker {
            slot: task_waker.clone(),
        });
        yield_times(3).await;
        // Also keep the waker of the block_on future itself.
        std::future::poll_fn(|cx| {
            *main_waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(())
        })
        .await;
        task
    });
    drop(rt);

    let task_waker = task_waker.lock().unwrap().take().expect("task waker");
    let main_waker = main_waker.lock().unwrap().take().expect("main waker");
    // From a plain thread...
    task_waker.wake_by_ref();
    main_waker.wake_by_ref();
    // ...from another thread...
    let (tw, mw) = (task_waker.clone(), main_waker.clone());
    thread::spawn(move || {
        tw.wake();
        mw.wake();
    })
    .join()
    .expect("waking from another thread does not panic");
    // ...and from inside another runtime.
    ripple::block_on(async {
        task_waker.wake_by_ref();
        main_waker.wake_by_ref();
        let err = no_hang(task).await?.unwrap_err();
        assert!(err.is_cancelled());
        io::Result::Ok(())
    })?;
    drop(task_waker);
    drop(main_waker);
    Ok(())
}

#[test]
fn handle_spawn_after_the_runtime_is_dropped_cancels_the_task_at_once() -> io::Result<()> {
    let rt = Runtime::new()?;
    let handle = rt.handle();
    drop(rt);
    let (guard, dropped) = drop_guard();
    let task = handle.spawn(async move {
        let _guard = guard;
        1
    });
    assert!(task.is_finished());
    assert!(dropped.load(Ordering::SeqCst));
    let err = ripple::block_on(no_hang(task))?.unwrap_err();
    assert!(err.is_cancelled());
    Ok(())
}

#[test]
fn io_objects_that_outlive_their_runtime_fail_instead_of_hanging() -> io::Result<()> {
    let rt = Runtime::new()?;
    let (mut client, _server) = rt.block_on(util::pair_with_std_peer())?;
    drop(rt);
    let result = ripple::block_on(async {
        let mut buf = [0; 8];
        no_hang(client.read(&mut buf)).await
    })?;
    assert!(
        result.is_err(),
        "read on a dead runtime's socket: {result:?}"
    );
    Ok(())
}

#[test]
fn a_future_that_spawns_while_being_dropped_at_shutdown_does_not_hang_or_leak() -> io::Result<()> {
    /// Spawns a task from its destructor, which runs during the runtime's shutdown.
    struct SpawnOnDrop(Option<util::DropGuard>);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            let guard = self.0.take();
            drop(ripple::spawn(async move {
                let _guard = guard;
                pending::<()>().await;
            }));
        }
    }

    let rt = Runtime::new()?;
    let (guard, dropped) = drop_guard();
    rt.block_on(async {
        let spawner = SpawnOnDrop(Some(guard));
        drop(ripple::spawn(async move {
            let _spawner = spawner;
            pending::<()>().await;
        }));
        yield_times(3).await;
    });
    drop(rt);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the task spawned during shutdown was dropped too"
    );
    Ok(())
}
