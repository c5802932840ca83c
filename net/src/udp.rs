//! `UdpSocket`: datagrams, on the same funnel as TCP.
//!
//! A UDP socket has no connection and no stream: each `send_to` is one datagram, each
//! `recv_from` takes one whole datagram off the socket's queue. The socket is a
//! `std::net::UdpSocket` in non-blocking mode inside [`Async`], and every operation goes through
//! [`Async::poll_io`]: try the system call, park on `WouldBlock`. Unlike a stream read, a short
//! datagram says nothing about what else is queued, so no operation here clears the readiness
//! early (`exhausted` is always false): the next call finds out with one system call.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};

use ripple_runtime::reactor::Async;

/// A UDP socket.
///
/// A datagram longer than the buffer given to `recv` or `recv_from` is truncated, as the
/// kernel does: the rest of it is lost, and the next call gets the next datagram.
///
/// ```
/// use ripple_net::UdpSocket;
///
/// ripple_runtime::block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0").await?;
///     let b = UdpSocket::bind("127.0.0.1:0").await?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    /// The socket, registered with the reactor.
    io: Async<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds a socket to `addr` (port 0: the kernel picks one), close-on-exec and non-blocking.
    /// With several addresses, the first that binds.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        crate::each_addr(addr, |addr| async move {
            UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)
        })
        .await
    }

    /// Takes over a bound `std::net::UdpSocket` (it is switched to non-blocking mode). Must be
    /// called inside a ripple runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        Ok(UdpSocket {
            io: Async::new(socket)?,
        })
    }

    /// Gives the socket back, deregistered from the runtime and still non-blocking.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.io.into_inner()
    }

    /// Sets the default peer: `send` and `recv` then work, and datagrams from other addresses
    /// are dropped by the kernel. With several addresses, the first that works.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        // A UDP connect only records the peer: it never blocks.
        crate::each_addr(addr, |addr| async move { self.io.get_ref().connect(addr) }).await
    }

    /// Sends one datagram to the connected peer; returns the bytes sent.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_send(cx, buf)).await
    }

    /// The polling form of [`send`](Self::send).
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_write_with(cx, |socket| socket.send(buf))
    }

    /// Receives one datagram from the connected peer into `buf`; returns its length (at most
    /// `buf.len()`: a longer datagram is truncated).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_recv(cx, buf)).await
    }

    /// The polling form of [`recv`](Self::recv).
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_read_with(cx, |socket| socket.recv(buf))
    }

    /// Sends one datagram to `target` (the first address it resolves to); returns the bytes
    /// sent.
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], target: A) -> io::Result<usize> {
        let target = target.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any address",
            )
        })?;
        poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// The polling form of [`send_to`](Self::send_to).
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_write_with(cx, |socket| socket.send_to(buf, target))
    }

    /// Receives one datagram into `buf`; returns its length (truncated to `buf.len()`) and the
    /// sender's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// The polling form of [`recv_from`](Self::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_read_with(cx, |socket| socket.recv_from(buf))
    }

    /// As [`recv_from`](Self::recv_from), but the datagram stays queued: the next receive gets
    /// it again.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.read_with(|socket| socket.peek_from(buf)).await
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address (`NotConnected` before [`connect`](Self::connect)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Allows (or forbids) sending to a broadcast address (`SO_BROADCAST`).
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Whether sending to a broadcast address is allowed.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}
