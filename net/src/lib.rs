//! Async networking for ripple: `TcpListener`, `TcpStream`, `UdpSocket` and the Unix sockets
//! on top of the reactor.
//!
//! A socket here is a `socket2::Socket` in non-blocking mode, wrapped in
//! [`ripple_runtime::reactor::Async`]. Every operation tries the system call first; only when the
//! kernel answers `WouldBlock` does the task park until epoll reports the socket ready again. This
//! is the seeds' non-blocking event model with the loop written for you: the same `accept`, `read`
//! and `write` calls, but a task that would block yields its thread to the others instead.
//!
//! This crate uses nothing of the runtime but its public API, so the same approach works for any
//! file descriptor a user brings.
//!
//! ```
//! use ripple_net::{TcpListener, TcpStream};
//!
//! ripple_runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let client = ripple_runtime::spawn(async move {
//!         let mut stream = TcpStream::connect(addr).await?;
//!         stream.write_all(b"hello").await?;
//!         let mut reply = [0; 5];
//!         stream.read_exact(&mut reply).await?;
//!         std::io::Result::Ok(reply)
//!     });
//!     let (mut stream, _) = listener.accept().await?;
//!     let mut buf = [0; 5];
//!     stream.read_exact(&mut buf).await?;
//!     stream.write_all(&buf).await?;
//!     assert_eq!(&client.await??, b"hello");
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]

mod incoming;
mod listener;
pub mod signal;
mod split;
mod stream;
mod udp;
mod unix_socket;

pub use incoming::{Accept, Incoming};
pub use listener::TcpListener;
pub use stream::TcpStream;
pub use udp::UdpSocket;
pub use unix_socket::{UnixDatagram, UnixListener, UnixStream};

/// The halves of a split [`TcpStream`], for a reader task and a writer task, and the futures
/// that reads and writes return.
pub mod tcp {
    pub use crate::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
    pub use crate::stream::{Read, ReadExact, Write, WriteAll};
}

/// The halves of a split [`UnixStream`] and the futures of its reads and writes: the same
/// types as [`tcp`]'s, since both streams share their machinery.
pub mod unix {
    pub use crate::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
    pub use crate::stream::{Read, ReadExact, Write, WriteAll};
}

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Tries `op` on each address `addr` resolves to, returning the first success or the last error.
/// Name resolution itself is blocking (`ToSocketAddrs`); pass a `SocketAddr` to avoid it.
async fn each_addr<A, T, F, Fut>(addr: A, mut op: F) -> io::Result<T>
where
    A: ToSocketAddrs,
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last_err = None;
    for addr in addr.to_socket_addrs()? {
        match op(addr).await {
            Ok(value) => return Ok(value),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        )
    }))
}
