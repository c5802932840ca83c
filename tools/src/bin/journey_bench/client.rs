//! The load client: one thread, one `polling` event loop over every connection, each doing
//! ping-pong with a 64-byte message.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};
use socket2::{Domain, Socket, Type};

use crate::args::Plan;

/// Bytes per ping-pong message.
pub const MESSAGE: usize = 64;

/// Connects in flight at once. A server's accept queue holds only its backlog; connecting in
/// batches keeps a slow acceptor from seeing thousands of SYNs at the same instant.
pub const CONNECT_BATCH: usize = 100;

/// Connecting gives up after this long without a new connection. A SYN that finds the server's
/// accept queue full is dropped, and the kernel sends it again 1 s and 3 s later: a stall must
/// outlast both retries before it means the server has stopped accepting.
pub const CONNECT_STALL: Duration = Duration::from_millis(3_500);

/// Where a connection of the load is.
#[derive(PartialEq)]
enum State {
    /// Its non-blocking `connect` is in flight.
    Connecting,
    /// Connected, doing ping-pong.
    Open,
    /// Gone: did not connect, or failed under load. Its socket is closed.
    Failed,
}

/// One connection of the load.
struct Conn {
    /// The socket; `None` once the connection has failed.
    ///
    /// # Invariant
    /// While it is `Some`, it is registered with the client's poller (key: its index), and it is
    /// deleted from the poller before it is dropped.
    stream: Option<TcpStream>,
    /// Where the connection is.
    state: State,
    /// Bytes of the current message written so far.
    written: usize,
    /// Bytes of its echo read so far.
    read: usize,
    /// The echo as it arrives.
    echo: [u8; MESSAGE],
    /// When the current message was written.
    sent_at: Instant,
    /// Whether the poller also watches for writability (a message is half written).
    wants_write: bool,
    /// Echoes received since the load started.
    echoes: u64,
}

/// The load generator: every connection in one poller, driven by one thread.
pub struct Client {
    /// Readiness of every connection. Level-triggered: a socket with unread data keeps being
    /// reported, so a handler may stop reading at the end of one echo.
    poller: Poller,
    /// The connections; a connection's key in the poller is its index here.
    conns: Vec<Conn>,
    /// Connections that failed, counted by reason (connecting, then load).
    pub failures: BTreeMap<String, usize>,
    /// Whether round trips are being recorded (the window is open).
    pub recording: bool,
    /// Whether an echoed connection holds its next message (while priming).
    holding: bool,
    /// The round trips recorded, in nanoseconds.
    pub latencies: Vec<u64>,
    /// The message every connection sends.
    message: [u8; MESSAGE],
}

impl Client {
    /// A client with no connections yet.
    pub fn new() -> io::Result<Client> {
        let mut message = [0; MESSAGE];
        for (i, byte) in message.iter_mut().enumerate() {
            *byte = b'a' + (i % 26) as u8;
        }
        Ok(Client {
            poller: Poller::new()?,
            conns: Vec::new(),
            failures: BTreeMap::new(),
            recording: false,
            holding: false,
            latencies: Vec::new(),
            message,
        })
    }

