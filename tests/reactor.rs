//! The reactor: readiness for user file descriptors through `Async`, registrations that follow
//! the life of their fd, hang-ups, and wakers that misbehave.

mod util;

use std::fs::File;
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use ripple::net::TcpStream;
use ripple::reactor::Async;

use util::{no_hang, yield_times};

/// A connected pair of non-blocking Unix sockets, registered with the current runtime.
fn async_pair() -> io::Result<(Async<UnixStream>, Async<UnixStream>)> {
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((Async::new(a)?, Async::new(b)?))
}

/// Forgets the optimistic readiness a new source starts with, so the next wait really waits.
async fn drain_readiness(source: &Async<UnixStream>) -> io::Result<()> {
    let event = poll_fn(|cx| source.poll_read_ready(cx)).await?;
    let mut buf = [0; 64];
    match source.get_ref().read(&mut buf) {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
            source.clear_readiness(event);
            Ok(())
        }
        other => panic!("expected an empty socket, got {other:?}"),
    }
}

#[ripple::test]
async fn async_drives_reads_and_writes_on_a_user_unix_socket() -> io::Result<()> {
    let (a, b) = async_pair()?;
    let n = b.write_with(|mut s| s.write(b"ping")).await?;
    assert_eq!(n, 4);
    a.readable().await?;
    let mut buf = [0; 16];
    let n = a.read_with(|mut s| s.read(&mut buf)).await?;
    assert_eq!(&buf[..n], b"ping");

    // The other way round, with a reader that has to wait for the data.
    let reader = ripple::spawn(async move {
        let mut buf = [0; 16];
        let n = b.read_with(|mut s| s.read(&mut buf)).await?;
        io::Result::Ok(buf[..n].to_vec())
    });
    yield_times(3).await;
    assert!(!reader.is_finished(), "the reader waits for data");
    a.writable().await?;
    a.write_with(|mut s| s.write(b"pong")).await?;
    assert_eq!(no_hang(reader).await???, b"pong");
    Ok(())
}

#[ripple::test]
async fn readable_waits_until_the_reactor_sees_data() -> io::Result<()> {
    let (a, b) = async_pair()?;
    drain_readiness(&a).await?;
    let waiter = ripple::spawn(async move {
        a.readable().await?;
        let mut buf = [0; 16];
        let n = a.get_ref().read(&mut buf)?;
        io::Result::Ok(buf[..n].to_vec())
    });
    yield_times(3).await;
    assert!(!waiter.is_finished(), "nothing to read yet");
    b.get_ref().write_all(b"data")?;
    assert_eq!(no_hang(waiter).await???, b"data");
    Ok(())
}

#[ripple::test]
async fn a_hang_up_wakes_a_parked_reader() -> io::Result<()> {
    let (a, b) = async_pair()?;
    drain_readiness(&a).await?;
    let reader = ripple::spawn(async move {
        let mut buf = [0; 16];
        a.read_with(|mut s| s.read(&mut buf)).await
    });
    yield_times(3).await;
    assert!(!reader.is_finished());
    drop(b);
    assert_eq!(no_hang(reader).await???, 0, "EOF after the hang-up");
    Ok(())
}

#[ripple::test]
async fn a_hang_up_wakes_a_parked_tcp_reader() -> io::Result<()> {
    let (mut client, server) = util::pair_with_std_peer().await?;
    let reader = ripple::spawn(async move {
        let mut buf = [0; 16];
        client.read(&mut buf).await
    });
    yield_times(3).await;
    assert!(!reader.is_finished());
    drop(server);
    assert_eq!(no_hang(reader).await???, 0);
    Ok(())
}

#[ripple::test]
async fn dropping_a_tcp_stream_makes_the_peer_read_eof_and_the_runtime_keeps_working(
) -> io::Result<()> {
    let (mut client, server) = util::connected_pair().await?;
    let reader = ripple::spawn(async move {
        let mut buf = [0; 16];
        client.read(&mut buf).await
    });
    yield_times(3).await;
    drop(server);
    assert_eq!(no_hang(reader).await???, 0);

    // A new connection on the same runtime works.
    let mut stream = TcpStream::connect(util::echo_server().await?).await?;
    stream.write_all(b"again").await?;
    let mut buf = [0; 5];
    no_hang(stream.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"again");
    Ok(())
}

