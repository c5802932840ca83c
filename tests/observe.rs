//! Seeing the event loop: the counters (`Runtime::metrics`) count what happened, and the trace
//! (`RIPPLE_TRACE=1`) narrates it in order.

mod util;

use std::io::{self, Write};
use std::process::Command;
use std::time::Duration;

use ripple::runtime::{Builder, Handle, Runtime};

#[test]
fn counters_count_spawns_polls_and_the_wakes_tasks_give_each_other() -> io::Result<()> {
    let rt = Runtime::new()?;
    rt.block_on(async {
        let tasks: Vec<_> = (0..10)
            .map(|_| ripple::spawn(ripple::task::yield_now()))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let m = rt.metrics();
    assert_eq!(m.tasks_spawned, 10);
    assert_eq!(
        m.polls, 20,
        "each task is polled before and after its yield"
    );
    // Ten self-wakes by `yield_now`, plus at least one joiner woken by a finishing task.
    assert!(m.wakes_by_task >= 11, "{m:?}");
    assert_eq!(
        m.wakes_by_reactor + m.wakes_by_timer + m.wakes_by_thread,
        0,
        "{m:?}"
    );
    assert_eq!(m.wakes(), m.wakes_by_task);
    Ok(())
}

#[test]
fn a_timer_that_fires_is_counted_with_the_wake_it_caused() -> io::Result<()> {
    let rt = Runtime::new()?;
    rt.block_on(async {
        let sleeper = ripple::spawn(ripple::time::sleep(Duration::from_millis(5)));
        sleeper.await.unwrap();
    });
    let m = rt.metrics();
    assert_eq!(m.timers_fired, 1, "{m:?}");
    assert_eq!(m.wakes_by_timer, 1, "{m:?}");
    assert!(
        m.epoll_waits >= 1,
        "the thread slept in epoll until the deadline: {m:?}"
    );
    Ok(())
}

#[test]
fn data_on_a_socket_is_counted_as_an_event_and_a_reactor_wake() -> io::Result<()> {
    let rt = Runtime::new()?;
    let before = rt.block_on(async {
        let (mut client, mut server) = util::pair_with_std_peer().await?;
        let reader = ripple::spawn(async move {
            let mut buf = [0; 8];
            client.read(&mut buf).await
        });
        // Let the reader find the socket empty and park on it.
        util::yield_times(3).await;
        let before = Handle::current().metrics();
        server.write_all(b"ping")?;
        assert_eq!(util::no_hang(reader).await?.unwrap()?, 4);
        io::Result::Ok(before)
    })?;
    let after = rt.metrics();
    assert_eq!(before.wakes_by_reactor, 0, "{before:?}");
    assert!(after.wakes_by_reactor >= 1, "{after:?}");
    assert!(after.epoll_waits > before.epoll_waits, "{after:?}");
    assert!(after.events > before.events, "{after:?}");
    assert!(after.events_per_wait() > 0.0);
    Ok(())
}

#[test]
fn wakes_and_spawns_from_other_threads_are_counted_as_such() -> io::Result<()> {
    let rt = Runtime::new()?;
    let handle = rt.handle();
    let (got, remote) = rt.block_on(async {
        let (tx, rx) = util::oneshot();
        let waiter = ripple::spawn(rx);
        // Let the waiter park on the empty channel first.
        util::yield_times(3).await;
        let remote_task = std::thread::spawn(move || {
            let task = handle.spawn(async { 7 });
            tx.send(5);
            task
        })
        .join()
        .expect("the spawning thread panicked");
        (waiter.await.unwrap(), remote_task.await.unwrap())
    });
    assert_eq!((got, remote), (Some(5), 7));
    let m = rt.metrics();
    assert_eq!(m.tasks_spawned, 2);
    // The spawn from the other thread, and the send that woke the parked waiter.
    assert_eq!(m.wakes_by_thread, 2, "{m:?}");
    Ok(())
}

/// Re-runs `test_name` of this binary in a child process with `RIPPLE_TRACE` set to `trace`
/// (or unset) and returns the child's stderr. In the child, returns `None`: the caller then
/// does the work whose trace is examined.
fn stderr_of_child(test_name: &str, trace: Option<&str>) -> io::Result<Option<String>> {
    const CHILD: &str = "RIPPLE_OBSERVE_CHILD";
    if std::env::var(CHILD).as_deref() == Ok(test_name) {
        return Ok(None);
    }
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD, test_name)
        .env_remove("RIPPLE_TRACE");
    if let Some(value) = trace {
        command.env("RIPPLE_TRACE", value);
    }
    let output = command.output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child running `{test_name}` failed:\n{stdout}\n{stderr}"
    );
    Ok(Some(stderr))
}

