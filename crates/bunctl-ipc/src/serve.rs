//! Running a daemon's connections: requests to a [`Handler`], events from an [`EventBus`].
//!
//! [`serve_connection`] runs one connection until the client leaves; [`serve`] accepts clients
//! and runs each in its own task. A daemon supplies only a [`Handler`] for its own requests;
//! `Subscribe` and `Unsubscribe` are answered here, and matching events are written out between
//! replies. The daemon has no select loop of its own.

use std::borrow::BorrowMut;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ipc_proto::{IpcError, IpcMessage, IpcResponse, Operation, Result};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace, warn};

use crate::{BusEvent, Connection, Event, EventBus, IpcServer, PeerCredentials, Subscription};

/// The reply to `Subscribe`.
pub const SUBSCRIBED: &str = "Subscribed to events";
/// The reply to `Unsubscribe`.
pub const UNSUBSCRIBED: &str = "Unsubscribed from events";

/// Output queued beyond this stops the intake of events and requests until it is written, so
/// a client that does not read costs at most this much (plus one batch) of write buffer.
const HIGH_WATER: usize = 64 * 1024;
/// Events moved from the subscription to the write buffer at a time; one write carries them.
const EVENT_BATCH: usize = 64;
/// Queued output that is written without waiting for the round to run out of work: pipelined
/// replies go out in writes of about this size (like `FramedWrite`'s backpressure boundary).
const WRITE_BATCH: usize = 8 * 1024;
/// Rounds of work done in one poll before yielding to the runtime, so that an endless supply of
/// events cannot monopolize a worker thread. (Reading requests also spends tokio's
/// cooperative budget, which ends a poll of a flood of requests sooner.)
const ROUNDS_PER_POLL: usize = 128;

/// A daemon's answer to every request other than `Subscribe` and `Unsubscribe`.
///
/// Any `Fn(IpcMessage) -> impl Future<Output = IpcResponse>` closure is a handler; implement the
/// trait on your own type for anything more (the reference daemon, `bunctl-ipc-daemon`, does).
///
/// A handler runs one request at a time per connection (requests of one connection are answered
/// in order), and many connections run it concurrently. It is never timed out: a handler that
/// may wait long (for a process to stop, say) should bound that wait itself. Events keep flowing
/// to the connection while it runs.
///
/// `serve` calls [`handle_request`](Self::handle_request), which tells who is asking; its default
/// forwards to [`handle`](Self::handle), so a handler that does not care implements only that.
///
/// ```
/// use bunctl_ipc::{Handler, IpcMessage, IpcResponse, RequestContext};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn handle(&self, message: IpcMessage) -> IpcResponse {
///         IpcResponse::Success { message: format!("{message:?}") }
///     }
///
///     async fn handle_request(&self, context: RequestContext, message: IpcMessage) -> IpcResponse {
///         match (context.peer.and_then(|p| p.uid), message) {
///             (Some(uid), IpcMessage::Delete { .. }) if uid != 0 => {
///                 IpcResponse::Error { message: "only root may delete apps".into() }
///             }
///             (_, message) => self.handle(message).await,
///         }
///     }
/// }
/// # let _ = Echo;
/// ```
pub trait Handler {
    /// The reply to `message`.
    fn handle(&self, message: IpcMessage) -> impl Future<Output = IpcResponse> + Send;

    /// The reply to `message`, knowing who sent it. The default ignores the context and calls
    /// [`handle`](Self::handle).
    fn handle_request(
        &self,
        context: RequestContext,
        message: IpcMessage,
    ) -> impl Future<Output = IpcResponse> + Send {
        let _ = context;
        self.handle(message)
    }
}

/// What a [`Handler`] may know about a request besides the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestContext {
    /// The client's process and user identity, as the OS reported it when it connected.
    pub peer: Option<PeerCredentials>,
}