/// The inode numbers of every file that some epoll instance of this process watches, read from
/// `/proc/self/fdinfo` (`tfd: ... ino:<hex>` lines).
fn epoll_watched_inodes() -> Vec<u64> {
    let mut inodes = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/fdinfo") else {
        return inodes;
    };
    for entry in dir.flatten() {
        // Other tests open and close fds meanwhile: skip whatever vanished.
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in info.lines().filter(|l| l.starts_with("tfd:")) {
            let ino = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("ino:"))
                .and_then(|hex| u64::from_str_radix(hex, 16).ok());
            inodes.extend(ino);
        }
    }
    inodes
}

/// The inode number of an open fd.
fn inode(fd: RawFd) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(format!("/proc/self/fd/{fd}"))?.ino())
}

#[ripple::test]
async fn dropping_an_async_deletes_its_fd_from_epoll_before_closing_it() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    // A second fd for the same socket keeps it open after the Async closes its own. Had the
    // Async closed its fd before deleting it, epoll_ctl would fail with EBADF and the socket
    // would stay watched for as long as the duplicate lives.
    let duplicate = a.try_clone()?;
    let ino = inode(duplicate.as_raw_fd())?;
    let source = Async::new(a)?;
    assert!(
        epoll_watched_inodes().contains(&ino),
        "the socket is watched while registered"
    );
    drop(source);
    assert!(
        !epoll_watched_inodes().contains(&ino),
        "the socket is still in an epoll set after its Async was dropped"
    );

    // into_inner deletes the registration too, and hands back a working socket.
    let source = Async::new(duplicate)?;
    assert!(epoll_watched_inodes().contains(&ino));
    let socket = source.into_inner()?;
    assert!(!epoll_watched_inodes().contains(&ino));
    assert_eq!(inode(socket.as_fd().as_raw_fd())?, ino);
    Ok(())
}

#[ripple::test]
async fn a_reused_fd_number_gets_its_own_events_and_not_the_old_ones() -> io::Result<()> {
    let addr = util::echo_server().await?;
    let mut neighbour = TcpStream::connect(addr).await?;
    // Other tests in this process may grab the freed number first: try a few times.
    let mut reused = None;
    for _ in 0..100 {
        let mut old = TcpStream::connect(addr).await?;
        // Leave the old socket readable, with an event for it in the reactor, then drop it.
        old.write_all(b"stale").await?;
        let mut buf = [0; 2];
        no_hang(old.read_exact(&mut buf)).await??;
        yield_times(3).await;
        let fd = old.as_fd().as_raw_fd();
        drop(old);
        let new = TcpStream::connect(addr).await?;
        if new.as_fd().as_raw_fd() == fd {
            reused = Some(new);
            break;
        }
    }
    let mut new = reused.expect("never got the same fd number back");

    // The new socket waits for, and gets, its own data; the neighbour is unaffected.
    for (stream, message) in [(&mut new, &b"new one"[..]), (&mut neighbour, b"neighbour")] {
        let reader_waits = async {
            let mut buf = vec![0; message.len()];
            stream.write_all(message).await?;
            no_hang(stream.read_exact(&mut buf)).await??;
            io::Result::Ok(buf)
        };
        assert_eq!(reader_waits.await?, message);
    }
    Ok(())
}

