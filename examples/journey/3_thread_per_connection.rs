//! Journey, step 3: a thread per connection.
//!
//! In the guide: chapter 2, `docs/guide/02-processes-and-threads.md`.
//!
//! This is the seeds' multi-thread server (다중 접속 서버로의 여정, "멀티스레드 서버", the
//! Spring MVC model): the main thread accepts and hands each connection to a new thread that
//! runs step 1's blocking echo loop, `common::echo_blocking`. The loop is the same as in steps 1
//! and 2; what changed is who runs it. A thread is cheaper to start than a process, and a client
//! that waits blocks only its own thread.
//!
//! What it costs: a thread per client. The kernel keeps a task for each, and each has its own
//! stack. Rust's default stack is 2 MiB (the JVM's is about 1 MiB, as the seed says); we ask for
//! 64 KiB, plenty for a 4 KiB buffer and a few calls, and only the pages a thread touches are
//! ever backed by memory: 68 MiB at 5,000 clients in `docs/journey.md` (from
//! `tools/src/bin/journey_bench/`). Where it breaks: thousands of clients mean thousands of
//! threads, so the scheduler juggles them and memory grows with the client count; at the user's
//! process limit (`ulimit -u`) or `threads-max`, `spawn` fails, and this server then drops that
//! one connection and backs off instead of panicking.
//!
//! Run it with `cargo run --release --example journey_thread_per_connection [ADDR]` (default
//! `127.0.0.1:8080`), then load it with the repository's client,
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::io;
use std::thread;
use std::time::Duration;

mod common;

/// The stack each connection's thread gets: `common::echo_blocking` needs a few kilobytes.
const STACK_SIZE: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let listener = common::bind(&common::addr_from_args())?;
    common::announce(&listener)?;

    loop {
        let stream = common::accept_blocking(&listener);
        // The thread owns the connection; we never join it, it ends when its client leaves.
        // An error (a reset, say) ends only that client's thread.
        let spawned = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let _ = common::echo_blocking(stream);
            });
        // Out of threads or memory: the connection (moved into the failed closure) is already
        // closed. Pause so the threads that are running can finish and free their slots.
        if let Err(err) = spawned {
            eprintln!("spawn failed: {err}; dropped the connection, retrying in 10 ms");
            thread::sleep(Duration::from_millis(10));
        }
    }
}
