//! The receiving side: a decoder and the bytes of a frame in progress.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::BytesMut;
use ipc_proto::{FrameConfig, IpcCodec, IpcError, Operation, Result};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;
use tracing::trace;

use super::OpTimer;

/// Bytes read onto the stack while no frame is in progress. Idle connections therefore hold no
/// read buffer at all; one read still takes many small frames at once.
pub(super) const STACK_READ: usize = 8 * 1024;

/// The receiving state: a decoder and the bytes of a frame in progress.
///
/// A large frame's buffer is kept while frames keep arriving: the next frame is read into it
/// (one allocation for a run of large frames, not one each: in a small process every fresh
/// megabyte is fresh pages). It is given back as soon as a read would wait — right after a
/// frame, with one look at the stream, and whenever the connection waits for input — so an
/// idle connection holds none.
#[derive(Debug)]
pub(super) struct FrameReader<D> {
    pub(super) codec: IpcCodec<D, ()>,
    pub(super) buf: BytesMut,
    /// A read error met while looking ahead, returned by the next receive.
    pub(super) ahead_error: Option<io::Error>,
    /// Where the `Stream` impl has got to: ended after a fatal error or the end of input.
    pub(super) end: StreamEnd,
}

impl<D: DeserializeOwned> FrameReader<D> {
    pub(super) fn new(config: FrameConfig) -> Self {
        let codec = IpcCodec::with_config(config).with_buffer_reuse(true);
        FrameReader { codec, buf: BytesMut::new(), ahead_error: None, end: StreamEnd::default() }
    }

    /// Polls for the next message. All progress lives in `self`, never in a future, which is
    /// what makes every receive built on it cancel-safe.
    pub(super) fn poll_recv<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<Result<D>> {
        loop {
            if let Some(e) = self.ahead_error.take() {
                return Poll::Ready(Err(e.into()));
            }
            match self.codec.decode(&mut self.buf) {
                Ok(None) => {}
                Ok(Some(item)) => {
                    self.look_ahead(io);
                    trace!("message received");
                    return Poll::Ready(Ok(item));
                }
                Err(e) => {
                    self.look_ahead(io);
                    return Poll::Ready(Err(e));
                }
            }
            let idle = self.buf.is_empty() && !self.codec.is_mid_frame();
            let n = if idle && !self.codec.holds_large_buffer() {
                let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
                let mut rb = ReadBuf::uninit(&mut stack);
                ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
                self.buf.extend_from_slice(rb.filled());
                rb.filled().len()
            } else {
                if self.buf.len() == self.buf.capacity() {
                    // A split header, or a kept buffer (whose room this takes back): a body has
                    // its room reserved.
                    self.buf.reserve(STACK_READ);
                }
                match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut self.buf) {
                    Poll::Pending => {
                        if idle {
                            self.codec.release_idle_buffer(&mut self.buf);
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(read) => read?,
                }
            };
            if n == 0 {
                return Poll::Ready(match self.codec.decode_eof(&mut self.buf)? {
                    Some(item) => Ok(item),
                    None => Err(IpcError::Closed),
                });
            }
            trace!(bytes = n, "read");
        }
    }

    /// After a frame, with a large buffer kept and empty: one look for the next frame's bytes,
    /// read into it if they are there; the buffer is given back if they are not. A read error
    /// is kept for the next receive (the end of the stream is met again by the next read).
    ///
    /// The look registers no waker of the caller's: the caller has its frame and polls again
    /// when it wants more, and a waker left with the stream would keep a finished task's
    /// memory alive (as `OpTimer::finish` explains).
    pub(super) fn look_ahead<R: AsyncRead + Unpin>(&mut self, io: &mut R) {
        if !self.buf.is_empty() || self.codec.is_mid_frame() || !self.codec.holds_large_buffer() {
            return;
        }
        self.buf.reserve(STACK_READ);
        let mut cx = Context::from_waker(Waker::noop());
        match tokio_util::io::poll_read_buf(Pin::new(&mut *io), &mut cx, &mut self.buf) {
            Poll::Ready(Ok(n)) if n > 0 => trace!(bytes = n, "read ahead"),
            Poll::Ready(Err(e)) => {
                self.codec.release_idle_buffer(&mut self.buf);
                self.ahead_error = Some(e);
            }
            _ => self.codec.release_idle_buffer(&mut self.buf),
        }
    }

    /// `poll_recv` bounded by the deadline of the operation `timer` is timing.
    pub(super) fn poll_recv_timed<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
        timer: &mut OpTimer,
        timeout: Duration,
    ) -> Poll<Result<D>> {
        match self.poll_recv(cx, io) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending if timer.poll_expired(cx, timeout) => {
                Poll::Ready(Err(IpcError::Timeout {
                    operation: Operation::Receive,
                    after: timeout,
                    torn: false,
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    pub(super) async fn recv<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        timer: &mut OpTimer,
        timeout: Duration,
    ) -> Result<D> {
        timer.start();
        let result = poll_fn(|cx| self.poll_recv_timed(cx, io, timer, timeout)).await;
        timer.finish();
        result
    }

    pub(super) fn poll_next<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<Option<Result<D>>> {
        if self.end.has_ended() {
            return Poll::Ready(None);
        }
        let received = ready!(self.poll_recv(cx, io));
        Poll::Ready(self.end.next(received))
    }
}

impl<D> FrameReader<D> {
    pub(super) fn has_partial_frame(&self) -> bool {
        !self.buf.is_empty() || self.codec.is_mid_frame()
    }
}

/// Whether a stream of received messages has ended, and the rule that ends it, that of
/// tokio-util's `Framed`: the end of the connection ends the stream; an error that leaves the
/// connection unusable is yielded once and ends it; a recoverable error is yielded and the
/// stream goes on. A `Connection`'s and a client's event stream both keep it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StreamEnd {
    ended: bool,
}

impl StreamEnd {
    pub(crate) fn has_ended(&self) -> bool {
        self.ended
    }

    /// What the stream yields for `received`, ending it if that is its last item.
    pub(crate) fn next<T>(&mut self, received: Result<T>) -> Option<Result<T>> {
        match received {
            Ok(item) => Some(Ok(item)),
            Err(IpcError::Closed) => {
                self.ended = true;
                None
            }
            Err(e) => {
                self.ended = !e.is_recoverable();
                Some(Err(e))
            }
        }
    }
}
