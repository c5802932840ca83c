//! Helpers shared by the integration tests: a hand-written oneshot channel, drop guards, poll
//! counters, a two-future join, TCP fixtures, a hang guard, and re-running one test in a child
//! process (for resource limits and signal dispositions that must not leak into other tests).
//!
//! Each test binary includes this module with `mod util;` and uses only part of it.
#![allow(dead_code)]

use std::any::Any;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ripple::net::{TcpListener, TcpStream};

/// How long a test may wait for something that should happen quickly. Only an upper bound
/// against hangs: a bug makes the test fail after this long instead of blocking `cargo test`.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Runs `future` on the current ripple runtime, failing with `TimedOut` after [`LIMIT`].
pub async fn no_hang<F: Future>(future: F) -> io::Result<F::Output> {
    Ok(ripple::time::timeout(LIMIT, future).await?)
}

/// The sending end of [`oneshot`].
#[derive(Debug)]
pub struct Sender<T> {
    /// The slot shared with the receiver.
    slot: Arc<Mutex<Slot<T>>>,
}

/// The receiving end of [`oneshot`]: a future of the value, or `None` if the sender was
/// dropped without sending.
#[derive(Debug)]
pub struct Receiver<T> {
    /// The slot shared with the sender.
    slot: Arc<Mutex<Slot<T>>>,
}

/// What a oneshot's two ends share.
#[derive(Debug)]
struct Slot<T> {
    /// The value, once sent.
    value: Option<T>,
    /// The receiver's waker, while it waits.
    waker: Option<Waker>,
    /// The sender is gone.
    closed: bool,
}

/// A single-value channel written with nothing but a mutex and a waker, so that tests can wake
/// ripple tasks from any thread without relying on ripple itself.
pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (Sender { slot: slot.clone() }, Receiver { slot })
}

