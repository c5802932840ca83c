//! The `hello_http` example, driven over real sockets.
//!
//! Each test starts the example as a child process (`cargo run --example hello_http`) on a port
//! the kernel picks, talks to it with blocking `std` sockets, and kills it when done. Reads time
//! out after a few seconds, so a server that stops answering fails the test instead of hanging.
//!
//! The last test also starts the example's tokio twin (`tools/src/bin/hello_http_tokio.rs`, which
//! `cargo bench --bench net` compares it with) and checks that both answer the same requests
//! with the same bytes: the comparison is fair only while they do the same work.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a client waits for the server before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The server under test, as `cargo run` names it.
const EXAMPLE: &[&str] = &["--example", "hello_http"];

/// Its tokio twin, a binary of the `ripple-tools` package.
const TOKIO_TWIN: &[&str] = &["-p", "ripple-tools", "--bin", "hello_http_tokio"];

/// A running `hello_http` example, killed when dropped.
struct Server {
    /// The example's process.
    child: Child,
    /// The address it listens on.
    addr: SocketAddr,
    /// What it prints after its first line (kept open: a closed pipe would fail its prints).
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Server {
    /// Starts the example with the default idle timeout.
    fn start() -> io::Result<Server> {
        Server::start_with_idle(None)
    }

    /// Starts the example, with an idle timeout of `idle_ms` if given.
    fn start_with_idle(idle_ms: Option<u64>) -> io::Result<Server> {
        Server::start_program(EXAMPLE, idle_ms)
    }

    /// Starts the server that `cargo run` calls `program`, with an idle timeout of `idle_ms` if
    /// given.
    fn start_program(program: &[&str], idle_ms: Option<u64>) -> io::Result<Server> {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["run", "--quiet"])
            .args(program)
            .args(["--", "127.0.0.1:0"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped());
        if let Some(ms) = idle_ms {
            command.env("RIPPLE_HTTP_IDLE_MS", ms.to_string());
        }
        // From here on, dropping `server` kills the child, even if start-up fails.
        let mut server = Server {
            child: command.spawn()?,
            addr: ([0, 0, 0, 0], 0).into(),
            stdout: None,
        };
        let stdout = server.child.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        server.stdout = Some(stdout);
        server.addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected first line: {line:?}")))?;
        Ok(server)
    }

    /// Sends `request` on a new connection, closes the sending side, and returns every byte
    /// the server sent until it closed the connection.
    fn exchange(&self, request: &[u8]) -> io::Result<Vec<u8>> {
        let mut client = self.connect()?;
        client.send(request)?;
        client.stream.shutdown(std::net::Shutdown::Write)?;
        let mut answer = Vec::new();
        client.stream.read_to_end(&mut answer)?;
        Ok(answer)
    }

    /// Opens a connection to the server.
    fn connect(&self) -> io::Result<Client> {
        let stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client that sends raw bytes and reads whole responses.
struct Client {
    /// The connection.
    stream: TcpStream,
    /// Bytes received but not yet returned as part of a response.
    buf: Vec<u8>,
}

/// A parsed response.
#[derive(Debug)]
struct Response {
    /// The status code.
    status: u16,
    /// The `Connection` header, if any.
    connection: Option<String>,
    /// The body.
    body: Vec<u8>,
}

impl Client {
    /// Sends `request` in one write.
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.stream.write_all(request)
    }

    /// Reads one response: its head, then `Content-Length` bytes of body.
    fn response(&mut self) -> io::Result<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            let status = response.parse(&self.buf).map_err(io::Error::other)?;
            if let httparse::Status::Complete(head) = status {
                let header = |name: &str| {
                    let found = response.headers.iter().find(|h| h.name == name);
                    found.map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let length: usize = header("Content-Length")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| io::Error::other("no Content-Length"))?;
                let (status, connection) = (response.code.unwrap_or(0), header("Connection"));
                while self.buf.len() < head + length {
                    self.fill()?;
                }
                let body = self.buf[head..head + length].to_vec();
                self.buf.drain(..head + length);
                return Ok(Response {
                    status,
                    connection,
                    body,
                });
            }
            self.fill()?;
        }
    }

