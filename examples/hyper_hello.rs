//! hyper 1.x on ripple: an HTTP/1.1 server that answers every request with `Hello, world!`.
//!
//! hyper parses and writes HTTP; ripple gives it a byte stream (`ripple::hyper::Io`) and a timer
//! (`ripple::hyper::Timer`). Keep-alive and pipelining come from hyper, and a client that takes
//! longer than 10 s to send a request head (`RIPPLE_HYPER_HEADER_TIMEOUT_MS` changes it; the
//! tests use 300 ms) is cut off by `header_read_timeout`, which runs on ripple's timers.
//!
//! It runs on a current-thread runtime, or on the multi-thread one with `multi_thread` after the
//! address; the runtime is built by hand here (`#[ripple::main]` picks one flavour when it
//! compiles) so that one program can be measured on both.
//!
//! ```text
//! cargo run --release --features hyper --example hyper_hello [ADDR [multi_thread]]
//! curl http://127.0.0.1:8080/                     # ADDR defaults to 127.0.0.1:8080
//! ```

use std::convert::Infallible;
use std::io::{self, Write};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use ripple::net::TcpListener;
use ripple::runtime::Builder;

/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let runtime = match std::env::args().nth(2).as_deref() {
        None => Builder::new_current_thread(),
        Some("multi_thread") => Builder::new_multi_thread(),
        Some(other) => {
            let message = format!("unknown flavor '{other}': use multi_thread, or nothing");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
    }
    .build()?;
    runtime.block_on(serve(addr))
}

/// Accepts connections on `addr` and serves each with hyper, in a task of its own.
async fn serve(addr: String) -> io::Result<()> {
    let header_timeout = std::env::var("RIPPLE_HYPER_HEADER_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(HEADER_TIMEOUT, Duration::from_millis);
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    // Accepts, pausing (and saying so, once) while the process is out of file descriptors.
    let mut incoming = listener.incoming();
    loop {
        let (stream, _peer) = incoming.accept().await?;
        // Answers go out as soon as they are written.
        let _ = stream.set_nodelay(true);
        ripple::spawn(async move {
            // A connection's error (a reset, a malformed request) ends that connection only.
            let _ = http1::Builder::new()
                .timer(ripple::hyper::Timer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(ripple::hyper::Io::new(stream), service_fn(hello))
                .await;
        });
    }
}

/// The service: every request gets the same answer.
async fn hello(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, world!",
    ))))
}
