//! The `tiny_runtime` example (guide chapter 8a), run as a process: it echoes every client's
//! bytes, serves several clients at once on its one thread, and keeps serving after one leaves.

mod util;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use util::Example;

/// How long a client waits for an echo before the test fails.
const LIMIT: Duration = Duration::from_secs(10);

/// Starts the example on a port of the kernel's choice (`util::Example` reads its
/// `listening on ADDR` line, and kills it when dropped).
fn start() -> io::Result<(Example, SocketAddr)> {
    let server = Example::start("tiny_runtime", &[], &[], None)?;
    let addr = server.addr;
    Ok((server, addr))
}

/// A client with a read timeout, so that a missing echo fails the test instead of hanging it.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(LIMIT))?;
    Ok(stream)
}

/// Sends `message` and reads back exactly as many bytes, which must be the same.
fn round_trip(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    stream.write_all(message)?;
    let mut echoed = vec![0; message.len()];
    stream.read_exact(&mut echoed)?;
    assert_eq!(echoed, message);
    Ok(())
}

#[test]
fn clients_get_their_bytes_echoed_at_the_same_time_and_after_one_leaves() -> io::Result<()> {
    let (_server, addr) = start()?;

    // Two clients open at once, taking turns: one thread serves both.
    let mut first = connect(addr)?;
    let mut second = connect(addr)?;
    round_trip(&mut first, b"hello from the first")?;
    round_trip(&mut second, b"hello from the second")?;
    round_trip(&mut first, b"the first again")?;

    // The first leaves: its half-close ends its echo loop, and the second is still served.
    first.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    first.read_to_end(&mut rest)?;
    assert!(rest.is_empty(), "nothing more after the close: {rest:?}");
    round_trip(&mut second, b"still here")?;

    // A third client, after the first is gone.
    let mut third = connect(addr)?;
    round_trip(&mut third, b"a newcomer")?;
    Ok(())
}

#[test]
fn a_large_message_comes_back_whole_and_in_order() -> io::Result<()> {
    let (_server, addr) = start()?;
    let mut client = connect(addr)?;
    let message: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();

    // Write from another thread while this one reads: a client that wrote 4 MiB before
    // reading could fill both directions' buffers and wait forever for the server.
    let mut writer = client.try_clone()?;
    let sent = message.clone();
    let writing = thread::spawn(move || writer.write_all(&sent));
    let mut echoed = vec![0; message.len()];
    client.read_exact(&mut echoed)?;
    writing.join().expect("the writer thread panicked")?;
    assert!(echoed == message, "the echo differs from what was sent");
    Ok(())
}
