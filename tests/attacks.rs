//! The attacks a public server meets, on loopback, against the example servers running as
//! processes (with a lowered `RLIMIT_NOFILE` where the attack is on file descriptors): slowloris
//! against a small fd table, fd exhaustion (without a flood of log lines, and with recovery),
//! clients that never read (pipelined requests, or an echo), silent clients, a storm of resets,
//! and half-closed clients. Each asserts that the server keeps serving the others, with bounds
//! generous enough for a debug build on a busy machine. (The chat's storm of joins and leaves
//! is in `tests/chat.rs`.)

mod util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::Example;

/// How long a client waits for an answer before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// A request that asks to close the connection after its answer.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Sends [`REQUEST`] on a new connection; returns the answer and how long it took.
fn request(addr: SocketAddr, patience: Duration) -> io::Result<(String, Duration)> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(patience))?;
    stream.write_all(REQUEST)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok((
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    ))
}

/// Runs `attack` on a thread of its own until the returned guard is dropped.
fn in_background(attack: impl FnOnce(&AtomicBool) + Send + 'static) -> impl Drop {
    /// Stops the attack and waits for its thread when dropped.
    struct Running(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
            if let Some(thread) = self.1.take() {
                let _ = thread.join();
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    Running(stop, Some(std::thread::spawn(move || attack(&stopped))))
}

#[test]
fn slowloris_with_a_small_fd_table_leaves_every_normal_request_answered_within_2_s(
) -> io::Result<()> {
    const SLOW: usize = 300;
    let server = Example::start("hello_http", &[], &[], Some(256))?;
    let addr = server.addr;
    // 300 clients, each sending a request head one byte at a time, a byte every 200 ms, and
    // reconnecting whenever the server closes them: more than the server's 256 fds.
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = opened.clone();
    let attack = in_background(move |stop| {
        let open = || -> Option<TcpStream> {
            let mut stream = TcpStream::connect(addr).ok()?;
            stream.write_all(b"GET / HTTP/1.1\r\n").ok()?;
            count.fetch_add(1, Ordering::Relaxed);
            Some(stream)
        };
        let mut slow: Vec<Option<TcpStream>> = (0..SLOW).map(|_| open()).collect();
        while !stop.load(Ordering::Relaxed) {
            for slot in &mut slow {
                let alive = slot.as_mut().is_some_and(|s| s.write_all(b"X").is_ok());
                if !alive {
                    *slot = open();
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // Let the slow clients take every place first.
    let deadline = Instant::now() + PATIENCE;
    while opened.load(Ordering::Relaxed) < SLOW {
        assert!(
            Instant::now() < deadline,
            "the slow clients could not connect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..20 {
        let (answer, took) = request(addr, PATIENCE)?;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "request {i}: {answer:?} after {took:?}"
        );
        assert!(took < Duration::from_secs(2), "request {i} took {took:?}");
    }
    drop(attack);
    Ok(())
}

#[test]
fn fd_exhaustion_is_logged_once_per_episode_and_the_server_recovers() -> io::Result<()> {
    // Each echo connection costs the server two fds (its socket, and the duplicate it keeps for
    // a graceful shutdown): 100 connections are far more than 64 fds hold.
    let server = Example::start("echo", &[], &[], Some(64))?;
    let held = (0..100)
        .map(|_| TcpStream::connect(server.addr))
        .collect::<io::Result<Vec<_>>>()?;
    // The server is out of fds for a while: it must say so once, not once per attempt.
    std::thread::sleep(Duration::from_secs(2));
    let during: Vec<String> = server
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("accept"))
        .collect();
    assert!(
        during.len() == 1,
        "one line for the episode, got {during:?}"
    );
    drop(held);
    // Recovery: a new client is served (the backlog's closed connections go first, and the
    // server may flap at its limit meanwhile: still the same episode).
    let echo = |text: &[u8]| -> io::Result<()> {
        let mut client = TcpStream::connect(server.addr)?;
        client.set_read_timeout(Some(PATIENCE))?;
        client.write_all(text)?;
        let mut echoed = vec![0; text.len()];
        client.read_exact(&mut echoed)?;
        assert_eq!(echoed, text);
        Ok(())
    };
    echo(b"back")?;
    // The episode ends with the first success a second after the last failure. The server may
    // still fail for a while after "back" (it accepts the backlog's closed connections while the
    // held ones' fds are being closed), so a client comes back every half second until the end
    // is logged, or PATIENCE runs out.
    let deadline = Instant::now() + PATIENCE;
    let ended = |lines: &[String]| lines.iter().any(|l| l.contains("working again"));
    while !ended(&server.stderr_lines()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        echo(b"again")?;
    }
    let after = server.stderr_lines();
    let accept: Vec<&String> = after.iter().filter(|l| l.starts_with("accept:")).collect();
    let end = accept
        .iter()
        .find(|l| l.contains("working again"))
        .unwrap_or_else(|| panic!("the end of the episode, in one more line: {after:?}"));
    assert_eq!(accept.len(), 2, "one line to start, one to end: {after:?}");
    // Pauses of 1 ms doubling to 1 s: a few dozen attempts in the seconds it lasted, not a
    // spin.
    let failures: u64 = end
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a count of failed attempts");
    assert!(failures < 50, "{failures} failed attempts: {end}");
    Ok(())
}

#[test]
fn an_echo_client_that_never_reads_is_dropped_by_the_write_timeout() -> io::Result<()> {
    let server = Example::start("echo", &["--write-ms", "300"], &[], None)?;
    let mut hog = TcpStream::connect(server.addr)?;
    hog.set_write_timeout(Some(PATIENCE))?;
    let start = Instant::now();
    // Send without ever reading, until the server gives up on us (the kernel buffers fill in
    // both directions first, then the server's write waits, then its timeout fires).
    let chunk = vec![b'x'; 64 * 1024];
    let failed = loop {
        if let Err(err) = hog.write_all(&chunk) {
            break err;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "still connected after {PATIENCE:?}"
        );
    };
    assert!(
        matches!(
            failed.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{failed}"
    );
    // Meanwhile, and after, others are served.
    let mut other = TcpStream::connect(server.addr)?;
    other.set_read_timeout(Some(PATIENCE))?;
    other.write_all(b"hi")?;
    let mut got = [0; 2];
    other.read_exact(&mut got)?;
    assert_eq!(&got, b"hi");
    Ok(())
}

#[test]
fn a_silent_echo_client_is_dropped_by_the_idle_timeout() -> io::Result<()> {
    let server = Example::start("echo", &["--idle-ms", "300"], &[], None)?;
    let mut silent = TcpStream::connect(server.addr)?;
    silent.set_read_timeout(Some(PATIENCE))?;
    let start = Instant::now();
    let mut rest = Vec::new();
    silent.read_to_end(&mut rest)?;
    let waited = start.elapsed();
    // One to two periods, and some slack for a busy machine.
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    Ok(())
}

#[test]
fn pipelined_requests_that_are_never_read_cost_only_their_own_connection() -> io::Result<()> {
    let server = Example::start("hello_http", &[], &[("RIPPLE_HTTP_IDLE_MS", "300")], None)?;
    let mut hog = TcpStream::connect(server.addr)?;
    hog.set_write_timeout(Some(PATIENCE))?;
    let start = Instant::now();
    let batch = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let failed = loop {
        if let Err(err) = hog.write_all(&batch) {
            break err;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "still connected after {PATIENCE:?}"
        );
        // Others are served all along.
        let (answer, _) = request(server.addr, PATIENCE)?;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    };
    assert!(
        matches!(
            failed.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{failed}"
    );
    Ok(())
}

#[test]
fn a_storm_of_resets_leaves_the_server_serving() -> io::Result<()> {
    let mut server = Example::start("hello_http", &[], &[], None)?;
    for i in 0..500 {
        let mut stream = TcpStream::connect(server.addr)?;
        // Half a request, or a whole one, then a reset (SO_LINGER 0) instead of a close.
        let sent: &[u8] = if i % 2 == 0 {
            b"GET / HTTP/1.1\r\nHo"
        } else {
            REQUEST
        };
        stream.write_all(sent)?;
        socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
        drop(stream);
    }
    let (answer, _) = request(server.addr, PATIENCE)?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(server.is_running());
    Ok(())
}

#[test]
fn a_half_closed_client_gets_its_answer_then_the_end() -> io::Result<()> {
    for (name, sent, expected) in [
        ("hello_http", REQUEST, "HTTP/1.1 200"),
        ("echo", &b"half-closed"[..], "half-closed"),
    ] {
        let server = Example::start(name, &[], &[], None)?;
        let mut stream = TcpStream::connect(server.addr)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.write_all(sent)?;
        stream.shutdown(Shutdown::Write)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(expected), "{name}: {answer:?}");
    }
    Ok(())
}

#[test]
fn a_body_sent_a_byte_at_a_time_is_cut_off_by_the_request_deadline() -> io::Result<()> {
    let server = Example::start("hello_http", &["--head-ms", "500"], &[], None)?;
    let mut slow = TcpStream::connect(server.addr)?;
    slow.set_read_timeout(Some(PATIENCE))?;
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")?;
    let start = Instant::now();
    // The answer comes at once (the body is skipped); then a byte every 100 ms, each of which
    // the idle timeout alone would forgive.
    let mut reader = slow.try_clone()?;
    let trickle = std::thread::spawn(move || {
        while slow.write_all(b"b").is_ok() && start.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut answer = Vec::new();
    let _ = reader.read_to_end(&mut answer);
    let closed_after = start.elapsed();
    trickle.join().expect("the trickling thread");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(400) && closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}"
    );
    Ok(())
}
