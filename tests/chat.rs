//! The chat example (`examples/chat.rs`): lines reach the other clients, a client that stops
//! reading is cut off without holding up anyone else, and over-long lines are refused.
//!
//! The server runs in a task of the test's own runtime, and the clients are ripple streams
//! driven by the test, so everything happens on one thread. Each wait is bounded by
//! [`util::LIMIT`]: a server that stalls makes a test fail instead of hang.

mod util;

#[allow(dead_code)]
#[path = "../examples/chat.rs"]
mod chat;

use std::io;
use std::net::SocketAddr;

use ripple::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use util::no_hang;

/// Starts the chat server on a free port of 127.0.0.1, in a task of the current runtime. The
/// server lives until the runtime is dropped.
async fn chat_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    ripple::spawn(chat::serve(listener));
    Ok(addr)
}

/// A chat client driven by a test.
struct Client {
    /// The connection to the server.
    stream: TcpStream,
    /// The client's address, which the server uses as its name.
    name: SocketAddr,
    /// Bytes received but not yet returned as lines.
    received: Vec<u8>,
}

impl Client {
    /// Connects to `server` and reads the welcome, so the client is in the room on return.
    async fn join(server: SocketAddr) -> io::Result<Client> {
        Client::welcomed(TcpStream::connect(server).await?).await
    }

