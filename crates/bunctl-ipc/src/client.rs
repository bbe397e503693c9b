//! The CLI's side: connect, ask, listen to events.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use ipc_proto::{IpcError, IpcMessage, IpcResponse, Result, SubscriptionType};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::event::Loss;
use crate::options::{ConnectionOptions, connection_options};
use crate::{Connection, Event, PeerCredentials, sys};

/// The client's connection type: receives [`IpcResponse`], sends [`IpcMessage`].
pub type ClientConnection = Connection<sys::ClientStream, IpcResponse, IpcMessage>;

/// A server's frame as [`IpcClient`] decodes it: [`IpcResponse`], with the position the server
/// may give an event (which `IpcResponse` has no field for).
#[derive(Debug, Deserialize)]
enum Incoming {
    Success {
        message: String,
    },
    Error {
        message: String,
    },
    Data {
        data: Value,
    },
    Event {
        event_type: String,
        data: Value,
        #[serde(default)]
        seq: Option<u64>,
    },
}

/// A received frame: an event, or anything else (a reply).
#[derive(Debug)]
enum Frame {
    Event(Event),
    Reply(IpcResponse),
}

fn frame(received: Result<Incoming>) -> Result<Frame> {
    Ok(match received? {
        Incoming::Event { event_type, data, seq } => {
            Frame::Event(Event::new(event_type, data).with_seq(seq))
        }
        Incoming::Success { message } => Frame::Reply(IpcResponse::Success { message }),
        Incoming::Error { message } => Frame::Reply(IpcResponse::Error { message }),
        Incoming::Data { data } => Frame::Reply(IpcResponse::Data { data }),
    })
}

impl Frame {
    fn into_response(self) -> IpcResponse {
        match self {
            Frame::Event(event) => event.into(),
            Frame::Reply(reply) => reply,
        }
    }
}

/// Events kept for [`IpcClient::next_event`] while a request waits for its reply, unless
/// [`ClientOptions::max_held_events`] says otherwise. Past this, the oldest are dropped and a
/// `lagged` event reports how many.
pub const DEFAULT_HELD_EVENTS: usize = 4096;

/// How an [`IpcClient`] connects and what its connection starts with.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    connection: ConnectionOptions,
    wait_for_server: Duration,
    verify_server: bool,
    held_events: usize,
}

impl ClientOptions {
    /// Defaults: [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE) and
    /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT), which also bounds the connect itself; no
    /// waiting for a server that is not running yet; the server's identity verified.
    pub fn new() -> Self {
        ClientOptions {
            connection: ConnectionOptions::new(),
            wait_for_server: Duration::ZERO,
            verify_server: true,
            held_events: DEFAULT_HELD_EVENTS,
        }
    }

    /// How many events a subscribed client keeps while a request waits for its reply (at
    /// least 1; by default [`DEFAULT_HELD_EVENTS`]). When more arrive, the oldest are dropped,
    /// and [`IpcClient::next_event`] first yields one `lagged` event counting them, as the
    /// server does for a subscriber that falls behind.
    pub fn max_held_events(mut self, events: usize) -> Self {
        self.held_events = events.max(1);
        self
    }

    /// Whether connecting checks who the server runs as (default: yes). With the check, a
    /// server that runs as neither this user nor the system's administrative identity (root on
    /// Unix, from the socket's peer credentials; SYSTEM on Windows, from the pipe server's
    /// process token) is refused with [`IpcError::ServerIdentity`] before anything is sent, so
    /// a squatter holding the endpoint name learns nothing from the client.
    ///
    /// Turn it off only to talk to a server that legitimately runs as another user — e.g. a
    /// system-wide daemon under a dedicated service account serving several users — and only
    /// on an endpoint whose location that account alone controls.
    pub fn verify_server(mut self, yes: bool) -> Self {
        self.verify_server = yes;
        self
    }

    /// Keep retrying, for up to `wait`, while no server is running at the endpoint — for a CLI
    /// that has just spawned its daemon. Retries start at 5 ms and back off to 100 ms.
    ///
    /// With a wait, the whole connect has one deadline, `wait` from the call: no attempt
    /// outlasts it, whatever [`timeout`](Self::timeout) says (each attempt is also bounded by
    /// the timeout). When the server does not appear in time, the last
    /// [`IpcError::NotRunning`] is returned; other errors are returned at once.
    pub fn wait_for_server(mut self, wait: Duration) -> Self {
        self.wait_for_server = wait;
        self
    }

    connection_options!(
        "The timeout of the connect and of each later call: each `send` and `recv`, and each \
         `request` as a whole."
    );
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions::new()
    }
}

