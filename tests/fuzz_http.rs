//! A fuzz test of `hello_http`'s request handling, on stable Rust: a seeded generator throws
//! malformed, truncated, oversized and smuggling-shaped requests at the running example over
//! loopback, and every connection must get valid answers or a close, never a hang, while the
//! server keeps answering a normal request.
//!
//! 20,000 inputs by default; `RIPPLE_FUZZ_INPUTS=100000` (say) for a longer run, and
//! `RIPPLE_FUZZ_SEED` to replay one. A failure prints the seed and the input.

mod util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use util::Example;

/// How long one input may take to be answered and closed.
const PATIENCE: Duration = Duration::from_secs(10);

/// The statuses the example may answer with.
const STATUSES: [&str; 5] = ["200", "400", "408", "431", "501"];

/// A small, seeded random number generator (xorshift64*): the same seed gives the same inputs.
struct Rng(u64);

impl Rng {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items`.
    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    /// True once in `n` times.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// One request, well-formed or not.
fn request(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let method = rng.pick(&[
        "GET",
        "POST",
        "HEAD",
        "PUT",
        "G\0T",
        "",
        "GET GET",
        "\u{1F600}",
    ]);
    let path = rng.pick(&["/", "/a?b=c", "*", "", "/%00", "/\r", "http://x/", "/ /"]);
    let version = rng.pick(&[
        "HTTP/1.1",
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/1.",
        "HTTPS/1.1",
        "http/1.1",
        "",
    ]);
    let newline: &[u8] = if rng.one_in(10) { b"\n" } else { b"\r\n" };
    out.extend_from_slice(format!("{method} {path} {version}").as_bytes());
    out.extend_from_slice(newline);
    let headers = if rng.one_in(20) { 40 } else { rng.below(6) };
    for _ in 0..headers {
        let header: String = match rng.below(12) {
            0 => format!("Content-Length: {}", rng.below(40)),
            1 => "Content-Length: 5, 5".into(),
            2 => format!("Content-Length: -{}", rng.below(9)),
            3 => "Content-Length: 99999999999999999999999".into(),
            4 => "Transfer-Encoding: chunked".into(),
            5 => rng
                .pick(&["Transfer-Encoding: xchunked", "Transfer-Encoding : chunked"])
                .into(),
            6 => rng
                .pick(&["Connection: close", "Connection: keep-alive"])
                .into(),
            7 => " folded: continuation".into(),
            8 => format!("X-Long: {}", "a".repeat(rng.below(10_000))),
            9 => "Bad Header: x".into(),
            10 => "X-Nul: a\0b".into(),
            _ => "Host: x".into(),
        };
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(newline);
    }
    out.extend_from_slice(newline);
    // A body, as long as announced or not.
    let body = rng.below(3) * rng.below(30);
    out.extend(std::iter::repeat(b'b').take(body));
    out
}

/// A clean input: one to three well-formed keep-alive requests, some with a body, sent whole;
/// returns it with the number of answers it must get (one `200` each, in order: a body parsed
/// as a request, or a request lost, would show as a different count).
fn clean(rng: &mut Rng) -> (Vec<u8>, usize) {
    let count = 1 + rng.below(3);
    let mut out = Vec::new();
    for _ in 0..count {
        let body = rng.below(3) * rng.below(50);
        out.extend_from_slice(format!("POST /{body} HTTP/1.1\r\nHost: x\r\n").as_bytes());
        if body > 0 || rng.one_in(2) {
            out.extend_from_slice(format!("Content-Length: {body}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        // A body that looks like a request: it must be skipped, never answered.
        let fake = b"GET / HTTP/1.1\r\n\r\n".iter().cycle();
        out.extend(fake.take(body));
    }
    (out, count)
}

/// One input: a few requests, then mutations (flipped bytes, truncation).
fn input(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(3) {
        out.extend(request(rng));
    }
    for _ in 0..rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(3) {
            0 => out[at] = rng.next() as u8,
            1 => out.insert(at, *rng.pick(&[&b'\r', &b'\n', &b':', &b' ', &0u8])),
            _ => out.truncate(at),
        }
    }
    out
}

/// Checks that `answer` is a run of complete, valid responses (possibly none); says why not.
fn check(answer: &[u8]) -> Result<usize, String> {
    let mut rest = answer;
    let mut count = 0;
    while !rest.is_empty() {
        let head_end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("a response without the end of its head")?;
        let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| "a head that is not text")?;
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|h| h.get(..3))
            .ok_or(format!("a bad status line: {head:.40}"))?;
        if !STATUSES.contains(&status) {
            return Err(format!("an unexpected status {status}"));
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("a response without Content-Length")?;
        let end = head_end + 4 + length;
        if rest.len() < end {
            return Err("a response cut short".into());
        }
        rest = &rest[end..];
        count += 1;
    }
    Ok(count)
}

/// Sends `input` in a few writes, half-closes, and reads everything until the server closes.
fn exchange(addr: SocketAddr, input: &[u8], rng: &mut Rng) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut sent = 0;
    while sent < input.len() {
        let n = (1 + rng.below(input.len())).min(input.len() - sent);
        // The server may close after a bad request while we still write: that is fine.
        if stream.write_all(&input[sent..sent + n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Ok(answer),
        // A reset after a rejected request, with unread input on the server's side.
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => Ok(answer),
        Err(err) => Err(err),
    }
}

#[test]
fn malformed_requests_get_valid_answers_or_a_close_and_the_server_keeps_serving() -> io::Result<()>
{
    let inputs: usize = std::env::var("RIPPLE_FUZZ_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("RIPPLE_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0042);
    let server = Example::start("hello_http", &["--head-ms", "2000"], &[], None)?;
    let addr = server.addr;
    let threads = 4;
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || -> Result<(usize, usize), String> {
                let mut rng = Rng(seed ^ (t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let (mut answered, mut closed) = (0, 0);
                for i in (t..inputs).step_by(threads) {
                    // One input in four is clean, with a known number of answers.
                    let (input, expected) = if rng.one_in(4) {
                        let (input, count) = clean(&mut rng);
                        (input, Some(count))
                    } else {
                        (input(&mut rng), None)
                    };
                    let answer = exchange(addr, &input, &mut rng).map_err(|err| {
                        format!("input {i} (seed {seed}): {err}; input {input:?}")
                    })?;
                    match check(&answer) {
                        Ok(n) if expected.is_some_and(|e| e != n) => {
                            return Err(format!(
                                "input {i} (seed {seed}): {n} answers to {} requests; input {:?}",
                                expected.unwrap_or(0),
                                String::from_utf8_lossy(&input)
                            ))
                        }
                        Ok(0) => closed += 1,
                        Ok(_) => answered += 1,
                        Err(why) => {
                            return Err(format!(
                                "input {i} (seed {seed}): {why}; input {:?}; answer {:?}",
                                String::from_utf8_lossy(&input),
                                String::from_utf8_lossy(&answer)
                            ))
                        }
                    }
                    if i % 1000 == 0 {
                        let normal = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut rng)
                            .map_err(|err| format!("a normal request after input {i}: {err}"))?;
                        if !normal.starts_with(b"HTTP/1.1 200") {
                            return Err(format!("a normal request after input {i}: {normal:?}"));
                        }
                    }
                }
                Ok((answered, closed))
            })
        })
        .collect();
    let (mut answered, mut closed) = (0, 0);
    for worker in workers {
        let (a, c) = worker
            .join()
            .expect("a fuzzing thread")
            .map_err(io::Error::other)?;
        answered += a;
        closed += c;
    }
    eprintln!(
        "{inputs} inputs in {:.1} s: {answered} answered, {closed} closed without an answer",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(answered + closed, inputs);
    Ok(())
}
