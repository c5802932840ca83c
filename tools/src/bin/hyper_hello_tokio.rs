//! The `hyper_hello` example's twin: the same hyper service on tokio's current-thread runtime,
//! through hyper-util's `TokioIo` and `TokioTimer` (what `ripple::hyper` is for ripple), for
//! `benches/hyper_counts.sh`. With `multi_thread` after the address, on tokio's multi-thread
//! runtime instead.
//!
//! `cargo run --release -p ripple-tools --bin hyper_hello_tokio [ADDR [multi_thread]]`

use std::convert::Infallible;
use std::io::{self, Write};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> io::Result<()> {
    let (addr, runtime) = ripple_tools::twin::args_and_runtime()?;
    runtime.block_on(serve(addr))
}

/// Accepts connections on `addr` and serves each with hyper, as the example does.
async fn serve(addr: String) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
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
