//! Faults: end of stream, resets, broken pipes without SIGPIPE, refused connections, and running
//! out of file descriptors.

mod util;

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Duration;

use ripple::net::{TcpListener, TcpStream};
use ripple::time::sleep;

use util::{in_child_process, no_hang, yield_times};

#[ripple::test]
async fn reading_after_the_peer_closed_gives_zero_every_time() -> io::Result<()> {
    let (mut client, server) = util::pair_with_std_peer().await?;
    drop(server);
    let mut buf = [0; 16];
    assert_eq!(no_hang(client.read(&mut buf)).await??, 0);
    assert_eq!(no_hang(client.read(&mut buf)).await??, 0, "EOF is sticky");
    Ok(())
}

#[ripple::test]
async fn a_reader_sees_eof_after_data_that_arrived_together_with_the_fin() -> io::Result<()> {
    let (mut client, mut server) = util::pair_with_std_peer().await?;
    let reader = ripple::spawn(async move {
        let mut received = Vec::new();
        let mut buf = [0; 64];
        loop {
            match client.read(&mut buf).await? {
                0 => return io::Result::Ok(received),
                n => received.extend_from_slice(&buf[..n]),
            }
        }
    });
    // The reader parks; then data and FIN arrive in one go, before it runs again.
    yield_times(3).await;
    server.write_all(b"last words")?;
    drop(server);
    assert_eq!(no_hang(reader).await???, b"last words");
    Ok(())
}

#[ripple::test]
async fn a_short_read_of_data_followed_by_fin_still_leads_to_eof() -> io::Result<()> {
    let (mut client, mut server) = util::pair_with_std_peer().await?;
    server.write_all(b"hi")?;
    drop(server);
    // Let the reactor report the socket before the first read.
    sleep(Duration::from_millis(5)).await;
    let mut buf = [0; 64];
    assert_eq!(no_hang(client.read(&mut buf)).await??, 2);
    assert_eq!(no_hang(client.read(&mut buf)).await??, 0);
    Ok(())
}

#[ripple::test]
async fn a_peer_that_closes_with_unread_data_resets_the_connection() -> io::Result<()> {
    let (mut client, server) = util::pair_with_std_peer().await?;
    client.write_all(b"never read").await?;
    // Make sure the bytes sit in the server's receive buffer, then close: the kernel sends RST.
    let mut peek = [0; 1];
    server.peek(&mut peek)?;
    drop(server);

    let mut buf = [0; 16];
    let err = no_hang(client.read(&mut buf))
        .await?
        .expect_err("a reset connection cannot be read");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    let err = no_hang(client.write(b"more"))
        .await?
        .expect_err("nor written");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
    Ok(())
}

#[ripple::test]
async fn connecting_to_a_closed_port_is_refused() -> io::Result<()> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    // The listener is closed: nothing listens on `addr` any more.
    let err = no_hang(TcpStream::connect(addr))
        .await?
        .expect_err("nobody listens");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    Ok(())
}

extern "C" {
    /// `signal(2)` from the C library the test binary already links.
    fn signal(signum: i32, handler: usize) -> usize;
}

/// `SIGPIPE` on Linux.
const SIGPIPE: i32 = 13;
/// `SIG_DFL`: the default disposition, which for `SIGPIPE` kills the process.
const SIG_DFL: usize = 0;

