//! TCP: echo round trips, many connections, split halves, half-close, and the futures-io traits.

mod util;

use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;

use futures_io::{AsyncRead, AsyncWrite};
use ripple::net::{TcpListener, TcpStream};

use util::{echo_server, in_child_process, join, no_hang, pattern, yield_times};

#[ripple::test]
async fn a_mebibyte_echoes_back_intact_through_owned_halves_in_two_tasks() -> io::Result<()> {
    const LEN: usize = 1 << 20;
    let data = pattern(LEN);
    let stream = TcpStream::connect(echo_server().await?).await?;
    let (mut read_half, mut write_half) = stream.into_split();

    let writer = ripple::spawn({
        let data = data.clone();
        async move {
            // Odd-sized writes, so that reads and writes do not line up.
            for chunk in data.chunks(7919) {
                write_half.write_all(chunk).await?;
            }
            io::Result::Ok(write_half)
        }
    });
    let reader = ripple::spawn(async move {
        let mut received = vec![0; LEN];
        read_half.read_exact(&mut received).await?;
        io::Result::Ok(received)
    });
    let received = no_hang(reader).await???;
    let _write_half = no_hang(writer).await???;
    assert!(
        received == data,
        "the echoed bytes differ from the sent ones"
    );
    Ok(())
}

/// Runs `connections` clients at once against one echo server, each sending its own message;
/// returns how many got their own message back.
async fn concurrent_echoes(connections: usize) -> io::Result<usize> {
    let addr = echo_server().await?;
    let clients: Vec<_> = (0..connections)
        .map(|i| {
            ripple::spawn(async move {
                let mut stream = TcpStream::connect(addr).await?;
                let message = format!("hello from client {i:04}");
                stream.write_all(message.as_bytes()).await?;
                let mut reply = vec![0; message.len()];
                stream.read_exact(&mut reply).await?;
                io::Result::Ok(reply == message.as_bytes())
            })
        })
        .collect();
    let mut correct = 0;
    for client in clients {
        if no_hang(client).await??? {
            correct += 1;
        }
    }
    Ok(correct)
}

#[test]
fn a_thousand_concurrent_connections_each_get_their_echo() -> io::Result<()> {
    const CONNECTIONS: u64 = 1000;
    // Both ends live in this process: two fds per connection, plus room for the rest.
    const NEEDED: u64 = 2 * CONNECTIONS + 200;
    let (soft, hard) = util::open_files_limit()?;
    let run = |connections: u64| {
        let correct = ripple::block_on(concurrent_echoes(connections as usize))?;
        assert_eq!(correct as u64, connections);
        Ok(())
    };
    if soft >= NEEDED {
        run(CONNECTIONS)
    } else {
        // Raise the soft limit in a child process, or, if the hard limit forbids that, run as
        // many connections as it allows.
        let limit = NEEDED.min(hard);
        if limit < NEEDED {
            eprintln!(
                "RLIMIT_NOFILE hard limit {hard}: running fewer than {CONNECTIONS} connections"
            );
        }
        in_child_process(
            "a_thousand_concurrent_connections_each_get_their_echo",
            Some(limit.try_into().unwrap_or(u32::MAX)),
            || run(CONNECTIONS.min(limit.saturating_sub(200) / 2)),
        )
    }
}

#[ripple::test]
async fn borrowed_halves_read_and_write_concurrently_in_one_task() -> io::Result<()> {
    // More than the socket buffers hold: the writer only finishes if the reader drains.
    const LEN: usize = 4 << 20;
    let data = pattern(LEN);
    let mut stream = TcpStream::connect(echo_server().await?).await?;
    let (mut read_half, mut write_half) = stream.split();
    let mut received = vec![0; LEN];
    let (written, read) = no_hang(join(
        write_half.write_all(&data),
        read_half.read_exact(&mut received),
    ))
    .await?;
    written?;
    read?;
    assert!(received == data);
    Ok(())
}

