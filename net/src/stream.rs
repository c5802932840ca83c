//! `TcpStream`: a connected socket whose reads and writes park the task instead of the thread.
//!
//! Its machinery, [`StreamSocket`] (connect, read, write, shutdown) and the futures of `read`
//! and `write`, is shared with `UnixStream` and with the halves of both.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use ripple_runtime::reactor::{Async, Interest};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::listener::socket_addr;
use crate::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};

/// A TCP connection.
///
/// Reads and writes are `async`: each tries the system call, and if the kernel would block,
/// the task parks until the reactor sees the socket ready again. Faults come back as errors:
/// a reset peer gives `ConnectionReset`, reading after the peer closed gives `Ok(0)`, and writing
/// to a closed peer gives `BrokenPipe` (never a `SIGPIPE`).
///
/// Besides its inherent methods, it implements `futures_io::AsyncRead` and `AsyncWrite`.
pub struct TcpStream {
    /// The connected socket, registered with the reactor.
    sock: StreamSocket,
}

/// A connected stream socket, TCP or Unix, registered with the reactor: what `TcpStream`,
/// `UnixStream` and their halves share.
pub(crate) struct StreamSocket {
    /// The socket.
    io: Async<Socket>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each resolved address in turn.
    ///
    /// The connect itself is non-blocking: the task parks until the socket becomes writable,
    /// then the socket's pending error (`SO_ERROR`) decides success or failure.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        crate::each_addr(addr, Self::connect_addr).await
    }

    /// Connects to one address.
    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )?;
        Ok(TcpStream {
            sock: StreamSocket::connect(socket, &addr.into()).await?,
        })
    }

    /// Wraps a connected, non-blocking socket.
    pub(crate) fn from_socket(socket: Socket) -> io::Result<TcpStream> {
        Ok(TcpStream {
            sock: StreamSocket::new(socket)?,
        })
    }

    /// Takes over a connected `std::net::TcpStream` (it is switched to non-blocking mode).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        TcpStream::from_socket(Socket::from(stream))
    }

    /// Gives the socket back as a `std::net::TcpStream`, deregistered from the runtime and still
    /// in non-blocking mode.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Ok(self.sock.into_socket()?.into())
    }

    /// Reads into `buf`; returns how many bytes were read, `0` at end of stream.
    #[inline]
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> Read<'a> {
        Read::new(&self.sock, buf)
    }

    /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream ends first.
    #[inline]
    pub fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadExact<'a> {
        ReadExact::new(&self.sock, buf)
    }

    /// Writes some of `buf`; returns how many bytes were written.
    #[inline]
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> Write<'a> {
        Write::new(&self.sock, buf)
    }

    /// Writes all of `buf`.
    #[inline]
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAll<'a> {
        WriteAll::new(&self.sock, buf)
    }

    /// Does nothing: writes go straight to the kernel, there is no user-space buffer to flush.
    pub async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Shuts down the read side, the write side (the peer reads end of stream), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The polling form of [`read`](Self::read).
    #[inline]
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.sock.poll_read(cx, buf)
    }

    /// The polling form of [`write`](Self::write).
    #[inline]
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.sock.poll_write(cx, buf)
    }

    /// [`poll_read`](Self::poll_read) into a buffer that need not be initialised (hyper's read
    /// buffer, say): returns `n`, and the first `n` bytes of `buf` are then initialised.
    #[inline]
    pub fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.sock.poll_read_uninit(cx, buf)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.sock.socket().peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(self.sock.socket().local_addr()?)
    }

    /// Turns Nagle's algorithm off (`true`) or on: small writes go out at once instead of
    /// waiting to be merged.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.sock.socket().set_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.sock.socket().nodelay()
    }

    /// Borrows a read half and a write half that can be used at the same time, for example in
    /// two branches of one task.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf::new(&self.sock), WriteHalf::new(&self.sock))
    }

    /// Splits into owned halves that can move into two tasks: one reads while the other writes.
    /// Dropping the write half shuts down the write side.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let sock = Arc::new(self.sock);
        (OwnedReadHalf::new(sock.clone()), OwnedWriteHalf::new(sock))
    }
}

impl StreamSocket {
    /// Wraps a connected, non-blocking socket.
    pub(crate) fn new(socket: Socket) -> io::Result<StreamSocket> {
        Ok(StreamSocket {
            io: Async::new(socket)?,
        })
    }