    /// Connects `count` connections to `addr`, at most `CONNECT_BATCH` in flight at once. Those
    /// not connected when the plan's set-up time is over, or when no connect has completed for
    /// `CONNECT_STALL`, count as failures.
    pub fn connect_all(&mut self, addr: SocketAddr, count: usize, plan: &Plan) -> io::Result<()> {
        let deadline = Instant::now() + plan.setup_timeout;
        let mut events = Events::with_capacity(NonZeroUsize::new(1024).expect("nonzero"));
        let (mut started, mut pending, mut progress_at) = (0, 0, Instant::now());
        while started < count || pending > 0 {
            let give_up = deadline.min(progress_at + CONNECT_STALL);
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            while started < count && pending < CONNECT_BATCH {
                started += 1;
                match self.start_connect(addr) {
                    Ok(()) => pending += 1,
                    Err(err) => *self.failures.entry(err.to_string()).or_default() += 1,
                }
            }
            events.clear();
            self.poller.wait(&mut events, Some(give_up - now))?;
            for event in events.iter() {
                if self.conns[event.key].state == State::Connecting {
                    self.finish_connect(event.key);
                    pending -= 1;
                    progress_at = Instant::now();
                }
            }
        }
        // What is still in flight, or never started, did not make it in time.
        let why = if Instant::now() >= deadline {
            format!("not within the {} s limit", plan.setup_timeout.as_secs())
        } else {
            format!("no connect completed for {} s", CONNECT_STALL.as_secs_f64())
        };
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Connecting {
                self.fail(i, why.clone());
            }
        }
        if started < count {
            *self.failures.entry(why).or_default() += count - started;
        }
        Ok(())
    }

    /// Starts a non-blocking connect and registers it, watching for writability (connected).
    fn start_connect(&mut self, addr: SocketAddr) -> io::Result<()> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        // One small message in flight: never let Nagle's algorithm hold it back.
        socket.set_nodelay(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err),
        }
        let stream = TcpStream::from(socket);
        let key = self.conns.len();
        // SAFETY: the stream is stored in `conns[key]` below, and `Client::fail` and
        // `Client::drop` delete it from the poller before they drop it (the invariant on
        // `Conn::stream`).
        unsafe {
            self.poller
                .add_with_mode(&stream, Event::writable(key), PollMode::Level)?;
        }
        self.conns.push(Conn {
            stream: Some(stream),
            state: State::Connecting,
            written: 0,
            read: 0,
            echo: [0; MESSAGE],
            sent_at: Instant::now(),
            wants_write: true,
            echoes: 0,
        });
        Ok(())
    }

    /// A connecting socket became writable: it connected, or it failed.
    fn finish_connect(&mut self, i: usize) {
        let stream = self.conns[i]
            .stream
            .as_ref()
            .expect("connecting has a stream");
        let outcome = match stream.take_error() {
            Ok(None) => self
                .poller
                .modify_with_mode(stream, Event::readable(i), PollMode::Level),
            Ok(Some(err)) | Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => {
                self.conns[i].state = State::Open;
                self.conns[i].wants_write = false;
            }
            Err(err) => self.fail(i, err.to_string()),
        }
    }

    /// Connections that are open.
    pub fn open(&self) -> usize {
        self.open_where(|_| true)
    }

    /// Open connections that got no echo since the load started.
    pub fn starved(&self) -> usize {
        self.open_where(|c| c.echoes == 0)
    }

    /// Open connections for which `test` holds.
    fn open_where(&self, test: impl Fn(&Conn) -> bool) -> usize {
        self.conns
            .iter()
            .filter(|c| c.state == State::Open && test(c))
            .count()
    }

    /// Sends one message on every open connection and waits until each has its echo, so that
    /// the measured load starts with every connection accepted and served once (a fork server
    /// must not fork its last children while the first ones already compete for its core).
    /// Echoed connections hold their next message until then. Gives up at `deadline`, or when
    /// no connection got its first echo for `stall` (a server that serves only some clients).
    pub fn prime(&mut self, deadline: Instant, stall: Duration) -> io::Result<()> {
        self.holding = true;
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Open {
                self.send(i);
            }
        }
        let (mut served, mut progress_at) = (0, Instant::now());
        loop {
            let now = Instant::now();
            let served_now = self.open_where(|c| c.echoes > 0);
            if served_now > served {
                (served, progress_at) = (served_now, now);
            }
            if served_now == self.open() || now >= deadline || now >= progress_at + stall {
                break;
            }
            self.drive((now + Duration::from_millis(20)).min(deadline))?;
        }
        // Release the held connections: each whose echo is complete sends its next message.
        self.holding = false;
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Open && self.conns[i].read == MESSAGE {
                self.send(i);
            }
        }
        Ok(())
    }

    /// Runs the event loop until `until`.
    pub fn drive(&mut self, until: Instant) -> io::Result<()> {
        let mut events = Events::with_capacity(NonZeroUsize::new(1024).expect("nonzero"));
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            events.clear();
            self.poller.wait(&mut events, Some(until - now))?;
            for event in events.iter() {
                if self.conns[event.key].state != State::Open {
                    continue;
                }
                if event.writable && self.conns[event.key].written < MESSAGE {
                    self.write(event.key);
                }
                if event.readable && self.conns[event.key].state == State::Open {
                    self.read(event.key);
                }
            }
        }
    }

    /// Starts a new message on connection `i`.
    fn send(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        conn.written = 0;
        conn.read = 0;
        conn.sent_at = Instant::now();
        self.write(i);
    }

    /// Writes what is left of connection `i`'s message; watches for writability if the socket
    /// could not take all of it.
    fn write(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let stream = conn.stream.as_mut().expect("open has a stream");
        while conn.written < MESSAGE {
            match stream.write(&self.message[conn.written..]) {
                Ok(n) => conn.written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => return self.fail(i, err.to_string()),
            }
        }
        let wants_write = conn.written < MESSAGE;
        if wants_write != conn.wants_write {
            conn.wants_write = wants_write;
            let interest = if wants_write {
                Event::all(i)
            } else {
                Event::readable(i)
            };
            let stream = conn.stream.as_ref().expect("open has a stream");
            if let Err(err) = self
                .poller
                .modify_with_mode(stream, interest, PollMode::Level)
            {
                self.fail(i, err.to_string());
            }
        }
    }

    /// Reads connection `i`'s echo; when it is whole, records the round trip and sends again.
    fn read(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let stream = conn.stream.as_mut().expect("open has a stream");
        // A connection holding after its echo expects nothing: read one byte to tell a close
        // from bytes it was never sent.
        let mut extra = [0; 1];
        let idle = conn.read == MESSAGE;
        loop {
            let buf = if idle {
                &mut extra[..]
            } else {
                &mut conn.echo[conn.read..]
            };
            match stream.read(buf) {
                Ok(0) => return self.fail(i, "closed by the server".into()),
                Ok(_) if idle => return self.fail(i, "echoed bytes it was not sent".into()),
                Ok(n) => conn.read += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // Level-triggered: the poller will report the rest when it arrives.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => return self.fail(i, err.to_string()),
            }
            if conn.read == MESSAGE {
                break;
            }
        }
        if conn.echo != self.message {
            return self.fail(i, "echoed other bytes".into());
        }
        conn.echoes += 1;
        if self.recording {
            self.latencies
                .push(conn.sent_at.elapsed().as_nanos() as u64);
        }
        // While priming, the connection waits (its `read` stays at MESSAGE) for the others.
        if self.holding {
            return;
        }
        self.send(i);
    }

    /// Ends connection `i` for `reason`: deletes it from the poller, closes it, counts it.
    fn fail(&mut self, i: usize, reason: String) {
        let conn = &mut self.conns[i];
        if let Some(stream) = conn.stream.take() {
            let _ = self.poller.delete(&stream);
        }
        conn.state = State::Failed;
        *self.failures.entry(reason).or_default() += 1;
    }
}

impl Drop for Client {
    /// Deletes every socket from the poller before the sockets close (`polling`'s contract).
    fn drop(&mut self) {
        for conn in &self.conns {
            if let Some(stream) = &conn.stream {
                let _ = self.poller.delete(stream);
            }
        }
    }
}
