//! Schedulers: who runs a task when it is woken, and on which thread.
//!
//! A scheduler owns run queues and a loop: pop a task, poll it, repeat; when nothing is left,
//! park in the driver until I/O, a timer or another thread has work for it. Below it are the
//! task core (which only asks its scheduler to `schedule` it through the `Schedule` trait) and
//! the driver (which offers `park` and `unpark`, a thread's `Local` part to `enter`, and
//! `shutdown`); above it, `Runtime` picks a flavour.
//!
//! - [`current_thread`]: the seeds' event loop. One thread runs every task and parks in epoll.
//!
//! The pieces a flavour shares live in files of their own: the registry of live tasks that
//! shutdown must reach ([`owned`]), the queue for tasks handed over from other threads
//! ([`inject`]), and the loop's fairness intervals (below).

pub(crate) mod current_thread;
pub(crate) mod inject;
pub(crate) mod owned;

/// Polls between two non-blocking looks at the driver while tasks keep being runnable, so that
/// a task that is always ready cannot starve I/O and timers (tokio: 61).
pub(crate) const EVENT_INTERVAL: u32 = 61;
/// Polls between two looks at the inject queue while the local queue is not empty, so that
/// tasks from other threads are not starved by a busy local queue (tokio: 31).
pub(crate) const INJECT_INTERVAL: u32 = 31;
