//! The CLI's side: connect, ask, listen to events.

use std::future::poll_fn;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use ipc_proto::event::RESET;
use ipc_proto::{
    Cursor, Follow, FollowStart, Hello, IpcError, IpcMessage, IpcResponse, Request, Result,
    ServerInfo, SubscriptionType,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::conn::StreamEnd;
use crate::event::Loss;
use crate::options::{ConnectionOptions, connection_options};
use crate::queue::{LaggingQueue, Queued};
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

/// How this client introduces itself in `Hello`.
const CLIENT_NAME: &str = concat!("bunctl-ipc ", env!("CARGO_PKG_VERSION"));

/// Events kept for [`IpcClient::next_event`] while a request waits for its reply, unless
/// [`ClientOptions::with_max_held_events`] says otherwise. Past this, the oldest are dropped and a
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
    pub fn with_max_held_events(mut self, events: usize) -> Self {
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
    pub fn with_verify_server(mut self, yes: bool) -> Self {
        self.verify_server = yes;
        self
    }

    /// Keep retrying, for up to `wait`, while no server is running at the endpoint — for a CLI
    /// that has just spawned its daemon. Retries start at 5 ms and back off to 100 ms.
    ///
    /// With a wait, the whole connect has one deadline, `wait` from the call: no attempt
    /// outlasts it, whatever [`with_timeout`](Self::with_timeout) says (each attempt is also
    /// bounded by the timeout). When the server does not appear in time, the last
    /// [`IpcError::NotRunning`] is returned; other errors are returned at once.
    pub fn with_wait_for_server(mut self, wait: Duration) -> Self {
        self.wait_for_server = wait;
        self
    }

    connection_options!(
        "The timeout of the connect and of each later call: each `send` and `recv`, and each \
         `request` as a whole."
    );

    /// How many events are held while a request waits (see
    /// [`with_max_held_events`](Self::with_max_held_events)).
    pub fn max_held_events(&self) -> usize {
        self.held_events
    }

    /// Whether connecting checks who the server runs as (see
    /// [`with_verify_server`](Self::with_verify_server)).
    pub fn verify_server(&self) -> bool {
        self.verify_server
    }

    /// How long connecting waits for a server to appear (see
    /// [`with_wait_for_server`](Self::with_wait_for_server)).
    pub fn wait_for_server(&self) -> Duration {
        self.wait_for_server
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions::new()
    }
}

/// A connection to a bunctl daemon.
///
/// Besides a plain [`send`](Self::send)/[`recv`](Self::recv) pair it offers
/// [`request`](Self::request) (send, then wait for the reply), and subscriptions: after
/// [`subscribe`](Self::subscribe), events arrive through [`next_event`](Self::next_event) or
/// [`events`](Self::events) while requests keep working on the same connection — events that arrive
/// while a request waits for its reply are kept for later, in order.
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
    options: ClientOptions,
    /// What `hello` learned, once asked.
    server: Option<Box<ServerInfo>>,
    /// Where this connection's `follow` has got to; `placed` once an event has put it there
    /// (before that, in a history replay, it is the reply's boundary).
    cursor: Option<(Cursor, bool)>,
    /// Events that arrived while a request waited for its reply, for `next_event`.
    held: LaggingQueue<Held>,
    /// Replies still to arrive for requests that were sent and then abandoned (timed out, or
    /// their future dropped). Replies come in request order, so the next this many replies
    /// belong to them and are discarded.
    owed_replies: usize,
    /// Whether the event stream has ended (after a fatal error or the end of the connection).
    events_end: StreamEnd,
}

