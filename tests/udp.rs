//! `UdpSocket` on loopback: datagrams of every size up to 60 KB, truncation, connected and
//! unconnected sockets, `peek_from`, a receiver that parks until a datagram comes, on both
//! runtime flavours.

mod util;

use std::io;
use std::time::Duration;

use ripple::net::UdpSocket;
use ripple::runtime::{Builder, Runtime};

use util::{no_hang, pattern};

/// Both flavours, for tests that must hold on each.
fn runtimes() -> io::Result<Vec<Runtime>> {
    Ok(vec![
        Builder::new_current_thread().build()?,
        Builder::new_multi_thread().worker_threads(2).build()?,
    ])
}

#[test]
fn datagrams_from_1_byte_to_60_kb_echo_whole() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let server = UdpSocket::bind("127.0.0.1:0").await?;
            let server_addr = server.local_addr()?;
            // The echo server, in a task of its own: it parks in recv_from between datagrams.
            let echo = ripple::spawn(async move {
                let mut buf = vec![0; 65_536];
                loop {
                    let (n, from) = server.recv_from(&mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    server.send_to(&buf[..n], from).await?;
                }
            });
            let client = UdpSocket::bind("127.0.0.1:0").await?;
            let mut buf = vec![0; 65_536];
            for len in [1, 2, 100, 1_472, 1_500, 9_000, 32_768, 60_000] {
                let sent = pattern(len);
                assert_eq!(client.send_to(&sent, server_addr).await?, len);
                let (n, from) = no_hang(client.recv_from(&mut buf)).await??;
                assert_eq!(from, server_addr);
                assert_eq!(
                    &buf[..n],
                    &sent[..],
                    "a {len}-byte datagram came back whole"
                );
            }
            // An empty datagram stops the server.
            client.send_to(&[], server_addr).await?;
            no_hang(echo).await?.expect("the echo task")?;
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_datagram_longer_than_the_buffer_is_truncated_and_the_next_one_is_whole() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await?;
            let b = UdpSocket::bind("127.0.0.1:0").await?;
            a.send_to(&pattern(100), b.local_addr()?).await?;
            a.send_to(b"second", b.local_addr()?).await?;
            let mut small = [0; 10];
            let (n, _) = no_hang(b.recv_from(&mut small)).await??;
            assert_eq!(
                &small[..n],
                &pattern(100)[..10],
                "the first 10 bytes, no error"
            );
            let mut buf = [0; 100];
            let (n, _) = no_hang(b.recv_from(&mut buf)).await??;
            assert_eq!(&buf[..n], b"second", "the rest of the long one is gone");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn a_connected_socket_sends_and_receives_with_its_peer_only() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let a = UdpSocket::bind("127.0.0.1:0").await?;
            let b = UdpSocket::bind("127.0.0.1:0").await?;
            let stranger = UdpSocket::bind("127.0.0.1:0").await?;
            assert_eq!(
                a.peer_addr().expect_err("not connected yet").kind(),
                io::ErrorKind::NotConnected
            );
            a.connect(b.local_addr()?).await?;
            b.connect(a.local_addr()?).await?;
            assert_eq!(a.peer_addr()?, b.local_addr()?);
            // The stranger's datagram is dropped by the kernel: a connected socket only hears
            // its peer.
            stranger.send_to(b"noise", a.local_addr()?).await?;
            b.send(b"hello").await?;
            let mut buf = [0; 16];
            let n = no_hang(a.recv(&mut buf)).await??;
            assert_eq!(&buf[..n], b"hello");
            a.send(b"back").await?;
            let n = no_hang(b.recv(&mut buf)).await??;
            assert_eq!(&buf[..n], b"back");
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn peek_from_leaves_the_datagram_queued() -> io::Result<()> {
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        a.send_to(b"once", b.local_addr()?).await?;
        let mut buf = [0; 16];
        let (n, from) = no_hang(b.peek_from(&mut buf)).await??;
        assert_eq!((&buf[..n], from), (&b"once"[..], a.local_addr()?));
        let (n, _) = no_hang(b.recv_from(&mut buf)).await??;
        assert_eq!(&buf[..n], b"once", "the peeked datagram is still there");
        io::Result::Ok(())
    })
}

#[test]
fn a_receiver_parks_until_a_datagram_comes_from_another_thread() -> io::Result<()> {
    for rt in runtimes()? {
        rt.block_on(async {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            let addr = socket.local_addr()?;
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let plain = std::net::UdpSocket::bind("127.0.0.1:0")?;
                plain.send_to(b"late", addr)
            });
            let mut buf = [0; 16];
            let (n, _) = no_hang(socket.recv_from(&mut buf)).await??;
            assert_eq!(&buf[..n], b"late");
            sender.join().expect("the sender thread")?;
            io::Result::Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn from_std_and_into_std_round_trip_and_broadcast_can_be_set() -> io::Result<()> {
    let rt = Builder::new_current_thread().build()?;
    rt.block_on(async {
        let plain = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let addr = plain.local_addr()?;
        let socket = UdpSocket::from_std(plain)?;
        assert_eq!(socket.local_addr()?, addr);
        assert!(!socket.broadcast()?);
        socket.set_broadcast(true)?;
        assert!(socket.broadcast()?);
        let back = socket.into_std()?;
        assert_eq!(back.local_addr()?, addr);
        io::Result::Ok(())
    })
}