    /// Like [`join`](Self::join), with the socket's receive buffer (`SO_RCVBUF`) set to
    /// `size` before connecting, so that the window the client offers stays that small.
    async fn join_with_receive_buffer(server: SocketAddr, size: usize) -> io::Result<Client> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_recv_buffer_size(size)?;
        // A blocking connect, which is immediate on loopback: the listener's kernel queue
        // completes the handshake without the server's task.
        socket.connect(&server.into())?;
        let stream = TcpStream::from_std(socket.into())?;
        Client::welcomed(stream).await
    }

    /// Reads the server's welcome on a fresh connection.
    async fn welcomed(stream: TcpStream) -> io::Result<Client> {
        let mut client = Client {
            name: stream.local_addr()?,
            stream,
            received: Vec::new(),
        };
        let welcome = client.line().await?;
        assert!(
            welcome.starts_with(&format!("* welcome, {}", client.name)),
            "expected a welcome, got {welcome:?}"
        );
        Ok(client)
    }

    /// Sends `line` and a newline.
    async fn say(&mut self, line: &str) -> io::Result<()> {
        self.stream.write_all(format!("{line}\n").as_bytes()).await
    }

    /// The next line received, without its newline; `UnexpectedEof` if the connection ends
    /// first.
    async fn raw_line(&mut self) -> io::Result<Vec<u8>> {
        let mut chunk = [0; 4096];
        loop {
            if let Some(newline) = self.received.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.received.drain(..=newline).collect();
                line.pop();
                return Ok(line);
            }
            match no_hang(self.stream.read(&mut chunk)).await?? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.received.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next line received, as text.
    async fn line(&mut self) -> io::Result<String> {
        String::from_utf8(self.raw_line().await?)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }

    /// Everything still to come until the server closes the connection.
    async fn rest(mut self) -> io::Result<Vec<u8>> {
        let mut chunk = [0; 4096];
        loop {
            match no_hang(self.stream.read(&mut chunk)).await?? {
                0 => return Ok(self.received),
                n => self.received.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Connects `N` clients one after the other; each earlier client reads each later one's
/// arrival, so that no `joined` line is left waiting in any test's way.
async fn clients<const N: usize>(server: SocketAddr) -> io::Result<[Client; N]> {
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..N {
        let client = Client::join(server).await?;
        for earlier in &mut clients {
            assert_eq!(earlier.line().await?, format!("* {} joined", client.name));
        }
        clients.push(client);
    }
    Ok(clients.try_into().unwrap_or_else(|_| unreachable!()))
}

#[ripple::test]
async fn a_line_reaches_every_other_client_but_not_its_sender() -> io::Result<()> {
    let server = chat_server().await?;
    let [mut a, mut b, mut c] = clients(server).await?;

    a.say("hello").await?;
    assert_eq!(b.line().await?, format!("{}: hello", a.name));
    assert_eq!(c.line().await?, format!("{}: hello", a.name));

    // Each outbox is first in, first out: had `a` been sent its own line, it would come first.
    b.say("hi").await?;
    assert_eq!(a.line().await?, format!("{}: hi", b.name));
    assert_eq!(c.line().await?, format!("{}: hi", b.name));
    Ok(())
}

#[ripple::test]
async fn a_client_that_leaves_is_announced_to_the_others() -> io::Result<()> {
    let server = chat_server().await?;
    let [a, mut b] = clients(server).await?;
    let name = a.name;
    drop(a);
    assert_eq!(b.line().await?, format!("* {name} left"));
    Ok(())
}

#[ripple::test]
async fn bytes_that_are_not_utf8_pass_through_unchanged() -> io::Result<()> {
    let server = chat_server().await?;
    let [mut a, mut b] = clients(server).await?;
    let text = b"caf\xc3\xa9 \xff\xfe\x00 end";
    a.stream.write_all(&[&text[..], b"\n"].concat()).await?;
    let expected = [format!("{}: ", a.name).as_bytes(), text].concat();
    assert_eq!(b.raw_line().await?, expected);
    Ok(())
}

#[ripple::test]
async fn a_client_that_stops_reading_is_cut_off_while_the_others_get_every_line_in_order(
) -> io::Result<()> {
    // More than enough to fill the slow client's outbox and every kernel buffer on the way
    // (Linux lets a send buffer grow to 4 MiB by default).
    const MAX_LINES: usize = 40_000;
    // Lines the sender sends before the fast client reads them.
    const BATCH: usize = 8;
    // Lines sent after the slow client is gone, to check that the others still get them.
    const AFTER: usize = 4 * BATCH;
    let server = chat_server().await?;
    let [mut sender, mut fast] = clients(server).await?;
    // A small receive buffer, so that the slow client's socket fills quickly. It reads its
    // welcome (in `join_with_receive_buffer`), then never reads again until it is cut off.
    let slow = Client::join_with_receive_buffer(server, 4096).await?;
    for earlier in [&mut sender, &mut fast] {
        assert_eq!(earlier.line().await?, format!("* {} joined", slow.name));
    }
    // Long lines (but within the limit), so that buffers fill after fewer of them.
    let text = |i: usize| format!("line {i:06} {}", "x".repeat(1000));
    let sender_name = sender.name;
    let said = |i: usize| format!("{sender_name}: {}", text(i));
    let left = format!("* {} left (too slow)", slow.name);

    // The sender sends a batch of lines, and the fast client must receive exactly those, in
    // order, before the next batch goes. While the slow client's socket and outbox fill up,
    // that goes on; somewhere in it comes the news that the slow client was cut off.
    let mut sent = 0;
    // How many lines the fast client had received when it heard that the slow one left.
    let mut left_after = None;
    while left_after.map_or(true, |n| sent < n + AFTER) {
        assert!(
            sent < MAX_LINES,
            "the slow client was never cut off after {sent} lines"
        );
        let batch: String = (sent..sent + BATCH).map(|i| text(i) + "\n").collect();
        sender.stream.write_all(batch.as_bytes()).await?;
        for i in sent..sent + BATCH {
            let mut line = fast.line().await?;
            if line == left {
                assert_eq!(left_after, None, "the slow client left twice");
                left_after = Some(i);
                line = fast.line().await?;
            }
            assert!(line == said(i), "expected line {i}, got {line:.40}...");
        }
        sent += BATCH;
    }
    let left_after = left_after.unwrap();

    // The slow client was disconnected, never skipped over: it got an unbroken run of the
    // first lines, in order, then perhaps part of the next line or (only between lines) the
    // notice, whole or in part, then the end of the stream.
    let got = slow.rest().await?;
    let mut whole = 0;
    let mut rest = &got[..];
    while let Some(after) = rest.strip_prefix(format!("{}\n", said(whole)).as_bytes()) {
        rest = after;
        whole += 1;
    }
    assert!(
        whole < left_after,
        "the slow client got all {left_after} lines sent before it was cut off"
    );
    let notice = chat::too_slow_notice();
    let cut_short = format!("{}\n", said(whole)).as_bytes().starts_with(rest);
    assert!(
        cut_short || notice.as_bytes().starts_with(rest),
        "after {whole} lines in order, the slow client got {:?}",
        String::from_utf8_lossy(rest)
    );
    Ok(())
}

#[ripple::test]
async fn a_burst_of_lines_in_one_write_does_not_cut_off_a_client_that_keeps_reading(
) -> io::Result<()> {
    // Many lines in one write: the server reads them a few thousand bytes at a time, each read
    // holding hundreds of lines.
    const LINES: usize = 1280;
    let server = chat_server().await?;
    let [mut sender, mut reader] = clients(server).await?;
    let burst: String = (0..LINES).map(|i| format!("{i}\n")).collect();
    sender.stream.write_all(burst.as_bytes()).await?;
    for i in 0..LINES {
        assert_eq!(reader.line().await?, format!("{}: {i}", sender.name));
    }
    Ok(())
}

#[ripple::test]
async fn a_line_longer_than_the_limit_is_refused_and_its_sender_disconnected() -> io::Result<()> {
    let server = chat_server().await?;
    let [mut a, mut b] = clients(server).await?;

    // A line of exactly the limit is fine.
    let longest = "x".repeat(chat::MAX_LINE);
    a.say(&longest).await?;
    assert_eq!(b.line().await?, format!("{}: {longest}", a.name));

    let name = a.name;
    a.say(&"y".repeat(chat::MAX_LINE + 1)).await?;
    assert_eq!(
        a.line().await?,
        format!("* line longer than {} bytes: disconnected", chat::MAX_LINE)
    );
    assert_eq!(a.rest().await?, b"", "more came after the notice");
    // None of the refused line reached the others.
    assert_eq!(b.line().await?, format!("* {name} left (line too long)"));
    Ok(())
}

#[ripple::test]
async fn a_line_that_never_ends_is_refused_once_it_passes_the_limit() -> io::Result<()> {
    let server = chat_server().await?;
    let [mut a, mut b] = clients(server).await?;
    let name = a.name;
    // No newline at all: the server must give up at the limit rather than keep buffering.
    a.stream
        .write_all("z".repeat(chat::MAX_LINE + 1).as_bytes())
        .await?;
    assert_eq!(
        a.line().await?,
        format!("* line longer than {} bytes: disconnected", chat::MAX_LINE)
    );
    assert_eq!(a.rest().await?, b"", "more came after the notice");
    assert_eq!(b.line().await?, format!("* {name} left (line too long)"));
    Ok(())
}

#[ripple::test]
async fn a_storm_of_joins_and_leaves_cuts_off_no_client_that_keeps_reading() -> io::Result<()> {
    // 1,000 connections opened and closed, 200 at a time: each wave lands 200 `joined` notices
    // in every outbox before any client's task has had a turn to write (the server accepts
    // them in a burst), and the leaves follow.
    const WAVES: usize = 5;
    const AT_ONCE: usize = 200;
    const STORM: usize = WAVES * AT_ONCE;
    let server = chat_server().await?;
    let readers: [Client; 3] = clients(server).await?;
    // Each reader reads in a task of its own until it has heard every join and every leave.
    let mut heard = Vec::new();
    for mut reader in readers {
        heard.push(ripple::spawn(async move {
            let (mut joined, mut left) = (0, 0);
            while joined < STORM || left < STORM {
                // A reader that is cut off gets the notice, then end of stream: an error here.
                let line = reader.line().await?;
                if line.starts_with("* ") && line.ends_with(" joined") {
                    joined += 1;
                } else if line.starts_with("* ") && line.contains(" left") {
                    left += 1;
                } else {
                    panic!("unexpected line {line:?}");
                }
            }
            io::Result::Ok((joined, left))
        }));
    }
    let storm = ripple::task::spawn_blocking(move || {
        for _ in 0..WAVES {
            let wave = (0..AT_ONCE)
                .map(|_| std::net::TcpStream::connect(server))
                .collect::<io::Result<Vec<_>>>()?;
            drop(wave);
        }
        io::Result::Ok(())
    });
    storm.await.expect("the storm's thread")?;
    for reader in heard {
        let (joined, left) = reader.await.expect("a reader's task")?;
        assert_eq!((joined, left), (STORM, STORM));
    }
    Ok(())
}