impl IpcClient {
    /// Connects to the server at `path` with default [`ClientOptions`].
    ///
    /// When nothing listens there, fails with [`IpcError::NotRunning`] naming the path; when
    /// the server runs as another user, with [`IpcError::ServerIdentity`] (see
    /// [`ClientOptions::with_verify_server`]).
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
            options,
            server: None,
            cursor: None,
            held: LaggingQueue::default(),
            owed_replies: 0,
            events_end: StreamEnd::default(),
        })
    }

    /// Connects with default [`ClientOptions`], retrying while no server is running yet, for
    /// up to `wait` in all: `ClientOptions::new().with_wait_for_server(wait)` (see
    /// [`ClientOptions::with_wait_for_server`]).
    pub async fn connect_with_retry(path: impl AsRef<Path>, wait: Duration) -> Result<IpcClient> {
        Self::connect_with(path, ClientOptions::new().with_wait_for_server(wait)).await
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
        if let Some(event) = self.take_held_event() {
            return Ok(event.into());
        }
        loop {
            let received = frame(self.conn.recv().await);
            if self.owed_replies > 0 && takes_a_reply_place(&received) {
                self.discard_owed_reply(&received);
                continue;
            }
            if let Ok(Frame::Event(event)) = &received {
                self.track(event);
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
        self.request_any(message).await
    }

    /// [`request`](Self::request) of any message the server reads ([`Request`]).
    async fn request_any<M: Serialize>(&mut self, message: &M) -> Result<IpcResponse> {
        self.conn.begin_operation();
        let result = self.request_in_operation(message).await;
        self.conn.end_operation();
        result
    }

    async fn request_in_operation<M: Serialize>(&mut self, message: &M) -> Result<IpcResponse> {
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
        // A plain subscription has no place to resume from.
        self.cursor = None;
        expect_success(self.request(&IpcMessage::Subscribe { subscription }).await?)
    }

    /// Ends this connection's subscription. Events already received stay available.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        expect_success(self.request(&IpcMessage::Unsubscribe).await?)
    }

    /// Asks the server who it is and what it supports (`Hello`, protocol 1), and remembers
    /// the answer for [`server_info`](Self::server_info) and [`follow`](Self::follow).
    ///
    /// An old server is reported as [`ServerInfo::protocol_0`] rather than as an error, in
    /// either of the ways it can react: bunctl-ipc servers before protocol 1 answer `Error`,
    /// and bunctl's own daemon closes the connection on a message it does not know — the
    /// client then connects again, once, with the same options, so that it stays usable
    /// (a subscription of the closed connection is gone with it).
    ///
    /// ```no_run
    /// # async fn run(client: &mut bunctl_ipc::IpcClient) -> Result<(), bunctl_ipc::IpcError> {
    /// let info = client.hello().await?;
    /// if info.protocol == 0 {
    ///     eprintln!("an old daemon: no history, no resume");
    /// } else {
    ///     println!("{} up {} s, {} events", info.server, info.uptime_ms / 1000, info.published);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn hello(&mut self) -> Result<ServerInfo> {
        let hello = Request::Hello(Hello::new(CLIENT_NAME));
        let info = match self.request_any(&hello).await {
            Ok(IpcResponse::Data { data }) => ServerInfo::deserialize(&data).map_err(|e| {
                IpcError::UnexpectedReply { expected: "ServerInfo", got: e.to_string() }
            })?,
            Ok(IpcResponse::Error { message }) => {
                debug!(message, "the server does not know Hello: protocol 0");
                ServerInfo::protocol_0()
            }
            Ok(other) => {
                let got = format!("{other:?}");
                return Err(IpcError::UnexpectedReply { expected: "Data", got });
            }
            Err(e) if e.is_disconnect() => {
                debug!(error = %e, "the server closed on Hello: protocol 0; connecting again");
                self.reconnect().await?;
                ServerInfo::protocol_0()
            }
            Err(e) => return Err(e),
        };
        self.server = Some(Box::new(info.clone()));
        Ok(info)
    }

    /// What [`hello`](Self::hello) learned, if it has been asked.
    pub fn server_info(&self) -> Option<&ServerInfo> {
        self.server.as_deref()
    }

    /// Replaces this connection with a new one to the same endpoint: nothing of the old one
    /// (held events, owed replies, subscription) carries over.
    async fn reconnect(&mut self) -> Result<()> {
        let fresh = IpcClient::connect_with(&self.endpoint, self.options).await?;
        *self = fresh;
        Ok(())
    }

    /// Subscribes this connection as `follow` says (history, a cursor, or live only) and
    /// returns its events; [`cursor`](Self::cursor) then says where they have got to, for a
    /// later `follow` to resume from ([`Follow::after`]), on this connection or another.
    ///
    /// Each matching event arrives once, in position order, with no gap between history and
    /// live events other than those a `lagged` notice names; after resuming from a cursor of
    /// a bus that is gone (the daemon restarted), a `reset` event comes first, then what the
    /// new bus still keeps. Asks [`hello`](Self::hello) first if it has not been asked.
    ///
    /// Against an old server (protocol 0), live following falls back to `Subscribe` (events
    /// then have no position and there is no cursor); history or a cursor fail with
    /// [`IpcError::Unsupported`].
    ///
    /// ```no_run
    /// use bunctl_ipc::{Follow, IpcClient, SubscriptionType};
    /// use futures::StreamExt;
    ///
    /// # async fn run(mut client: IpcClient) -> Result<(), bunctl_ipc::IpcError> {
    /// let logs = SubscriptionType::LogEvents { app_name: Some("web".into()) };
    /// let mut events = client.follow(Follow::history(logs, 100)).await?;
    /// while let Some(event) = events.next().await {
    ///     println!("{:?} {}", event?.seq(), events.cursor().map(ToString::to_string).unwrap_or_default());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn follow(&mut self, follow: Follow) -> Result<EventStream<'_>> {
        let protocol = match &self.server {
            Some(info) => info.protocol,
            None => self.hello().await?.protocol,
        };
        self.cursor = None;
        if protocol == 0 {
            if follow.replays() {
                let feature =
                    if follow.history.is_some() { "history" } else { "following from a cursor" };
                return Err(IpcError::Unsupported { feature, protocol });
            }
            self.subscribe(follow.subscription).await?;
            self.untrack_held();
            return Ok(self.events());
        }
        let resume = follow
            .after
            .map(|seq| Cursor { instance: follow.instance.clone().unwrap_or_default(), seq });
        let live = !follow.replays();
        let reply = self.request_any(&Request::Follow(follow)).await?;
        let start = match reply {
            IpcResponse::Data { data } => FollowStart::deserialize(&data).map_err(|e| {
                IpcError::UnexpectedReply { expected: "FollowStart", got: e.to_string() }
            })?,
            IpcResponse::Error { message } => return Err(IpcError::Refused { message }),
            other => {
                let got = format!("{other:?}");
                return Err(IpcError::UnexpectedReply { expected: "Data", got });
            }
        };
        self.untrack_held();
        self.cursor = Some(match resume {
            // A cursor of this bus stands until an event moves it (one of another bus, until
            // the `reset` notice).
            Some(mut cursor) => {
                if cursor.instance.is_empty() {
                    cursor.instance = start.instance;
                }
                (cursor, true)
            }
            None => (Cursor { instance: start.instance, seq: start.seq }, live),
        });
        Ok(self.events())
    }

    /// Where this connection's [`follow`](Self::follow) has got to: the bus and the position
    /// of the last event handed out (notices do not move it; after a `reset`, the new bus at
    /// 0). Before the first event it is the cursor followed
    /// from, or the reply's boundary (live, and history: the history is not owed, what comes
    /// after the boundary is). `None` before `follow`, after a plain `subscribe`, and on an old
    /// server.
    ///
    /// Resuming from it later ([`Follow::after`]) hands over every matching event after it,
    /// once, or names it in a `lagged` notice.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref().map(|(cursor, _)| cursor)
    }

    /// Moves the cursor past `event`, which is being handed to the caller.
    fn track(&mut self, event: &Event) {
        if is_reset(event) {
            if let Some(instance) = event.data.get("instance").and_then(Value::as_str) {
                self.cursor = Some((Cursor { instance: instance.to_owned(), seq: 0 }, true));
            }
            return;
        }
        // Only events move it: a notice's range may reach past events still to come (the
        // replay's notice of forgotten events spans apps whose kept events follow it), and a
        // resume re-announces what is still lost rather than skip what is not.
        if let (Some((cursor, placed)), Some(seq)) = (&mut self.cursor, event.seq()) {
            // A history's first event places it below the boundary it stood at.
            cursor.seq = if *placed { cursor.seq.max(seq) } else { seq };
            *placed = true;
        }
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
        if let Some(event) = self.take_held_event() {
            return Poll::Ready(Ok(event));
        }
        loop {
            match frame(ready!(self.conn.poll_recv(cx))) {
                Ok(Frame::Event(event)) => {
                    self.track(&event);
                    return Poll::Ready(Ok(event));
                }
                owed if self.owed_replies > 0 && takes_a_reply_place(&owed) => {
                    self.discard_owed_reply(&owed)
                }
                Ok(stray) => warn!(reply = ?stray, "reply with no request waiting for it; skipped"),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn hold_event(&mut self, event: Event) {
        let limit = self.options.held_events;
        self.held.push(Held { event, moves_cursor: true }, limit, usize::MAX);
    }

    /// The events held so far came before a `follow` reply: they are the replaced
    /// subscription's and do not move the cursor.
    fn untrack_held(&mut self) {
        for held in self.held.window_mut().iter_mut() {
            held.moves_cursor = false;
        }
    }

    /// The next held event, a `lagged` notice first if some had to be dropped (after a
    /// `reset` held before them).
    fn take_held_event(&mut self) -> Option<Event> {
        let Held { event, moves_cursor } = self.held.pop()?;
        if moves_cursor {
            self.track(&event);
        }
        Some(event)
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
    pub fn into_connection(mut self) -> (ClientConnection, Vec<Event>) {
        // In the order `next_event` would hand them out.
        let mut events = Vec::with_capacity(self.held.window().len() + 1);
        events.extend(std::iter::from_fn(|| self.take_held_event()));
        (self.conn.decoding(), events)
    }
}

fn is_reset(event: &Event) -> bool {
    event.event_type == RESET
}

/// An event held while a request waits, and whether it may move the cursor (those of a
/// subscription that a `follow` replaced may not).
#[derive(Debug)]
struct Held {
    event: Event,
    moves_cursor: bool,
}

/// The held events are bounded in number only.
impl Queued for Held {
    fn weight(&self) -> usize {
        0
    }

    fn lost_as(&self) -> Loss {
        self.event.lost_as()
    }

    fn is_reset(&self) -> bool {
        is_reset(&self.event)
    }

    fn notice(loss: Loss) -> Self {
        // A notice never moves the cursor.
        Held { event: loss.notice(), moves_cursor: false }
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

impl EventStream<'_> {
    /// Where the events handed out so far have got to: [`IpcClient::cursor`].
    pub fn cursor(&self) -> Option<&Cursor> {
        self.client.cursor()
    }
}

impl Stream for EventStream<'_> {
    type Item = Result<Event>;

    /// Ends after the connection closes or after a non-recoverable error (yielded once), like
    /// tokio-util's `Framed`; recoverable errors are yielded and the stream goes on.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let client = &mut *self.get_mut().client;
        if client.events_end.has_ended() {
            return Poll::Ready(None);
        }
        let received = ready!(client.poll_next_event(cx));
        Poll::Ready(client.events_end.next(received))
    }
}

/// The connect loop of [`ClientOptions::with_wait_for_server`]: one deadline for all attempts.
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
