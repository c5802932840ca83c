//! ripple: an async runtime small enough to read in an afternoon, fast enough to serve.
//!
//! This facade gathers the workspace's crates under one name:
//!
//! - [`runtime`], [`task`], [`spawn`], [`block_on`]: runtimes and tasks (`runtime/src/runtime/`,
//!   the schedulers in `runtime/src/scheduler/`, the task core in `runtime/src/task_core/`);
//! - [`reactor`]: the epoll reactor (`runtime/src/reactor/`), which the driver
//!   (`runtime/src/driver/`) waits on;
//! - [`time`]: timers (`runtime/src/time/`);
//! - [`net`]: TCP on top of the reactor's public API (`net/src/`);
//! - [`main`] and [`test`]: attributes that run an `async fn` on a runtime (`macros/src/`).
//!
//! ```no_run
//! use ripple::net::TcpListener;
//!
//! #[ripple::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (mut stream, _) = listener.accept().await?;
//!         ripple::spawn(async move {
//!             let mut buf = [0; 1024];
//!             while let Ok(n @ 1..) = stream.read(&mut buf).await {
//!                 if stream.write_all(&buf[..n]).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! }
//! ```
//!
//! `#[ripple::main]` builds a current-thread runtime (tokio's `#[tokio::main]` builds a
//! multi-thread one); `#[ripple::main(flavor = "multi_thread", worker_threads = 2)]` asks for
//! worker threads, with tokio's spelling.
//!
//! The attributes only accept `async fn`s:
//!
//! ```compile_fail
//! #[ripple::main]
//! fn main() {}
//! ```
//!
//! and only the arguments they know, each error naming what is accepted:
//!
//! ```compile_fail
//! #[ripple::main(flavour = "multi_thread")] // spelled as in tokio: `flavor`
//! async fn main() {}
//! ```
//!
//! ```compile_fail
//! #[ripple::main(worker_threads = 2)] // needs `flavor = "multi_thread"`
//! async fn main() {}
//! ```
//!
//! ```compile_fail
//! #[ripple::test(flavor = "many_threads")]
//! async fn unknown_flavor() {}
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]

pub use ripple_macros::{main, test};
pub use ripple_runtime::{block_on, reactor, runtime, spawn, task, time};

/// Async TCP: [`TcpListener`](net::TcpListener), [`TcpStream`](net::TcpStream) and its halves.
pub mod net {
    pub use ripple_net::*;
}

pub use ripple_net::signal;

#[cfg(feature = "hyper")]
pub mod hyper;
