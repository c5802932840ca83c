//! ripple's runtime: a task executor, an epoll reactor and timers, small enough to read.
//!
//! A future does nothing until something polls it, and polling it again is only worth it when
//! something has changed. This crate is the "something": the executor ([`runtime`], [`task`])
//! keeps a queue of tasks that were woken and polls them one by one; the reactor ([`reactor`])
//! asks epoll which file descriptors became ready and wakes the tasks that wait on them; the
//! timers ([`time`]) wake tasks whose deadline has come, and tell epoll how long it may sleep.
//! Everything runs on one thread, the one that calls [`block_on`].
//!
//! The crate knows nothing about TCP: `ripple-net` builds sockets on [`reactor::Async`], which
//! any user can use for their own file descriptors too.
//!
//! ```
//! use std::time::Duration;
//!
//! let sum = ripple_runtime::block_on(async {
//!     let a = ripple_runtime::spawn(async {
//!         ripple_runtime::time::sleep(Duration::from_millis(5)).await;
//!         20
//!     });
//!     let b = ripple_runtime::spawn(async { 22 });
//!     a.await.unwrap() + b.await.unwrap()
//! });
//! assert_eq!(sum, 42);
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]

mod executor;
pub mod reactor;
mod slab;
pub mod task;
pub mod time;

/// Creating and configuring runtimes: [`Builder`](runtime::Builder),
/// [`Runtime`](runtime::Runtime), [`Handle`](runtime::Handle), and what a runtime did:
/// [`Metrics`](runtime::Metrics). Implemented in `executor/`.
pub mod runtime {
    pub use crate::executor::{Builder, Handle, Metrics, Runtime};
}

pub use executor::{block_on, spawn};