#[ripple::test]
async fn owned_halves_ping_pong_from_two_tasks() -> io::Result<()> {
    let (client, mut server) = util::connected_pair().await?;
    let (mut read_half, mut write_half) = client.into_split();
    let (tx, rx) = util::oneshot::<()>();
    let writer = ripple::spawn(async move {
        write_half.write_all(b"ping").await?;
        // Wait until the reader has its answer before writing again.
        rx.await;
        write_half.write_all(b"done").await?;
        write_half.flush().await?;
        io::Result::Ok(())
    });
    let reader = ripple::spawn(async move {
        let mut buf = [0; 4];
        read_half.read_exact(&mut buf).await?;
        tx.send(());
        io::Result::Ok(buf)
    });

    let mut buf = [0; 4];
    no_hang(server.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").await?;
    assert_eq!(&no_hang(reader).await???, b"pong");
    no_hang(server.read_exact(&mut buf)).await??;
    assert_eq!(&buf, b"done");
    no_hang(writer).await???;
    // The write half was dropped at the end of its task: the server reads EOF.
    assert_eq!(no_hang(server.read(&mut buf)).await??, 0);
    Ok(())
}

#[ripple::test]
async fn after_a_half_close_the_server_reads_eof_and_can_still_reply() -> io::Result<()> {
    let (mut client, mut server) = util::connected_pair().await?;
    client.write_all(b"request").await?;
    client.shutdown(Shutdown::Write)?;

    let mut request = [0; 7];
    no_hang(server.read_exact(&mut request)).await??;
    assert_eq!(&request, b"request");
    let mut buf = [0; 16];
    assert_eq!(
        no_hang(server.read(&mut buf)).await??,
        0,
        "EOF after the data"
    );
    server.write_all(b"reply").await?;
    drop(server);

    let mut reply = [0; 5];
    no_hang(client.read_exact(&mut reply)).await??;
    assert_eq!(&reply, b"reply");
    Ok(())
}

#[ripple::test]
async fn tcp_stream_implements_futures_io_async_read_and_async_write() -> io::Result<()> {
    let (mut client, mut server) = util::connected_pair().await?;
    let written = poll_fn(|cx| Pin::new(&mut client).poll_write(cx, b"via futures-io")).await?;
    assert_eq!(written, 14);
    poll_fn(|cx| Pin::new(&mut client).poll_flush(cx)).await?;

    let mut buf = [0; 14];
    let mut filled = 0;
    while filled < buf.len() {
        let n = no_hang(poll_fn(|cx| {
            Pin::new(&mut server).poll_read(cx, &mut buf[filled..])
        }))
        .await??;
        assert_ne!(n, 0, "unexpected EOF");
        filled += n;
    }
    assert_eq!(&buf, b"via futures-io");

    // poll_close shuts down the write side.
    poll_fn(|cx| Pin::new(&mut client).poll_close(cx)).await?;
    let n = no_hang(poll_fn(|cx| Pin::new(&mut server).poll_read(cx, &mut buf))).await??;
    assert_eq!(n, 0);

    // The owned halves implement the traits too.
    let (client, server) = util::connected_pair().await?;
    let (_client_read, mut client_write) = client.into_split();
    let (mut server_read, _server_write) = server.into_split();
    poll_fn(|cx| Pin::new(&mut client_write).poll_write(cx, b"half")).await?;
    let mut half = [0; 4];
    let n = no_hang(poll_fn(|cx| {
        Pin::new(&mut server_read).poll_read(cx, &mut half)
    }))
    .await??;
    assert_eq!(&half[..n], &b"half"[..n]);
    assert!(n > 0);
    Ok(())
}

#[ripple::test]
async fn a_listener_accepts_connections_and_reports_both_addresses() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    assert_ne!(addr.port(), 0);
    let accepting = ripple::spawn(async move { listener.accept().await });
    yield_times(2).await;
    assert!(!accepting.is_finished(), "accept waits for a connection");
    let client = TcpStream::connect(addr).await?;
    let (server, peer) = no_hang(accepting).await???;
    assert_eq!(peer, client.local_addr()?);
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    assert_eq!(client.peer_addr()?, addr);
    Ok(())
}

#[ripple::test]
async fn a_std_stream_can_be_taken_over() -> io::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let std_client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (std_server, _) = listener.accept()?;
    let mut client = TcpStream::from_std(std_client)?;
    let mut server = TcpStream::from_std(std_server)?;
    // The server side waits in the reactor, not in a blocking read.
    let reader = ripple::spawn(async move {
        let mut buf = [0; 3];
        server.read_exact(&mut buf).await?;
        io::Result::Ok(buf)
    });
    yield_times(3).await;
    assert!(!reader.is_finished());
    client.write_all(b"std").await?;
    assert_eq!(&no_hang(reader).await???, b"std");
    Ok(())
}

#[test]
fn a_std_listener_and_stream_move_into_ripple_and_back() -> io::Result<()> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = std_listener.local_addr()?;
    ripple::block_on(async move {
        let listener = ripple::net::TcpListener::from_std(std_listener)?;
        let client = ripple::spawn(async move { ripple::net::TcpStream::connect(addr).await });
        let (server, _) = listener.accept().await?;
        let mut client = client.await??;
        client.write_all(b"x").await?;
        let mut server = server.into_std()?;
        server.set_nonblocking(false)?;
        let mut byte = [0; 1];
        std::io::Read::read_exact(&mut server, &mut byte)?;
        assert_eq!(&byte, b"x");
        let back = listener.into_std()?;
        assert_eq!(back.local_addr()?, addr);
        io::Result::Ok(())
    })
}

/// Data after a TCP urgent byte. A read stops at the urgent mark (the urgent byte itself is out
/// of band, without `SO_OOBINLINE`), so it comes back short, and ripple then waits for a new
/// edge; an outside test reported that the bytes behind the mark could wait for more data. Two
/// shapes, with the server parked before the bytes come: the urgent byte in a segment between
/// two others, and at the end of a segment that carries data.
#[ripple::test]
async fn data_after_an_urgent_byte_is_read_without_waiting_for_more() -> io::Result<()> {
    type Shape = [(bool, &'static [u8]); 3];
    let shapes: [Shape; 2] = [
        [(false, b"ab"), (true, b"X"), (false, b"cd")],
        [(false, b"ab"), (true, b"cdX"), (false, b"")],
    ];
    for shape in shapes {
        let (mut server, client) = util::pair_with_std_peer().await?;
        let sender = std::thread::spawn(move || -> io::Result<std::net::TcpStream> {
            let sock = socket2::SockRef::from(&client);
            for (urgent, bytes) in shape {
                std::thread::sleep(std::time::Duration::from_millis(20));
                if urgent {
                    sock.send_out_of_band(bytes)?;
                } else if !bytes.is_empty() {
                    sock.send(bytes)?;
                }
            }
            Ok(client)
        });
        let mut got = Vec::new();
        let mut buf = [0; 16];
        while got.len() < 4 {
            let n = no_hang(server.read(&mut buf)).await??;
            assert!(n > 0, "end of stream after {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            got, b"abcd",
            "the stream, in order, without the urgent byte"
        );
        drop(sender.join().expect("the sending thread")?);
    }
    Ok(())
}