    /// Connects a new non-blocking `socket` to `addr`. The connect itself does not block: the
    /// task parks until the socket turns writable, then the socket's pending error decides.
    pub(crate) async fn connect(socket: Socket, addr: &SockAddr) -> io::Result<StreamSocket> {
        match socket.connect(addr) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err),
        }
        let sock = StreamSocket::new(socket)?;
        poll_fn(|cx| sock.poll_connected(cx)).await?;
        Ok(sock)
    }

    /// Ready once a non-blocking connect has finished, with its outcome.
    fn poll_connected(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket turns writable when the connect ends either way; its pending error
        // (`SO_ERROR`) says which way. Before then (the writable bit was the optimistic initial
        // one), asking for the peer says "not connected": that is the `WouldBlock` of connect.
        self.io.poll_io(
            cx,
            Interest::Write,
            |socket| match socket.take_error()? {
                Some(err) => Err(err),
                None => match socket.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(err) => Err(err),
                },
            },
            |_| false,
        )
    }

    /// The socket.
    pub(crate) fn socket(&self) -> &Socket {
        self.io.get_ref()
    }

    /// Deregisters the socket and gives it back.
    pub(crate) fn into_socket(self) -> io::Result<Socket> {
        self.io.into_inner()
    }

    /// Shuts down one side of the connection, or both.
    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Reads into `buf`, parking until the socket is readable.
    #[inline]
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and `recv` writes only
        // initialised bytes, so `buf` stays initialised.
        let buf = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
        self.poll_read_uninit(cx, buf)
    }

    /// Reads into `buf`, which need not be initialised; the first `n` bytes are, once it
    /// returns `n`.
    #[inline]
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let (fd, len) = (self.io.as_raw_fd(), buf.len());
        // A read that comes back short has emptied the socket (end of stream, `0`, says nothing).
        self.io
            .poll_io(cx, Interest::Read, |_| recv(fd, buf), |&n| n > 0 && n < len)
    }

    /// Writes from `buf`, parking until the socket is writable.
    #[inline]
    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let (fd, len) = (self.io.as_raw_fd(), buf.len());
        // A write that comes back short has filled the socket's send buffer.
        self.io
            .poll_io(cx, Interest::Write, |_| send(fd, buf), |&n| n < len)
    }
}

// The futures behind `read`, `write`, `read_exact` and `write_all` on a `TcpStream`, a
// `UnixStream` and their halves. Each is a small named struct whose `poll` calls
// `StreamSocket::poll_read` or `StreamSocket::poll_write` directly. An `async fn` would do the same job, but wraps it in a state
// machine that every poll steps through; on the path of every message that is work for nothing.

/// The future of `read`: how many bytes were read, `0` at end of stream.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Read<'a> {
    /// The stream to read from.
    stream: &'a StreamSocket,
    /// Where the bytes go.
    buf: &'a mut [u8],
}

/// The future of `write`: how many bytes were written.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Write<'a> {
    /// The stream to write to.
    stream: &'a StreamSocket,
    /// The bytes to write.
    buf: &'a [u8],
}

/// The future of `read_exact`: fills the whole buffer, or fails with `UnexpectedEof`.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ReadExact<'a> {
    /// The stream to read from.
    stream: &'a StreamSocket,
    /// The part of the buffer still to fill.
    buf: &'a mut [u8],
}

/// The future of `write_all`: writes the whole buffer, or fails.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAll<'a> {
    /// The stream to write to.
    stream: &'a StreamSocket,
    /// The part of the buffer still to write.
    buf: &'a [u8],
}

impl<'a> Read<'a> {
    /// The future of reading into `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a StreamSocket, buf: &'a mut [u8]) -> Self {
        Read { stream, buf }
    }
}

impl<'a> Write<'a> {
    /// The future of writing `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a StreamSocket, buf: &'a [u8]) -> Self {
        Write { stream, buf }
    }
}

impl<'a> ReadExact<'a> {
    /// The future of filling `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a StreamSocket, buf: &'a mut [u8]) -> Self {
        ReadExact { stream, buf }
    }
}

impl<'a> WriteAll<'a> {
    /// The future of writing all of `buf` on `stream`.
    #[inline]
    pub(crate) fn new(stream: &'a StreamSocket, buf: &'a [u8]) -> Self {
        WriteAll { stream, buf }
    }
}

impl Future for Read<'_> {
    type Output = io::Result<usize>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.stream.poll_read(cx, this.buf)
    }
}

impl Future for Write<'_> {
    type Output = io::Result<usize>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.stream.poll_write(cx, this.buf)
    }
}

impl Future for ReadExact<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while !this.buf.is_empty() {
            match ready!(this.stream.poll_read(cx, this.buf))? {
                0 => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                n => this.buf = &mut std::mem::take(&mut this.buf)[n..],
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Future for WriteAll<'_> {
    type Output = io::Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while !this.buf.is_empty() {
            match ready!(this.stream.poll_write(cx, this.buf))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => this.buf = &this.buf[n..],
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// `recv(2)`, called directly: socket2's `Read` impl does the same two calls deeper, in another
/// crate, where the compiler cannot inline it into the per-message path. The kernel writes only
/// initialised bytes, so `buf` may start out uninitialised.
#[inline]
fn recv(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call, and the kernel
    // writes at most that many. A closed or reused fd gives an error or another socket's data,
    // never memory unsafety.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `send(2)` with `MSG_NOSIGNAL` (a closed peer gives `EPIPE`, not a `SIGPIPE` that kills the
/// process), called directly for the same reason as [`recv`].
#[inline]
fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.io.as_fd()
    }
}

impl fmt::Debug for StreamSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSocket")
            .field("fd", &self.io.as_raw_fd())
            .finish()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl futures_io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.sock.poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sock.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(Shutdown::Write))
    }
}
