//! The one framed connection type, used by clients and servers on every platform.

use std::future::{Future, poll_fn};
use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use ipc_proto::{DEFAULT_TIMEOUT, FrameConfig, IpcCodec, IpcError, Operation, Result};
use pin_project_lite::pin_project;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedParts};
use tracing::{trace, warn};

use crate::PeerCredentials;

/// Bytes read onto the stack while no frame is in progress. Idle connections therefore hold no
/// read buffer at all; one read still takes many small frames at once.
const STACK_READ: usize = 8 * 1024;

/// Buffers at or below this capacity are kept for reuse when they empty; larger ones are
/// released, so an idle connection holds at most this much per direction.
pub(crate) const IDLE_BUFFER_LIMIT: usize = 256;

/// A `send`'s write buffer beyond which `Sink::poll_ready` flushes before queueing more.
const BACKPRESSURE: usize = 64 * 1024;

/// A per-operation deadline that costs almost nothing when operations finish in time.
///
/// Arming a tokio timer for every `recv` and `send` would put a timer-wheel insertion (under the
/// time driver's lock) on every message. Instead one long-lived `Sleep` is kept that fires no
/// later than the deadline in force. When it fires early — its deadline belonged to an earlier,
/// long-finished operation — it is moved to the current deadline. In steady traffic the timer is
/// re-armed about once per timeout period instead of once per message.
///
/// An operation that completes without waiting never reads the clock: its deadline is fixed the
/// first time it has to wait (`timeout` from then; what came before was one synchronous poll).
/// The `Sleep` is allocated the first time an operation has to wait, and kept.
#[derive(Debug, Default)]
struct OpTimer {
    /// Allocated the first time an operation waits (with a limit), and kept.
    state: Option<Pin<Box<TimerState>>>,
}

pin_project! {
    #[derive(Debug)]
    struct TimerState {
        #[pin]
        sleep: Sleep,
        // The current operation's deadline once it has waited; `None` before, or with no
        // limit.
        deadline: Option<Instant>,
        // The current operation has waited (and registered its waker with `sleep`).
        waited: bool,
    }
}

impl OpTimer {
    /// Starts timing a new operation.
    fn start(&mut self) {
        if let Some(state) = self.state.as_mut() {
            let state = state.as_mut().project();
            *state.waited = false;
            *state.deadline = None;
        }
    }

    /// Ends the current operation. If it waited, the `Sleep` still holds its task's waker, and
    /// a waker keeps its task's allocation alive: a connection that outlives the task that last
    /// used it (a pooled client, a connection handed between tasks) would pin that task's
    /// memory. A no-op waker takes its place.
    fn finish(&mut self) {
        let Some(state) = self.state.as_mut() else { return };
        let state = state.as_mut().project();
        if std::mem::take(state.waited) && state.deadline.is_some() {
            let _ = state.sleep.poll(&mut Context::from_waker(Waker::noop()));
        }
    }

    /// For an operation that may take `timeout` (`Duration::MAX`: no limit) and is about to
    /// wait: true once its deadline has passed; otherwise arranges a wake-up for it.
    fn poll_expired(&mut self, cx: &mut Context<'_>, timeout: Duration) -> bool {
        let state = match &mut self.state {
            Some(state) => state,
            None => {
                let Some(deadline) = Instant::now().checked_add(timeout) else { return false };
                self.state.insert(Box::pin(TimerState {
                    sleep: sleep_until(deadline),
                    deadline: Some(deadline),
                    waited: true,
                }))
            }
        };
        let mut state = state.as_mut().project();
        if !std::mem::replace(state.waited, true) {
            *state.deadline = Instant::now().checked_add(timeout);
        }
        let Some(deadline) = *state.deadline else { return false };
        if state.sleep.deadline() > deadline {
            state.sleep.as_mut().reset(deadline);
        }
        loop {
            if state.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= deadline {
                return true;
            }
            state.sleep.as_mut().reset(deadline);
        }
    }
}

/// The receiving state: a decoder and the bytes of a frame in progress.
///
/// A large frame's buffer is kept while frames keep arriving: the next frame is read into it
/// (one allocation for a run of large frames, not one each: in a small process every fresh
/// megabyte is fresh pages). It is given back as soon as a read would wait — right after a
/// frame, with one look at the stream, and whenever the connection waits for input — so an
/// idle connection holds none.
#[derive(Debug)]
struct FrameReader<D> {
    codec: IpcCodec<D, ()>,
    buf: BytesMut,
    /// A read error met while looking ahead, returned by the next receive.
    ahead_error: Option<io::Error>,
    /// Set by the `Stream` impl after a fatal error, so that it then ends.
    done: bool,
}

