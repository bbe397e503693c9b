//! The sending side: the limits and the bytes not yet written.

use std::future::poll_fn;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ipc_proto::{FrameConfig, IpcCodec, IpcError, Operation, Result};
use serde::Serialize;
use tokio::io::AsyncWrite;
use tokio_util::codec::Encoder;
use tracing::{trace, warn};

use super::{IDLE_BUFFER_LIMIT, OpTimer};

/// A `send`'s write buffer beyond which `Sink::poll_ready` flushes before queueing more.
pub(super) const BACKPRESSURE: usize = 64 * 1024;

/// The sending state: the limits and the bytes not yet written.
#[derive(Debug)]
pub(super) struct FrameWriter<E> {
    /// The encoder is stateless apart from its limits, so only those are kept.
    pub(super) config: FrameConfig,
    pub(super) buf: BytesMut,
    /// `buf` grew past [`IDLE_BUFFER_LIMIT`] since it was last released (see `poll_flush`).
    pub(super) grew: bool,
    pub(super) poisoned: bool,
    pub(super) _types: PhantomData<fn(&E)>,
}

impl<E: Serialize> FrameWriter<E> {
    pub(super) fn new(config: FrameConfig) -> Self {
        FrameWriter {
            config,
            buf: BytesMut::new(),
            grew: false,
            poisoned: false,
            _types: PhantomData,
        }
    }

    /// Encodes `item` behind whatever is queued. Nothing is queued when this fails.
    pub(super) fn queue<M: Serialize>(&mut self, item: &M) -> Result<()> {
        if self.poisoned {
            return Err(IpcError::Poisoned);
        }
        IpcCodec::<(), M>::with_config(self.config).encode(item, &mut self.buf)?;
        self.grew |= self.buf.capacity() > IDLE_BUFFER_LIMIT;
        Ok(())
    }

    /// Queues `item` as the frame a timed send will flush: returns where the queue stood
    /// before it and where it ends, for [`poll_send`](Self::poll_send).
    pub(super) fn queue_for_send<M: Serialize>(&mut self, item: &M) -> Result<(usize, usize)> {
        let before = self.buf.len();
        self.queue(item)?;
        trace!(bytes = self.buf.len() - before, "sending message");
        Ok((before, self.buf.len()))
    }

    /// Queues a frame that was encoded elsewhere (header included), e.g. an event serialized
    /// once for many subscribers. It is checked against this writer's limit like any other.
    pub(super) fn queue_encoded(&mut self, frame: &[u8]) -> Result<()> {
        if self.poisoned {
            return Err(IpcError::Poisoned);
        }
        self.config
            .check_len(frame.len().saturating_sub(ipc_proto::HEADER_LEN), Operation::Send)?;
        self.buf.extend_from_slice(frame);
        self.grew |= self.buf.capacity() > IDLE_BUFFER_LIMIT;
        Ok(())
    }

    /// Writes out everything queued, then gives back a buffer that grew large: the end of a
    /// send or of a batch.
    pub(super) fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<()>> {
        ready!(self.poll_write_out(cx, io))?;
        self.release_if_idle();
        Poll::Ready(Ok(()))
    }

    /// Gives back the buffer if it is empty and grew past [`IDLE_BUFFER_LIMIT`].
    pub(super) fn release_if_idle(&mut self) {
        // `advance` leaves the allocation behind the read position, where `capacity()` no longer
        // shows it; `grew` remembers its size.
        if self.buf.is_empty() && std::mem::take(&mut self.grew) {
            self.buf = BytesMut::new();
        }
    }

    /// Writes out everything queued, keeping the buffer for the frames that follow (a flush
    /// that makes room for more); frames go out in as few writes as the stream allows.
    pub(super) fn poll_write_out<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<()>> {
        while !self.buf.is_empty() {
            match ready!(Pin::new(&mut *io).poll_write(cx, &self.buf)) {
                Ok(0) => {
                    self.poisoned = true;
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                Ok(n) => {
                    trace!(bytes = n, "written");
                    self.buf.advance(n);
                }
                Err(e) => {
                    // Part of a frame may have gone out; nothing sent after it could be parsed.
                    self.poisoned = true;
                    return Poll::Ready(Err(e.into()));
                }
            }
        }
        ready!(Pin::new(&mut *io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// Flushes a frame queued by [`queue_for_send`](Self::queue_for_send) (`at`), bounded by
    /// the deadline of the operation `timer` is timing. When time runs out before one byte of
    /// the frame went out, the frame is withdrawn and the connection stays usable; after part
    /// of it went out, the connection is poisoned.
    pub(super) fn poll_send<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
        timer: &mut OpTimer,
        timeout: Duration,
        (before, queued): (usize, usize),
    ) -> Poll<Result<()>> {
        match self.poll_flush(cx, io) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending if timer.poll_expired(cx, timeout) => {
                // `buf` holds the unwritten tail of the queue; the frame is whole in it only
                // while nothing of it has been written.
                let torn = self.buf.len() < queued - before;
                if torn {
                    warn!("send timed out part-way through a frame; connection poisoned");
                    self.poisoned = true;
                } else {
                    let keep = self.buf.len() - (queued - before);
                    self.buf.truncate(keep);
                }
                Poll::Ready(Err(IpcError::Timeout {
                    operation: Operation::Send,
                    after: timeout,
                    torn,
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    pub(super) async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        timer: &mut OpTimer,
        item: &E,
        timeout: Duration,
    ) -> Result<()> {
        let at = self.queue_for_send(item)?;
        timer.start();
        let result = poll_fn(|cx| self.poll_send(cx, io, timer, timeout, at)).await;
        timer.finish();
        result
    }

    pub(super) fn poll_ready<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<()>> {
        if self.poisoned {
            return Poll::Ready(Err(IpcError::Poisoned));
        }
        if self.buf.len() >= BACKPRESSURE {
            // More frames follow: the buffer they are encoded into is kept (the batch's own
            // flush, or `send`'s, gives it back).
            ready!(self.poll_write_out(cx, io))?;
        }
        Poll::Ready(Ok(()))
    }

    pub(super) fn poll_close<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<()>> {
        ready!(self.poll_flush(cx, io))?;
        Pin::new(&mut *io).poll_shutdown(cx).map_err(IpcError::from)
    }
}
