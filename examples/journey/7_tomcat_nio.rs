//! Journey, step 7: Tomcat's NIO connector: an Acceptor, a Poller and a pool of Workers.
//!
//! In the guide: chapter 7, `docs/guide/07-tomcat-nio.md`.
//!
//! This is the seeds' tour of Tomcat 9's request path (톰캣의 요청 수신 방식, "NIO" and
//! "톰캣의 사용자 요청 처리과정"). Step 4's workers sat blocked in `read` waiting for their
//! clients; step 6 never blocked but did all the work on one thread. Tomcat combines them: a
//! selector thread watches every socket and gives a socket to a pool thread only once data has
//! arrived, so a worker here never waits for a client ("요청 데이터가 모두 도착한 이후에 스레드와
//! IO 자원을 할당 받는다"; in Tomcat a servlet that reads a request body still blocks until it
//! arrives). NIO is Tomcat's default connector since Tomcat 8. Three kinds of threads, named
//! after Tomcat's classes:
//!
//! - The **Acceptor** thread (`Acceptor.run`) blocks in `accept`, as Tomcat's does, makes each
//!   socket non-blocking (`NioEndpoint.setSocketOptions`), and hands it to the Poller
//!   (`Poller.register`): it pushes a `PollerEvent` onto the Poller's queue and wakes it.
//! - The **Poller** thread (`Poller.run`, here the main thread) drains that queue into its
//!   selector (`Poller.events`, `SocketChannel.register`), waits in the selector, and hands each
//!   ready socket to the worker pool (`processKey`, `processSocket`, `executor.execute`). The
//!   selector is `polling`'s epoll, in oneshot mode: a socket that fired is disarmed until it is
//!   registered again, as Tomcat drops a key's interest while a worker holds its socket, so two
//!   workers never get the same socket.
//! - The **Worker** threads (the `Executor`'s pool running `SocketProcessor.run`) read what
//!   arrived, echo it (step 5's non-blocking step, `common::try_echo`), and give the socket back
//!   to the Poller to be re-registered, the way Tomcat's processor calls `registerReadInterest`
//!   when it needs more input.
//!
//! What it costs: a fixed number of threads (1 Acceptor, 1 Poller, 8 Workers), no CPU while
//! idle, and per client a socket and a map entry; thousands of clients are fine. Where it
//! breaks: every message crosses threads twice (Poller to Worker, Worker back to Poller), with
//! a lock and a wake-up each way, and one `epoll_ctl`, the Worker's re-arm (oneshot mode
//! disarms the socket in the kernel when it fires, so the way to the Worker needs none;
//! `polling`'s `wait` adds two more per wait). Counted with `strace -f -c` for 10 clients of
//! 500 echoes each, three runs: 7,039 to 7,185 `epoll_ctl` over 1,009 to 1,082 waits, which
//! leaves 5,021 every time once two per wait are taken away: 5,000 re-arms, and the adds,
//! deletes and set-up (chapter 7 prints the command). At 1 and 10 clients each echo costs more CPU
//! than in step 6 (at 10, 13.0 against 9.48 CPU ms per 1,000 messages in `docs/journey.md`,
//! from `tools/src/bin/journey_bench/`); from 100 on the two are close (8.59 against 8.52 at
//! 100). It pays off when handlers do real work, which then runs on several cores while the
//! Poller keeps watching.
//!
//! Run it with `cargo run --release --example journey_tomcat_nio [ADDR]` (default
//! `127.0.0.1:8080`), then load it with
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`, which prints
//! `messages=10000` and its times when every echo came back.

use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use polling::{Event, Events};

mod common;

/// The Worker pool's size. Tomcat's default `maxThreads` is 200, because its workers also run
/// servlets that block on databases; ours never wait, so a few per core are plenty.
const WORKERS: usize = 8;

/// A client as it travels between the threads: Tomcat's `NioSocketWrapper`.
struct Connection {
    /// Its key in the selector, chosen by the Acceptor.
    key: usize,
    /// The client's socket, in non-blocking mode.
    stream: TcpStream,
    /// Bytes read but not yet written back. While any are left, the connection waits to be
    /// writable and reads nothing more.
    unsent: Vec<u8>,
}

/// A request to the Poller thread: Tomcat's `PollerEvent`.
enum PollerEvent {
    /// A new socket from the Acceptor: add it to the selector (Tomcat's `OP_REGISTER`).
    Register(Connection),
    /// A socket back from a Worker: re-arm its interest, which oneshot mode disarmed.
    Rearm(Connection),
}

/// The Poller: its selector and its queue of events, shared with the Acceptor and the Workers.
struct Poller {
    /// The selector: epoll, every socket registered in oneshot mode.
    ///
    /// # Invariant
    /// A socket is deleted from the selector before it is dropped (only `close` drops one),
    /// which is what `polling::Poller::add` asks of us.
    selector: polling::Poller,
    /// Sockets waiting to be (re-)registered by the Poller thread, which alone touches the
    /// selector's interest: Tomcat's `SynchronizedQueue<PollerEvent>`.
    events: Mutex<Vec<PollerEvent>>,
}

fn main() -> io::Result<()> {
    let listener = common::bind(&common::addr_from_args())?;
    let poller = Arc::new(Poller {
        selector: polling::Poller::new()?,
        events: Mutex::new(Vec::new()),
    });

    // The Executor: a queue of ready sockets and the Worker threads that take them, as in step 4.
    let (executor, ready) = mpsc::channel::<Connection>();
    let ready = Arc::new(Mutex::new(ready));
    for i in 0..WORKERS {
        let (poller, ready) = (poller.clone(), ready.clone());
        thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || work(&poller, &ready))
            .expect("cannot start the Worker threads");
    }
    common::announce(&listener)?;
    let acceptor_poller = poller.clone();
    thread::Builder::new()
        .name("acceptor".into())
        .spawn(move || accept(&listener, &acceptor_poller))
        .expect("cannot start the Acceptor thread");
    poller.run(&executor)
}

/// The Acceptor thread: accept, make non-blocking, hand to the Poller, forever.
fn accept(listener: &TcpListener, poller: &Poller) {
    for key in 0.. {
        let stream = common::accept_blocking(listener);
        if stream.set_nonblocking(true).is_ok() {
            let unsent = Vec::new();
            poller.add_event(PollerEvent::Register(Connection {
                key,
                stream,
                unsent,
            }));
        }
    }
}

impl Poller {
    /// Queues an event for the Poller thread and wakes it if it is waiting in the selector.
    fn add_event(&self, event: PollerEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
        if let Err(err) = self.selector.notify() {
            eprintln!("cannot wake the Poller: {err}");
        }
    }

    /// The Poller thread: register what was handed over, wait, dispatch what is ready.
    fn run(&self, executor: &Sender<Connection>) -> io::Result<()> {
        // The sockets armed in the selector, by key; a Worker holds the others.
        let mut armed: HashMap<usize, Connection> = HashMap::new();
        let mut events = Events::new();
        loop {
            // Tomcat's `events()`: take the whole queue at once, and release its lock quickly.
            let queued =
                std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner));
            for event in queued {
                let (conn, armed_ok) = match event {
                    PollerEvent::Register(conn) => {
                        // SAFETY: the socket is deleted before it is dropped (see `selector`).
                        let added = unsafe { self.selector.add(&conn.stream, conn.interest()) };
                        (conn, added)
                    }
                    PollerEvent::Rearm(conn) => {
                        let modified = self.selector.modify(&conn.stream, conn.interest());
                        (conn, modified)
                    }
                };
                match armed_ok {
                    Ok(()) => {
                        armed.insert(conn.key, conn);
                    }
                    Err(_) => self.close(conn),
                }
            }

            events.clear();
            if let Err(err) = self.selector.wait(&mut events, None) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Leave no socket registered behind us.
                for conn in armed.into_values() {
                    self.close(conn);
                }
                return Err(err);
            }
            // Tomcat's `processKey`: a ready socket leaves the selector's care for a Worker's.
            for event in events.iter() {
                if let Some(conn) = armed.remove(&event.key) {
                    if let Err(mpsc::SendError(conn)) = executor.send(conn) {
                        self.close(conn); // Cannot happen: the Workers never exit.
                    }
                }
            }
        }
    }

    /// Forgets a connection: deletes it from the selector, then closes it by dropping it.
    fn close(&self, conn: Connection) {
        let _ = self.selector.delete(&conn.stream);
        drop(conn);
    }
}

/// A Worker thread: take a ready socket, serve it, give it back to the Poller.
fn work(poller: &Poller, ready: &Mutex<Receiver<Connection>>) {
    let mut scratch = vec![0; 4096];
    loop {
        // The guard is a temporary: the lock is held while waiting, not while serving.
        let next = ready.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(mut conn) = next else {
            return; // The Poller is gone: no more work will come.
        };
        match conn.process(&mut scratch) {
            Ok(true) => poller.add_event(PollerEvent::Rearm(conn)),
            // The client closed, or the connection failed (a reset, say): forget it.
            Ok(false) | Err(_) => poller.close(conn),
        }
    }
}

impl Connection {
    /// What the socket waits for: writable while an echo is unfinished, else readable.
    fn interest(&self) -> Event {
        if self.unsent.is_empty() {
            Event::readable(self.key)
        } else {
            Event::writable(self.key)
        }
    }

    /// Tomcat's `SocketProcessor.run`: one read, then as much of the echo as the socket takes,
    /// which is step 5's `common::try_echo`. Returns `Ok(false)` once the client has closed its
    /// side.
    fn process(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        // One read per dispatch: if more is waiting, the re-armed socket fires again at once,
        // and meanwhile other sockets get their turn with this Worker. What the socket does not
        // take now stays in `unsent` and waits for the Poller to report it writable.
        common::try_echo(&mut self.stream, &mut self.unsent, scratch)
    }
}
