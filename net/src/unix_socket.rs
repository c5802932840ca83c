//! Unix domain sockets: `UnixListener` and `UnixStream` (the same machinery as TCP, with a path
//! for an address), and `UnixDatagram`.
//!
//! A Unix socket is named by a path in the file system (or unnamed: the ends of a `pair`). Its
//! stream has the same reads, writes, shutdown and halves as a `TcpStream`; its datagrams are
//! whole messages, as UDP's, but never lost or reordered between the two ends.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use ripple_runtime::reactor::Async;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use crate::stream::{Read, ReadExact, StreamSocket, Write, WriteAll};

/// A Unix socket that accepts connections on a path.
///
/// ```
/// use ripple_net::{UnixListener, UnixStream};
///
/// ripple_runtime::block_on(async {
///     let dir = std::env::temp_dir().join(format!("ripple-doc-{}", std::process::id()));
///     std::fs::create_dir_all(&dir)?;
///     let path = dir.join("echo.sock");
///     let _ = std::fs::remove_file(&path);
///     let listener = UnixListener::bind(&path)?;
///     let client = ripple_runtime::spawn({
///         let path = path.clone();
///         async move {
///             let mut stream = UnixStream::connect(&path).await?;
///             stream.write_all(b"hi").await?;
///             std::io::Result::Ok(())
///         }
///     });
///     let (mut stream, _) = listener.accept().await?;
///     let mut buf = [0; 2];
///     stream.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     client.await??;
///     std::fs::remove_dir_all(&dir)
/// })
/// .unwrap();
/// ```
pub struct UnixListener {
    /// The listening socket, registered with the reactor.
    io: Async<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Binds a listener to `path`, close-on-exec and non-blocking. The path must not exist
    /// (`AddrInUse` if it does; remove a stale one first) and must fit in a socket address
    /// (about 107 bytes, `InvalidInput` otherwise). Must be called inside a ripple runtime.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Waits for a connection; returns it with the peer's address (usually unnamed).
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The connections, one [`Incoming::accept`](crate::Incoming::accept) at a time, riding
    /// out a lack of file descriptors or memory with growing pauses instead of failing.
    pub fn incoming(&self) -> crate::Incoming<'_, UnixListener> {
        crate::Incoming::new(self)
    }

    /// The polling form of [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (stream, addr) = ready!(self.io.poll_read_with(cx, |listener| listener.accept()))?;
        Poll::Ready(UnixStream::from_std(stream).map(|stream| (stream, addr)))
    }

    /// The path the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Takes over a bound and listening `std::os::unix::net::UnixListener` (switched to
    /// non-blocking mode). Must be called inside a ripple runtime.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        Ok(UnixListener {
            io: Async::new(listener)?,
        })
    }

    /// Gives the listener back, deregistered from the runtime and still non-blocking.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.io.into_inner()
    }
}

/// A connected Unix stream socket: reads, writes, shutdown and halves as a
/// [`TcpStream`](crate::TcpStream)'s, and `futures_io::AsyncRead`/`AsyncWrite`.
pub struct UnixStream {
    /// The connected socket, registered with the reactor.
    sock: StreamSocket,
}

