//! What ripple's two measuring harnesses share: building the servers, running them as processes,
//! reading `/proc`, and the text of a report.
//!
//! Two harnesses measure servers from outside, each started as its own process: `journey_bench`
//! (this package's binary, `tools/src/bin/journey_bench/`: the eight servers of the journey under
//! the same load) and `benches/net.rs` (`cargo bench --bench net`: ripple against tokio on the
//! same servers). Both build the servers in release mode with the cargo that runs them
//! ([`workspace`]), start each on a port the kernel picks and wait for it to print
//! `listening on ADDR`, pinned to CPU 0 while the load runs on CPU 1, and kill its whole process
//! tree when done ([`server`]); both read a server's memory and the machine from `/proc`
//! ([`procfs`]), and both write a Markdown report ([`text`]).
//!
//! The tokio twins of the examples (`src/bin/*_tokio.rs`) share their command line and runtime
//! ([`twin`]). The `timeline` binary draws a runtime's trace file as an SVG ([`timeline`]).
//!
//! Nothing here is part of ripple: the runtime and `ripple-net` never depend on this package,
//! and only the root package's benchmarks use it (as a dev-dependency).
//!
//! ```no_run
//! use ripple_tools::server::Server;
//! use ripple_tools::workspace;
//!
//! # fn main() -> ripple_tools::Result<()> {
//! workspace::build(&["echo"])?;
//! let (server, addr) = Server::start(&workspace::program("echo"), false)?;
//! let rss = ripple_tools::procfs::vm_rss_bytes(server.pid());
//! println!("echo listens on {addr} and holds {rss:?} bytes");
//! # Ok(())
//! # }
//! ```

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]

pub mod procfs;
pub mod server;
pub mod text;
pub mod timeline;
pub mod twin;
pub mod workspace;

/// Errors that end a harness run (a failed build, an unwritable report): any error, boxed.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