/// A connection to a bunctl daemon.
///
/// Beyond the plain [`send`](Self::send)/[`recv`](Self::recv) pair of the original API it offers
/// [`request`](Self::request) (send, then wait for the reply), and subscriptions: after
/// [`subscribe`](Self::subscribe), events arrive through [`next_event`](Self::next_event) or
/// [`events`](Self::events) while requests keep working on the same connection — events that
/// arrive while a request waits for its reply are kept for later, in order.
///
/// ```no_run
/// use bunctl_ipc::{IpcClient, IpcMessage, IpcResponse};
///
/// # async fn run() -> Result<(), bunctl_ipc::IpcError> {
/// let mut client = IpcClient::connect(bunctl_ipc::default_socket_path()).await?;
/// match client.request(&IpcMessage::Status { name: None }).await? {
///     IpcResponse::Data { data } => println!("{data:#}"),
///     IpcResponse::Error { message } => eprintln!("daemon says: {message}"),
///     other => eprintln!("unexpected: {other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct IpcClient {
    conn: Connection<sys::ClientStream, Incoming, IpcMessage>,
    endpoint: PathBuf,
    pending_events: VecDeque<Event>,
    held_limit: usize,
    missed_events: Loss,
    /// Replies still to arrive for requests that were sent and then abandoned (timed out, or
    /// their future dropped). Replies come in request order, so the next this many replies
    /// belong to them and are discarded.
    owed_replies: usize,
    /// The event stream met a fatal error or the end of the connection: it yields no more.
    events_ended: bool,
}

impl IpcClient {
    /// Connects to the server at `path` with default [`ClientOptions`].
    ///
    /// When nothing listens there, fails with [`IpcError::NotRunning`] naming the path; when
    /// the server runs as another user, with [`IpcError::ServerIdentity`] (see
    /// [`ClientOptions::verify_server`]).
    pub async fn connect(path: impl AsRef<Path>) -> Result<IpcClient> {
        Self::connect_with(path, ClientOptions::new()).await
    }

    /// Connects with the given options.
    pub async fn connect_with(path: impl AsRef<Path>, options: ClientOptions) -> Result<IpcClient> {
        let path = path.as_ref();
        let (stream, peer) = if options.wait_for_server.is_zero() {
            // Both transports bound their own connect (busy retries included) by the timeout.
            sys::connect(path, options.connection.timeout, options.verify_server).await?
        } else {
            connect_retrying(path, &options).await?
        };
        debug!(endpoint = %path.display(), ?peer, "connected");
        Ok(IpcClient {
            conn: options.connection.connection(stream).with_peer(Some(peer)),
            endpoint: path.to_owned(),
            pending_events: VecDeque::new(),
            held_limit: options.held_events,
            missed_events: Loss::default(),
            owed_replies: 0,
            events_ended: false,
        })
    }

    /// Connects with default [`ClientOptions`], retrying while no server is running yet, for
    /// up to `wait` in all: `ClientOptions::new().wait_for_server(wait)` (see
    /// [`ClientOptions::wait_for_server`]).
    pub async fn connect_with_retry(path: impl AsRef<Path>, wait: Duration) -> Result<IpcClient> {
        Self::connect_with(path, ClientOptions::new().wait_for_server(wait)).await
    }

    /// Sends one message. See [`Connection::send`].
    ///
    /// A plain `send` followed by [`recv`](Self::recv) pairs the two only by order: if that
    /// `recv` times out, the reply still arrives later and the *next* `recv` returns it. Use
    /// [`request`](Self::request), which keeps track of that, when replies must not be mixed
    /// up.
    pub async fn send(&mut self, message: &IpcMessage) -> Result<()> {
        self.conn.send(message).await
    }