    /// Reads more bytes into the buffer; end of stream is an error here.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0; 4096];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Checks that the server closed the connection cleanly, with nothing more to read.
    fn assert_closed(&mut self) -> io::Result<()> {
        assert!(self.buf.is_empty(), "unread bytes: {:?}", self.buf);
        let n = self.stream.read(&mut [0; 64])?;
        assert_eq!(n, 0, "the server sent more instead of closing");
        Ok(())
    }
}

/// A plain GET.
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Checks that `response` is the example's `Hello, world!`.
fn assert_hello(response: &Response) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"Hello, world!", "{response:?}");
}

#[test]
fn get_is_answered_with_hello_world() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    client.send(GET)?;
    let response = client.response()?;
    assert_hello(&response);
    assert_eq!(response.connection.as_deref(), Some("keep-alive"));
    Ok(())
}

#[test]
fn keep_alive_connection_answers_sequential_requests() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    for _ in 0..3 {
        client.send(GET)?;
        assert_hello(&client.response()?);
    }
    Ok(())
}

#[test]
fn pipelined_requests_are_answered_in_order() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    // Only the last request asks to close, so its answer must come last.
    let close = b"GET /3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    client.send(&[GET, GET, close].concat())?;
    for expected in ["keep-alive", "keep-alive", "close"] {
        let response = client.response()?;
        assert_hello(&response);
        assert_eq!(response.connection.as_deref(), Some(expected));
    }
    client.assert_closed()
}

#[test]
fn request_body_is_skipped_before_the_next_pipelined_request() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    // Parsed as a request line, the body `[1,2]` would be a 400.
    let post = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n[1,2]";
    client.send(&[post.as_slice(), GET].concat())?;
    assert_hello(&client.response()?);
    assert_hello(&client.response()?);
    Ok(())
}

#[test]
fn request_body_arriving_after_the_answer_is_skipped_too() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    client.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n[1")?;
    assert_hello(&client.response()?);
    client.send(&[b",2]".as_slice(), GET].concat())?;
    assert_hello(&client.response()?);
    Ok(())
}

#[test]
fn request_head_split_across_writes_is_answered() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    let (first, second) = GET.split_at(10);
    client.send(first)?;
    std::thread::sleep(Duration::from_millis(50));
    client.send(second)?;
    assert_hello(&client.response()?);
    Ok(())
}

#[test]
fn request_head_over_8_kib_gets_431_and_close() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    let big = "a".repeat(9 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
    client.send(request.as_bytes())?;
    let response = client.response()?;
    assert_eq!(response.status, 431, "{response:?}");
    assert_eq!(response.connection.as_deref(), Some("close"));
    client.assert_closed()
}

#[test]
fn request_with_too_many_headers_gets_431_and_close() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    let headers: String = (0..40).map(|i| format!("X-{i}: {i}\r\n")).collect();
    client.send(format!("GET / HTTP/1.1\r\n{headers}\r\n").as_bytes())?;
    assert_eq!(client.response()?.status, 431);
    client.assert_closed()
}

#[test]
fn malformed_request_line_gets_400_and_close() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    client.send(b"GARBAGE\r\n\r\n")?;
    let response = client.response()?;
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(response.connection.as_deref(), Some("close"));
    client.assert_closed()
}

#[test]
fn chunked_request_body_gets_501_and_close() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    client.send(
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )?;
    assert_eq!(client.response()?.status, 501);
    client.assert_closed()
}

#[test]
fn connection_close_is_answered_then_closed() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let response = client.response()?;
    assert_hello(&response);
    assert_eq!(response.connection.as_deref(), Some("close"));
    client.assert_closed()
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    client.send(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")?;
    assert_eq!(client.response()?.connection.as_deref(), Some("keep-alive"));
    client.send(b"GET / HTTP/1.0\r\n\r\n")?;
    assert_hello(&client.response()?);
    client.assert_closed()
}

