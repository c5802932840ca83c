//! A whole async runtime in one file: an executor, a reactor over `polling`, one hand-written
//! socket future, and a TCP echo server on top of them.
//!
//! In the guide: chapter 8a, `docs/guide/08a-build-it-yourself.md`, which explains each piece
//! and maps it onto ripple's files. Nothing here uses ripple: only `std` and `polling`.
//!
//! Run it with `cargo run --release --example tiny_runtime [ADDR]` (default
//! `127.0.0.1:8080`), then load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use polling::{Event, Events, Poller};

/// The runtime: a run queue of tasks, and a reactor (epoll, and a waker per waiting socket).
struct Runtime {
    /// Tasks that were woken and wait for their next poll.
    queue: Mutex<VecDeque<Arc<Task>>>,
    /// The epoll instance every socket is registered in.
    poller: Poller,
    /// For each waiting socket, by its fd (epoll's key for it), the waker of its task.
    wakers: Mutex<HashMap<usize, Waker>>,
}

/// The one runtime of this process, made on first use.
fn rt() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime {
        queue: Mutex::new(VecDeque::new()),
        poller: Poller::new().expect("cannot create an epoll instance"),
        wakers: Mutex::new(HashMap::new()),
    })
}

/// A spawned future. `Send` because its waker may be called from any thread.
struct Task {
    /// The future, or `None` once it finished: dropping it is the end of the task.
    future: Mutex<Option<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl Wake for Task {
    /// Waking a task puts it back on the run queue.
    fn wake(self: Arc<Self>) {
        rt().queue.lock().unwrap().push_back(self);
    }
}

impl Task {
    /// Polls the future once, with a waker that is this task.
    fn run(self: Arc<Self>) {
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        let mut slot = self.future.lock().unwrap();
        if let Some(future) = slot.as_mut() {
            if future.as_mut().poll(&mut cx).is_ready() {
                *slot = None;
            }
        }
    }
}

/// Runs `future` as a task. It may move to and be woken from another thread (`Send`) and
/// outlive the caller's stack frame (`'static`).
fn spawn(future: impl Future<Output = ()> + Send + 'static) {
    let future = Mutex::new(Some(Box::pin(future) as Pin<Box<_>>));
    Arc::new(Task { future }).wake();
}

/// The event loop: run every queued task, then sleep in epoll and wake the tasks it names.
fn run_forever(main: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
    spawn(main);
    let mut events = Events::new();
    loop {
        // The queue's lock is released at the end of this line, before the task runs (and
        // perhaps spawns or wakes, which locks the queue again).
        let next = rt().queue.lock().unwrap().pop_front();
        if let Some(task) = next {
            task.run();
            continue;
        }
        events.clear();
        rt().poller.wait(&mut events, None)?;
        let mut wakers = rt().wakers.lock().unwrap();
        let ready: Vec<Waker> = events
            .iter()
            .filter_map(|e| wakers.remove(&e.key))
            .collect();
        drop(wakers); // Wake with no lock held: a waker may run any code.
        ready.into_iter().for_each(Waker::wake);
    }
}

/// A non-blocking socket registered in the reactor, under its fd as the key.
struct Async<T: AsFd>(T);

impl<T: AsFd + AsRawFd> Async<T> {
    /// Registers `io`, which must already be in non-blocking mode, with no interest yet.
    fn new(io: T) -> io::Result<Async<T>> {
        // SAFETY: `polling` asks that the fd be deleted before it is closed. `Async` owns `io`,
        // and its `Drop` deletes the fd before the field is dropped, which closes it.
        unsafe { rt().poller.add(&io, Event::none(io.as_raw_fd() as usize))? };
        Ok(Async(io))
    }

    /// Runs `op` until it does not answer `WouldBlock`, waiting for `interest` in between.
    async fn io<R>(
        &self,
        interest: fn(usize) -> Event,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            match op(&self.0) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
            let fd = self.0.as_fd();
            Ready {
                fd,
                interest,
                armed: false,
            }
            .await?;
        }
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        let _ = rt().poller.delete(self.0.as_fd());
    }
}

/// The hand-written future: ready once epoll reports `interest` on the socket `fd`.
struct Ready<'a> {
    fd: BorrowedFd<'a>,
    /// `Event::readable` or `Event::writable`.
    interest: fn(usize) -> Event,
    /// Whether the interest is armed in epoll (oneshot: one event, then disarmed).
    armed: bool,
}

impl Future for Ready<'_> {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let key = self.fd.as_raw_fd() as usize;
        let mut wakers = rt().wakers.lock().unwrap();
        // The event loop removes the waker when the event comes: a missing waker means "fired".
        if self.armed && !wakers.contains_key(&key) {
            return Poll::Ready(Ok(()));
        }
        // Keep the waker of the latest poll: the future may have moved to another task.
        match wakers.get_mut(&key) {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => {
                wakers.insert(key, cx.waker().clone());
            }
        }
        if !self.armed {
            rt().poller.modify(self.fd, (self.interest)(key))?;
            self.armed = true;
        }
        Poll::Pending
    }
}

impl Drop for Ready<'_> {
    /// Cancellation: a dropped future takes its waker back, so no event wakes a task for it.
    fn drop(&mut self) {
        let key = self.fd.as_raw_fd() as usize;
        rt().wakers.lock().unwrap().remove(&key);
    }
}

/// Echoes what one client sends until it closes.
async fn echo(stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    let stream = Async::new(stream)?;
    let mut buf = [0; 1024];
    loop {
        let n = stream.io(Event::readable, |mut s| s.read(&mut buf)).await?;
        if n == 0 {
            return Ok(());
        }
        let mut sent = 0;
        while sent < n {
            sent += stream
                .io(Event::writable, |mut s| s.write(&buf[sent..n]))
                .await?;
        }
    }
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080"))?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    let listener = Async::new(listener)?;
    run_forever(async move {
        loop {
            match listener.io(Event::readable, |l| l.accept()).await {
                Ok((stream, _)) => spawn(async {
                    let _ = echo(stream).await;
                }),
                Err(e) => eprintln!("accept failed: {e}"),
            }
        }
    })
}