impl RequestContext {
    /// The context of a request from `peer`.
    pub fn new(peer: Option<PeerCredentials>) -> Self {
        RequestContext { peer }
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(IpcMessage) -> Fut,
    Fut: Future<Output = IpcResponse> + Send,
{
    fn handle(&self, message: IpcMessage) -> impl Future<Output = IpcResponse> + Send {
        self(message)
    }
}

/// Accepts clients forever, running [`serve_connection`] for each in its own task.
///
/// Returns only if accepting fails for good (see [`IpcServer::accept`]). To stop a server, drop
/// this future (e.g. race it against a shutdown signal in `tokio::select!`): the listener is
/// closed, its socket file removed, and every connection task is aborted.
///
/// How each connection ended is logged: at `debug!` when the client left or idled out, at
/// `warn!` for other errors, at `error!` if a handler panicked.
///
/// A complete daemon, whose one request publishes an event:
///
/// ```no_run
/// use bunctl_ipc::{EventBus, IpcMessage, IpcResponse, IpcServer, serve};
/// use serde_json::json;
///
/// # async fn run() -> Result<(), bunctl_ipc::IpcError> {
/// let bus = EventBus::new();
/// let server = IpcServer::bind("/tmp/demo.sock").await?;
/// let publisher = bus.clone();
/// serve(server, bus, move |message: IpcMessage| {
///     let bus = publisher.clone();
///     async move {
///         match message {
///             IpcMessage::Restart { name } => {
///                 bus.publish("process_restarting", Some(&name), json!({ "app": name }));
///                 IpcResponse::Success { message: format!("restarting {name}") }
///             }
///             _ => IpcResponse::Error { message: "not supported".into() },
///         }
///     }
/// })
/// .await
/// # }
/// ```
pub async fn serve<H>(server: IpcServer, bus: EventBus, handler: H) -> Result<()>
where
    H: Handler + Send + Sync + 'static,
{
    serve_until(server, bus, handler, std::future::pending(), Duration::ZERO).await
}

/// Like [`serve`], until `shutdown` completes; then shuts down gracefully and returns `Ok(())`.
///
/// Shutting down means, in order: stop accepting (the listener is dropped, which removes its
/// socket file); tell every connection to finish — no further request is read, a request
/// already being handled runs to completion and its reply is written, events stop, and the
/// connection is closed with a clean end of stream after its last reply; wait up to `grace`
/// for that; abort whatever is still running after it.
///
/// ```no_run
/// use bunctl_ipc::{EventBus, IpcMessage, IpcResponse, IpcServer, serve_until};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), bunctl_ipc::IpcError> {
/// let server = IpcServer::bind("/tmp/demo.sock").await?;
/// let handler = |_: IpcMessage| async { IpcResponse::Success { message: "ok".into() } };
/// let ctrl_c = async {
///     let _ = tokio::signal::ctrl_c().await;
/// };
/// serve_until(server, EventBus::new(), handler, ctrl_c, Duration::from_secs(5)).await
/// # }
/// ```
pub async fn serve_until<H, F>(
    mut server: IpcServer,
    bus: EventBus,
    handler: H,
    shutdown: F,
    grace: Duration,
) -> Result<()>
where
    H: Handler + Send + Sync + 'static,
    F: Future<Output = ()>,
{
    let handler = Arc::new(handler);
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    debug!(endpoint = %server.endpoint().display(), "serving");
    loop {
        let conn = {
            let mut accept = std::pin::pin!(server.accept());
            poll_fn(|cx| {
                // Reap finished connection tasks while waiting for the next client.
                while let Poll::Ready(Some(joined)) = tasks.poll_join_next(cx) {
                    if let Err(e) = joined
                        && e.is_panic()
                    {
                        error!(error = %e, "connection task panicked");
                    }
                }
                if shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                accept.as_mut().poll(cx).map(Some)
            })
            .await
        };
        let Some(conn) = conn else { break };
        let conn = conn?;
        // The task owns the state and lends it to the future that serves it, so the
        // connection is held once, not also as the argument of a call inside the task.
        let mut served = Served::new(conn, bus.clone());
        let (handler, stop) = (Arc::clone(&handler), stop.clone());
        tasks.spawn(async move {
            let outcome = Served::run(&mut served, &*handler, stop.cancelled_owned()).await;
            let peer = served.wire.conn.peer_credentials();
            match outcome {
                Ok(()) => debug!(?peer, "client left"),
                Err(e) if e.is_disconnect() || e.is_timeout() => {
                    debug!(?peer, error = %e, "connection ended")
                }
                Err(e) => warn!(?peer, error = %e, "connection failed"),
            }
        });
    }

    info!(endpoint = %server.endpoint().display(), connections = tasks.len(), "shutting down");
    drop(server);
    stop.cancel();
    let drained = tokio::time::timeout(grace, async {
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined
                && e.is_panic()
            {
                error!(error = %e, "connection task panicked");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            left = tasks.len(),
            ?grace,
            "connections still busy after the grace period; aborting them"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Runs one connection for a daemon until the client leaves.
///
/// * `Subscribe { subscription }` is answered `Success { message: "Subscribed to events" }` and
///   replaces the connection's subscription, if any: every event after that reply is one the
///   new subscription matches. `Unsubscribe` is answered `Success { message: "Unsubscribed from
///   events" }` (also when not subscribed), and no event follows that reply.
/// * Every other message goes to `handler`, one at a time; its reply is sent when ready, so
///   replies keep request order. While a handler runs, events keep being written out, and
///   every event published before the handler returned is written (or reported in a `lagged`
///   notice) before its reply: cause comes before effect on the wire.
/// * Events of the subscription are written between replies, in publish order, in batches
///   of many frames per write. A subscriber that falls behind loses the oldest events at the bus
///   and gets a `lagged` notice (see [`EventBus`]); the connection itself never buffers more
///   than about 64 KiB.
/// * A frame that fails to decode is answered `Error { message }` naming the problem, and the
///   connection goes on ([`IpcError::is_recoverable`]). A frame over the size limit is answered
///   the same way, then the connection is closed: the stream cannot be resynchronized.
///
/// # Timeouts
///
/// The connection's [`timeout`](Connection::timeout) (30 s by default) is used as follows:
///
/// * **Idle, not subscribed:** a client that sends nothing for that long while no request is in
///   progress and nothing is left to write is disconnected (`Err(Timeout { Receive })`), as
///   with a plain `recv` loop.
/// * **Subscribed:** no receive limit at all. Listening is what a subscriber is connected for.
/// * **Replies:** a reply not written out within that time — the client is not reading — ends
///   the connection (`Err(Timeout { Send })`). Events alone never time out: the bus drops them
///   instead, so a client that pauses reading (a suspended `watch`) resumes with a `lagged`
///   notice.
///
/// A timeout of `Duration::MAX` disables both limits. Handlers are not timed out.
///
/// # Returns
///
/// `Ok(())` when the client closed its end (after its last reply was written), otherwise the
/// error that ended the connection. The subscription is removed from the bus as soon as the
/// client's end of stream is seen, and in any case before this returns.
pub fn serve_connection<'a, S, H>(
    conn: Connection<S, IpcMessage, IpcResponse>,
    bus: &'a EventBus,
    handler: &'a H,
) -> impl Future<Output = Result<()>> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + 'a,
    H: Handler + ?Sized,
{
    serve_connection_until(conn, bus, handler, std::future::pending())
}

/// Like [`serve_connection`], until `shutdown` completes; then the connection is wound down:
/// no further request is read (a partly received one is abandoned), the request being handled
/// finishes and its reply is written, the subscription ends, and once everything queued is
/// written the function returns `Ok(())`, closing the connection with a clean end of stream.
/// [`serve_until`] uses it for every connection.
///
/// # How a served connection is put together
///
/// One task drives a few small parts, each with one job and its own state. Each poll first
/// checks the shutdown watch, then runs the other parts in this order, round after round, until
/// none makes progress (then the deadline keeper arms the one timer) or until 128 rounds have
/// run (then the task yields, so a flood cannot hog a worker):
///
/// | part | job | states |
/// |---|---|---|
/// | shutdown watch | turns the server's shutdown into "no more input" | running → closing |
/// | wire, reading | reads the next request once the previous one is answered and the output has room; `Subscribe`, `Unsubscribe` and undecodable frames are answered here | open → closed (client's end of stream, oversize frame, shutdown) |
/// | handler slot | runs the handler on one request at a time, first in the round that read it; its box is reused by back-to-back requests and freed when the connection waits | idle → running → idle (reply to the gate, or straight to the output when not subscribed) |
/// | event pump | moves subscribed events to the output, in publish order, and announces every event it could not deliver in a `lagged` notice | unsubscribed ↔ subscribed |
/// | reply gate | holds a reply until every event published before the handler returned is written or announced lost | empty → holding → empty (reply to the output) |
/// | wire, writing | queues frames and writes them once a round finds nothing to add or 8 KiB are queued; knows how much of the queue is replies | empty ↔ queued |
/// | deadline keeper | one timer for whichever limit comes first: the reply's write, the frame in progress, the idle limit; reads the clock once per wait, not per request | — |
///
/// The state a connection keeps while it waits is small: with [`serve`], about 1 KiB per idle
/// connection in all (its task, the socket's registration with the runtime, the timer, the
/// slot); BENCHMARKS.md has the figures.
///
/// The connection is done when its reading side is closed, the handler slot and the gate are
/// empty, and everything queued is written.
pub fn serve_connection_until<'a, S, H, F>(
    conn: Connection<S, IpcMessage, IpcResponse>,
    bus: &'a EventBus,
    handler: &'a H,
    shutdown: F,
) -> impl Future<Output = Result<()>> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + 'a,
    H: Handler + ?Sized,
    F: Future<Output = ()> + 'a,
{
    Served::run(Served::new(conn, bus.clone()), handler, shutdown)
}

/// A served connection, apart from the handler's future: what [`Run`] drives. It is built
/// before the connection's task starts and does not move after that, so the task holds it once
/// (an `async fn` would hold both the connection it was given and the state made from it).
struct Served<S> {
    wire: Wire<S>,
    bus: EventBus,
    pump: EventPump,
    gate: ReplyGate,
    deadlines: Deadlines,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Served<S> {
    fn new(conn: Connection<S, IpcMessage, IpcResponse>, bus: EventBus) -> Self {
        Served {
            wire: Wire { conn, reply_left: 0, closed: false, partial: false, closing: false },
            bus,
            pump: EventPump { on: None },
            gate: ReplyGate { held: None },
            deadlines: Deadlines::new(),
        }
    }

    /// Serves until the client leaves or `shutdown` completes; `served` is the state, owned or
    /// borrowed.
    fn run<'a, St, H, F>(
        served: St,
        handler: &'a H,
        shutdown: F,
    ) -> impl Future<Output = Result<()>> + 'a
    where
        St: BorrowMut<Served<S>> + 'a,
        S: 'a,
        H: Handler + ?Sized,
        F: Future<Output = ()> + 'a,
    {
        Run {
            served,
            shutdown,
            handling: HandlerSlot { boxed: None },
            start: move |context, message| handler.handle_request(context, message),
            _stream: PhantomData,
        }
    }
}

pin_project! {
    /// The future of a served connection: its state and the handler's future for the request
    /// being answered.
    struct Run<'a, S, St, F, M, Fut> {
        served: St,
        #[pin]
        shutdown: F,
        handling: HandlerSlot<Fut>,
        // Starts the handler on a request.
        start: M,
        _stream: PhantomData<fn() -> &'a S>,
    }
}

impl<S, St, F, M, Fut> Future for Run<'_, S, St, F, M, Fut>
where
    S: AsyncRead + AsyncWrite + Unpin,
    St: BorrowMut<Served<S>>,
    F: Future<Output = ()>,
    M: Fn(RequestContext, IpcMessage) -> Fut,
    Fut: Future<Output = IpcResponse>,
{
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.project();
        let outcome = this.served.borrow_mut().poll(cx, this.shutdown, this.handling, this.start);
        if let Poll::Ready(Err(e)) = &outcome {
            debug!(error = %e, "connection ends");
        }
        outcome
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Served<S> {
    /// One poll of a served connection: the rounds the docs of [`serve_connection_until`] describe.
    fn poll<F, Fut>(
        &mut self,
        cx: &mut Context<'_>,
        shutdown: Pin<&mut F>,
        handling: &mut HandlerSlot<Fut>,
        start: &impl Fn(RequestContext, IpcMessage) -> Fut,
    ) -> Poll<Result<()>>
    where
        F: Future<Output = ()>,
        Fut: Future<Output = IpcResponse>,
    {
        let Served { wire, bus, pump, gate, deadlines } = self;
        // Once per poll is enough: the shutdown future wakes this task when it completes.
        if !wire.closing && shutdown.poll(cx).is_ready() {
            debug!("server shutting down; finishing this connection");
            wire.closing = true;
            wire.close_input();
            pump.unsubscribe();
        }

        for _ in 0..ROUNDS_PER_POLL {
            let mut progressed = false;

            // The next request, once the previous one is answered.
            if !handling.is_running()
                && gate.is_empty()
                && wire.has_room()
                && let Poll::Ready(received) = wire.poll_request(cx)
            {
                progressed = true;
                deadlines.received();
                match dispatch(received, bus, pump, wire)? {
                    Dispatch::Handler(message) => {
                        trace!(?message, "request");
                        let context = RequestContext::new(wire.conn.peer_credentials());
                        handling.start(start(context, message));
                    }
                    Dispatch::Answered => deadlines.reply_ready(),
                    Dispatch::EndOfInput => {
                        wire.close_input();
                        if wire.has_unwritten_reply() {
                            deadlines.reply_ready();
                        }
                    }
                }
            }

            // The handler runs right away, in the round that read its request.
            if let Some(reply) = handling.poll_done(cx) {
                // Its write deadline runs from now, even while earlier events go out first.
                deadlines.reply_ready();
                progressed = true;
                if pump.is_subscribed() {
                    gate.hold(reply, pump);
                } else {
                    // No events to let go first.
                    wire.queue_reply(&reply)?;
                }
            }

            if wire.has_room() {
                progressed |= pump.poll_into(cx, wire)?;
            }

            if let Some(reply) = gate.release(pump) {
                wire.queue_reply(&reply)?;
                progressed = true;
            }

            // Write out what is queued once this round found nothing more to add (or a batch is
            // full), so pipelined requests get their replies in few writes rather than one each.
            if wire.is_queued()
                && (!progressed || wire.is_batch_full())
                && let Poll::Ready(flushed) = wire.poll_flush(cx)
            {
                flushed?;
                deadlines.activity();
                if !wire.has_unwritten_reply() && gate.is_empty() {
                    deadlines.replies_written();
                }
                progressed = true;
            }

            let busy = handling.is_running() || !gate.is_empty();
            if wire.closed && !busy && !wire.is_queued() {
                return Poll::Ready(Ok(()));
            }
            if !progressed {
                // About to wait: a handler box kept for back-to-back requests is given back.
                handling.release();
                let state = Waiting {
                    reply_unwritten: wire.has_unwritten_reply() || !gate.is_empty(),
                    frame_in_progress: wire.partial,
                    idle: !busy
                        && !wire.closed
                        && !pump.is_subscribed()
                        && !wire.is_queued()
                        && !wire.partial,
                };
                return deadlines.poll(cx, state, wire.conn.timeout(), wire.conn.idle_timeout());
            }
        }
        // Plenty of work is still coming in: write out what is done, let other tasks run, then
        // continue.
        deadlines.stamp(Instant::now(), wire.conn.timeout());
        if wire.is_queued()
            && let Poll::Ready(Err(e)) = wire.poll_flush(cx)
        {
            return Poll::Ready(Err(e));
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The handler's future for the request being answered (one at a time), in a box that
/// back-to-back requests reuse: the box is given back only when the connection waits, so
/// pipelined requests allocate none and an idle connection holds none.
struct HandlerSlot<F> {
    boxed: Option<Pin<Box<Option<F>>>>,
}

impl<F: Future> HandlerSlot<F> {
    fn is_running(&self) -> bool {
        self.boxed.as_ref().is_some_and(|slot| slot.is_some())
    }

    fn start(&mut self, future: F) {
        match &mut self.boxed {
            Some(slot) => slot.as_mut().set(Some(future)),
            None => self.boxed = Some(Box::pin(Some(future))),
        }
    }

    /// The handler's reply, once it has one.
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Option<F::Output> {
        let slot = self.boxed.as_mut()?;
        let Poll::Ready(reply) = slot.as_mut().as_pin_mut()?.poll(cx) else { return None };
        slot.as_mut().set(None);
        Some(reply)
    }

    /// Frees the box unless a handler is running in it.
    fn release(&mut self) {
        if !self.is_running() {
            self.boxed = None;
        }
    }
}

/// `now + limit`, or far in the future if that overflows (`Duration::MAX` = no limit).
fn deadline_after(now: Instant, limit: Duration) -> Instant {
    now.checked_add(limit).unwrap_or_else(far_future)
}

fn far_future() -> Instant {
    // What tokio itself uses for "never": about 30 years.
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The connection itself: reads requests one at a time, queues frames and writes them in
/// batches, and knows where the last reply ends.
struct Wire<S> {
    conn: Connection<S, IpcMessage, IpcResponse>,
    /// No more requests: the client's end of stream, an oversize frame, or shutdown.
    closed: bool,
    /// Part of a request frame is in, the rest is not.
    partial: bool,
    /// The server is shutting down: no more input, finish what is in progress.
    closing: bool,
    /// Queued bytes up to the end of the last queued reply; 0 once every reply is written.
    reply_left: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<Result<IpcMessage>> {
        if self.closed {
            return Poll::Pending;
        }
        let received = self.conn.poll_recv(cx);
        // Part of a frame is in: from now on it has the operation timeout to complete, whether
        // or not the connection is subscribed (a trickled frame is not listening).
        self.partial = received.is_pending() && self.conn.has_partial_frame();
        received
    }

    fn close_input(&mut self) {
        self.closed = true;
        self.partial = false;
    }

    fn has_unwritten_reply(&self) -> bool {
        self.reply_left > 0
    }

    fn has_room(&self) -> bool {
        self.conn.queued_len() < HIGH_WATER
    }

    fn is_batch_full(&self) -> bool {
        self.conn.queued_len() >= WRITE_BATCH
    }

    fn is_queued(&self) -> bool {
        self.conn.queued_len() > 0
    }

    /// Queues a reply; a reply that cannot be encoded is replaced by an error reply, so the
    /// request still gets exactly one answer.
    fn queue_reply(&mut self, reply: &IpcResponse) -> Result<()> {
        match self.conn.queue(reply) {
            Ok(()) => {}
            Err(e @ (IpcError::FrameTooLarge { .. } | IpcError::Encode(_))) => {
                warn!(error = %e, "reply cannot be sent; replying with an error instead");
                self.conn.queue(&IpcResponse::Error { message: format!("reply not sent: {e}") })?;
            }
            Err(e) => return Err(e),
        }
        self.reply_left = self.conn.queued_len() as u64;
        Ok(())
    }

    fn queue_event(&mut self, frame: &[u8]) -> Result<()> {
        self.conn.queue_encoded(frame)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let before = self.conn.queued_len();
        let result = self.conn.poll_flush_queued(cx);
        let written = (before - self.conn.queued_len()) as u64;
        self.reply_left = self.reply_left.saturating_sub(written);
        result
    }
}

/// What the intake's frame called for.
enum Dispatch {
    /// A request for the handler.
    Handler(IpcMessage),
    /// Answered here (subscriptions, undecodable frames).
    Answered,
    /// No more input will be read.
    EndOfInput,
}

/// Acts on a received frame: subscriptions and bad frames are answered here, the rest goes to
/// the handler.
fn dispatch<S: AsyncRead + AsyncWrite + Unpin>(
    received: Result<IpcMessage>,
    bus: &EventBus,
    pump: &mut EventPump,
    wire: &mut Wire<S>,
) -> Result<Dispatch> {
    match received {
        Ok(IpcMessage::Subscribe { subscription }) => {
            // The old subscription goes first, so nothing of it follows the reply.
            pump.unsubscribe();
            pump.subscribe(bus.subscribe(subscription));
            wire.queue_reply(&IpcResponse::Success { message: SUBSCRIBED.into() })?;
            Ok(Dispatch::Answered)
        }
        Ok(IpcMessage::Unsubscribe) => {
            pump.unsubscribe();
            wire.queue_reply(&IpcResponse::Success { message: UNSUBSCRIBED.into() })?;
            Ok(Dispatch::Answered)
        }
        Ok(message) => Ok(Dispatch::Handler(message)),
        Err(IpcError::Closed) => {
            debug!("client closed its end");
            pump.unsubscribe();
            Ok(Dispatch::EndOfInput)
        }
        Err(e) if e.is_recoverable() => {
            debug!(error = %e, "undecodable request");
            wire.queue_reply(&IpcResponse::Error { message: e.to_string() })?;
            Ok(Dispatch::Answered)
        }
        Err(e @ IpcError::FrameTooLarge { .. }) => {
            // Say why before closing; the stream cannot be read any further.
            debug!(error = %e, "oversized request; closing after the error reply");
            wire.queue_reply(&IpcResponse::Error { message: e.to_string() })?;
            pump.unsubscribe();
            Ok(Dispatch::EndOfInput)
        }
        Err(e) => Err(e),
    }
}

/// Moves the subscription's events into the output, and accounts for the ones it cannot
/// deliver (over this connection's frame limit, or not encodable): they are announced in a
/// `lagged` notice where the gap is, exactly like events the bus dropped. Boxed, so that a
/// connection that never subscribes carries one pointer for it.
struct EventPump {
    on: Option<Box<Pumping>>,
}

struct Pumping {
    sub: Subscription,
    batch: Vec<BusEvent>,
    /// Events lost since the last notice, not yet announced.
    undelivered: u64,
}

impl EventPump {
    fn is_subscribed(&self) -> bool {
        self.on.is_some()
    }

    fn subscribe(&mut self, sub: Subscription) {
        self.on = Some(Box::new(Pumping { sub, batch: Vec::new(), undelivered: 0 }));
    }

    fn unsubscribe(&mut self) {
        self.on = None;
    }

    /// The subscription's position: events ever queued for it.
    fn position(&self) -> u64 {
        self.on.as_ref().map_or(0, |p| p.sub.published_count())
    }

    /// True once every event up to `position` has been taken from the subscription (written,
    /// or announced lost).
    fn has_settled(&self, position: u64) -> bool {
        self.on.as_ref().is_none_or(|p| p.sub.settled_count() >= position)
    }

    /// Moves a batch of events into the output. Returns whether anything changed.
    fn poll_into<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        wire: &mut Wire<S>,
    ) -> Result<bool> {
        let Some(p) = self.on.as_deref_mut() else { return Ok(false) };
        match p.sub.poll_recv_many(cx, &mut p.batch, EVENT_BATCH) {
            Poll::Pending => Ok(false),
            Poll::Ready(0) => {
                debug!("event bus closed; no more events for this connection");
                self.on = None;
                Ok(true)
            }
            Poll::Ready(n) => {
                trace!(events = n, "forwarding events");
                let mut batch = std::mem::take(&mut p.batch);
                for event in batch.drain(..) {
                    if let Some(missed) = event.missed() {
                        // The bus's own loss notice: merged with ours, announced before the
                        // next event that does go out.
                        p.undelivered += missed;
                        continue;
                    }
                    p.announce_losses(wire)?;
                    match wire.queue_event(event.encoded_frame()) {
                        Ok(()) => {}
                        Err(IpcError::Poisoned) => return Err(IpcError::Poisoned),
                        Err(e) => {
                            warn!(event_type = event.event_type(), error = %e,
                                  "event cannot be delivered; the subscriber is told it missed it");
                            p.undelivered += 1;
                        }
                    }
                }
                p.batch = batch;
                p.announce_losses(wire)?;
                Ok(true)
            }
        }
    }
}

impl Pumping {
    fn announce_losses<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        wire: &mut Wire<S>,
    ) -> Result<()> {
        let missed = std::mem::take(&mut self.undelivered);
        if missed > 0 {
            trace!(missed, "lagged");
            let notice = Event::lagged(missed).into();
            match wire.conn.queue(&notice) {
                Ok(()) | Err(IpcError::FrameTooLarge { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Holds a reply until the events published before it are settled: cause before effect.
/// Only a subscribed connection's replies wait here, so the reply is boxed.
struct ReplyGate {
    /// The reply, and the subscription's position when the handler returned it.
    held: Option<Box<(IpcResponse, u64)>>,
}

impl ReplyGate {
    fn hold(&mut self, reply: IpcResponse, pump: &EventPump) {
        self.held = Some(Box::new((reply, pump.position())));
    }

    fn is_empty(&self) -> bool {
        self.held.is_none()
    }

    fn release(&mut self, pump: &EventPump) -> Option<IpcResponse> {
        match &self.held {
            Some(held) if pump.has_settled(held.1) => self.held.take().map(|held| held.0),
            _ => None,
        }
    }
}

/// What the deadline keeper needs to know when the connection has nothing to do.
struct Waiting {
    /// A reply is ready (held or queued) and not yet written.
    reply_unwritten: bool,
    /// Part of a request frame is in.
    frame_in_progress: bool,
    /// Nothing in progress, nothing to write, not subscribed: the idle limit applies.
    idle: bool,
}

/// One timer for whichever limit comes first: the connection's timeout for a reply to be
/// written and for a started frame to complete, its idle limit for a silent client.
///
/// The clock is read once when the connection is about to wait (or yields), not per request:
/// what happened in between is stamped with that time, which is later than the truth by at
/// most one poll's work. The times live in the timer's allocation, which every connection has
/// anyway, so that the connection's task stays small.
struct Deadlines {
    timer: Pin<Box<Timer>>,
}

pin_project! {
    struct Timer {
        #[pin]
        sleep: Sleep,
        last_activity: Instant,
        // When the reply now in the gate or the output must be written by.
        reply_due: Option<Instant>,
        // When the request frame in progress must be complete by.
        frame_due: Option<Instant>,
        // Activity since the clock was last read.
        active: bool,
        // A reply became ready since the clock was last read, with no earlier one pending.
        reply_unstamped: bool,
    }
}

impl Deadlines {
    fn new() -> Self {
        Deadlines {
            timer: Box::pin(Timer {
                sleep: tokio::time::sleep_until(far_future()),
                last_activity: Instant::now(),
                reply_due: None,
                frame_due: None,
                active: false,
                reply_unstamped: false,
            }),
        }
    }

    /// A reply became ready: it must be written within the limit (an earlier one's deadline,
    /// if still pending, is kept).
    fn reply_ready(&mut self) {
        let timer = self.timer.as_mut().project();
        *timer.reply_unstamped |= timer.reply_due.is_none();
    }

    /// Every reply so far is written: no write deadline is pending.
    fn replies_written(&mut self) {
        let timer = self.timer.as_mut().project();
        *timer.reply_due = None;
        *timer.reply_unstamped = false;
    }

    /// Something was written: the idle clock restarts.
    fn activity(&mut self) {
        *self.timer.as_mut().project().active = true;
    }

    /// A request (or the end of input) arrived whole: the idle clock restarts, and the frame
    /// in progress, if any, is complete.
    fn received(&mut self) {
        let timer = self.timer.as_mut().project();
        *timer.active = true;
        *timer.frame_due = None;
    }

    /// Gives what happened since the clock was last read the time `now`.
    fn stamp(&mut self, now: Instant, limit: Duration) {
        let timer = self.timer.as_mut().project();
        if std::mem::take(timer.active) {
            *timer.last_activity = now;
        }
        if std::mem::take(timer.reply_unstamped) {
            *timer.reply_due = Some(deadline_after(now, limit));
        }
    }

    /// Arms the timer for the limit that applies first, or fails if it has passed.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        state: Waiting,
        limit: Duration,
        idle_limit: Duration,
    ) -> Poll<Result<()>> {
        if !state.frame_in_progress {
            *self.timer.as_mut().project().frame_due = None;
        }
        let unstamped_frame = state.frame_in_progress && self.timer.frame_due.is_none();
        if self.timer.active || self.timer.reply_unstamped || unstamped_frame {
            let now = Instant::now();
            self.stamp(now, limit);
            if unstamped_frame {
                *self.timer.as_mut().project().frame_due = Some(deadline_after(now, limit));
            }
        }
        let timer = self.timer.as_mut().project();
        let reply = timer
            .reply_due
            .filter(|_| state.reply_unwritten)
            .map(|due| (due, Operation::Send, limit));
        let frame = timer.frame_due.map(|due| (due, Operation::Receive, limit));
        let silent = state.idle.then(|| {
            (deadline_after(*timer.last_activity, idle_limit), Operation::Receive, idle_limit)
        });
        let Some((due, operation, after)) =
            [reply, frame, silent].into_iter().flatten().min_by_key(|d| d.0)
        else {
            return Poll::Pending;
        };
        let mut sleep = timer.sleep;
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        ready!(sleep.poll(cx));
        debug!(%operation, ?after, "connection timed out");
        Poll::Ready(Err(IpcError::Timeout { operation, after, torn: false }))
    }
}
