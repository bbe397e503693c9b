//! Running a daemon's connections: requests to a [`Handler`], events from an [`EventBus`].
//!
//! [`serve_connection`] runs one connection until the client leaves; [`serve`] accepts clients
//! and runs each in its own task. A daemon supplies only a [`Handler`] for its own requests;
//! `Subscribe` and `Unsubscribe` are answered here, and matching events are written out between
//! replies. The daemon has no select loop of its own.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_sink::Sink;
use ipc_proto::{IpcError, IpcMessage, IpcResponse, Operation, Result};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace, warn};

use crate::{
    BusEvent, Connection, EventBus, IpcServer, RecvHalf, SendHalf, SplitStream, Subscription,
};

/// The reply to `Subscribe`.
pub const SUBSCRIBED: &str = "Subscribed to events";
/// The reply to `Unsubscribe`.
pub const UNSUBSCRIBED: &str = "Unsubscribed from events";

/// Output queued beyond this stops the intake of events and requests until it is written, so
/// a client that does not read costs at most this much (plus one batch) of write buffer.
const HIGH_WATER: usize = 64 * 1024;
/// Events moved from the subscription to the write buffer at a time; one write carries them.
const EVENT_BATCH: usize = 64;
/// Rounds of work done in one poll before yielding to the runtime, so that an endless supply of
/// events cannot monopolize a worker thread.
const ROUNDS_PER_POLL: usize = 32;