impl<D: DeserializeOwned> FrameReader<D> {
    fn new(config: FrameConfig) -> Self {
        let codec = IpcCodec::with_config(config).with_buffer_reuse(true);
        FrameReader { codec, buf: BytesMut::new(), ahead_error: None, done: false }
    }

    /// Polls for the next message. All progress lives in `self`, never in a future, which is
    /// what makes every receive built on it cancel-safe.
    fn poll_recv<R: AsyncRead + Unpin>(
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
    fn look_ahead<R: AsyncRead + Unpin>(&mut self, io: &mut R) {
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
    fn poll_recv_timed<R: AsyncRead + Unpin>(
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

    async fn recv<R: AsyncRead + Unpin>(
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

    fn poll_next<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<Option<Result<D>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(self.poll_recv(cx, io)) {
            Ok(item) => Poll::Ready(Some(Ok(item))),
            Err(IpcError::Closed) => {
                self.done = true;
                Poll::Ready(None)
            }
            Err(e) => {
                self.done = !e.is_recoverable();
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl<D> FrameReader<D> {
    fn has_partial_frame(&self) -> bool {
        !self.buf.is_empty() || self.codec.is_mid_frame()
    }
}

/// The sending state: the limits and the bytes not yet written.
#[derive(Debug)]
struct FrameWriter<E> {
    /// The encoder is stateless apart from its limits, so only those are kept.
    config: FrameConfig,
    buf: BytesMut,
    /// `buf` grew past [`IDLE_BUFFER_LIMIT`] since it was last released (see `poll_flush`).
    grew: bool,
    poisoned: bool,
    _types: PhantomData<fn(&E)>,
}

impl<E: Serialize> FrameWriter<E> {
    fn new(config: FrameConfig) -> Self {
        FrameWriter {
            config,
            buf: BytesMut::new(),
            grew: false,
            poisoned: false,
            _types: PhantomData,
        }
    }

    /// Encodes `item` behind whatever is queued. Nothing is queued when this fails.
    fn queue<M: Serialize>(&mut self, item: &M) -> Result<()> {
        if self.poisoned {
            return Err(IpcError::Poisoned);
        }
        IpcCodec::<(), M>::with_config(self.config).encode(item, &mut self.buf)?;
        self.grew |= self.buf.capacity() > IDLE_BUFFER_LIMIT;
        Ok(())
    }

    /// Queues `item` as the frame a timed send will flush: returns where the queue stood
    /// before it and where it ends, for [`poll_send`](Self::poll_send).
    fn queue_for_send<M: Serialize>(&mut self, item: &M) -> Result<(usize, usize)> {
        let before = self.buf.len();
        self.queue(item)?;
        trace!(bytes = self.buf.len() - before, "sending message");
        Ok((before, self.buf.len()))
    }

    /// Queues a frame that was encoded elsewhere (header included), e.g. an event serialized
    /// once for many subscribers. It is checked against this writer's limit like any other.
    fn queue_encoded(&mut self, frame: &[u8]) -> Result<()> {
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
    fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<()>> {
        ready!(self.poll_write_out(cx, io))?;
        self.release_if_idle();
        Poll::Ready(Ok(()))
    }

    /// Gives back the buffer if it is empty and grew past [`IDLE_BUFFER_LIMIT`].
    fn release_if_idle(&mut self) {
        // `advance` leaves the allocation behind the read position, where `capacity()` no longer
        // shows it; `grew` remembers its size.
        if self.buf.is_empty() && std::mem::take(&mut self.grew) {
            self.buf = BytesMut::new();
        }
    }

    /// Writes out everything queued, keeping the buffer for the frames that follow (a flush
    /// that makes room for more); frames go out in as few writes as the stream allows.
    fn poll_write_out<W: AsyncWrite + Unpin>(
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
    fn poll_send<W: AsyncWrite + Unpin>(
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

    async fn send<W: AsyncWrite + Unpin>(
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

    fn poll_ready<W: AsyncWrite + Unpin>(
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

    fn poll_close<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<()>> {
        ready!(self.poll_flush(cx, io))?;
        Pin::new(&mut *io).poll_shutdown(cx).map_err(IpcError::from)
    }
}

/// A byte stream that can be divided into a read half and a write half owned by two tasks.
///
/// Implemented for the platform streams the crate uses (zero-cost owned halves for Unix sockets);
/// implement it for your own stream to use [`Connection::split`] with it.
pub trait SplitStream: AsyncRead + AsyncWrite + Sized {
    /// The reading half.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// The writing half.
    type Write: AsyncWrite + Unpin + Send + 'static;
    /// Divides the stream.
    fn split_stream(self) -> (Self::Read, Self::Write);
}

/// A framed, typed, timed connection: receives `D`, sends `E`.
///
/// This one type carries the protocol for both ends and every platform: the server's
/// [`IpcConnection`](crate::IpcConnection) is `Connection<_, IpcMessage, IpcResponse>`, the
/// client uses `Connection<_, IpcResponse, IpcMessage>`, and `S` is a Unix socket or a named
/// pipe. Any `AsyncRead + AsyncWrite` stream works, which is how the tests run it over in-memory
/// pipes.
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
    slot: Option<Slot>,
}

/// Holds one of a server's connection slots; the slot is free again once the connection (or
/// both of its halves, which share it) is dropped.
#[derive(Debug)]
pub(crate) struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Slot {
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        Slot(permit)
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
            slot: None,
        }
    }

    /// The same connection decoding into `D2`: buffered input, queued output, limits, timer
    /// and slot carry over.
    pub(crate) fn decoding<D2>(self) -> Connection<S, D2, E> {
        let FrameReader { codec, buf, ahead_error, done } = self.reader;
        Connection {
            io: self.io,
            reader: FrameReader { codec: codec.cast(), buf, ahead_error, done },
            writer: self.writer,
            timer: self.timer,
            timeout: self.timeout,
            idle_timeout: self.idle_timeout,
            peer: self.peer,
            slot: self.slot,
        }
    }

    /// Ties a server connection slot to this connection's life.
    pub(crate) fn with_slot(mut self, slot: Slot) -> Self {
        self.slot = Some(slot);
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
        let shared_slot = self.slot.map(Arc::new);
        (
            RecvHalf {
                io: r,
                reader: self.reader,
                timer: self.timer,
                timeout: self.timeout,
                _slot: shared_slot.clone(),
            },
            SendHalf {
                io: w,
                writer: self.writer,
                timer: OpTimer::default(),
                timeout: self.timeout,
                _slot: shared_slot,
            },
        )
    }

    /// Converts into a `tokio_util::codec::Framed` with the same codec, for code written against
    /// `futures`' `StreamExt`/`SinkExt` and tokio-util. Buffered bytes carry over; the timeout
    /// does not (`Framed` has none).
    ///
    /// The stream inside is a [`FramedIo`], which keeps what the connection owned and knew: a
    /// server's connection slot stays taken until the `Framed` is dropped (so
    /// [`ServerOptions::max_connections`](crate::ServerOptions::max_connections) still holds),
    /// the peer's credentials stay readable (`framed.get_ref().peer_credentials()`), and a
    /// poisoned connection stays poisoned: its writes fail.
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
            _slot: self.slot,
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

/// The byte stream of a [`Connection`] turned into a `Framed` by
/// [`Connection::into_framed`], with what the connection owned and knew about it.
///
/// Reads and writes go straight to the stream inside. It holds the server's connection slot
/// until it is dropped, and it refuses writes once the connection was poisoned (an earlier send
/// stopped part-way through a frame), since the peer could not parse anything after it.
#[derive(Debug)]
pub struct FramedIo<S> {
    io: S,
    peer: Option<PeerCredentials>,
    poisoned: bool,
    _slot: Option<Slot>,
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

    /// Polls for the next message without a timeout; the building block of `recv`. Cancel-safe.
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

/// `Stream` for a type with `io` and `reader` fields.
macro_rules! impl_stream {
    (impl[$($gen:tt)*] $ty:ty, $d:ident) => {
        impl<$($gen)*> Stream for $ty {
            type Item = Result<$d>;

            /// Ends after a clean close or a non-recoverable error; recoverable errors are
            /// yielded and the stream goes on.
            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<$d>>> {
                let this = self.get_mut();
                this.reader.poll_next(cx, &mut this.io)
            }
        }
    };
}

/// `Sink<&E>` for a type with `io` and `writer` fields.
macro_rules! impl_sink {
    (impl[$($gen:tt)*] $ty:ty, $e:ident) => {
        impl<$($gen)*> Sink<&$e> for $ty {
            type Error = IpcError;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                let this = self.get_mut();
                this.writer.poll_ready(cx, &mut this.io)
            }

            fn start_send(self: Pin<&mut Self>, item: &$e) -> Result<()> {
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
    };
}

impl_stream!(impl[S: AsyncRead + Unpin, D: DeserializeOwned, E] Connection<S, D, E>, D);
impl_sink!(impl[S: AsyncWrite + Unpin, D, E: Serialize] Connection<S, D, E>, E);
impl_stream!(impl[R: AsyncRead + Unpin, D: DeserializeOwned] RecvHalf<R, D>, D);
impl_sink!(impl[W: AsyncWrite + Unpin, E: Serialize] SendHalf<W, E>, E);

/// The receiving half of a [`Connection`], from [`Connection::split`].
#[derive(Debug)]
pub struct RecvHalf<R, D> {
    io: R,
    reader: FrameReader<D>,
    timer: OpTimer,
    timeout: Duration,
    _slot: Option<Arc<Slot>>,
}

impl<R: AsyncRead + Unpin, D: DeserializeOwned> RecvHalf<R, D> {
    /// As [`Connection::recv`]. Cancel-safe.
    pub async fn recv(&mut self) -> Result<D> {
        self.reader.recv(&mut self.io, &mut self.timer, self.timeout).await
    }

    /// As [`Connection::poll_recv`]. Cancel-safe.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<D>> {
        self.reader.poll_recv(cx, &mut self.io)
    }

    /// As [`Connection::has_partial_frame`].
    pub fn has_partial_frame(&self) -> bool {
        self.reader.has_partial_frame()
    }

    /// Sets the limit for each later `recv`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

/// The sending half of a [`Connection`], from [`Connection::split`].
#[derive(Debug)]
pub struct SendHalf<W, E> {
    io: W,
    writer: FrameWriter<E>,
    timer: OpTimer,
    timeout: Duration,
    _slot: Option<Arc<Slot>>,
}

impl<W: AsyncWrite + Unpin, E: Serialize> SendHalf<W, E> {
    /// As [`Connection::send`].
    pub async fn send(&mut self, message: &E) -> Result<()> {
        self.writer.send(&mut self.io, &mut self.timer, message, self.timeout).await
    }

    /// Sets the limit for each later `send`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// True once a send failed part-way through a frame; every later send fails.
    pub fn is_poisoned(&self) -> bool {
        self.writer.poisoned
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
    /// the buffer for what follows; [`release_write_buffer`](Self::release_write_buffer) gives it back.
    pub(crate) fn poll_flush_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.writer.poll_write_out(cx, &mut self.io)
    }

    /// Gives back a large write buffer that is empty: for a caller about to wait (the read
    /// buffer gives itself back when a read would wait).
    pub(crate) fn release_write_buffer(&mut self) {
        self.writer.release_if_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_proto::{ClientCodec, IpcMessage, IpcResponse};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    type Client<S> = Connection<S, IpcResponse, IpcMessage>;
    type Server<S> = Connection<S, IpcMessage, IpcResponse>;

    fn frame_len(m: &IpcMessage) -> usize {
        serde_json::to_vec(m).expect("json").len() + 4
    }

    #[tokio::test]
    async fn send_timeout_before_any_byte_withdraws_the_frame_and_keeps_the_connection() {
        let first = IpcMessage::Stop { name: "first".into() };
        // A pipe that holds exactly one frame: the second send cannot write a single byte.
        let (a, b) = duplex(frame_len(&first));
        let mut client: Client<_> = Connection::new(a);
        let mut server: Server<_> = Connection::new(b);
        client.set_timeout(Duration::from_millis(30));
        client.send(&first).await.expect("fits");
        let e = client.send(&IpcMessage::List).await.expect_err("pipe full");
        assert!(matches!(e, IpcError::Timeout { operation: Operation::Send, .. }), "{e}");
        assert!(!client.is_poisoned());

        assert_eq!(server.recv().await.expect("first"), first);
        let third = IpcMessage::Stop { name: "third".into() };
        client.send(&third).await.expect("usable again");
        // The withdrawn `List` never reached the wire.
        assert_eq!(server.recv().await.expect("third"), third);
    }

    #[tokio::test]
    async fn send_timeout_mid_frame_poisons_and_nothing_more_is_written() {
        let (a, mut b) = duplex(16);
        let mut client: Client<_> = Connection::new(a);
        client.set_timeout(Duration::from_millis(30));
        let big = IpcMessage::Start { name: "x".into(), config: "y".repeat(100) };
        assert!(client.send(&big).await.expect_err("too slow").is_timeout());
        assert!(client.is_poisoned());
        assert!(matches!(client.send(&IpcMessage::List).await, Err(IpcError::Poisoned)));
        let mut got = vec![0u8; 16];
        b.read_exact(&mut got).await.expect("the part that went out");
        drop(client);
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.expect("eof");
        assert!(rest.is_empty(), "nothing after the torn frame: {rest:?}");
    }

    #[tokio::test]
    async fn idle_connection_keeps_no_large_buffers_after_a_large_message() {
        let (a, b) = duplex(1 << 16);
        let mut client: Client<_> = Connection::new(a);
        let mut server: Server<_> = Connection::new(b);
        let big = IpcMessage::Start { name: "x".into(), config: "y".repeat(1 << 20) };
        let (sent, got) = tokio::join!(client.send(&big), server.recv());
        sent.expect("send");
        assert_eq!(got.expect("recv"), big);
        assert!(!client.writer.grew);
        assert!(client.writer.buf.capacity() <= IDLE_BUFFER_LIMIT, "writer kept a large buffer");
        server.reader.buf.reserve(1);
        assert!(
            server.reader.buf.capacity() <= IDLE_BUFFER_LIMIT,
            "{}",
            server.reader.buf.capacity()
        );
    }

    #[tokio::test]
    async fn back_to_back_large_frames_share_one_buffer_which_goes_once_input_stops() {
        let (a, mut b) = duplex(4 << 20);
        let mut server: Server<_> = Connection::new(a);
        let big = |c: char| IpcMessage::Start { name: c.into(), config: "y".repeat(1 << 20) };
        let mut wire = BytesMut::new();
        for c in ['a', 'b', 'c'] {
            ClientCodec::new().encode(&big(c), &mut wire).expect("encode");
        }
        b.write_all(&wire).await.expect("write");

        assert_eq!(server.recv().await.expect("a"), big('a'));
        // The next frame was there: read into the buffer the first one grew.
        assert!(server.reader.codec.holds_large_buffer(), "kept while frames keep arriving");
        let kept = server.reader.buf.as_ptr();
        assert_eq!(server.recv().await.expect("b"), big('b'));
        assert_eq!(server.reader.buf.as_ptr(), kept, "the third frame is read into it too");
        assert_eq!(server.recv().await.expect("c"), big('c'));
        // Nothing more has arrived: given back at once, before any further receive.
        assert!(!server.reader.codec.holds_large_buffer());
        server.reader.buf.reserve(1);
        assert!(server.reader.buf.capacity() <= IDLE_BUFFER_LIMIT, "idle holds no large buffer");

        // A frame that arrives while the reader waits is read into a buffer of its own again.
        let (sent, got) = tokio::join!(b.write_all(&wire[..wire.len() / 3]), server.recv());
        sent.expect("write");
        assert_eq!(got.expect("again"), big('a'));
        assert!(!server.reader.codec.holds_large_buffer());
    }

    #[tokio::test]
    async fn a_batch_of_large_frames_is_encoded_into_one_buffer_given_back_by_its_flush() {
        use futures::SinkExt;
        let (a, mut b) = duplex(8 << 20);
        let mut client: Client<_> = Connection::new(a);
        let big = |c: char| IpcMessage::Start { name: c.into(), config: "y".repeat(1 << 20) };
        // `feed` flushes to make room for each next frame: the buffer stays.
        client.feed(&big('a')).await.expect("feed");
        client.feed(&big('b')).await.expect("feed");
        assert!(client.writer.grew, "kept between the frames of a batch");
        let kept = client.writer.buf.capacity();
        client.feed(&big('c')).await.expect("feed");
        assert!(client.writer.buf.capacity() <= kept + (1 << 20) + 64, "no new allocation");
        // The batch's own flush gives it back.
        SinkExt::<&IpcMessage>::flush(&mut client).await.expect("flush");
        assert!(!client.writer.grew);
        assert!(client.writer.buf.capacity() <= IDLE_BUFFER_LIMIT);
        let mut server: Server<_> = Connection::new(&mut b);
        for c in ['a', 'b', 'c'] {
            assert_eq!(server.recv().await.expect("frame"), big(c));
        }
    }

    #[tokio::test]
    async fn many_frames_from_one_read_are_all_delivered_in_order() {
        let (a, b) = duplex(1 << 16);
        let mut client: Client<_> = Connection::new(a);
        let mut server: Server<_> = Connection::new(b);
        let msgs: Vec<_> = (0..500).map(|i| IpcMessage::Stop { name: i.to_string() }).collect();
        for m in &msgs {
            futures_util_feed(&mut client, m);
        }
        std::future::poll_fn(|cx| Pin::new(&mut client).poll_flush(cx)).await.expect("flush");
        for m in &msgs {
            assert_eq!(&server.recv().await.expect("recv"), m);
        }
    }

    fn futures_util_feed<S: AsyncWrite + Unpin>(c: &mut Client<S>, m: &IpcMessage) {
        Pin::new(c).start_send(m).expect("queue");
    }
}
