//! What the tokio twins (`src/bin/*_tokio.rs`) share: their command line, `[ADDR [multi_thread]]`,
//! and the runtime it names.

use std::io;

/// The address to listen on (the first argument, default `127.0.0.1:8080`), and the tokio
/// runtime the second names: the current-thread runtime without one, the multi-thread runtime
/// for `multi_thread` (one worker per core, or `TOKIO_WORKER_THREADS`). What
/// `#[tokio::main(flavor = "current_thread")]` and `#[tokio::main]` build.
pub fn args_and_runtime() -> io::Result<(String, tokio::runtime::Runtime)> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let runtime = match std::env::args().nth(2).as_deref() {
        Some("multi_thread") => tokio::runtime::Builder::new_multi_thread(),
        Some(other) => {
            let message = format!("unknown flavor '{other}': use multi_thread, or nothing");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        None => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build()?;
    Ok((addr, runtime))
}