impl<T> Sender<T> {
    /// Stores `value` and wakes the receiver.
    pub fn send(self, value: T) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.value = Some(value);
        let waker = slot.waker.take();
        // Wake after unlocking, as the runtime does.
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        slot.closed = true;
        let waker = slot.waker.take();
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = slot.value.take() {
            return Poll::Ready(Some(value));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Sets its flag when dropped: proves that a future (which owns the guard) was dropped.
#[derive(Debug)]
pub struct DropGuard(Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A guard to move into a future, and the flag it sets when that future is dropped.
pub fn drop_guard() -> (DropGuard, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    (DropGuard(dropped.clone()), dropped)
}

/// Wraps a future and counts how many times it is polled.
pub struct CountPolls<F> {
    /// The wrapped future.
    inner: Pin<Box<F>>,
    /// Polls so far, shared with the test.
    polls: Arc<AtomicUsize>,
}

/// `future`, counting its polls into the returned counter.
pub fn count_polls<F: Future>(future: F) -> (CountPolls<F>, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = CountPolls {
        inner: Box::pin(future),
        polls: polls.clone(),
    };
    (counted, polls)
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// Polls two futures concurrently in the current task and returns both outputs.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut a_out = None;
    let mut b_out = None;
    poll_fn(|cx| {
        if a_out.is_none() {
            if let Poll::Ready(out) = a.as_mut().poll(cx) {
                a_out = Some(out);
            }
        }
        if b_out.is_none() {
            if let Poll::Ready(out) = b.as_mut().poll(cx) {
                b_out = Some(out);
            }
        }
        if a_out.is_some() && b_out.is_some() {
            Poll::Ready((a_out.take().unwrap(), b_out.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Yields to the scheduler `n` times, letting every runnable task run in between.
pub async fn yield_times(n: usize) {
    for _ in 0..n {
        ripple::task::yield_now().await;
    }
}

/// The text of a panic payload (`panic!` makes it a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<a panic payload that is not a string>".to_string()
    }
}

/// `len` bytes of a pattern that does not repeat with any small period.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 8) as u8).collect()
}

/// Echoes everything it reads back to the peer until end of stream, then shuts down its write
/// side. Returns how many bytes it echoed.
pub async fn echo(mut stream: TcpStream) -> io::Result<usize> {
    let mut buf = vec![0; 16 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.shutdown(std::net::Shutdown::Write)?;
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n;
    }
}

/// Binds an echo server on 127.0.0.1 (port 0) in a detached task of the current runtime, one
/// task per connection; returns its address. The server lives until the runtime is dropped.
pub async fn echo_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    ripple::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            ripple::spawn(echo(stream));
        }
    });
    Ok(addr)
}

/// A connected pair of ripple streams on 127.0.0.1: `(client, server)`.
pub async fn connected_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = no_hang(listener.accept()).await??;
    Ok((client, server))
}

/// A ripple client connected to a std server socket on 127.0.0.1: `(client, server)`. The std
/// side is blocking, for tests that drive the peer from plain threads.
pub async fn pair_with_std_peer() -> io::Result<(TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    // The handshake is complete (the connection sits in the backlog), so this does not block.
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// The soft and hard limits on open files of this process (`RLIMIT_NOFILE`), read from
/// `/proc/self/limits`; `u64::MAX` stands for unlimited.
pub fn open_files_limit() -> io::Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .ok_or_else(|| io::Error::other("no `Max open files` in /proc/self/limits"))?;
    let mut values = line["Max open files".len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(u64::MAX));
    match (values.next(), values.next()) {
        (Some(soft), Some(hard)) => Ok((soft, hard)),
        _ => Err(io::Error::other(format!("cannot parse `{line}`"))),
    }
}

/// The environment variable that tells a re-executed test binary which test to really run.
const CHILD_ENV: &str = "RIPPLE_TEST_CHILD";

/// Runs `body` in a child process: the test binary re-executes itself with only the test
/// `test_name` selected (it must be the test that calls this, at the root of its test crate),
/// optionally with `RLIMIT_NOFILE` lowered to `max_fds`. In the parent, checks that the child
/// ran that one test and that it passed; in the child, runs `body`.
pub fn in_child_process(
    test_name: &str,
    max_fds: Option<u32>,
    body: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test_name) {
        return body();
    }
    let exe = std::env::current_exe()?;
    let mut command = match max_fds {
        Some(n) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(exe);
            sh
        }
        None => Command::new(exe),
    };
    let output = command
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test_name)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child process running `{test_name}` failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
    );
    Ok(())
}

/// An example server running as a child process (`cargo run --all-features --example NAME --
/// 127.0.0.1:0 ARGS...`), optionally with `RLIMIT_NOFILE` lowered; killed when dropped. Its standard error is
/// collected line by line.
pub struct Example {
    /// The process.
    child: std::process::Child,
    /// Where it listens (from its `listening on ADDR` line).
    pub addr: SocketAddr,
    /// What it has written to standard error so far.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Example {
    /// Starts the example `name` with `args` after its address, the environment variables
    /// `env`, and at most `max_fds` open files if given; returns once it listens.
    pub fn start(
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        max_fds: Option<u32>,
    ) -> io::Result<Example> {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;

        let cargo = env!("CARGO");
        let mut command = match max_fds {
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(cargo);
                sh
            }
            None => Command::new(cargo),
        };
        command
            // Every feature, as the test command builds them (`hyper_hello` needs `hyper`).
            .args(["run", "--quiet", "--all-features", "--example", name])
            .args(["--", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let err = child.stderr.take().expect("stderr is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        out.read_line(&mut line)?;
        // Keep reading (and dropping) stdout, so that the server never blocks on a full pipe.
        std::thread::spawn(move || io::copy(&mut out, &mut io::sink()));
        let parsed = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok());
        let mut example = Example {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            stderr,
        };
        example.addr = parsed.ok_or_else(|| {
            io::Error::other(format!(
                "{name}: unexpected first line {line:?}; stderr: {:?}",
                example.stderr_lines()
            ))
        })?;
        Ok(example)
    }

    /// The lines written to standard error so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
