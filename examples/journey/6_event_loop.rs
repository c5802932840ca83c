//! Journey, step 6: an event loop, where epoll tells one thread which sockets are ready.
//!
//! In the guide: chapters 5 and 6, `docs/guide/05-epoll.md` and `docs/guide/06-event-loop.md`.
//!
//! This is the seeds' non-blocking event model and event loop (다중 접속 서버로의 여정,
//! "논블로킹 이벤트 모델", "이벤트루프", and "I/O 멀티플렉싱 모델": "여러 소켓을 바라보다가 준비가
//! 된 소켓부터 반환받아서 데이터를 처리"). Step 5 asked every socket "anything for me?" on every
//! lap; here the thread registers all sockets with epoll (through the `polling` crate) and
//! sleeps in `wait` until the kernel reports some of them ready, then serves exactly those.
//!
//! Because no call may block, a connection cannot keep its place in the code the way step 1's
//! loop did; its progress lives in data instead, a small state machine: `Reading` (waiting for
//! bytes, interest: readable) or `Writing` (an echo the socket did not take at once, interest:
//! writable). We register in level-triggered mode: epoll reports a socket as long as it is
//! ready, not only when it becomes ready, so we can read once per event and let the next
//! `wait` remind us of what is left, which keeps one chatty client from holding the thread. In
//! edge-triggered mode we would have to read until `WouldBlock` every time, or never hear of
//! the rest; that saves `epoll_ctl` calls (ripple's reactor does it) but is easier to get wrong.
//!
//! A ready connection takes the same non-blocking step as in steps 5 and 7 (read what is there,
//! echo what the socket takes, keep the rest), made of the same halves, `common::try_read` and
//! `common::write_now`; here `Connection::on_ready` spells it out as the state machine. What
//! changed since step 5 is not the step but who decides when to take it.
//!
//! What it costs: one thread, no CPU while idle, and per client a socket, a map entry and, only
//! while an echo is stuck, its unsent bytes. It scales to thousands of clients. Where it breaks:
//! everything runs on this one thread, so a slow handler delays every client, and one core is
//! the limit. The next step spreads the work over threads; step 8 writes this same state
//! machine as straight-line `async` code.
//!
//! Run it with `cargo run --release --example journey_event_loop [ADDR]` (default
//! `127.0.0.1:8080`), then load it with the repository's client,
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use polling::{Event, Events, PollMode, Poller};

mod common;

/// The listener's key in the poller; connections get keys from 1 up.
const LISTENER: usize = 0;

/// Where a connection is in its echo, and so which readiness it waits for.
enum State {
    /// Waiting for bytes from the client. Interest: readable.
    Reading,
    /// Echoing `buf`, of which `written` bytes are already out. Interest: writable. We read
    /// nothing more meanwhile, so a client that never reads cannot make us buffer without limit.
    Writing { buf: Vec<u8>, written: usize },
}

/// A client: its socket and its state machine.
struct Connection {
    /// The client's socket, in non-blocking mode and registered with the poller.
    stream: TcpStream,
    /// What the connection is doing, which decides its interest.
    state: State,
}