    /// Receives the next response or event, oldest first (events held back by
    /// [`request`](Self::request) come first). Cancel-safe.
    ///
    /// Replies still owed to requests that timed out or were dropped are discarded on the
    /// way. A reply to a plain [`send`](Self::send) is not tracked: if this `recv` times out
    /// waiting for it, a later `recv` returns it.
    pub async fn recv(&mut self) -> Result<IpcResponse> {
        if let Some(event) = self.take_pending_event() {
            return Ok(event.into());
        }
        loop {
            let received = frame(self.conn.recv().await);
            if self.owed_replies > 0 && takes_a_reply_place(&received) {
                self.discard_owed_reply(&received);
                continue;
            }
            return received.map(Frame::into_response);
        }
    }

    /// Sends `message` and returns its reply; events that arrive meanwhile are kept for
    /// [`next_event`](Self::next_event).
    ///
    /// The whole request — writing the message and waiting for the reply — has one deadline,
    /// the client's [`timeout`](Self::timeout), counted from the first moment it has to wait.
    ///
    /// Each request gets its own reply, whatever happened before: when a request fails with a
    /// timeout, or its future is dropped (it lost a `tokio::select!`, an outer timeout fired)
    /// after its message was queued, the client remembers that a reply is still owed and
    /// discards it when it arrives, so it is never mistaken for the reply to a later request.
    pub async fn request(&mut self, message: &IpcMessage) -> Result<IpcResponse> {
        self.conn.begin_operation();
        let result = self.request_in_operation(message).await;
        self.conn.end_operation();
        result
    }

    async fn request_in_operation(&mut self, message: &IpcMessage) -> Result<IpcResponse> {
        let at = self.conn.queue_message(message)?;
        // From here the message will reach the server (it is queued whole and written ahead of
        // anything later), so a reply is owed, even if this future is dropped at the next await.
        self.owed_replies += 1;
        if let Err(e) = poll_fn(|cx| self.conn.poll_send_queued(cx, at)).await {
            if matches!(e, IpcError::Timeout { torn: false, .. }) {
                // The frame was withdrawn unsent: no reply will come.
                self.owed_replies -= 1;
            }
            return Err(e);
        }
        loop {
            match frame(poll_fn(|cx| self.conn.poll_recv_in_operation(cx)).await) {
                Ok(Frame::Event(event)) => self.hold_event(event),
                // An undecodable frame stands where a reply was: it is the oldest one owed.
                reply if self.owed_replies > 1 && takes_a_reply_place(&reply) => {
                    self.discard_owed_reply(&reply)
                }
                reply => {
                    if takes_a_reply_place(&reply) {
                        self.owed_replies = 0;
                    }
                    return reply.map(Frame::into_response);
                }
            }
        }
    }

    fn discard_owed_reply(&mut self, reply: &Result<Frame>) {
        self.owed_replies -= 1;
        debug!(
            ?reply,
            still_owed = self.owed_replies,
            "discarded the late reply of an abandoned request"
        );
    }

    /// How many replies are still to arrive for requests that timed out or were dropped; they
    /// will be discarded as they come.
    pub fn unanswered_requests(&self) -> usize {
        self.owed_replies
    }

    /// Subscribes this connection to events, replacing any earlier subscription. Fails with
    /// [`IpcError::Refused`] if the server answers with an error.
    pub async fn subscribe(&mut self, subscription: SubscriptionType) -> Result<()> {
        expect_success(self.request(&IpcMessage::Subscribe { subscription }).await?)
    }

