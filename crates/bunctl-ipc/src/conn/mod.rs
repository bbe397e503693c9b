//! The one framed connection type, used by clients and servers on every platform.
//
// `Connection` (this file) owns a stream, a reader (`reader.rs`), a writer (`writer.rs`) and a
// deadline (`timer.rs`); `split.rs` divides it into a `RecvHalf` and a `SendHalf`, each with
// its own part, and `framed.rs` hands the bare stream over to a `Framed`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use ipc_proto::{DEFAULT_TIMEOUT, FrameConfig, IpcCodec, IpcError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::codec::{Framed, FramedParts};

use crate::PeerCredentials;

mod framed;
mod reader;
mod split;
#[cfg(test)]
mod tests;
mod timer;
mod writer;

pub use framed::FramedIo;
pub(crate) use reader::StreamEnd;
use reader::{FrameReader, STACK_READ};
pub use split::{RecvHalf, SendHalf, SplitStream};
use timer::OpTimer;
use writer::FrameWriter;

/// A framed, typed, timed connection: receives `D`, sends `E`.
///
/// This one type carries the protocol for both ends and every platform: the server's
/// [`IpcConnection`](crate::IpcConnection) is `Connection<_, IpcMessage, IpcResponse>`, the
/// client uses `Connection<_, IpcResponse, IpcMessage>`, and `S` is a Unix socket or a named
/// pipe. Any `AsyncRead + AsyncWrite` stream works, e.g. `tokio::io::duplex` (as below).
///
/// # Cancel safety
///
/// [`recv`](Self::recv) is cancel-safe: all progress on a partly received frame is kept in the
/// connection, not in the future, so dropping `recv` — because another branch of a
/// `tokio::select!` won, or because a timeout fired — loses no bytes, and the next `recv`
/// continues the same frame and returns it whole.
///
/// [`send`](Self::send) is not cancel-safe in the same sense: once called, its frame is queued
/// whole. If the future is dropped before it finishes, the rest of the frame stays queued and is
/// written ahead of the next message, so the byte stream stays intact, but the message may still
/// be delivered.
///
/// # Timeouts
///
/// Every `recv` and `send` is bounded by [`timeout`](Self::timeout) ([`DEFAULT_TIMEOUT`] unless
/// [`set_timeout`](Self::set_timeout) says otherwise), reported as [`IpcError::Timeout`]:
///
/// * a receive timeout leaves the connection fully usable — a frame in progress is kept;
/// * a send timeout before any byte of the frame was written withdraws the frame and leaves the
///   connection usable; after part of it was written, the connection is *poisoned*: the peer
///   would see a torn frame if anything followed, so every later send fails with
///   [`IpcError::Poisoned`].
///
/// The `Stream`/`Sink` implementations and [`poll_recv`](Self::poll_recv) apply no timeout.
///
/// ```
/// use bunctl_ipc::{Connection, IpcMessage, IpcResponse};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bunctl_ipc::IpcError> {
/// let (a, b) = tokio::io::duplex(1024);
/// let mut client: Connection<_, IpcResponse, IpcMessage> = Connection::new(a);
/// let mut server: Connection<_, IpcMessage, IpcResponse> = Connection::new(b);
/// server.set_timeout(Duration::from_millis(50));
///
/// // Nothing to read yet: a timeout, and the connection stays usable.
/// assert!(server.recv().await.unwrap_err().is_timeout());
///
/// client.send(&IpcMessage::List).await?;
/// assert_eq!(server.recv().await?, IpcMessage::List);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Connection<S, D, E> {
    io: S,
    reader: FrameReader<D>,
    writer: FrameWriter<E>,
    /// One timer serves both directions: `recv` and `send` borrow the connection exclusively,
    /// so their operations never overlap. `split` gives the send half a timer of its own.
    timer: OpTimer,
    timeout: Duration,
    idle_timeout: Option<Duration>,
    peer: Option<PeerCredentials>,
    permit: Option<ConnectionPermit>,
}

/// Buffers at or below this capacity are kept for reuse when they empty; larger ones are
/// released, so an idle connection holds at most this much per direction.
pub(crate) const IDLE_BUFFER_LIMIT: usize = 256;

/// Holds one of a server's connection slots; the slot is free again once the connection (or
/// both of its halves, which share it) is dropped.
#[derive(Debug)]
pub(crate) struct ConnectionPermit(#[allow(dead_code)] OwnedSemaphorePermit);

impl ConnectionPermit {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        ConnectionPermit(permit)
    }
}

impl<S, D: DeserializeOwned, E: Serialize> Connection<S, D, E> {
    /// Wraps a byte stream with the default limits and [`DEFAULT_TIMEOUT`].
    pub fn new(io: S) -> Self {
        Self::with_config(io, FrameConfig::new(), DEFAULT_TIMEOUT)
    }

