//! What ripple leaves to other crates, checked on ripple: each crate the README's table names
//! works on both runtime flavours, between tasks and from plain threads. ripple writes none of
//! these itself; they are runtime-agnostic (they need only wakers), which is the point.

mod util;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{future, StreamExt};
use ripple::runtime::{Builder, Runtime};
use ripple::task::spawn_blocking;

use util::no_hang;

/// Both flavours, for tests that must hold on each.
fn runtimes() -> io::Result<Vec<Runtime>> {
    Ok(vec![
        Builder::new_current_thread().build()?,
        Builder::new_multi_thread().worker_threads(2).build()?,
    ])
}

#[test]
fn async_channel_carries_messages_between_tasks_and_from_a_plain_thread() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let (tx, rx) = async_channel::bounded::<u32>(4);
            // A producer task and a producer thread, one consumer task; the bound makes the
            // producers wait (the task parks, the thread blocks) while the consumer is behind.
            let task = ripple::spawn({
                let tx = tx.clone();
                async move {
                    for i in 0..100 {
                        tx.send(i).await.expect("receiver alive");
                    }
                }
            });
            let thread = std::thread::spawn(move || {
                for i in 100..200 {
                    tx.send_blocking(i).expect("receiver alive");
                }
            });
            let consumer = ripple::spawn(async move {
                let mut sum = 0u64;
                while let Ok(i) = rx.recv().await {
                    sum += u64::from(i);
                }
                sum
            });
            no_hang(task).await?.expect("producer task");
            // The consumer ends once both producers have dropped their senders. Only then is
            // the thread joined: joining it earlier would block this runtime thread while the
            // thread waits, on a full channel, for the consumer that runs here.
            let sum = no_hang(consumer).await?.expect("consumer task");
            thread.join().expect("producer thread");
            assert_eq!(sum, (0..200).sum::<u64>(), "every message, once");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn futures_channel_oneshot_and_mpsc_work_across_tasks() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let (tx, rx) = futures_channel::oneshot::channel();
            ripple::spawn(async move {
                let _ = tx.send("done");
            });
            assert_eq!(no_hang(rx).await?, Ok("done"));

            let (mut tx, rx) = futures_channel::mpsc::channel::<u32>(2);
            ripple::spawn(async move {
                for i in 0..10 {
                    // `Sink::send` needs the futures crate; `try_send` with a retry is enough.
                    loop {
                        match tx.try_send(i) {
                            Ok(()) => break,
                            Err(err) if err.is_full() => ripple::task::yield_now().await,
                            Err(_) => return,
                        }
                    }
                }
            });
            let got: Vec<u32> = no_hang(rx.collect()).await?;
            assert_eq!(got, (0..10).collect::<Vec<_>>());
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn async_lock_mutex_and_semaphore_serialize_tasks() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let counter = Arc::new(async_lock::Mutex::new(0u32));
            let permits = Arc::new(async_lock::Semaphore::new(2));
            let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let tasks: Vec<_> = (0..20)
                .map(|_| {
                    let (counter, permits, inside) =
                        (counter.clone(), permits.clone(), inside.clone());
                    ripple::spawn(async move {
                        let _permit = permits.acquire().await;
                        let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        assert!(now <= 2, "the semaphore lets 2 in at once, not {now}");
                        // Held across an await: an async lock, not a std one.
                        let mut count = counter.lock().await;
                        ripple::time::sleep(Duration::from_millis(1)).await;
                        *count += 1;
                        drop(count);
                        inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    })
                })
                .collect();
            for task in tasks {
                no_hang(task).await?.expect("task");
            }
            assert_eq!(*counter.lock().await, 20);
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn futures_lite_combinators_and_streams_work_on_ripple_futures() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            // `zip` runs two futures together; `or` takes whichever finishes first.
            let (a, b) = future::zip(
                async {
                    ripple::time::sleep(Duration::from_millis(5)).await;
                    1
                },
                async { 2 },
            )
            .await;
            assert_eq!((a, b), (1, 2));
            let first = future::or(
                async {
                    ripple::time::sleep(Duration::from_secs(60)).await;
                    "slow"
                },
                async { "fast" },
            )
            .await;
            assert_eq!(first, "fast");
            // An `Interval` is a `Stream`: stream combinators apply.
            let ticks: Vec<_> = no_hang(
                ripple::time::interval(Duration::from_millis(1))
                    .take(3)
                    .collect::<Vec<_>>(),
            )
            .await?;
            assert_eq!(ticks.len(), 3);
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn file_io_and_processes_run_in_spawn_blocking() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let path = std::env::temp_dir().join(format!(
                "ripple-ecosystem-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let written = path.clone();
            no_hang(spawn_blocking(move || std::fs::write(&written, b"on disk")))
                .await?
                .expect("blocking task")?;
            let read = path.clone();
            let content = no_hang(spawn_blocking(move || std::fs::read(&read)))
                .await?
                .expect("blocking task")?;
            assert_eq!(content, b"on disk");
            std::fs::remove_file(&path)?;

            let output = no_hang(spawn_blocking(|| {
                std::process::Command::new("sh")
                    .args(["-c", "echo from a child"])
                    .output()
            }))
            .await?
            .expect("blocking task")?;
            assert!(output.status.success());
            assert_eq!(output.stdout, b"from a child\n");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}
