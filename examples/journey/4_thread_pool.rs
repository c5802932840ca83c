//! Journey, step 4: a fixed pool of worker threads fed by a queue of accepted connections.
//!
//! In the guide: chapter 3, `docs/guide/03-thread-pool.md`.
//!
//! This is the seeds' thread pool (다중 접속 서버로의 여정, the drawbacks of "멀티스레드 서버":
//! "스레드풀을 사용하여 운영할 수 있지만, 여전히 풀보다 큰 요청을 동시에 처리할 수는 없다"),
//! which is how Tomcat's old BIO connector and Spring MVC run. The main thread accepts and
//! pushes each connection onto a queue; a fixed number of workers, started once, take
//! connections off it and run step 1's blocking echo loop, `common::echo_blocking`, one
//! connection at a time each. The loop is the same as in steps 1 to 3; what changed is who runs
//! it, and that there are only so many of them.
//!
//! What it costs: a fixed number of threads and stacks, however many clients come, so memory
//! no longer grows with them (only the queue does, one descriptor per waiting connection).
//! Where it saturates: a worker stays with its connection until that client hangs up, blocked
//! in `read` while the client is idle. Once every worker holds a connection, the next clients
//! are accepted but wait in the queue, their bytes unanswered, until some connection closes.
//! With 8 workers, a ninth client gets no echo until one of the first eight leaves. Making the
//! pool bigger only moves the wall; a blocked thread is the expensive part (the seed: "스레드
//! 하나가 블록될 때의 기회비용이 매우 커짐").
//!
//! Run it with `cargo run --release --example journey_thread_pool [ADDR [WORKERS]]` (default
//! `127.0.0.1:8080` and 8 workers; the `JOURNEY_WORKERS` environment variable also sets the
//! pool size, the argument wins), then load it with the repository's client,
//! `cargo run --release --example echo_client -- 127.0.0.1:8080 10 1000 64` (the last two of the
//! ten clients wait for a free worker).

use std::io;
use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

mod common;

/// The pool size when neither the second argument nor `JOURNEY_WORKERS` sets one.
const DEFAULT_WORKERS: usize = 8;

fn main() -> io::Result<()> {
    let workers: usize = match std::env::args()
        .nth(2)
        .or_else(|| std::env::var("JOURNEY_WORKERS").ok())
    {
        Some(n) => n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WORKERS must be a positive number, not {n:?}"),
            )
        })?,
        None => DEFAULT_WORKERS,
    };
    let listener = common::bind(&common::addr_from_args())?;

    // The queue: the acceptor sends, every worker receives. `mpsc` has a single receiver, so
    // the workers share it behind a mutex and take turns waiting on it.
    let (queue, receiver) = mpsc::channel::<TcpStream>();
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..workers {
        let receiver = receiver.clone();
        thread::Builder::new()
            .name(format!("worker-{i}"))
            .stack_size(64 * 1024) // As in step 3: `echo_blocking` needs a few kilobytes.
            .spawn(move || work(&receiver))
            .expect("cannot start the worker threads");
    }
    common::announce(&listener)?;

    loop {
        let stream = common::accept_blocking(&listener);
        // The workers live as long as the process, so the queue is always open.
        queue.send(stream).expect("the workers are gone");
    }
}

/// A worker's life: take the next connection, serve it until it closes, repeat.
fn work(receiver: &Mutex<Receiver<TcpStream>>) {
    loop {
        // The lock guard is a temporary, dropped at the end of this statement: the worker
        // holds the lock only while it waits for a connection, not while it serves one. Nobody
        // panics holding it, and if one did, the receiver inside would still be sound to use.
        let next = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        match next {
            // An error (a reset, say) ends only this connection; the worker moves on.
            Ok(stream) => {
                let _ = common::echo_blocking(stream);
            }
            Err(_) => return, // The acceptor is gone: no more work will come.
        }
    }
}