impl UnixStream {
    /// Connects to the listener at `path`.
    pub async fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
        Ok(UnixStream {
            sock: StreamSocket::connect(socket, &addr).await?,
        })
    }

    /// Two connected, unnamed ends. Must be called inside a ripple runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
        Ok((
            UnixStream {
                sock: StreamSocket::new(a)?,
            },
            UnixStream {
                sock: StreamSocket::new(b)?,
            },
        ))
    }

    /// Takes over a connected `std::os::unix::net::UnixStream` (switched to non-blocking mode).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(true)?;
        Ok(UnixStream {
            sock: StreamSocket::new(Socket::from(OwnedFd::from(stream)))?,
        })
    }

    /// Gives the socket back, deregistered from the runtime and still non-blocking.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        Ok(OwnedFd::from(self.sock.into_socket()?).into())
    }

    /// Reads into `buf`; returns how many bytes were read, `0` at end of stream.
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Read<'a> {
        Read::new(&self.sock, buf)
    }

    /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends first.
    pub fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadExact<'a> {
        ReadExact::new(&self.sock, buf)
    }

    /// Writes some of `buf`; returns how many bytes were written.
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> Write<'a> {
        Write::new(&self.sock, buf)
    }

    /// Writes all of `buf`.
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a> {
        WriteAll::new(&self.sock, buf)
    }

    /// Does nothing: writes go straight to the kernel.
    pub async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Shuts down the read side, the write side (the peer reads end of stream), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The polling form of [`read`](Self::read).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.sock.poll_read(cx, buf)
    }

    /// The polling form of [`write`](Self::write).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.sock.poll_write(cx, buf)
    }

    /// [`poll_read`](Self::poll_read) into a buffer that need not be initialised: returns `n`,
    /// and the first `n` bytes of `buf` are then initialised.
    pub fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.sock.poll_read_uninit(cx, buf)
    }

    /// This end's address (unnamed, for a connecting or paired socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        std_view(self.sock.socket().as_fd(), |stream| stream.local_addr())
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_view(self.sock.socket().as_fd(), |stream| stream.peer_addr())
    }

    /// Borrows a read half and a write half that can be used at the same time.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf::new(&self.sock), WriteHalf::new(&self.sock))
    }

    /// Splits into owned halves that can move into two tasks. Dropping the write half shuts
    /// down the write side.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let sock = Arc::new(self.sock);
        (OwnedReadHalf::new(sock.clone()), OwnedWriteHalf::new(sock))
    }
}

/// A Unix datagram socket: whole messages, each `send` one `recv`, with nothing lost.
///
/// A message longer than the buffer given to `recv` is truncated, as the kernel does.
pub struct UnixDatagram {
    /// The socket, registered with the reactor.
    io: Async<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to `path` (which must not exist). Must be called inside a ripple runtime.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::bind(path)?)
    }

    /// A socket bound to no path: it can send, and be connected.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// Two connected, unnamed sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Takes over a `std::os::unix::net::UnixDatagram` (switched to non-blocking mode).
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram {
            io: Async::new(socket)?,
        })
    }

    /// Gives the socket back, deregistered from the runtime and still non-blocking.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        self.io.into_inner()
    }

    /// Sets the default peer for `send` and `recv`.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.io.get_ref().connect(path)
    }

    /// Sends one message to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write_with(|socket| socket.send(buf)).await
    }

    /// Receives one message from the connected peer (truncated to `buf.len()`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read_with(|socket| socket.recv(buf)).await
    }

    /// Sends one message to the socket bound at `path`.
    pub async fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io.write_with(|socket| socket.send_to(buf, path)).await
    }

    /// Receives one message (truncated to `buf.len()`) and the sender's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|socket| socket.recv_from(buf)).await
    }

    /// This socket's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }
}

/// Runs `f` on a `std` view of the stream socket `fd`, for what only `std` offers: Unix
/// addresses, unnamed ones included (`socket2` has no way to express those).
fn std_view<R>(fd: BorrowedFd<'_>, f: impl FnOnce(&std::os::unix::net::UnixStream) -> R) -> R {
    // SAFETY: `fd` is an open Unix stream socket for the whole call (it is borrowed from the
    // `UnixStream` that owns it), and `ManuallyDrop` keeps the view from closing it; `f` only
    // gets a shared reference, so it cannot move the view out and drop it either.
    let view =
        ManuallyDrop::new(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd.as_raw_fd()) });
    f(&view)
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.socket().as_fd()
    }
}

impl futures_io::AsyncRead for UnixStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.sock.poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for UnixStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sock.poll_write(cx, buf)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.sock.shutdown(Shutdown::Write))
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