#[test]
fn writing_to_a_closed_peer_gives_broken_pipe_and_never_raises_sigpipe() -> io::Result<()> {
    // The Rust runtime ignores SIGPIPE; the child restores the default so a SIGPIPE would
    // kill it, which the parent then reports.
    in_child_process(
        "writing_to_a_closed_peer_gives_broken_pipe_and_never_raises_sigpipe",
        None,
        || {
            // SAFETY: setting a signal's disposition to SIG_DFL installs no handler; this child
            // process runs only this test.
            let previous = unsafe { signal(SIGPIPE, SIG_DFL) };
            assert_ne!(previous, usize::MAX, "signal() failed");
            ripple::block_on(async {
                let (mut client, server) = util::connected_pair().await?;
                drop(server);
                // The first writes may still succeed: the peer answers them with RST.
                let mut failure = None;
                for _ in 0..1000 {
                    match no_hang(client.write(b"anyone there?")).await? {
                        Ok(_) => sleep(Duration::from_millis(1)).await,
                        Err(err) => {
                            failure = Some(err);
                            break;
                        }
                    }
                }
                let err = failure.expect("writes to a closed peer eventually fail");
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ),
                    "{err}"
                );
                // Once reset, every write is a broken pipe (EPIPE), still without a signal.
                let err = no_hang(client.write_all(b"again")).await?.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
                io::Result::Ok(())
            })
        },
    )
}

/// `EMFILE`: the process has no free file descriptor.
const EMFILE: i32 = 24;

#[test]
fn accept_reports_emfile_when_out_of_fds_and_recovers_once_some_are_freed() -> io::Result<()> {
    in_child_process(
        "accept_reports_emfile_when_out_of_fds_and_recovers_once_some_are_freed",
        Some(64),
        || {
            ripple::block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
                // Fill the fd table.
                let mut hoard = Vec::new();
                loop {
                    match File::open("/dev/null") {
                        Ok(file) => hoard.push(file),
                        Err(err) if err.raw_os_error() == Some(EMFILE) => break,
                        Err(err) => return Err(err),
                    }
                }
                assert!(hoard.len() < 64, "the limit of 64 fds is in force");

                // accept() fails with EMFILE instead of panicking, hanging or spinning, and
                // keeps failing while the table is full.
                for _ in 0..3 {
                    let err = no_hang(listener.accept())
                        .await?
                        .expect_err("no fd for the connection");
                    assert_eq!(err.raw_os_error(), Some(EMFILE), "{err}");
                }

                // Free a few fds: the pending connection is accepted and works.
                hoard.truncate(hoard.len() - 4);
                let (mut server, _) = no_hang(listener.accept()).await??;
                client.write_all(b"fd")?;
                let mut buf = [0; 2];
                no_hang(server.read_exact(&mut buf)).await??;
                assert_eq!(&buf, b"fd");
                server.write_all(b"ok").await?;
                client.read_exact(&mut buf)?;
                assert_eq!(&buf, b"ok");
                io::Result::Ok(())
            })
        },
    )
}

/// Wakes a parked thread: a minimal executor for polling a ripple future from a thread that
/// does not run the runtime.
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn a_reader_on_another_thread_sees_eof_that_came_with_its_last_data() -> io::Result<()> {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use std::time::Instant;

    let rt = ripple::runtime::Runtime::new()?;
    let (mut client, mut server) = rt.block_on(util::pair_with_std_peer())?;
    // The runtime sleeps in epoll on its own thread until told to stop.
    let (stop, stopped) = util::oneshot::<()>();
    let runtime_thread = std::thread::spawn(move || rt.block_on(stopped));
    server.write_all(b"hi")?;
    drop(server);
    std::thread::sleep(Duration::from_millis(20));

    // Read on this thread, which does not run the runtime: the data comes back short, and the
    // FIN that came with it must still be found.
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0; 64];
    let mut results = Vec::new();
    for _ in 0..2 {
        let deadline = Instant::now() + util::LIMIT;
        let mut read = std::pin::pin!(client.read(&mut buf));
        let n = loop {
            if let Poll::Ready(n) = read.as_mut().poll(&mut cx) {
                break n?;
            }
            assert!(
                Instant::now() < deadline,
                "the read hung: the re-check never ran"
            );
            std::thread::park_timeout(Duration::from_millis(100));
        };
        results.push(n);
    }
    assert_eq!(results, [2, 0]);
    stop.send(());
    runtime_thread.join().expect("the runtime thread panicked");
    Ok(())
}
