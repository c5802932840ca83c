//! The runtime's trace: with `RIPPLE_TRACE=1`, each moment the counters of `metrics.rs` count is
//! also printed on stderr, as one `ripple: ...` line.
//!
//! Each call site checks the runtime's `trace` flag (read once, when the runtime is built) before
//! it formats anything, so the trace costs one well-predicted branch while it is off.

use std::fmt;
use std::io::Write;

/// Whether the environment asks for the trace: `RIPPLE_TRACE` set to anything but `0` or empty.
pub(crate) fn trace_from_env() -> bool {
    std::env::var_os("RIPPLE_TRACE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Prints one trace line, `ripple: ...`, on stderr. Callers check the runtime's trace flag
/// first, so that formatting costs nothing while the trace is off.
#[cold]
pub(crate) fn trace(args: fmt::Arguments<'_>) {
    // A closed or full stderr must not take the runtime down: the trace is best effort.
    let _ = writeln!(std::io::stderr().lock(), "ripple: {args}");
}
