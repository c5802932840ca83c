//! A line-based chat server: every line a client sends goes to every other connected client.
//!
//! What it shows is *backpressure*: what to do when a consumer is slower than its producer.
//! The seed on streams (sync, async and reactive) describes TCP's own answer between two
//! machines: when an application stops reading, its kernel receive buffer fills, the window
//! shrinks to zero and the sender has to wait. A chat server breaks that chain, because one
//! line fans out to every client. If the server wrote each line to each client in turn and
//! waited for every write, a single client that stopped reading would fill its socket, the
//! broadcast would wait on it, the sender's lines would pile up in *its* socket, and the whole
//! room would stall behind the slowest reader.
//!
//! Reactive streams, the seed's third model, handle this with *demand*: the consumer says how
//! many items it can take (`request(n)`), and the producer never sends more than that. A chat
//! room cannot make its members type more slowly, so here demand takes the form of an
//! **outbox** per client, bounded by what the client fails to take. The broadcaster only ever
//! appends to outboxes and never waits on a client's socket; each client's own task drains its
//! outbox into its socket at whatever pace that client reads. A slow client costs at most its
//! outbox plus its kernel buffers, and it delays nobody else.
//!
//! **The rule that cuts a client off measures the client, not the server.** A client is too
//! slow when its socket is full (the kernel holds all it will take: the client has stopped
//! reading, or reads more slowly than the room talks) *and* more than [`BEHIND_LIMIT`] bytes
//! wait in its outbox on top of that. A count of queued lines alone would not do: when 200
//! clients connect at once, 200 `joined` notices land in every outbox before any client's task
//! has had a turn to write, and a client that reads perfectly well would be cut off for the
//! server's own delay (an earlier version did exactly that). While the socket takes what it is
//! given, the outbox may grow, up to [`OUTBOX_LIMIT`] bytes, a bound on memory that no reader
//! which keeps up comes near.
//!
//! When a client falls that far behind, the server must choose: drop lines for that client, or
//! disconnect it. **This server disconnects it**, as IRC servers do ("SendQ exceeded") and as
//! Redis does with `client-output-buffer-limit` (whose "soft limit" is also a backlog that must
//! last, not a size alone). Dropping lines would leave silent holes in the
//! client's conversation, and a reply read without the line it answers can mislead. A client
//! that is a whole outbox plus its kernel buffers behind has almost always stopped reading for
//! good (a suspended laptop, a stuck process) rather than paused for a moment. Disconnecting
//! frees its memory at once, and the client can tell that something happened and reconnect.
//! The server tries to tell it why with a last line, but only if the socket has room for it at
//! that moment and the client is between two lines. Waiting for room would mean waiting on the
//! very client that stopped reading, so a client that stopped reading usually just sees the
//! connection close after the lines that were already in the kernel's buffers.
//!
//! Lines longer than [`MAX_LINE`] bytes (not counting the newline) are refused: the client is
//! told and disconnected, so a client that never sends a newline cannot make the server buffer
//! without limit. The server never decodes a line: bytes that are not UTF-8 pass through
//! unchanged, prefixed with the sender's address. A final line without a newline is sent on
//! when its client disconnects.
//!
//! Each client has one task, which races three branches: reading lines (and handing each to
//! the room), writing the outbox to the socket, and waiting to be cut off. Whichever finishes
//! first ends the connection, and the other two are dropped with it.
//!
//! Run it with `cargo run --release --example chat [ADDR]` (default `127.0.0.1:8080`). Any line
//! client will do; bash alone is one (its `/dev/tcp` files connect a descriptor): open a few
//! with the first line below, type, and end each with Ctrl-D. To watch a slow reader get cut
//! off, use three terminals for the next three:
//!
//! ```text
//! bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; cat <&3 & cat >&3; kill $!'  # type and read
//! bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; cat <&3' | grep -v ': hello$'  # keeps up
//! bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; sleep 3600'   # never reads
//! yes hello > /dev/tcp/127.0.0.1/8080                      # the flood (Ctrl-C ends it)
//! ```
//!
//! (The last line and the storm below need bash as the shell you type them in.) Within a second
//! or so (the kernel buffers, then the outbox fill up), the reader that keeps up shows
//! `* ADDR left (too slow)` about the client that never reads, and stays connected itself. And
//! a storm of joins and leaves (`for i in $(seq 1000); do : <> /dev/tcp/127.0.0.1/8080; done`)
//! fills its terminal with notices but cuts nobody off.
//!
//! Most of that backlog sits in the kernel, not in the outbox. Linux grows a socket's send
//! buffer as the connection goes (up to the last value of `net.ipv4.tcp_wmem`, 4 MiB by
//! default), even towards a client that offers a tiny window: in `tests/chat.rs`, a client with
//! a 4 KiB receive buffer that never reads is cut off after about 2,800 lines of 1 KB (2.8 MB)
//! on the project's machine (Linux 6.18, 2026-11-22), and only 64 KiB of those lines were ever
//! in its outbox at once. A server that wants the outbox to be the real limit would also give
//! each accepted socket a small `SO_SNDBUF` (`socket2::SockRef::from(&stream)`).

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use ripple::net::tcp::{ReadHalf, WriteHalf};
use ripple::net::{TcpListener, TcpStream};
use ripple::time::timeout;