#[test]
fn idle_connection_is_closed_after_the_timeout() -> io::Result<()> {
    let server = Server::start_with_idle(Some(300))?;
    let mut client = server.connect()?;
    client.send(GET)?;
    assert_hello(&client.response()?);
    // Then say nothing: the server should hang up on its own, well before READ_TIMEOUT.
    let start = Instant::now();
    client.assert_closed()?;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "closed after {waited:?}");
    Ok(())
}

#[test]
fn huge_request_head_still_arriving_gets_431_rather_than_a_reset() -> io::Result<()> {
    let server = Server::start()?;
    let mut client = server.connect()?;
    // The server stops reading after 8 KiB; the rest is still in flight when it answers.
    let huge = "a".repeat(64 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Huge: {huge}\r\n\r\n");
    client.send(request.as_bytes())?;
    assert_eq!(client.response()?.status, 431);
    client.assert_closed()
}

#[test]
fn the_tokio_twin_answers_every_request_as_the_example_does() -> io::Result<()> {
    let example = Server::start()?;
    let twin = Server::start_program(TOKIO_TWIN, None)?;
    let close = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".as_slice();
    let post = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n[1,2]".as_slice();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let many: String = (0..40).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    // Each is sent on a connection of its own, whose sending side then closes.
    let requests: [Vec<u8>; 11] = [
        [GET, GET, GET].concat(),
        [close, GET].concat(),
        [post, close].concat(),
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n".to_vec(),
        big.into_bytes(),
        many.into_bytes(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab".to_vec(),
        b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\na".to_vec(),
    ];
    for request in &requests {
        let (ours, tokio) = (example.exchange(request)?, twin.exchange(request)?);
        assert!(
            !ours.is_empty(),
            "no answer to {:?}",
            String::from_utf8_lossy(request)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&tokio),
            "the twin answered {:?} differently",
            String::from_utf8_lossy(request)
        );
    }
    Ok(())
}

#[test]
fn sigterm_answers_the_request_in_flight_closes_idle_connections_and_exits_0() -> io::Result<()> {
    let mut server = Server::start()?;
    // An idle keep-alive connection: one request answered, then silence.
    let mut idle = server.connect()?;
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
    assert_eq!(idle.response()?.status, 200);
    // A slow client in the middle of its request.
    let mut slow = server.connect()?;
    slow.send(b"GET / HTTP/1.1\r\nHost: x\r\n")?;
    // Time for the server to read the half request (then it is mid-request, not idle).
    std::thread::sleep(Duration::from_millis(500));

    // SAFETY: kill(2) on the server's own process id, which this test started and still owns.
    let sent = unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);

    // The idle connection is closed: its next read sees the end, not an answer.
    let mut rest = Vec::new();
    idle.stream.read_to_end(&mut rest)?;
    assert!(rest.is_empty(), "an idle connection just closes: {rest:?}");
    // The slow client finishes its request and gets its answer, marked as the last.
    std::thread::sleep(Duration::from_millis(100));
    slow.send(b"\r\n")?;
    let answer = slow.response()?;
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"Hello, world!"[..])
    );
    assert_eq!(answer.connection.as_deref(), Some("close"));
    drop(slow);

    // The server exits 0 and says what it did.
    let deadline = Instant::now() + READ_TIMEOUT;
    let status = loop {
        if let Some(status) = server.child.try_wait()? {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let mut said = String::new();
    server
        .stdout
        .take()
        .expect("stdout kept")
        .read_to_string(&mut said)?;
    assert!(
        said.contains("SIGTERM: shutting down, 2 connection(s) open")
            && said.contains("all 2 connection(s) closed"),
        "{said}"
    );
    Ok(())
}