fn main() -> io::Result<()> {
    let listener = common::bind(&common::addr_from_args())?;
    listener.set_nonblocking(true)?;
    let mut connections: HashMap<usize, Connection> = HashMap::new();
    // Declared after the listener and the connections, so it is dropped before them: a socket
    // must never close while a live poller still has it registered.
    let poller = Poller::new()?;
    // SAFETY: the listener outlives its registration: it is dropped after the poller.
    unsafe { poller.add_with_mode(&listener, Event::readable(LISTENER), PollMode::Level)? };
    common::announce(&listener)?;

    let mut events = Events::new();
    let mut scratch = vec![0; 4096];
    let mut next_key = LISTENER + 1;
    // While accepting is paused (see below), the time to resume it.
    let mut resume_accept: Option<Instant> = None;
    let mut backoff = common::Backoff::default();
    loop {
        // Sleep until a socket is ready (this is where step 5 burned its CPU), or until it is
        // time to accept again.
        let timeout = resume_accept.map(|at| at.saturating_duration_since(Instant::now()));
        events.clear();
        match poller.wait(&mut events, timeout) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
        if resume_accept.is_some_and(|at| Instant::now() >= at) {
            resume_accept = None;
            poller.modify_with_mode(&listener, Event::readable(LISTENER), PollMode::Level)?;
        }
        for event in events.iter() {
            if event.key == LISTENER {
                match accept_all(&listener, &poller, &mut connections, &mut next_key) {
                    Ok(()) => backoff.accepted(),
                    // Out of descriptors or memory: the clients wait in the backlog. Sleeping
                    // would stall every connection, and the still-readable listener would wake
                    // us again at once, so we stop watching it for a while.
                    Err(err) => {
                        let pause = backoff.failed(&err);
                        poller.modify_with_mode(
                            &listener,
                            Event::none(LISTENER),
                            PollMode::Level,
                        )?;
                        resume_accept = Some(Instant::now() + pause);
                    }
                }
                continue;
            }
            let Some(conn) = connections.get_mut(&event.key) else {
                continue;
            };
            // The client closed, or the connection failed (a reset, say): forget it. Deleting
            // it from the poller first keeps the promise made when it was added.
            if !matches!(serve(&poller, event.key, conn, &mut scratch), Ok(true)) {
                if let Some(conn) = connections.remove(&event.key) {
                    let _ = poller.delete(&conn.stream);
                }
            }
        }
    }
}

/// Runs a connection's state machine and, if that changed what it waits for, tells epoll.
/// Returns `Ok(false)` once the client has closed its side.
fn serve(
    poller: &Poller,
    key: usize,
    conn: &mut Connection,
    scratch: &mut [u8],
) -> io::Result<bool> {
    let before = conn.interest(key);
    if !conn.on_ready(scratch)? {
        return Ok(false);
    }
    if conn.interest(key) != before {
        poller.modify_with_mode(&conn.stream, conn.interest(key), PollMode::Level)?;
    }
    Ok(true)
}

impl Connection {
    /// The readiness this connection waits for in its current state.
    fn interest(&self, key: usize) -> Event {
        match self.state {
            State::Reading => Event::readable(key),
            State::Writing { .. } => Event::writable(key),
        }
    }

    /// Advances the state machine as far as the socket allows without waiting. Returns
    /// `Ok(false)` once the client has closed its side.
    fn on_ready(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        match &mut self.state {
            State::Reading => {
                // One read per event; if more is waiting, level triggering reports it again.
                let n = match common::try_read(&mut self.stream, scratch)? {
                    Some(0) => return Ok(false), // The client closed its side.
                    Some(n) => n,
                    None => return Ok(true), // Nothing after all: wait for the next event.
                };
                // Echo at once: the send buffer nearly always has room, so we stay in `Reading`
                // and copy nothing. Only what the socket refuses is kept for later.
                let written = common::write_now(&mut self.stream, &scratch[..n])?;
                if written < n {
                    let buf = scratch[written..n].to_vec();
                    self.state = State::Writing { buf, written: 0 };
                }
            }
            State::Writing { buf, written } => {
                *written += common::write_now(&mut self.stream, &buf[*written..])?;
                if *written == buf.len() {
                    self.state = State::Reading;
                }
            }
        }
        Ok(true)
    }
}

/// Accepts every waiting client and registers it, readable, under a fresh key. Returns an error
/// only when the process is out of file descriptors or memory.
fn accept_all(
    listener: &TcpListener,
    poller: &Poller,
    connections: &mut HashMap<usize, Connection>,
    next_key: &mut usize,
) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            // The backlog is empty.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(err) if common::is_out_of_resources(&err) => return Err(err),
            // A client that gave up before we took it (ECONNABORTED, say): skip it. If others
            // wait, the listener is still readable and the next `wait` says so.
            Err(_) => return Ok(()),
        };
        // An accepted socket starts in blocking mode, whatever the listener's mode.
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let key = *next_key;
        *next_key += 1;
        // SAFETY: the stream goes into `connections`, and is only ever removed from there to be
        // deleted from the poller before it drops (or dropped after the poller, at exit).
        let added = unsafe { poller.add_with_mode(&stream, Event::readable(key), PollMode::Level) };
        if added.is_ok() {
            let state = State::Reading;
            connections.insert(key, Connection { stream, state });
        }
    }
}