/// How many bytes may wait for a client whose socket is full: past that, the client is cut
/// off. A client whose socket is full takes nothing at all, and the kernel already holds what
/// it has not read (up to 4 MiB of send buffer on Linux); 64 KiB more is a generous margin for
/// a client that is only pausing.
pub const BEHIND_LIMIT: usize = 64 * 1024;

/// How many bytes may wait for a client in any case: a bound on the outbox's memory. A client
/// that reads keeps its outbox far below it: each reader yields after every line it hands to
/// the room (see [`read_lines`]), so between two turns of a client's task the room adds about
/// one line per client (and a notice per client that joins or leaves).
pub const OUTBOX_LIMIT: usize = 1024 * 1024;

/// The longest line a client may send, in bytes, not counting the newline.
pub const MAX_LINE: usize = 1024;

/// How long a closing connection waits for its client to hang up first (see [`linger`]).
const LINGER: Duration = Duration::from_secs(1);

#[ripple::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener).await;
    Ok(())
}

/// Runs the chat room on `listener` until the listener fails.
pub async fn serve(listener: TcpListener) {
    let room = Arc::new(Room::default());
    // Accepts, pausing (and saying so, once) while the process is out of file descriptors.
    let mut incoming = listener.incoming();
    loop {
        match incoming.accept().await {
            Ok((stream, peer)) => {
                ripple::spawn(client(stream, peer, room.clone()));
            }
            // The listener itself is broken: nothing more will come.
            Err(err) => {
                eprintln!("accept failed: {err}; no more clients");
                return;
            }
        }
    }
}

/// Why a client's connection ended.
#[derive(Debug)]
enum End {
    /// The client closed the connection.
    Left,
    /// Reading from or writing to the client failed.
    Failed(io::Error),
    /// The client sent a line longer than [`MAX_LINE`].
    TooLong,
    /// The client fell [`BEHIND_LIMIT`] bytes behind with its socket full, or its outbox
    /// reached [`OUTBOX_LIMIT`].
    TooSlow,
}

impl End {
    /// How the room hears of the client's departure: ` (too slow)` in `* ADDR left (too slow)`.
    fn reason(&self) -> String {
        match self {
            End::Left => String::new(),
            End::Failed(err) => format!(" ({err})"),
            End::TooLong => " (line too long)".into(),
            End::TooSlow => " (too slow)".into(),
        }
    }

    /// The last line the client itself gets, if the server disconnects it.
    fn notice(&self) -> Option<String> {
        match self {
            End::Left | End::Failed(_) => None,
            End::TooLong => Some(format!(
                "* line longer than {MAX_LINE} bytes: disconnected\n"
            )),
            End::TooSlow => Some(too_slow_notice()),
        }
    }
}

/// Serves one client until it leaves, fails, sends a line that is too long, or falls too far
/// behind.
async fn client(mut stream: TcpStream, addr: SocketAddr, room: Arc<Room>) {
    // Chat lines are small: send each at once rather than let Nagle's algorithm hold it back.
    let _ = stream.set_nodelay(true);
    let outbox = room.join(addr);
    // Whether the client has received whole lines only, so that a notice would not be glued
    // to half a line.
    let mut at_line_start = true;
    let (reader, writer) = stream.split();
    // Whichever branch finishes first ends the connection; the others are dropped.
    let end = race(
        read_lines(reader, addr, &room),
        race(
            write_lines(writer, &outbox, &mut at_line_start),
            outbox.cut_off(),
        ),
    )
    .await;
    room.leave(addr, &end);
    if let Some(notice) = end.notice() {
        if at_line_start {
            try_write(&stream, notice.as_bytes()).await;
        }
    }
    linger(stream).await;
}

