//! [`FramedIo`]: a connection's byte stream handed over to a `Framed`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ipc_proto::IpcError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[cfg(doc)]
use super::Connection;
use super::ConnectionPermit;
use crate::PeerCredentials;

/// The byte stream of a [`Connection`] turned into a `Framed` by
/// [`Connection::into_framed`], with what the connection owned and knew about it.
///
/// Reads and writes go straight to the stream inside. It holds the server's connection slot
/// until it is dropped, and it refuses writes once the connection was poisoned (an earlier send
/// stopped part-way through a frame), since the peer could not parse anything after it.
#[derive(Debug)]
pub struct FramedIo<S> {
    pub(super) io: S,
    pub(super) peer: Option<PeerCredentials>,
    pub(super) poisoned: bool,
    pub(super) _permit: Option<ConnectionPermit>,
}

impl<S> FramedIo<S> {
    /// The peer's process and user identity, as the connection had it.
    pub fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.peer
    }

    /// True when the connection was poisoned before it was converted; every write fails.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream inside, mutably. Reading or writing it directly corrupts the framing.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }
}

fn poisoned_write() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, IpcError::Poisoned)
}

impl<S: AsyncRead + Unpin> AsyncRead for FramedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.poisoned {
            return Poll::Ready(Err(poisoned_write()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.poisoned {
            return Poll::Ready(Err(poisoned_write()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
