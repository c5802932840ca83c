//! Journey, step 2: a process per connection, with `fork`.
//!
//! In the guide: chapter 2, `docs/guide/02-processes-and-threads.md`.
//!
//! This is the seeds' multi-process server (다중 접속 서버로의 여정, "멀티 프로세스 서버",
//! which skips it because Java cannot fork). The parent only accepts; for each connection it
//! `fork`s a child that runs step 1's echo loop, `common::echo_blocking`, on that one connection
//! and exits. The loop is the same as in step 1; what changed is who runs it. Processes do not
//! share memory, so a child that crashes takes down only its own client.
//!
//! What it costs: a process per client. `fork` copies the parent's page tables, and the kernel
//! keeps a process descriptor and a kernel stack for each child; the pages themselves are shared
//! copy-on-write until someone writes to them. At 5,000 clients the children add up to about
//! 1.9 GiB of resident memory, or 137 MiB once shared pages are counted once (PSS), against
//! 68 MiB for step 3's threads (`docs/journey.md`, from `tools/src/bin/journey_bench/`). Where
//! it breaks: thousands of clients mean thousands of processes, each switch between them is a
//! full context switch (a change of address space too), and `fork` starts failing with EAGAIN at
//! the user's process limit (`ulimit -u`); this server then waits and retries instead of giving
//! up.
//!
//! The care `fork` needs, each step explained where it happens: the child closes its copy of the
//! listener and leaves with `_exit`, the parent closes its copy of the connection, and the kernel
//! reaps the children so no zombies pile up.
//!
//! Run it with `cargo run --release --example journey_fork [ADDR]` (default `127.0.0.1:8080`),
//! then load it with the repository's client,
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64`.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

mod common;

fn main() -> io::Result<()> {
    let listener = common::bind(&common::addr_from_args())?;
    common::announce(&listener)?;

    // A child that exits stays a zombie until its parent collects its exit status. Ignoring
    // SIGCHLD tells the kernel we will never ask, so it reaps children as soon as they exit.
    // SAFETY: SIG_IGN installs no handler, so no code of ours runs in signal context; nothing
    // else in this program uses SIGCHLD.
    if unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }

    loop {
        let stream = common::accept_blocking(&listener);
        loop {
            // SAFETY: this process has a single thread, so the child starts in a consistent
            // state (no lock is held by a thread that does not exist in the child). The child
            // never returns from `serve_child`, so it never runs the parent's code or destructors.
            match unsafe { libc::fork() } {
                0 => serve_child(&listener, stream),
                -1 => {
                    // Too many processes (EAGAIN) or no memory: the client waits while we retry.
                    let err = io::Error::last_os_error();
                    eprintln!("fork failed: {err}; retrying in 10 ms");
                    std::thread::sleep(Duration::from_millis(10));
                }
                _child_pid => break,
            }
        }
        // The parent's copy of the connection is closed when `stream` goes out of scope here.
        // Without that, the parent would run out of descriptors, and the client would never
        // see its connection close, since the socket stays open while any process holds it.
    }
}

/// Runs in the child: serves one connection, then ends the process.
fn serve_child(listener: &TcpListener, stream: TcpStream) -> ! {
    // The child does not accept, and holding the listener would keep the port open after the
    // parent is gone.
    // SAFETY: the descriptor is the listener's and is open. The `TcpListener` value will not
    // close it again, since this function never returns and `_exit` runs no destructors.
    unsafe { libc::close(listener.as_raw_fd()) };
    // Any error (a reset, say) ends this client only; exiting closes the connection either way.
    let served = common::echo_blocking(stream);
    let status = if served.is_ok() { 0 } else { 1 };
    // `_exit`, not `exit` or a return from main: it skips the parent's destructors and atexit
    // handlers, and never flushes stdio buffers copied from the parent a second time.
    // SAFETY: `_exit` is always safe to call; it ends the process.
    unsafe { libc::_exit(status) }
}