/// Reads lines from the client and hands each to the room, until the connection ends or a
/// line is too long.
async fn read_lines(mut reader: ReadHalf<'_>, addr: SocketAddr, room: &Room) -> End {
    let mut chunk = vec![0; 4096];
    // The line being received. It never grows past `MAX_LINE`, whatever the client sends.
    let mut line = Vec::with_capacity(MAX_LINE);
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) => {
                if !line.is_empty() {
                    room.broadcast(addr, said(addr, &line));
                }
                return End::Left;
            }
            Ok(n) => n,
            Err(err) => return End::Failed(err),
        };
        // One read may hold many lines, or part of one.
        let mut rest = &chunk[..n];
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            if line.len() + newline > MAX_LINE {
                return End::TooLong;
            }
            line.extend_from_slice(&rest[..newline]);
            room.broadcast(addr, said(addr, &line));
            line.clear();
            rest = &rest[newline + 1..];
            // Let the clients' tasks write this line before we queue the next. Without this,
            // one read holding hundreds of short lines would pile them all into every outbox
            // before any writer had a turn.
            ripple::task::yield_now().await;
        }
        // The start of a line whose newline has not arrived yet.
        if line.len() + rest.len() > MAX_LINE {
            return End::TooLong;
        }
        line.extend_from_slice(rest);
    }
}

/// Writes the outbox's lines to the client, oldest first, until a write fails. Keeps
/// `at_line_start` up to date, since this future may be dropped in the middle of a line, and
/// tells the outbox whenever the socket is full.
async fn write_lines(writer: WriteHalf<'_>, outbox: &Outbox, at_line_start: &mut bool) -> End {
    loop {
        let line = outbox.next().await;
        *at_line_start = false;
        let mut written = 0;
        while written < line.len() {
            // `poll_write` rather than `write_all`, to see when the socket is full: a write
            // the kernel takes only part of says so (a `Pending` alone may be the runtime's
            // budget asking the task to yield). While it is full the client takes nothing
            // (see `Outbox::push`); a write taken whole says it has room again.
            let wanted = line.len() - written;
            match poll_fn(|cx| writer.poll_write(cx, &line[written..])).await {
                Ok(0) => return End::Failed(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    outbox.set_socket_full(n < wanted);
                    written += n;
                }
                Err(err) => return End::Failed(err),
            }
        }
        *at_line_start = true;
    }
}

/// The last line of a client cut off for being too slow.
pub fn too_slow_notice() -> String {
    format!(
        "* too slow: your connection stopped taking lines with {} KiB more waiting: \
         disconnected\n",
        BEHIND_LIMIT / 1024
    )
}

/// `line` as the others see it: `ADDR: line` and a newline.
fn said(addr: SocketAddr, line: &[u8]) -> Arc<[u8]> {
    let mut out = format!("{addr}: ").into_bytes();
    out.extend_from_slice(line);
    out.push(b'\n');
    out.into()
}

/// The clients in the chat, each with its outbox.
#[derive(Debug, Default)]
struct Room {
    /// Every connected client, by its address (unique among open connections).
    clients: Mutex<HashMap<SocketAddr, Arc<Outbox>>>,
}

impl Room {
    /// Adds a client: greets it, tells the others, and returns its outbox.
    fn join(&self, addr: SocketAddr) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox::default());
        {
            let mut clients = lock(&self.clients);
            let others = match clients.len() {
                1 => "1 other".to_string(),
                n => format!("{n} others"),
            };
            let welcome = format!("* welcome, {addr}; {others} here\n");
            // The client's task has not polled its outbox yet: there is nobody to wake.
            let _ = outbox.push(welcome.into_bytes().into());
            clients.insert(addr, outbox.clone());
        }
        self.broadcast(addr, format!("* {addr} joined\n").into_bytes().into());
        outbox
    }

    /// Removes a client and tells the others why it left.
    fn leave(&self, addr: SocketAddr, end: &End) {
        lock(&self.clients).remove(&addr);
        let line = format!("* {addr} left{}\n", end.reason());
        self.broadcast(addr, line.into_bytes().into());
    }

    /// Queues `line` for every client but `from`. Never waits: a full outbox cuts its client
    /// off instead of holding up the others.
    fn broadcast(&self, from: SocketAddr, line: Arc<[u8]>) {
        let mut wakers = Vec::new();
        for (addr, outbox) in lock(&self.clients).iter() {
            if *addr != from {
                wakers.extend(outbox.push(line.clone()));
            }
        }
        // Wake after unlocking, so that no woken task could find the room still locked.
        for waker in wakers {
            waker.wake();
        }
    }
}

