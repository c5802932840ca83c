//! Journey, step 1: a blocking echo server on one thread, serving one client at a time.
//!
//! In the guide: chapter 1, `docs/guide/01-blocking.md`.
//!
//! This is the seeds' single-process server (다중 접속 서버로의 여정, "단일 프로세스 서버"):
//! `socket`, `bind`, `listen`, then a loop of `accept` and a blocking `read`/`write` loop on the
//! accepted connection. It costs one thread and one 4 KiB buffer, and uses no CPU while it waits.
//!
//! The echo loop is `common::echo_blocking`, in `common.rs` with the rest of the plumbing every
//! step shares (`common::bind`, `common::accept_blocking`). It is the same in steps 1 to 4: what
//! changes is who runs it. Here the main thread does, for one client after another.
//!
//! Where it breaks: while one client is connected, the thread sits in `read` for that client, so
//! every other client waits in the kernel's accept queue (the listen backlog) until the first one
//! hangs up. A second client gets connected by the kernel, but none of its messages comes back
//! until the first client leaves. Every later step exists to fix this.
//!
//! Run it with `cargo run --release --example journey_blocking [ADDR]` (default
//! `127.0.0.1:8080`), then load it with the repository's client,
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64` (the ten clients are
//! served one after another).

use std::io;

mod common;

fn main() -> io::Result<()> {
    let listener = common::bind(&common::addr_from_args())?;
    common::announce(&listener)?;

    loop {
        let stream = common::accept_blocking(&listener);
        // Serve this client to the end before accepting the next: the whole point of step 1.
        // An error (say, the peer reset) ends only this connection.
        let _ = common::echo_blocking(stream);
    }
}