    /// Wraps a byte stream with the given limits and timeout.
    pub fn with_config(io: S, config: FrameConfig, timeout: Duration) -> Self {
        let config = config.with_shrink_threshold(config.shrink_threshold().min(IDLE_BUFFER_LIMIT));
        Connection {
            io,
            reader: FrameReader::new(config),
            writer: FrameWriter::new(config),
            timer: OpTimer::default(),
            timeout,
            idle_timeout: None,
            peer: None,
            permit: None,
        }
    }

    /// The same connection decoding into `D2`: buffered input, queued output, limits, timer
    /// and slot carry over.
    pub(crate) fn decoding<D2>(self) -> Connection<S, D2, E> {
        let FrameReader { codec, buf, ahead_error, end } = self.reader;
        Connection {
            io: self.io,
            reader: FrameReader { codec: codec.cast(), buf, ahead_error, end },
            writer: self.writer,
            timer: self.timer,
            timeout: self.timeout,
            idle_timeout: self.idle_timeout,
            peer: self.peer,
            permit: self.permit,
        }
    }

    /// Ties a server connection slot to this connection's life.
    pub(crate) fn with_permit(mut self, permit: ConnectionPermit) -> Self {
        self.permit = Some(permit);
        self
    }

    /// Attaches the peer's credentials (done by the server's `accept` and the client's
    /// `connect`).
    pub fn with_peer(mut self, peer: Option<PeerCredentials>) -> Self {
        self.peer = peer;
        self
    }

    /// Divides the connection into a receiving half and a sending half that two tasks can own,
    /// e.g. one reading requests while another pushes events. Buffered input and queued output
    /// carry over.
    pub fn split(self) -> (RecvHalf<S::Read, D>, SendHalf<S::Write, E>)
    where
        S: SplitStream,
    {
        let (r, w) = self.io.split_stream();
        let shared_permit = self.permit.map(Arc::new);
        (
            RecvHalf {
                io: r,
                reader: self.reader,
                timer: self.timer,
                timeout: self.timeout,
                _permit: shared_permit.clone(),
            },
            SendHalf {
                io: w,
                writer: self.writer,
                timer: OpTimer::default(),
                timeout: self.timeout,
                _permit: shared_permit,
            },
        )
    }

    /// Converts into a `tokio_util::codec::Framed` with the same codec, for code written against
    /// `futures`' `StreamExt`/`SinkExt` and tokio-util. Buffered bytes carry over; the timeout
    /// does not (`Framed` has none).
    ///
    /// The stream inside is a [`FramedIo`], which keeps what the connection owned and knew: a
    /// server's connection slot stays taken until the `Framed` is dropped (so
    /// [`ServerOptions::with_max_connections`](crate::ServerOptions::with_max_connections)
    /// still holds), the peer's credentials stay readable
    /// (`framed.get_ref().peer_credentials()`), and a poisoned connection stays poisoned: its
    /// writes fail.
    pub fn into_framed(self) -> Framed<FramedIo<S>, IpcCodec<D, E>>
    where
        S: AsyncRead + AsyncWrite,
    {
        // The decoder state carries over (a header may already be consumed); the release
        // threshold goes back to the codec's default, which suits `Framed`'s buffer handling.
        let mut codec = self.reader.codec.cast::<D, E>().with_buffer_reuse(false);
        codec.set_config(
            codec.config().with_shrink_threshold(FrameConfig::new().shrink_threshold()),
        );
        let io = FramedIo {
            io: self.io,
            peer: self.peer,
            poisoned: self.writer.poisoned,
            _permit: self.permit,
        };
        let mut parts = FramedParts::new::<&E>(io, codec);
        // A read error met while looking ahead (rare: only after a large frame) is not carried
        // over; `Framed`'s next read meets the stream's state again.
        parts.read_buf = self.reader.buf;
        if parts.read_buf.capacity() == 0 {
            // `Framed` reads into spare capacity only; start it with a useful amount.
            parts.read_buf.reserve(STACK_READ);
        }
        parts.write_buf = self.writer.buf;
        Framed::from_parts(parts)
    }
}

impl<S, D, E> Connection<S, D, E> {
    /// Sets the limit for each later `recv` and `send`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The limit for each `recv` and `send`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets how long a served connection may stay silent with nothing in progress and no
    /// subscription before [`serve_connection`](crate::serve_connection) closes it. Unlike
    /// [`timeout`](Self::timeout), it never applies to a frame in progress or to a subscriber.
    pub fn set_idle_timeout(&mut self, idle: Duration) {
        self.idle_timeout = Some(idle);
    }

    /// The idle limit; the [`timeout`](Self::timeout) unless set otherwise.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or(self.timeout)
    }

    /// True while part of a frame has arrived but not all of it.
    pub fn has_partial_frame(&self) -> bool {
        self.reader.has_partial_frame()
    }

    /// The peer's process and user identity, when the platform reports it.
    pub fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.peer
    }

    /// True once a send failed part-way through a frame; every later send fails.
    pub fn is_poisoned(&self) -> bool {
        self.writer.poisoned
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably. Reading or writing it directly corrupts the framing.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }
}

