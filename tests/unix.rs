//! Unix sockets in a temporary directory: a 1 MiB echo through split halves, half-close, a peer
//! that resets, `futures_io` on the stream and its halves, datagrams bound, paired and
//! connected, and clear errors for a path that exists or is too long; on both flavours.

mod util;

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::path::PathBuf;
use std::pin::Pin;

use ripple::net::{UnixDatagram, UnixListener, UnixStream};
use ripple::runtime::{Builder, Runtime};

use util::{no_hang, pattern};

/// Both flavours, for tests that must hold on each.
fn runtimes() -> io::Result<Vec<Runtime>> {
    Ok(vec![
        Builder::new_current_thread().build()?,
        Builder::new_multi_thread().worker_threads(2).build()?,
    ])
}

/// A fresh directory for one test's socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("ripple-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_mebibyte_echoes_through_owned_halves_of_a_connected_stream() -> io::Result<()> {
    for (i, rt) in runtimes()?.into_iter().enumerate() {
        let dir = TempDir::new(&format!("echo{i}"))?;
        let path = dir.path("echo.sock");
        rt.block_on(async {
            let listener = UnixListener::bind(&path)?;
            assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
            // The server echoes through its own halves, in two tasks.
            let server = ripple::spawn(async move {
                let (stream, _) = listener.accept().await?;
                let (mut reader, mut writer) = stream.into_split();
                let mut buf = vec![0; 8192];
                loop {
                    let n = reader.read(&mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    writer.write_all(&buf[..n]).await?;
                }
            });
            let stream = UnixStream::connect(&path).await?;
            let (mut reader, mut writer) = stream.into_split();
            let sent = pattern(1 << 20);
            let writing = ripple::spawn({
                let sent = sent.clone();
                async move {
                    writer.write_all(&sent).await?;
                    // Dropping the write half shuts down the write side: the server sees the end.
                    drop(writer);
                    io::Result::Ok(())
                }
            });
            let mut got = vec![0; sent.len()];
            let read = no_hang(reader.read_exact(&mut got)).await?;
            if let Err(err) = read {
                let server = no_hang(server).await?;
                panic!("client read failed: {err}; server: {server:?}");
            }
            assert!(got == sent, "the mebibyte came back in order");
            let mut more = [0; 1];
            assert_eq!(no_hang(reader.read(&mut more)).await??, 0, "then the end");
            no_hang(writing).await?.expect("writer task")?;
            no_hang(server).await?.expect("server task")?;
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_half_closed_stream_still_carries_the_other_way() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair()?;
            a.write_all(b"question").await?;
            a.shutdown(Shutdown::Write)?;
            let mut buf = [0; 8];
            no_hang(b.read_exact(&mut buf)).await??;
            assert_eq!(&buf, b"question");
            assert_eq!(
                no_hang(b.read(&mut buf)).await??,
                0,
                "a's write side is shut"
            );
            b.write_all(b"answer").await?;
            let mut answer = [0; 6];
            no_hang(a.read_exact(&mut answer)).await??;
            assert_eq!(&answer, b"answer");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_peer_that_closes_with_unread_data_resets_the_stream() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let (mut a, b) = UnixStream::pair()?;
            a.write_all(b"never read").await?;
            drop(b);
            let mut buf = [0; 16];
            // Linux reports the discarded data as a reset; the read must not hang.
            let read = no_hang(a.read(&mut buf)).await?;
            assert_eq!(
                read.expect_err("a reset, not data").kind(),
                io::ErrorKind::ConnectionReset
            );
            let write = no_hang(a.write_all(b"more")).await?;
            assert!(write.is_err(), "writing to a closed peer fails");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn futures_io_works_on_the_stream_and_close_on_a_write_half_shuts_it_down() -> io::Result<()> {
    use futures_io::{AsyncRead, AsyncWrite};
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        let (mut a, b) = UnixStream::pair()?;
        let (mut read_half, mut write_half) = b.into_split();
        poll_fn(|cx| Pin::new(&mut a).poll_write(cx, b"ping")).await?;
        let mut buf = [0; 4];
        let n = no_hang(poll_fn(|cx| {
            Pin::new(&mut read_half).poll_read(cx, &mut buf)
        }))
        .await??;
        assert_eq!(&buf[..n], b"ping");
        poll_fn(|cx| Pin::new(&mut write_half).poll_write(cx, b"pong")).await?;
        poll_fn(|cx| Pin::new(&mut write_half).poll_close(cx)).await?;
        let n = no_hang(poll_fn(|cx| Pin::new(&mut a).poll_read(cx, &mut buf))).await??;
        assert_eq!(&buf[..n], b"pong");
        let n = no_hang(poll_fn(|cx| Pin::new(&mut a).poll_read(cx, &mut buf))).await??;
        assert_eq!(n, 0, "close on the write half shut down its write side");
        io::Result::Ok(())
    })
}

#[test]
fn datagrams_pair_bind_send_to_and_connect() -> io::Result<()> {
    for (i, rt) in runtimes()?.into_iter().enumerate() {
        let dir = TempDir::new(&format!("dgram{i}"))?;
        rt.block_on(async {
            // A pair: each send is one whole message.
            let (a, b) = UnixDatagram::pair()?;
            a.send(b"one").await?;
            a.send(b"two").await?;
            let mut buf = [0; 16];
            for expected in [&b"one"[..], b"two"] {
                let n = no_hang(b.recv(&mut buf)).await??;
                assert_eq!(&buf[..n], expected);
            }

            // Bound sockets, addressed by path.
            let server_path = dir.path("server.sock");
            let client_path = dir.path("client.sock");
            let server = UnixDatagram::bind(&server_path)?;
            let client = UnixDatagram::bind(&client_path)?;
            client.send_to(b"hello", &server_path).await?;
            let (n, from) = no_hang(server.recv_from(&mut buf)).await??;
            assert_eq!(&buf[..n], b"hello");
            assert_eq!(from.as_pathname(), Some(client_path.as_path()));

            // A message longer than the buffer is truncated.
            client.send_to(&pattern(100), &server_path).await?;
            let mut small = [0; 10];
            let (n, _) = no_hang(server.recv_from(&mut small)).await??;
            assert_eq!(&small[..n], &pattern(100)[..10]);

            // Unbound, then connected: send and recv with the peer.
            let unbound = UnixDatagram::unbound()?;
            unbound.connect(&server_path)?;
            unbound.send(b"via connect").await?;
            let n = no_hang(server.recv(&mut buf)).await??;
            assert_eq!(&buf[..n], b"via connect");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_path_that_exists_or_is_too_long_is_a_clear_error() -> io::Result<()> {
    let dir = TempDir::new("errors")?;
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        let path = dir.path("taken.sock");
        let _first = UnixListener::bind(&path)?;
        let err = UnixListener::bind(&path).expect_err("the path exists");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let long = dir.path(&"x".repeat(200));
        let err = UnixListener::bind(&long).expect_err("too long for a socket address");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = no_hang(UnixStream::connect(dir.path("nobody.sock")))
            .await?
            .expect_err("nobody listens there");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        io::Result::Ok(())
    })
}
