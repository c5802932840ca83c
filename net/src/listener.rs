//! `TcpListener`: the seeds' *Acceptor*, as a future.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{ready, Context, Poll};

use ripple_runtime::reactor::{Async, Interest};
use socket2::{Domain, Protocol, Socket, Type};

use crate::{Incoming, TcpStream};

/// Connections waiting in the kernel's accept queue before new ones are refused.
const BACKLOG: i32 = 1024;

/// A TCP socket that accepts connections.
///
/// ```no_run
/// # ripple_runtime::block_on(async {
/// let listener = ripple_net::TcpListener::bind("127.0.0.1:8080").await?;
/// loop {
///     let (stream, peer) = listener.accept().await?;
///     ripple_runtime::spawn(async move {
///         // serve `stream`...
///         # drop((stream, peer));
///     });
/// }
/// # std::io::Result::Ok(())
/// # });
/// ```
pub struct TcpListener {
    /// The listening socket, registered with the reactor.
    io: Async<Socket>,
}

impl TcpListener {
    /// Binds a listener to `addr` with `SO_REUSEADDR`, close-on-exec, non-blocking, and a
    /// backlog of 1024.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        crate::each_addr(addr, |addr| async move {
            let socket = Socket::new(
                Domain::for_address(addr),
                Type::STREAM.nonblocking().cloexec(),
                Some(Protocol::TCP),
            )?;
            // A restarted server can bind while old connections sit in TIME_WAIT.
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(BACKLOG)?;
            Ok(TcpListener {
                io: Async::new(socket)?,
            })
        })
        .await
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// Errors that belong to one failed connection (aborted or reset before it was accepted)
    /// are skipped. Errors that concern the process, such as running out of file descriptors
    /// (`EMFILE`, `ENFILE`) or memory, are returned: the caller should back off briefly (the
    /// connection stays in the backlog) rather than retry in a tight loop.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The connections, one [`Incoming::accept`] at a time, riding out a lack of file
    /// descriptors or memory with growing pauses instead of failing: the accept loop of a
    /// server.
    pub fn incoming(&self) -> Incoming<'_, TcpListener> {
        Incoming::new(self)
    }

    /// The polling form of [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let accepted = ready!(self.io.poll_io(cx, Interest::Read, accept, |_| false))?;
        let (socket, addr) = accepted;
        let addr = addr.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "peer is not an IP address")
        })?;
        Poll::Ready(TcpStream::from_socket(socket).map(|s| (s, addr)))
    }

    /// Takes over a bound and listening `std::net::TcpListener` (it is switched to non-blocking
    /// mode): for a socket set up with options `bind` does not offer, such as `SO_REUSEPORT`
    /// through `socket2`. Must be called inside a ripple runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Ok(TcpListener {
            io: Async::new(Socket::from(listener))?,
        })
    }

    /// Gives the socket back as a `std::net::TcpListener`, deregistered from the runtime and
    /// still in non-blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.io.into_inner()?.into())
    }

    /// The address the listener is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.io.get_ref().local_addr()?)
    }
}

/// Takes one connection from the backlog. One syscall gives a socket that is already
/// non-blocking and close-on-exec. A connection that failed before it was accepted is skipped:
/// its error is turned into `Interrupted`, which the funnel retries (spending budget, so a
/// storm of failed connections cannot keep the task).
fn accept(listener: &Socket) -> io::Result<(Socket, socket2::SockAddr)> {
    match listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
        Err(err) if is_connection_error(&err) => Err(io::ErrorKind::Interrupted.into()),
        accepted => accepted,
    }
}

/// Whether `err` concerns one pending connection only, so accepting the next one may work.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    ) || err.raw_os_error() == Some(libc::EPROTO)
}

/// A socket2 address as a std one.
pub(crate) fn socket_addr(addr: socket2::SockAddr) -> io::Result<SocketAddr> {
    addr.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address"))
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
