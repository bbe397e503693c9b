//! Running a daemon's connections: requests to a [`Handler`], events from an [`EventBus`].
//!
//! [`serve_connection`] runs one connection until the client leaves; [`serve`] accepts clients
//! and runs each in its own task. A daemon supplies only a [`Handler`] for its own requests;
//! `Subscribe`, `Unsubscribe` and protocol 1's `Hello` and `Follow` are answered here, and
//! matching events are written out between replies. The daemon has no select loop of its own.

mod deadlines;
mod pump;
mod served;
mod wire;

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

#[cfg(doc)]
use ipc_proto::IpcError;
use ipc_proto::{IpcMessage, IpcResponse, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{Connection, EventBus, IpcServer, PeerCredentials};
use served::Served;

/// The reply to `Subscribe`.
pub const SUBSCRIBED: &str = "Subscribed to events";
/// The reply to `Unsubscribe`.
pub const UNSUBSCRIBED: &str = "Unsubscribed from events";

/// A daemon's answer to every request other than `Subscribe`, `Unsubscribe`, `Hello` and
/// `Follow` (which [`serve`] answers itself).
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

    /// The server's name and version, as `Hello` answers it (see `WIRE.md`, "Protocol 1").
    /// The default is this library's: `"bunctl-ipc <version>"`.
    fn server_name(&self) -> String {
        format!("bunctl-ipc {}", env!("CARGO_PKG_VERSION"))
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
/// A connection whose client does not read what is left for it is ended once that output has
/// waited the connection's timeout, so, unless a handler is still running, `serve_until`
/// returns within the timeout after `shutdown` completes, however long `grace` is.
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
                    reap(joined);
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
            let peer = served.peer_credentials();
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
            reap(joined);
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

/// Logs a connection task that panicked; the others ended on their own and logged how.
fn reap(joined: std::result::Result<(), JoinError>) {
    if let Err(e) = joined
        && e.is_panic()
    {
        error!(error = %e, "connection task panicked");
    }
}

/// Runs one connection for a daemon until the client leaves.
///
/// * `Subscribe { subscription }` is answered `Success { message: "Subscribed to events" }` and
///   replaces the connection's subscription, if any: every event after that reply is one the
///   new subscription matches. `Unsubscribe` is answered `Success { message: "Unsubscribed from
///   events" }` (also when not subscribed), and no event follows that reply. Events of the old
///   subscription that were still waiting to be written are not dropped silently: one `lagged`
///   notice counting them comes right before the reply. The same notice is the last frame of a
///   subscribed connection whose input ends (the client's end of stream, or shutdown).
/// * `Hello` (protocol 1, see `WIRE.md`) is answered with a [`ServerInfo`](crate::ServerInfo):
///   [`Handler::server_name`], the bus's instance and last position, `"follow"` among the
///   features, the process id, the bus's age, the connections served with this bus, its
///   subscribers, and the events it published and lost.
/// * `Follow { subscription, history, after, instance }` replaces the subscription as
///   `Subscribe` does and is answered `Data { data: {"instance", "seq"} }` (a
///   [`FollowStart`](crate::FollowStart)), then the replay [`EventBus::follow`] takes (the
///   last `history` kept events; or every kept event after `after`, a `lagged` notice first for
///   those no longer kept; or, for another bus's `instance`, a `reset` notice and everything
///   kept), then live events: each matching event once, in position order. `history` with
///   `after` is answered with an `Error`.
/// * A subscription needs a frame limit that can carry any `lagged` notice (129 bytes);
///   on a connection with a smaller limit, `Subscribe` is answered with an `Error` (or, if not
///   even that fits, the connection ends with [`IpcError::FrameTooLarge`]), so that losses are
///   never silent.
/// * Every other message goes to `handler`, one at a time; its reply is sent when ready, so
///   replies keep request order. While a handler runs, events keep being written out, and
///   every event published before the handler returned is written (or reported in a `lagged`
///   notice) before its reply: cause comes before effect on the wire.
/// * Events of the subscription are written between replies, in publish order. A subscriber that
///   falls behind loses the oldest events at the bus and gets a `lagged` notice (see
///   [`EventBus`]); the connection itself queues at most about 64 KiB of output, plus the one
///   frame that crosses that mark.
/// * A frame that fails to decode is answered `Error { message }` naming the problem, and the
///   connection goes on ([`IpcError::is_recoverable`]). A frame over the size limit is answered
///   the same way, then the connection is closed: the stream cannot be resynchronized. Any
///   other failure to read (a frame cut short, a broken connection) ends the connection with
///   that error, but only after every complete request before it has been answered.
/// * A reply too large for the frame limit is replaced by an `Error` reply saying so (shortened
///   until it fits), so every request still gets exactly one answer.
///
/// # Timeouts
///
/// The connection's [`timeout`](Connection::timeout) (30 s by default) is used as follows:
///
/// * **Idle, not subscribed:** a client that sends nothing for that long while no request is in
///   progress and nothing is left to write is disconnected (`Err(Timeout { Receive })`), as
///   with a plain `recv` loop.
/// * **Subscribed:** no receive limit at all. Listening is what a subscriber is connected for.
/// * **Replies:** each reply has that long from the moment it is ready (the handler returned,
///   or the server answered the request itself) until its last byte is written, events queued
///   ahead of it included; one that is not written in time — the client is not reading — ends
///   the connection (`Err(Timeout { Send })`). Every reply has a deadline of its own: a client
///   that reads steadily, however much it pipelines, is never cut off. Events alone never time
///   out: the bus drops them instead, so a client that pauses reading (a suspended `watch`)
///   resumes with a `lagged` notice.
/// * **Winding down:** once no more input is read (the client's end of stream, an oversize
///   frame, shutdown), whatever is still queued for the client must be written within that
///   time too, or the connection ends with `Err(Timeout { Send })`: a client that half-closes
///   and stops reading does not keep its connection.
///
/// A timeout of `Duration::MAX` disables both limits. Handlers are not timed out.
///
/// # Returns
///
/// `Ok(())` when the client closed its end (after its last reply was written), otherwise the
/// error that ended the connection (a read error only after the replies owed before it). The subscription is removed from the bus as soon as the
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
/// Requests the client had sent that were not read by then are not answered; with those left
/// unread, the OS may report the close to the client as a reset (Unix does).
/// [`serve_until`] uses it for every connection.
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
