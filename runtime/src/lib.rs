//! ripple's runtime: a task executor, an epoll reactor and timers, small enough to read.
//!
//! A future does nothing until something polls it, and polling it again is only worth it when
//! something has changed. This crate is the "something": a scheduler keeps a queue of tasks that
//! were woken and polls them one by one; when none is left, it parks in the driver, which asks
//! epoll which file descriptors became ready ([`reactor`]) and which deadlines have come
//! ([`time`]), and wakes the tasks that wait on them.
//!
//! The code is in layers, each of which imports only the ones below it, so that it can be read
//! (and replaced) from the bottom up:
//!
//! 1. the task core (`task_core/`): a spawned future, its state word, its waker, `JoinHandle`;
//!    and small modules any layer may use: this thread's current runtime (`context.rs`), the
//!    cooperative I/O budget (`coop.rs`), counters and the trace (`metrics.rs`, `trace.rs`);
//! 2. the reactor (`reactor/`) and the timers (`time/`);
//! 3. the driver (`driver/`), which joins them into the one place a thread waits: park, unpark;
//! 4. the schedulers (`scheduler/`), which run tasks and park in the driver;
//! 5. [`runtime`]: `Builder`, `Runtime`, `Handle`, and the public faces below.
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

// Layer 1: the task core and the modules any layer may use.
mod context;
mod coop;
mod loom;
mod metrics;
mod slab;
mod task_core;
#[cfg(test)]
mod testing;
mod trace;

// Layer 2: the reactor and the timers.
pub mod reactor;
pub mod time;

// Layer 3: the driver.
mod driver;

// Layer 4: the schedulers.
mod scheduler;

// Layer 5: the runtime, and the public faces.
pub mod runtime;

pub mod task {
    //! Tasks: [`spawn`] one, await its [`JoinHandle`], or [`yield_now`]; run blocking work with
    //! [`spawn_blocking`]; join a group of tasks as they finish with a [`JoinSet`]. Assembled
    //! here from the task core and the runtime.
    pub use crate::runtime::join_set::JoinSet;
    pub use crate::runtime::{spawn, spawn_blocking};
    pub use crate::task_core::{yield_now, JoinError, JoinHandle};
}

pub use runtime::{block_on, spawn};
