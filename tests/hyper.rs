//! The `hyper_hello` example (hyper 1.x on `ripple::hyper`), driven over real sockets: keep-alive,
//! pipelining, a bad request, and the header read timeout running on ripple's timers.

mod util;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::Example;

/// How long a client waits for the server before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the example with a header read timeout of 300 ms, on a current-thread runtime or,
/// with `flavor` `Some("multi_thread")`, on the multi-thread one (killed when dropped).
fn start(flavor: Option<&str>) -> io::Result<Example> {
    let args: Vec<&str> = flavor.into_iter().collect();
    Example::start(
        "hyper_hello",
        &args,
        &[("RIPPLE_HYPER_HEADER_TIMEOUT_MS", "300")],
        None,
    )
}

/// A connection to `server`.
fn connect(server: &Example) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(server.addr)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

/// Reads until `count` whole responses (head and `Content-Length` body) have arrived; returns
/// their status codes and bodies.
fn responses(stream: &mut TcpStream, count: usize) -> io::Result<Vec<(u16, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0; 4096];
    while out.len() < count {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(&buf).map_err(io::Error::other)? {
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .unwrap_or(0);
            if buf.len() >= head + length {
                let status = response.code.unwrap_or(0);
                out.push((status, buf[head..head + length].to_vec()));
                buf.drain(..head + length);
                continue;
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

#[test]
fn keep_alive_pipelining_a_bad_request_and_the_header_timeout() -> io::Result<()> {
    serves_on(None)
}

#[test]
fn the_same_on_the_multi_thread_runtime() -> io::Result<()> {
    serves_on(Some("multi_thread"))
}

/// Keep-alive, pipelining, a bad request and the header timeout, on the example started with
/// `flavor`.
fn serves_on(flavor: Option<&str>) -> io::Result<()> {
    let server = start(flavor)?;
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    // Keep-alive: two requests, one after the other, on one connection.
    let mut stream = connect(&server)?;
    for _ in 0..2 {
        stream.write_all(request)?;
        let got = responses(&mut stream, 1)?;
        assert_eq!(got, [(200, b"Hello, world!".to_vec())]);
    }

    // Pipelining: three requests in one write, three answers in order.
    let mut pipelined = connect(&server)?;
    pipelined.write_all(&request.repeat(3))?;
    let got = responses(&mut pipelined, 3)?;
    assert!(
        got.iter().all(|r| r == &(200, b"Hello, world!".to_vec())),
        "{got:?}"
    );

    // A malformed request: 400, then the connection closes.
    let mut bad = connect(&server)?;
    bad.write_all(b"NOT HTTP AT ALL\r\n\r\n")?;
    let got = responses(&mut bad, 1)?;
    assert_eq!(got[0].0, 400);

    // Half a request head, then silence: the 300 ms header timeout (ripple's timers) closes
    // the connection.
    let mut slow = connect(&server)?;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")?;
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    let text = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || text.starts_with("HTTP/1.1 408"),
        "nothing, or 408: {text}"
    );
    Ok(())
}

/// `Io` on the owned halves of `into_split`: the write half as hyper's `Write` (its shutdown
/// ends the peer's stream), the read half as hyper's `Read`, each moved to a task of its own.
#[ripple::test(flavor = "multi_thread")]
async fn io_on_owned_halves_reads_writes_and_shuts_down() -> io::Result<()> {
    use std::future::poll_fn;
    use std::mem::MaybeUninit;
    use std::pin::Pin;

    use hyper::rt::{Read as _, ReadBuf, Write as _};
    use ripple::hyper::Io;

    let listener = ripple::net::TcpListener::bind("127.0.0.1:0").await?;
    let client = ripple::net::TcpStream::connect(listener.local_addr()?).await?;
    let (mut peer, _) = listener.accept().await?;
    let (read_half, write_half) = client.into_split();

    let writer = ripple::spawn(async move {
        let mut io = Io::new(write_half);
        let mut sent = &b"ping from a write half"[..];
        while !sent.is_empty() {
            let n = poll_fn(|cx| Pin::new(&mut io).poll_write(cx, sent)).await?;
            sent = &sent[n..];
        }
        poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await?;
        io::Result::Ok(io.into_inner())
    });
    let mut got = Vec::new();
    let mut chunk = [0; 64];
    loop {
        let n = peer.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got, b"ping from a write half");
    // The half is still alive (the task gave it back): the end of stream came from
    // `poll_shutdown`, not from a drop.
    let _write_half = writer.await.expect("the writer task ran")?;

    peer.write_all(b"pong to a read half").await?;
    drop(peer);
    let reader = ripple::spawn(async move {
        let mut io = Io::new(read_half);
        let mut storage = [MaybeUninit::<u8>::uninit(); 64];
        let mut buf = ReadBuf::uninit(&mut storage);
        loop {
            let before = buf.filled().len();
            poll_fn(|cx| Pin::new(&mut io).poll_read(cx, buf.unfilled())).await?;
            if buf.filled().len() == before {
                break;
            }
        }
        io::Result::Ok(buf.filled().to_vec())
    });
    assert_eq!(
        reader.await.expect("the reader task ran")?,
        b"pong to a read half"
    );
    Ok(())
}