/// Spawns a task that reads one message from a socket, writes it from a std peer once the task
/// has parked, and waits for the task.
fn read_one_message(rt: &Runtime) -> io::Result<()> {
    rt.block_on(async {
        let (mut client, mut server) = util::pair_with_std_peer().await?;
        let reader = ripple::spawn(async move {
            let mut buf = [0; 8];
            client.read(&mut buf).await
        });
        util::yield_times(3).await;
        server.write_all(b"ping")?;
        assert_eq!(util::no_hang(reader).await?.unwrap()?, 4);
        Ok(())
    })
}

/// The index of the first line at or after `from` that contains `needle`, or a failure that
/// shows the whole trace.
fn find(lines: &[&str], from: usize, needle: &str) -> usize {
    match lines[from..].iter().position(|line| line.contains(needle)) {
        Some(i) => from + i,
        None => panic!(
            "no `{needle}` after line {from} of the trace:\n{}",
            lines.join("\n")
        ),
    }
}

#[test]
fn the_trace_follows_one_read_from_spawn_through_epoll_to_the_wake() -> io::Result<()> {
    let name = "the_trace_follows_one_read_from_spawn_through_epoll_to_the_wake";
    let Some(stderr) = stderr_of_child(name, Some("1"))? else {
        return read_one_message(&Runtime::new()?);
    };
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ripple: "))
        .collect();
    // Follow the reader's socket by the source number the trace gives it when it parks.
    let spawned = find(&lines, 0, "task 1 spawned");
    let parked = find(
        &lines,
        spawned,
        "not ready to read: the task parks its waker",
    );
    let source = lines[parked]
        .trim_start_matches("ripple: source ")
        .split(' ')
        .next()
        .expect("a source number");
    let polled = find(&lines, parked, "task 1 polled -> pending");
    let waited = find(&lines, polled, "epoll wait (timeout");
    let ready = find(&lines, waited, &format!("source {source} ready: read"));
    let woken = find(&lines, ready, "task 1 woken by reactor");
    find(&lines, woken, "task 1 polled -> ready");
    Ok(())
}

#[test]
fn the_trace_is_silent_unless_asked_for() -> io::Result<()> {
    let name = "the_trace_is_silent_unless_asked_for";
    let Some(stderr) = stderr_of_child(name, None)? else {
        return read_one_message(&Runtime::new()?);
    };
    assert!(!stderr.contains("ripple: "), "{stderr}");
    Ok(())
}

#[test]
fn the_builder_switch_overrides_the_environment() -> io::Result<()> {
    let name = "the_builder_switch_overrides_the_environment";
    let Some(stderr) = stderr_of_child(name, Some("1"))? else {
        return read_one_message(&Builder::new_current_thread().trace(false).build()?);
    };
    assert!(!stderr.contains("ripple: "), "{stderr}");
    Ok(())
}

#[test]
fn the_builder_switch_turns_the_trace_on_without_the_environment() -> io::Result<()> {
    let name = "the_builder_switch_turns_the_trace_on_without_the_environment";
    let Some(stderr) = stderr_of_child(name, None)? else {
        return read_one_message(&Builder::new_current_thread().trace(true).build()?);
    };
    assert!(stderr.contains("ripple: task 1 spawned"), "{stderr}");
    Ok(())
}