impl<S: AsyncRead + Unpin, D: DeserializeOwned, E> Connection<S, D, E> {
    /// Receives the next message, waiting at most [`timeout`](Self::timeout). Cancel-safe.
    ///
    /// A clean end of stream between frames is [`IpcError::Closed`]; inside a frame it is
    /// [`IpcError::Truncated`]. A frame with invalid JSON is [`IpcError::InvalidMessage`] and
    /// the next `recv` reads the frame after it.
    pub async fn recv(&mut self) -> Result<D> {
        self.reader.recv(&mut self.io, &mut self.timer, self.timeout).await
    }

    /// The poll form of [`recv`](Self::recv), without a timeout, for hand-written futures: the
    /// same result and cancel-safety.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<D>> {
        self.reader.poll_recv(cx, &mut self.io)
    }
}

impl<S: AsyncWrite + Unpin, D, E: Serialize> Connection<S, D, E> {
    /// Sends one message, waiting at most [`timeout`](Self::timeout) for it to be written.
    ///
    /// The frame is encoded and written in one piece. A message over the limit fails with
    /// [`IpcError::FrameTooLarge`] before anything is written.
    pub async fn send(&mut self, message: &E) -> Result<()> {
        self.writer.send(&mut self.io, &mut self.timer, message, self.timeout).await
    }
}

/// One operation made of several steps under a single deadline (the client's `request`: a send,
/// then receives until the reply). Crate-internal: the public `send`/`recv` each time one step.
impl<S: AsyncRead + AsyncWrite + Unpin, D: DeserializeOwned, E: Serialize> Connection<S, D, E> {
    /// Starts an operation: its deadline is fixed the first time one of its steps waits.
    pub(crate) fn begin_operation(&mut self) {
        self.timer.start();
    }

    /// Ends the operation begun last.
    pub(crate) fn end_operation(&mut self) {
        self.timer.finish();
    }

    /// Queues `message` (an `E`, or another message the peer reads) for
    /// [`poll_send_queued`](Self::poll_send_queued).
    pub(crate) fn queue_message<M: Serialize>(&mut self, message: &M) -> Result<(usize, usize)> {
        self.writer.queue_for_send(message)
    }

    /// Writes out the frame queued at `at`, within the operation's deadline.
    pub(crate) fn poll_send_queued(
        &mut self,
        cx: &mut Context<'_>,
        at: (usize, usize),
    ) -> Poll<Result<()>> {
        self.writer.poll_send(cx, &mut self.io, &mut self.timer, self.timeout, at)
    }

    /// Receives one message within the operation's deadline.
    pub(crate) fn poll_recv_in_operation(&mut self, cx: &mut Context<'_>) -> Poll<Result<D>> {
        self.reader.poll_recv_timed(cx, &mut self.io, &mut self.timer, self.timeout)
    }
}

impl<S: AsyncRead + Unpin, D: DeserializeOwned, E> Stream for Connection<S, D, E> {
    type Item = Result<D>;

    /// Ends after a clean close or a non-recoverable error; recoverable errors are yielded and
    /// the stream goes on.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<D>>> {
        let this = self.get_mut();
        this.reader.poll_next(cx, &mut this.io)
    }
}

impl<S: AsyncWrite + Unpin, D, E: Serialize> Sink<&E> for Connection<S, D, E> {
    type Error = IpcError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.writer.poll_ready(cx, &mut this.io)
    }

    fn start_send(self: Pin<&mut Self>, item: &E) -> Result<()> {
        self.get_mut().writer.queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.writer.poll_flush(cx, &mut this.io)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.writer.poll_close(cx, &mut this.io)
    }
}

/// Crate-internal batching used by `serve`: queue several frames, then flush them in one write.
impl<S: AsyncWrite + Unpin, D, E: Serialize> Connection<S, D, E> {
    /// Encodes `message` behind whatever is queued, without writing.
    pub(crate) fn queue(&mut self, message: &E) -> Result<()> {
        self.writer.queue(message)
    }

    /// Queues an already-encoded frame (header included), checked against the frame limit.
    pub(crate) fn queue_encoded(&mut self, frame: &[u8]) -> Result<()> {
        self.writer.queue_encoded(frame)
    }

    /// The largest message this connection sends.
    pub(crate) fn max_send_size(&self) -> usize {
        self.writer.config.max_message_size()
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_len(&self) -> usize {
        self.writer.buf.len()
    }

    /// Writes out everything queued, without a deadline (the caller keeps its own), keeping
    /// the buffer for what follows; [`release_write_buffer`](Self::release_write_buffer) gives
    /// it back.
    pub(crate) fn poll_flush_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.writer.poll_write_out(cx, &mut self.io)
    }

    /// Gives back a large write buffer that is empty: for a caller about to wait (the read
    /// buffer gives itself back when a read would wait).
    pub(crate) fn release_write_buffer(&mut self) {
        self.writer.release_if_idle();
    }
}