    /// Ends this connection's subscription. Events already received stay available.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        expect_success(self.request(&IpcMessage::Unsubscribe).await?)
    }

    /// Waits, without a timeout, for the next event. Cancel-safe, so it fits a `select!` loop
    /// beside other work. Late replies of abandoned requests are discarded; any other reply
    /// that arrives with no request waiting for it is logged and skipped.
    pub async fn next_event(&mut self) -> Result<Event> {
        poll_fn(|cx| self.poll_next_event(cx)).await
    }

    /// The events as a `Stream`, borrowing the client. It ends (`None`) when the server closes
    /// the connection, and after yielding an error that leaves the connection unusable (see
    /// [`IpcError::is_recoverable`]); recoverable errors are yielded and the stream goes on.
    pub fn events(&mut self) -> EventStream<'_> {
        EventStream { client: self }
    }

    fn poll_next_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        if let Some(event) = self.take_pending_event() {
            return Poll::Ready(Ok(event));
        }
        loop {
            match frame(ready!(self.conn.poll_recv(cx))) {
                Ok(Frame::Event(event)) => return Poll::Ready(Ok(event)),
                owed if self.owed_replies > 0 && takes_a_reply_place(&owed) => {
                    self.discard_owed_reply(&owed)
                }
                Ok(stray) => warn!(reply = ?stray, "reply with no request waiting for it; skipped"),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn hold_event(&mut self, event: Event) {
        if self.pending_events.len() >= self.held_limit
            && let Some(dropped) = self.pending_events.pop_front()
        {
            // A dropped notice stood for the events it announced.
            self.missed_events.merge(dropped.lost_as());
        }
        self.pending_events.push_back(event);
    }

    fn take_pending_event(&mut self) -> Option<Event> {
        if !self.missed_events.is_empty() {
            return Some(std::mem::take(&mut self.missed_events).notice());
        }
        self.pending_events.pop_front()
    }

    /// Sets the limit for each later `send` and `recv`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.conn.set_timeout(timeout);
    }

    /// The limit for each `send` and `recv`.
    pub fn timeout(&self) -> Duration {
        self.conn.timeout()
    }

    /// The endpoint this client connected to.
    pub fn endpoint(&self) -> &Path {
        &self.endpoint
    }

    /// The server process's identity, when the platform reports it — e.g. to check that the
    /// daemon runs as the expected user.
    pub fn peer_credentials(&self) -> Option<PeerCredentials> {
        self.conn.peer_credentials()
    }

    /// The underlying connection, for `split`, `into_framed` or the `Stream`/`Sink` API.
    ///
    /// Events held back by `request` are returned beside it, oldest first, preceded by a
    /// `lagged` event if some had to be dropped. Replies still owed to abandoned requests
    /// ([`unanswered_requests`](Self::unanswered_requests)) are no longer filtered out: they
    /// arrive on the connection first.
    pub fn into_connection(self) -> (ClientConnection, Vec<Event>) {
        let mut events = Vec::with_capacity(self.pending_events.len() + 1);
        if !self.missed_events.is_empty() {
            events.push(self.missed_events.notice());
        }
        events.extend(self.pending_events);
        (self.conn.decoding(), events)
    }
}

/// Whether a received frame answers a request: any reply, and also a frame that could not be
/// decoded but left the stream in sync (it was in the place of a reply). Events never do.
fn takes_a_reply_place(received: &Result<Frame>) -> bool {
    match received {
        Ok(Frame::Event(_)) => false,
        Ok(Frame::Reply(_)) => true,
        Err(e) => matches!(e, IpcError::InvalidMessage(_) | IpcError::EmptyFrame),
    }
}

fn expect_success(reply: IpcResponse) -> Result<()> {
    match reply {
        IpcResponse::Success { .. } => Ok(()),
        IpcResponse::Error { message } => Err(IpcError::Refused { message }),
        other => Err(IpcError::UnexpectedReply { expected: "Success", got: format!("{other:?}") }),
    }
}

/// The events of an [`IpcClient`], from [`IpcClient::events`].
#[derive(Debug)]
pub struct EventStream<'a> {
    client: &'a mut IpcClient,
}

impl Stream for EventStream<'_> {
    type Item = Result<Event>;

    /// Ends after the connection closes or after a non-recoverable error (yielded once), like
    /// tokio-util's `Framed`; recoverable errors are yielded and the stream goes on.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let client = &mut *self.get_mut().client;
        if client.events_ended {
            return Poll::Ready(None);
        }
        match ready!(client.poll_next_event(cx)) {
            Err(IpcError::Closed) => {
                client.events_ended = true;
                Poll::Ready(None)
            }
            Err(e) => {
                client.events_ended = !e.is_recoverable();
                Poll::Ready(Some(Err(e)))
            }
            ok => Poll::Ready(Some(ok)),
        }
    }
}

/// The connect loop of [`ClientOptions::wait_for_server`]: one deadline for all attempts.
async fn connect_retrying(
    path: &Path,
    options: &ClientOptions,
) -> Result<(sys::ClientStream, crate::PeerCredentials)> {
    let deadline = Instant::now().checked_add(options.wait_for_server);
    let left = || deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
    let mut backoff = Duration::from_millis(5);
    loop {
        // The transport bounds an attempt itself (its busy retries included).
        let limit = options.connection.timeout.min(left());
        match sys::connect(path, limit, options.verify_server).await {
            Err(e @ IpcError::NotRunning { .. }) => {
                if backoff > left() {
                    return Err(e);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}