/// Events carry the address of their source, and a source may be deleted on another thread
/// while the runtime dispatches a batch that names it. Here sources with events pending are
/// dropped on a second thread while the runtime keeps dispatching, round after round; afterwards
/// the reactor still works. This runs the race; the unit test
/// `a_deleted_source_is_kept_and_reused_and_its_old_key_names_nothing` checks the rule that makes
/// it safe (a source's memory is never freed while its reactor lives).
#[ripple::test]
async fn sources_dropped_on_another_thread_during_a_batch_leave_the_rest_working() -> io::Result<()>
{
    for _ in 0..50 {
        let mut doomed = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..40 {
            let (mine, peer) = async_pair()?;
            drain_readiness(&mine).await?;
            doomed.push(mine);
            peers.push(peer);
        }
        // Every doomed source gets an event, and they die while the runtime dispatches them.
        for peer in &peers {
            peer.get_ref().write_all(b"x")?;
        }
        let dropper = std::thread::spawn(move || drop(doomed));
        while !dropper.is_finished() {
            yield_times(1).await;
        }
        dropper.join().expect("dropping sources does not panic");
    }
    // The reactor still delivers to a fresh source.
    let (a, b) = async_pair()?;
    drain_readiness(&a).await?;
    b.get_ref().write_all(b"ok")?;
    let mut buf = [0; 2];
    no_hang(a.read_with(|mut s| s.read(&mut buf))).await??;
    assert_eq!(&buf, b"ok");
    Ok(())
}

/// An I/O object whose `as_fd` answers with a different fd after it was registered.
struct Fickle {
    /// The fd registered.
    first: UnixStream,
    /// The fd it answers with later.
    second: UnixStream,
    /// Whether to answer with `second`.
    switched: std::cell::Cell<bool>,
}

impl AsFd for Fickle {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        if self.switched.get() {
            self.second.as_fd()
        } else {
            self.first.as_fd()
        }
    }
}

/// Dropping an `Async<Fickle>` deletes the wrong fd from epoll, and a duplicate keeps the first
/// fd's file (and so its registration) alive: its events keep coming under the old key after the
/// source was deleted and its memory reused by a new source. They must not reach the new one.
#[ripple::test]
async fn a_registration_that_outlives_its_delete_does_not_wake_the_next_source() -> io::Result<()> {
    for _ in 0..10 {
        let (first, mut first_peer) = UnixStream::pair()?;
        first.set_nonblocking(true)?;
        let _keeps_the_file_open = first.try_clone()?;
        let (second, _second_peer) = UnixStream::pair()?;
        let fickle = Async::new(Fickle {
            first,
            second,
            switched: std::cell::Cell::new(false),
        })?;
        fickle.get_ref().switched.set(true);
        drop(fickle);
        yield_times(2).await;
        // Very likely the memory of the source just deleted, under a new generation.
        let (fresh, _fresh_peer) = UnixStream::pair()?;
        fresh.set_nonblocking(true)?;
        let fresh = Async::new(fresh)?;
        drain_readiness(&fresh).await?;
        // An event for the stale registration.
        first_peer.write_all(b"z")?;
        let woken = ripple::time::timeout(std::time::Duration::from_millis(50), fresh.readable());
        assert!(
            woken.await.is_err(),
            "an event of a deleted registration made a new source readable"
        );
    }
    Ok(())
}

#[ripple::test]
async fn async_new_returns_an_error_for_an_fd_epoll_refuses() -> io::Result<()> {
    // epoll does not watch regular files (EPERM).
    let file = File::open(std::env::current_exe()?)?;
    let err = Async::new(file).expect_err("a regular file cannot be registered");
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
    // The reactor is unharmed.
    let (a, b) = async_pair()?;
    b.write_with(|mut s| s.write(b"x")).await?;
    let mut buf = [0; 1];
    assert_eq!(a.read_with(|mut s| s.read(&mut buf)).await?, 1);
    Ok(())
}

#[test]
fn async_new_outside_a_runtime_is_an_error_not_a_panic() -> io::Result<()> {
    let (a, _b) = UnixStream::pair()?;
    let err = Async::new(a).expect_err("no runtime");
    assert!(err.to_string().contains("inside a ripple runtime"), "{err}");
    Ok(())
}

/// A waker that panics when woken.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics on purpose");
    }
}