/// The lines waiting for one client: filled by broadcasts, drained by the client's own task.
///
/// A mutex, although the runtime has one thread, because `ripple::spawn` requires `Send`
/// futures, and those share the outbox.
#[derive(Debug, Default)]
struct Outbox {
    /// The queue and its waker.
    state: Mutex<OutboxState>,
    /// Whether the client's last write was taken only in part: its socket is full (set and
    /// cleared by its writer).
    socket_full: AtomicBool,
}

/// What [`Outbox`]'s mutex guards.
#[derive(Debug, Default)]
struct OutboxState {
    /// Lines to write, oldest first.
    lines: VecDeque<Arc<[u8]>>,
    /// The bytes of `lines`: never more than [`OUTBOX_LIMIT`], nor more than [`BEHIND_LIMIT`]
    /// while the socket is full.
    bytes: usize,
    /// The client fell too far behind and is being disconnected. Once set, `lines` stays
    /// empty.
    cut_off: bool,
    /// The client's task, while it waits for a line or to be cut off.
    waker: Option<Waker>,
}

impl Outbox {
    /// Queues `line`, or cuts the client off if that would put it too far behind: more than
    /// [`BEHIND_LIMIT`] bytes waiting while its socket is full, or more than [`OUTBOX_LIMIT`]
    /// in any case. Returns the waker of the client's task, for the caller to wake once it
    /// holds no lock.
    fn push(&self, line: Arc<[u8]>) -> Option<Waker> {
        let mut state = lock(&self.state);
        if state.cut_off {
            return None;
        }
        let bytes = state.bytes + line.len();
        let limit = if self.socket_full.load(Ordering::Relaxed) {
            BEHIND_LIMIT
        } else {
            OUTBOX_LIMIT
        };
        if bytes <= limit {
            state.lines.push_back(line);
            state.bytes = bytes;
        } else {
            // The policy: disconnect, never skip lines. Free the queued lines now, since they
            // will not be written.
            state.cut_off = true;
            state.lines = VecDeque::new();
            state.bytes = 0;
        }
        state.waker.take()
    }

    /// Records whether the client's last write found its socket full.
    fn set_socket_full(&self, full: bool) {
        self.socket_full.store(full, Ordering::Relaxed);
    }

    /// The oldest queued line, once there is one.
    async fn next(&self) -> Arc<[u8]> {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            match state.lines.pop_front() {
                Some(line) => {
                    state.bytes -= line.len();
                    Poll::Ready(line)
                }
                None => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Finishes with [`End::TooSlow`] once a line has found the outbox full.
    ///
    /// This is a branch of its own because the client's task may be waiting on its socket,
    /// not on the outbox, when that happens: a client that stopped reading leaves its writer
    /// waiting for room forever.
    async fn cut_off(&self) -> End {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.cut_off {
                Poll::Ready(End::TooSlow)
            } else {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Runs two futures in the current task until either finishes; returns its output and drops
/// the other.
async fn race<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| match a.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(out),
        Poll::Pending => b.as_mut().poll(cx),
    })
    .await
}

/// Writes as much of `notice` as the socket takes right now, without waiting for room.
async fn try_write(stream: &TcpStream, notice: &[u8]) {
    // Polled once: `Pending` means the send buffer is full, and the notice is skipped.
    let _ = poll_fn(|cx| Poll::Ready(stream.poll_write(cx, notice))).await;
}

/// Closes the connection without losing what was written last.
///
/// Closing a socket that still has unread input makes the kernel send a reset, which can
/// destroy the lines (and the notice) the client has not read yet. So we only shut down our
/// side, then read and discard until the client closes too, or [`LINGER`] has passed.
async fn linger(mut stream: TcpStream) {
    // The client may be gone already; there is nobody to tell.
    let _ = stream.shutdown(Shutdown::Write);
    let mut buf = vec![0; 4096];
    let drain = async { while let Ok(1..) = stream.read(&mut buf).await {} };
    let _ = timeout(LINGER, drain).await;
}

/// Locks `mutex`. A panic while it was held cannot leave a queue or a map half-changed, so a
/// poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
