//! The `blocking_in_task` example (guide chapter 8b), run as a process: while a slow request's
//! blocking call is in progress, another client is answered at once with `spawn_blocking`, and
//! not before the call ends with `block` or `yield`.
//!
//! The slow request blocks for [`BLOCK`]. The checks do not depend on how fast the machine is,
//! only on `std::thread::sleep` sleeping at least as long as asked: the blocking call cannot end
//! before [`BLOCK`] has passed since the slow request was sent, so a normal client answered
//! before that was answered during the call, and one answered after it was not, if it was sent
//! while the call was in progress (which the example's `blocking for` line on stderr shows).

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::Example;

/// How long the slow request blocks: long enough that a slow machine answers a normal client
/// well within it when the runtime's thread is free.
const BLOCK: Duration = Duration::from_secs(3);

/// How long any read may wait before the test fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(30);

/// A client with a read timeout, so that a missing echo fails the test instead of hanging it.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(LIMIT))?;
    Ok(stream)
}

/// Reads exactly `expected.len()` bytes, which must be `expected`.
fn expect_echo(stream: &mut TcpStream, expected: &[u8]) -> io::Result<()> {
    let mut echoed = vec![0; expected.len()];
    stream.read_exact(&mut echoed)?;
    assert_eq!(echoed, expected);
    Ok(())
}

/// Waits until the example has said on stderr that a blocking call started.
fn wait_for_blocking_call(server: &Example) {
    let start = Instant::now();
    while !server
        .stderr_lines()
        .iter()
        .any(|line| line.starts_with("blocking for"))
    {
        assert!(
            start.elapsed() < LIMIT,
            "no blocking call started; stderr: {:?}",
            server.stderr_lines()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// What one run saw, as times since the slow request was sent.
struct Run {
    /// When the normal client sent its message (after the blocking call had started).
    normal_sent: Duration,
    /// When the normal client got its echo.
    normal_answered: Duration,
    /// When the slow client got its echo.
    slow_answered: Duration,
}

/// Starts the example in `mode`, sends a slow request, and once its blocking call has started
/// sends a normal message from a second client; returns when each was answered.
fn run(mode: &str) -> io::Result<Run> {
    let block_ms = BLOCK.as_millis().to_string();
    let server = Example::start(
        "blocking_in_task",
        &[mode, "--block-ms", &block_ms],
        &[],
        None,
    )?;
    let mut slow = connect(server.addr)?;
    let mut normal = connect(server.addr)?;

    let start = Instant::now();
    slow.write_all(b"!slow")?;
    wait_for_blocking_call(&server);
    let normal_sent = start.elapsed();
    normal.write_all(b"hello")?;

    // Read both answers at once, each on its own thread, and note when each came.
    let slow_reader =
        thread::spawn(move || expect_echo(&mut slow, b"!slow").map(|()| start.elapsed()));
    expect_echo(&mut normal, b"hello")?;
    let normal_answered = start.elapsed();
    let slow_answered = slow_reader.join().expect("the slow reader panicked")?;
    Ok(Run {
        normal_sent,
        normal_answered,
        slow_answered,
    })
}

#[test]
fn with_spawn_blocking_a_client_is_answered_while_a_blocking_call_runs() -> io::Result<()> {
    let run = run("spawn_blocking")?;
    assert!(
        run.normal_answered < BLOCK,
        "the normal client was answered {:?} after the slow request was sent, not within the \
         {BLOCK:?} its blocking call takes",
        run.normal_answered
    );
    assert!(
        run.slow_answered >= BLOCK,
        "the slow request was answered after {:?}, before its blocking call could end",
        run.slow_answered
    );
    Ok(())
}

/// The check for the modes that block the runtime's thread.
fn a_client_waits_for_the_blocking_call(mode: &str) -> io::Result<()> {
    let run = run(mode)?;
    assert!(
        run.normal_sent < BLOCK,
        "inconclusive: the normal client sent only {:?} after the slow request, when the \
         blocking call ({BLOCK:?}) may have ended",
        run.normal_sent
    );
    assert!(
        run.normal_answered >= BLOCK,
        "with `{mode}` the normal client was answered {:?} after the slow request was sent, \
         before the blocking call ({BLOCK:?}) could end",
        run.normal_answered
    );
    assert!(run.slow_answered >= BLOCK);
    Ok(())
}

#[test]
fn with_block_a_client_is_not_answered_until_the_blocking_call_ends() -> io::Result<()> {
    a_client_waits_for_the_blocking_call("block")
}

#[test]
fn with_yield_a_client_is_not_answered_until_the_blocking_call_ends() -> io::Result<()> {
    a_client_waits_for_the_blocking_call("yield")
}