#[ripple::test]
async fn a_panicking_waker_does_not_take_the_reactor_down() -> io::Result<()> {
    let (a, b) = async_pair()?;
    drain_readiness(&a).await?;
    // Park a panicking waker on `a`'s read side, as a buggy hand-written future might.
    let waker = Waker::from(Arc::new(PanickingWaker));
    let mut cx = Context::from_waker(&waker);
    assert!(a.poll_read_ready(&mut cx).is_pending());
    // And on a timer.
    let mut sleep = pin!(ripple::time::sleep(std::time::Duration::from_millis(1)));
    assert!(sleep.as_mut().poll(&mut cx).is_pending());

    // The event and the timer fire the panicking wakers inside the runtime.
    b.write_with(|mut s| s.write(b"x")).await?;
    ripple::time::sleep(std::time::Duration::from_millis(5)).await;

    // The runtime still runs tasks, timers and I/O.
    let reader = ripple::spawn(async move {
        let mut buf = [0; 1];
        a.read_with(|mut s| s.read(&mut buf)).await?;
        io::Result::Ok(buf)
    });
    assert_eq!(&no_hang(reader).await???, b"x");
    Ok(())
}

#[ripple::test]
async fn a_task_waiting_on_more_sources_than_its_budget_still_sees_the_last_one() -> io::Result<()>
{
    // One task polls 300 idle sockets, more than its I/O budget of 128 per poll. Waiting on a
    // source that is not ready must not spend budget, or the sources after the 128th would
    // never be looked at and the task would spin.
    let mut clients = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..300 {
        let (client, peer) = util::pair_with_std_peer().await?;
        clients.push(client);
        peers.push(peer);
    }
    let last = peers.len() - 1;
    let writer = std::thread::spawn({
        let mut peer = peers[last].try_clone()?;
        move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            peer.write_all(b"x")
        }
    });
    let mut buf = [0; 1];
    let which = no_hang(poll_fn(|cx| {
        for (i, client) in clients.iter().enumerate() {
            if let std::task::Poll::Ready(result) = client.poll_read(cx, &mut buf) {
                return std::task::Poll::Ready(result.map(|_| i));
            }
        }
        std::task::Poll::Pending
    }))
    .await??;
    assert_eq!(which, last);
    writer.join().expect("writer thread")?;
    Ok(())
}

#[ripple::test]
async fn two_tasks_accepting_on_one_listener_both_get_a_connection() -> io::Result<()> {
    let listener = Arc::new(ripple::net::TcpListener::bind("127.0.0.1:0").await?);
    let addr = listener.local_addr()?;
    let acceptors: Vec<_> = (0..2)
        .map(|_| {
            let listener = listener.clone();
            ripple::spawn(async move { listener.accept().await.map(|(_, peer)| peer) })
        })
        .collect();
    // Both park on the same listener before any connection arrives.
    yield_times(3).await;
    let _first = TcpStream::connect(addr).await?;
    let _second = TcpStream::connect(addr).await?;
    for acceptor in acceptors {
        no_hang(acceptor).await???;
    }
    Ok(())
}

#[ripple::test]
async fn async_of_a_read_and_write_type_is_async_read_and_async_write() -> io::Result<()> {
    use futures_io::{AsyncRead, AsyncWrite};
    let (mut a, mut b) = async_pair()?;
    // A reader that parks first: nothing has been written yet.
    let reader = ripple::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0; 7];
        loop {
            let n = poll_fn(|cx| std::pin::Pin::new(&mut b).poll_read(cx, &mut buf)).await?;
            if n == 0 {
                return io::Result::Ok(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    });
    yield_times(3).await;
    // 1 MiB through a socket buffer far smaller: the writer parks on WouldBlock too.
    let sent = util::pattern(1 << 20);
    let mut rest = &sent[..];
    while !rest.is_empty() {
        let n = poll_fn(|cx| std::pin::Pin::new(&mut a).poll_write(cx, rest)).await?;
        rest = &rest[n..];
    }
    poll_fn(|cx| std::pin::Pin::new(&mut a).poll_close(cx)).await?;
    // Closing flushes only; dropping `a` closes the socket, which the reader sees as the end.
    drop(a);
    let got = no_hang(reader).await?.expect("the reader task")?;
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the bytes arrived in order");
    Ok(())
}
