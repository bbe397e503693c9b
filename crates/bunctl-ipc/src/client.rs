//! The CLI's side: connect, ask, listen to events.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use ipc_proto::{
    DEFAULT_TIMEOUT, FrameConfig, IpcError, IpcMessage, IpcResponse, Result, SubscriptionType,
};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::{Connection, Event, PeerCredentials, sys};

/// The client's connection type: receives [`IpcResponse`], sends [`IpcMessage`].
pub type ClientConnection = Connection<sys::ClientStream, IpcResponse, IpcMessage>;

/// Events kept for [`IpcClient::next_event`] while a request waits for its reply. Past this,
/// the oldest are dropped and a `lagged` event reports how many.
const MAX_PENDING_EVENTS: usize = 4096;

/// How an [`IpcClient`] connects and what its connection starts with.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    frame: FrameConfig,
    timeout: Duration,
    verify_server: bool,
}

impl ClientOptions {
    /// Defaults: [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE), [`DEFAULT_TIMEOUT`] (which
    /// also bounds the connect itself), and the server's identity verified.
    pub fn new() -> Self {
        ClientOptions { frame: FrameConfig::new(), timeout: DEFAULT_TIMEOUT, verify_server: true }
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

    /// The largest message payload accepted or sent, in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.frame = self.frame.max_frame_length(bytes);
        self
    }

    /// The timeout of the connect and of each later `send` and `recv`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
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
    conn: ClientConnection,
    endpoint: PathBuf,
    pending_events: VecDeque<Event>,
    missed_events: u64,
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
        // Both transports bound their own connect (busy retries included) by this timeout.
        let (stream, peer) = sys::connect(path, options.timeout, options.verify_server).await?;
        debug!(endpoint = %path.display(), ?peer, "connected");
        Ok(IpcClient {
            conn: Connection::with_config(stream, options.frame, options.timeout)
                .with_peer(Some(peer)),
            endpoint: path.to_owned(),
            pending_events: VecDeque::new(),
            missed_events: 0,
        })
    }

    /// Connects, retrying while no server is running yet, for up to `wait` — for a CLI that
    /// has just spawned the daemon. Retries start at 5 ms and back off to 100 ms; the last
    /// [`IpcError::NotRunning`] is returned if the server does not appear in time. Other
    /// errors are returned at once.
    pub async fn connect_with_retry(path: impl AsRef<Path>, wait: Duration) -> Result<IpcClient> {
        let path = path.as_ref();
        let deadline = Instant::now() + wait;
        let mut backoff = Duration::from_millis(5);
        loop {
            match Self::connect(path).await {
                Err(e @ IpcError::NotRunning { .. }) => {
                    if Instant::now() + backoff > deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Sends one message. See [`Connection::send`].
    pub async fn send(&mut self, message: &IpcMessage) -> Result<()> {
        self.conn.send(message).await
    }

    /// Receives the next response or event, oldest first (events held back by
    /// [`request`](Self::request) come first). Cancel-safe.
    pub async fn recv(&mut self) -> Result<IpcResponse> {
        if let Some(event) = self.take_pending_event() {
            return Ok(event.into());
        }
        self.conn.recv().await
    }

    /// Sends `message` and returns its reply; events that arrive meanwhile are kept for
    /// [`next_event`](Self::next_event). The timeout applies to the send and to the wait for
    /// the reply separately.
    pub async fn request(&mut self, message: &IpcMessage) -> Result<IpcResponse> {
        self.conn.send(message).await?;
        loop {
            match self.conn.recv().await? {
                IpcResponse::Event { event_type, data } => {
                    self.hold_event(Event { event_type, data })
                }
                reply => return Ok(reply),
            }
        }
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
    /// beside other work. A reply that arrives with no request waiting for it is logged and
    /// skipped.
    pub async fn next_event(&mut self) -> Result<Event> {
        poll_fn(|cx| self.poll_next_event(cx)).await
    }

    /// The events as a `Stream`, borrowing the client; it ends when the server closes the
    /// connection.
    pub fn events(&mut self) -> EventStream<'_> {
        EventStream { client: self }
    }

    fn poll_next_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        if let Some(event) = self.take_pending_event() {
            return Poll::Ready(Ok(event));
        }
        loop {
            match ready!(self.conn.poll_recv(cx))? {
                IpcResponse::Event { event_type, data } => {
                    return Poll::Ready(Ok(Event { event_type, data }));
                }
                stray => warn!(reply = ?stray, "reply with no request waiting for it; skipped"),
            }
        }
    }

    fn hold_event(&mut self, event: Event) {
        if self.pending_events.len() == MAX_PENDING_EVENTS {
            self.pending_events.pop_front();
            self.missed_events += 1;
        }
        self.pending_events.push_back(event);
    }

    fn take_pending_event(&mut self) -> Option<Event> {
        if self.missed_events > 0 {
            let missed = std::mem::take(&mut self.missed_events);
            return Some(Event::lagged(missed));
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
    /// Events held back by `request` are returned beside it.
    pub fn into_connection(self) -> (ClientConnection, Vec<Event>) {
        (self.conn, self.pending_events.into())
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

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        match ready!(self.get_mut().client.poll_next_event(cx)) {
            Err(IpcError::Closed) => Poll::Ready(None),
            other => Poll::Ready(Some(other)),
        }
    }
}