/// A daemon's answer to every request other than `Subscribe` and `Unsubscribe`.
///
/// Any `Fn(IpcMessage) -> impl Future<Output = IpcResponse>` closure is a handler; implement the
/// trait on your own type for anything more (the reference daemon in `bunctl-ipc-cli` does).
///
/// A handler runs one request at a time per connection (requests of one connection are answered
/// in order), and many connections run it concurrently. It is never timed out: a handler that
/// may wait long (for a process to stop, say) should bound that wait itself. Events keep flowing
/// to the connection while it runs.
///
/// ```
/// use bunctl_ipc::{Handler, IpcMessage, IpcResponse};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn handle(&self, message: IpcMessage) -> IpcResponse {
///         IpcResponse::Success { message: format!("{message:?}") }
///     }
/// }
/// # let _ = Echo;
/// ```
pub trait Handler {
    /// The reply to `message`.
    fn handle(&self, message: IpcMessage) -> impl Future<Output = IpcResponse> + Send;
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
        let (bus, handler, stop) = (bus.clone(), Arc::clone(&handler), stop.child_token());
        tasks.spawn(async move {
            let peer = conn.peer_credentials();
            match serve_connection_until(conn, &bus, &*handler, stop.cancelled_owned()).await {
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
pub async fn serve_connection<S, H>(
    conn: Connection<S, IpcMessage, IpcResponse>,
    bus: &EventBus,
    handler: &H,
) -> Result<()>
where
    S: SplitStream,
    H: Handler + ?Sized,
{
    serve_connection_until(conn, bus, handler, std::future::pending()).await
}

/// Like [`serve_connection`], until `shutdown` completes; then the connection is wound down:
/// no further request is read (a partly received one is abandoned), the request being handled
/// finishes and its reply is written, the subscription ends, and once everything queued is
/// written the function returns `Ok(())`, closing the connection with a clean end of stream.
/// [`serve_until`] uses it for every connection.
pub async fn serve_connection_until<S, H, F>(
    conn: Connection<S, IpcMessage, IpcResponse>,
    bus: &EventBus,
    handler: &H,
    shutdown: F,
) -> Result<()>
where
    S: SplitStream,
    H: Handler + ?Sized,
    F: Future<Output = ()>,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let mut closing = false;
    let limit = conn.timeout();
    let idle_limit = conn.idle_timeout();
    let (rx, tx) = conn.split();
    let mut session = Session {
        rx,
        tx,
        bus,
        sub: None,
        batch: Vec::with_capacity(0),
        written: 0,
        reply_due: None,
        last_activity: Instant::now(),
        timer: Box::pin(tokio::time::sleep_until(deadline_after(Instant::now(), limit))),
        limit,
        idle_limit,
        frame_started: None,
        eof: false,
    };
    let mut in_flight = no_future_of(|message| handler.handle(message));
    // A reply that is ready, and the subscription's position when it became ready.
    let mut held: Option<(IpcResponse, u64)> = None;
    let outcome = poll_fn(|cx| {
        for _ in 0..ROUNDS_PER_POLL {
            let mut progressed = false;

            if !closing && shutdown.as_mut().poll(cx).is_ready() {
                debug!("server shutting down; finishing this connection");
                closing = true;
                session.eof = true;
                session.sub = None;
                session.frame_started = None;
                progressed = true;
            }

            // The handler's reply. Events it published before returning go out first.
            if let Some(reply) = in_flight.as_mut()
                && let Poll::Ready(reply) = reply.as_mut().poll(cx)
            {
                in_flight = None;
                let position = session.sub.as_ref().map_or(0, Subscription::published_count);
                held = Some((reply, position));
                // Its write deadline runs from now, even while earlier events go out first.
                session.start_reply_deadline(None);
                progressed = true;
            }

            // Events, while there is room for them.
            if session.has_room() {
                progressed |= session.poll_events(cx)?;
            }

            // The reply, once every event published before it is written or reported lost.
            if let Some((_, position)) = &held
                && session.sub.as_ref().is_none_or(|sub| sub.settled_count() >= *position)
                && let Some((reply, _)) = held.take()
            {
                session.queue_reply(&reply)?;
                progressed = true;
            }

            // The next request, once the previous one is answered.
            let answered = in_flight.is_none() && held.is_none();
            if answered && !session.eof && session.has_room() {
                match session.rx.poll_recv(cx) {
                    Poll::Ready(received) => {
                        progressed = true;
                        session.last_activity = Instant::now();
                        session.frame_started = None;
                        if let Some(message) = session.on_received(received)? {
                            trace!(?message, "request");
                            in_flight = Some(Box::pin(handler.handle(message)));
                        }
                    }
                    // Part of a frame is in: from now on it has `limit` to complete, whether
                    // or not the connection is subscribed (a trickled frame is not listening).
                    Poll::Pending if session.rx.has_partial_frame() => {
                        session.frame_started.get_or_insert_with(Instant::now);
                    }
                    Poll::Pending => session.frame_started = None,
                }
            }

            // Write out what is queued once this round found nothing more to add (or the
            // buffer is full), so pipelined requests get their replies in one write rather than
            // one write each.
            if session.tx.queued_len() > 0
                && (!progressed || !session.has_room())
                && let Poll::Ready(flushed) = session.poll_flush(cx)
            {
                flushed?;
                progressed = true;
            }

            if session.eof && answered && in_flight.is_none() && session.tx.queued_len() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !progressed {
                return session.poll_deadline(cx, answered && in_flight.is_none());
            }
        }
        // Plenty of work is still coming in: write out what is done, let other tasks run, then
        // continue.
        if session.tx.queued_len() > 0
            && let Poll::Ready(Err(e)) = session.poll_flush(cx)
        {
            return Poll::Ready(Err(e));
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    if let Err(e) = &outcome {
        debug!(error = %e, "connection ends");
    }
    outcome
}

/// `None`, typed as the boxed future `handle` returns (which has no name to write down).
fn no_future_of<F>(_handle: impl FnOnce(IpcMessage) -> F) -> Option<Pin<Box<F>>> {
    None
}

/// `now + limit`, or far in the future if that overflows (`Duration::MAX` = no limit).
fn deadline_after(now: Instant, limit: Duration) -> Instant {
    now.checked_add(limit).unwrap_or_else(far_future)
}

fn far_future() -> Instant {
    // What tokio itself uses for "never": about 30 years.
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The state of one served connection, apart from the handler's future (whose type only the
/// closure in `serve_connection` can name).
struct Session<'b, R, W> {
    rx: RecvHalf<R, IpcMessage>,
    tx: SendHalf<W, IpcResponse>,
    bus: &'b EventBus,
    sub: Option<Subscription>,
    batch: Vec<BusEvent>,
    /// Bytes written since the connection started.
    written: u64,
    /// The output offset at which the last reply ends (`u64::MAX` while it is not queued yet),
    /// and when it must be written by.
    reply_due: Option<(u64, Instant)>,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    /// Per-operation limit: for a reply to be written, and for a started frame to complete.
    limit: Duration,
    /// How long an unsubscribed connection may stay silent with nothing in progress.
    idle_limit: Duration,
    /// When the first byte of a still incomplete request frame arrived.
    frame_started: Option<Instant>,
    /// The client closed its end: no more requests.
    eof: bool,
}

impl<R, W> Session<'_, R, W>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    fn has_room(&self) -> bool {
        self.tx.queued_len() < HIGH_WATER
    }

    /// Queues a reply and starts its write deadline.
    fn queue_reply(&mut self, reply: &IpcResponse) -> Result<()> {
        match self.tx.queue(reply) {
            Ok(()) => {}
            Err(e @ (IpcError::FrameTooLarge { .. } | IpcError::Encode(_))) => {
                // The request still gets exactly one reply.
                warn!(error = %e, "reply cannot be sent; replying with an error instead");
                self.tx.queue(&IpcResponse::Error { message: format!("reply not sent: {e}") })?;
            }
            Err(e) => return Err(e),
        }
        self.start_reply_deadline(Some(self.written + self.tx.queued_len() as u64));
        Ok(())
    }

    /// A reply must be written within the timeout. `end` is the output offset where it ends
    /// once queued (`None` while it is not queued yet); an earlier deadline is kept.
    fn start_reply_deadline(&mut self, end: Option<u64>) {
        let due = deadline_after(Instant::now(), self.limit);
        let due = self.reply_due.map_or(due, |(_, earlier)| earlier.min(due));
        self.reply_due = Some((end.unwrap_or(u64::MAX), due));
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let before = self.tx.queued_len();
        let result = Sink::<&IpcResponse>::poll_flush(Pin::new(&mut self.tx), cx);
        self.written += (before - self.tx.queued_len()) as u64;
        if self.reply_due.is_some_and(|(end, _)| self.written >= end) {
            self.reply_due = None;
        }
        if result.is_ready() {
            self.last_activity = Instant::now();
        }
        result
    }

    /// Moves a batch of events into the write buffer. Returns whether anything changed.
    fn poll_events(&mut self, cx: &mut Context<'_>) -> Result<bool> {
        let Some(sub) = self.sub.as_mut() else { return Ok(false) };
        match sub.poll_recv_many(cx, &mut self.batch, EVENT_BATCH) {
            Poll::Pending => Ok(false),
            Poll::Ready(0) => {
                debug!("event bus closed; no more events for this connection");
                self.sub = None;
                Ok(true)
            }
            Poll::Ready(n) => {
                trace!(events = n, "forwarding events");
                for event in self.batch.drain(..) {
                    match self.tx.queue_encoded(event.encoded_frame()) {
                        Ok(()) => {}
                        Err(IpcError::Poisoned) => return Err(IpcError::Poisoned),
                        Err(e) => {
                            warn!(event_type = event.event_type(), error = %e, "event not sent")
                        }
                    }
                }
                Ok(true)
            }
        }
    }

    /// Acts on a received frame; returns the message if it is for the handler.
    fn on_received(&mut self, received: Result<IpcMessage>) -> Result<Option<IpcMessage>> {
        match received {
            Ok(IpcMessage::Subscribe { subscription }) => {
                // The old subscription goes first, so nothing of it follows the reply.
                self.sub = None;
                self.sub = Some(self.bus.subscribe(subscription));
                self.queue_reply(&IpcResponse::Success { message: SUBSCRIBED.into() })?;
                Ok(None)
            }
            Ok(IpcMessage::Unsubscribe) => {
                self.sub = None;
                self.queue_reply(&IpcResponse::Success { message: UNSUBSCRIBED.into() })?;
                Ok(None)
            }
            Ok(message) => Ok(Some(message)),
            Err(IpcError::Closed) => {
                debug!("client closed its end");
                self.eof = true;
                self.sub = None;
                Ok(None)
            }
            Err(e) if e.is_recoverable() => {
                debug!(error = %e, "undecodable request");
                self.queue_reply(&IpcResponse::Error { message: e.to_string() })?;
                Ok(None)
            }
            Err(e @ IpcError::FrameTooLarge { .. }) => {
                // Say why before closing; the stream cannot be read any further.
                debug!(error = %e, "oversized request; closing after the error reply");
                self.queue_reply(&IpcResponse::Error { message: e.to_string() })?;
                self.eof = true;
                self.sub = None;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Nothing to do right now: arm the deadline that applies first, or fail if it has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>, idle: bool) -> Poll<Result<()>> {
        let reply = self.reply_due.map(|(_, due)| (due, Operation::Send, self.limit));
        let frame = self
            .frame_started
            .filter(|_| !self.eof)
            .map(|started| (deadline_after(started, self.limit), Operation::Receive, self.limit));
        let silent =
            (idle && !self.eof && self.sub.is_none() && self.tx.queued_len() == 0).then(|| {
                let due = deadline_after(self.last_activity, self.idle_limit);
                (due, Operation::Receive, self.idle_limit)
            });
        let Some((due, operation, after)) =
            [reply, frame, silent].into_iter().flatten().min_by_key(|d| d.0)
        else {
            return Poll::Pending;
        };
        if self.timer.deadline() != due {
            self.timer.as_mut().reset(due);
        }
        ready!(self.timer.as_mut().poll(cx));
        debug!(%operation, ?after, "connection timed out");
        Poll::Ready(Err(IpcError::Timeout { operation, after, torn: false }))
    }
}
