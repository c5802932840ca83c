//! The `echo` example's graceful shutdown: SIGTERM while a client's bytes are on their way
//! still echoes them, then the connection ends, and the process exits 0 saying what it did.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the test waits for the server before it fails.
const LIMIT: Duration = Duration::from_secs(10);

/// The running example, killed if the test ends early.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigterm_echoes_what_was_sent_then_closes_and_exits_0() -> io::Result<()> {
    let child = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "echo", "--", "127.0.0.1:0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .spawn()?;
    let mut server = Server(child);
    let mut stdout = BufReader::new(server.0.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected first line: {line:?}")))?;

    // A client that half-closes gets its echo and then the end of the stream at once: the
    // duplicate the server keeps for shutdown must not hold the connection open.
    let mut done = TcpStream::connect(addr)?;
    done.set_read_timeout(Some(LIMIT))?;
    done.write_all(b"bye")?;
    done.shutdown(std::net::Shutdown::Write)?;
    let mut echoed = Vec::new();
    done.read_to_end(&mut echoed)?;
    assert_eq!(echoed, b"bye");

    let mut client = TcpStream::connect(addr)?;
    client.set_read_timeout(Some(LIMIT))?;
    let mut idle = TcpStream::connect(addr)?;
    idle.set_read_timeout(Some(LIMIT))?;
    client.write_all(b"before")?;
    let mut got = [0; 6];
    client.read_exact(&mut got)?;
    assert_eq!(&got, b"before");

    // Bytes on their way when the signal comes are still echoed.
    client.write_all(b"in flight")?;
    // SAFETY: kill(2) on the server's own process id, which this test started and still owns.
    let sent = unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest)?;
    assert_eq!(rest, b"in flight", "echoed, then the end of the stream");
    let mut nothing = Vec::new();
    idle.read_to_end(&mut nothing)?;
    assert!(nothing.is_empty(), "the idle connection just closes");

    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = server.0.try_wait()? {
            break status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let mut said = String::new();
    stdout.read_to_string(&mut said)?;
    assert!(
        said.contains("SIGTERM: shutting down, 2 connection(s) open")
            && said.contains("all 2 connection(s) closed"),
        "{said}"
    );
    Ok(())
}
