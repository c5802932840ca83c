//! `Builder`: the settings a runtime is made with.

use std::io;

use super::Runtime;
use crate::scheduler::current_thread::CurrentThread;
use crate::scheduler::EVENT_INTERVAL;
use crate::trace;

/// Configures and creates a [`Runtime`].
#[derive(Debug, Clone)]
pub struct Builder {
    /// Task polls between two non-blocking checks of the reactor.
    event_interval: u32,
    /// Whether the runtime prints its trace on stderr.
    trace: bool,
}

impl Builder {
    /// A builder for a runtime that runs every task on the thread that calls `block_on`.
    pub fn new_current_thread() -> Builder {
        Builder {
            event_interval: EVENT_INTERVAL,
            trace: trace::trace_from_env(),
        }
    }

    /// Whether the runtime prints a line on stderr for each thing it does: a task spawned,
    /// polled or woken (and by what), an epoll wait and its events, a timer firing. Defaults to
    /// on when the environment variable `RIPPLE_TRACE` is set (to anything but `0`).
    /// See [`Metrics`](super::Metrics) for the same moments as counters.
    pub fn trace(&mut self, on: bool) -> &mut Builder {
        self.trace = on;
        self
    }

    /// How many task polls may run before the runtime checks for I/O and timers without
    /// blocking (default 61, as in tokio). Lower is fairer to I/O; higher makes fewer syscalls.
    ///
    /// # Panics
    /// If `interval` is zero.
    pub fn event_interval(&mut self, interval: u32) -> &mut Builder {
        assert!(interval > 0, "event_interval must be at least 1");
        self.event_interval = interval;
        self
    }

    /// Creates the runtime (an epoll instance and its eventfd).
    pub fn build(&self) -> io::Result<Runtime> {
        Ok(Runtime {
            scheduler: CurrentThread::new(self.event_interval, self.trace)?,
        })
    }
}
