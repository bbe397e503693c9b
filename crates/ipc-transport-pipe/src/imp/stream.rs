//! A connected pipe end whose `flush` waits for the bytes to leave.

use std::io;
use std::os::windows::io::{AsRawHandle, RawHandle};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::windows::named_pipe::{NamedPipeClient, NamedPipeServer};
use windows_sys::Win32::Foundation::{ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED};
use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};

mod sealed {
    use std::io;
    use std::task::{Context, Poll};

    /// What [`PipeStream`](super::PipeStream) needs beyond `AsyncRead + AsyncWrite`.
    pub trait Sealed {
        fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
        fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
        /// The process id of the other end.
        fn peer_pid(&self) -> io::Result<u32>;
    }
}

/// One of tokio's two pipe ends, [`NamedPipeServer`] or [`NamedPipeClient`]. Sealed: the
/// trait only lets [`PipeStream`] be generic over the two.
pub trait PipeEnd:
    sealed::Sealed + AsyncRead + AsyncWrite + AsRawHandle + Unpin + Send + Sync + 'static
{
}

/// Reads a process id with `GetNamedPipeClientProcessId` or `GetNamedPipeServerProcessId`.
fn query_pid(
    handle: RawHandle,
    query: unsafe extern "system" fn(windows_sys::Win32::Foundation::HANDLE, *mut u32) -> i32,
) -> io::Result<u32> {
    let mut pid = 0u32;
    // SAFETY: `handle` is an open pipe handle borrowed from a live pipe end, and `pid` is a
    // valid place for the result.
    if unsafe { query(handle, &mut pid) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

macro_rules! pipe_end {
    ($ty:ty, $pid_query:ident) => {
        impl sealed::Sealed for $ty {
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$ty>::poll_write_ready(self, cx)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$ty>::try_write(self, buf)
            }
            fn peer_pid(&self) -> io::Result<u32> {
                query_pid(self.as_raw_handle(), $pid_query)
            }
        }
        impl PipeEnd for $ty {}
    };
}

pipe_end!(NamedPipeServer, GetNamedPipeClientProcessId);
pipe_end!(NamedPipeClient, GetNamedPipeServerProcessId);

/// The server's end of a connection, from [`PipeListener::accept`](crate::PipeListener::accept).
pub type ServerStream = PipeStream<NamedPipeServer>;
/// The client's end of a connection, from [`connect`](crate::connect).
pub type ClientStream = PipeStream<NamedPipeClient>;

/// A connected named-pipe end: tokio's pipe, with a `flush` that keeps its promise.
///
/// tokio (through mio) hands each write to the kernel as a background overlapped operation: a
/// write returns at once, the bytes still in flight, and `flush` is a no-op. A writer that then
/// closes — or exits — may lose them: a write still pending when its process ends is cancelled.
/// Here [`poll_flush`](AsyncWrite::poll_flush) waits until the pipe has accepted every byte
/// written so far (they are in the pipe's buffer, or already read by the peer), and reports a
/// write that failed in the background. After a successful flush the handle can be dropped
/// without loss: dropping closes it, and the peer reads what is buffered before it sees the end
/// of the stream. Nothing calls `DisconnectNamedPipe`, which would discard unread data. A peer
/// that has already closed its end when the flush finds the bytes out is not a flush error (as
/// with a socket, the next read or write reports the disconnect): a client that reads its reply
/// and leaves at once must not make the server's reply look failed.
///
/// `poll_shutdown` is the same flush; pipes have no half-close.
#[derive(Debug)]
pub struct PipeStream<P> {
    pipe: P,
    /// Bytes were written since the last completed flush.
    unflushed: bool,
}

impl<P: PipeEnd> PipeStream<P> {
    pub(crate) fn new(pipe: P) -> Self {
        PipeStream { pipe, unflushed: false }
    }

    /// The process id of the other end: the client's for a [`ServerStream`]
    /// (`GetNamedPipeClientProcessId`), the server's for a [`ClientStream`]
    /// (`GetNamedPipeServerProcessId`).
    pub fn peer_pid(&self) -> io::Result<u32> {
        self.pipe.peer_pid()
    }

    /// The tokio pipe end.
    pub fn get_ref(&self) -> &P {
        &self.pipe
    }

    /// The tokio pipe end, without the flush guarantee: flush before calling this if the last
    /// bytes written must not be lost.
    pub fn into_inner(self) -> P {
        self.pipe
    }
}

impl<P: PipeEnd> AsRawHandle for PipeStream<P> {
    fn as_raw_handle(&self) -> RawHandle {
        self.pipe.as_raw_handle()
    }
}

impl<P: PipeEnd> AsyncRead for PipeStream<P> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().pipe).poll_read(cx, buf)
    }
}

impl<P: PipeEnd> AsyncWrite for PipeStream<P> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.pipe).poll_write(cx, buf))?;
        this.unflushed |= n > 0;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.pipe).poll_write_vectored(cx, bufs))?;
        this.unflushed |= n > 0;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.pipe.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // mio keeps at most one write in flight and refuses the next one ("would block") until
        // it completes, reporting a failure of the background write on that next attempt. An
        // empty write is therefore the probe: it fails while bytes are still in flight, and
        // succeeds (as a zero-byte write the kernel completes at once) when they are all out.
        while this.unflushed {
            ready!(this.pipe.poll_write_ready(cx))?;
            match this.pipe.try_write(&[]) {
                Ok(_) => this.unflushed = false,
                // tokio cleared the stale readiness; the next poll waits for the completion.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer is gone. Typically it read the reply and left before the probe ran:
                // the probe itself cannot be written, though every byte was delivered. As with
                // a socket whose peer closed after the data went out, that is no error of the
                // flush; the next read (end of stream) or write (broken pipe) reports it.
                Err(e) if is_peer_gone(&e) => this.unflushed = false,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// The other end closed (`ERROR_NO_DATA`, `ERROR_BROKEN_PIPE`) or was disconnected
/// (`ERROR_PIPE_NOT_CONNECTED`).
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().and_then(|c| u32::try_from(c).ok()),
        Some(ERROR_NO_DATA | ERROR_BROKEN_PIPE | ERROR_PIPE_NOT_CONNECTED)
    )
}
