//! The daemon's side: bind an endpoint, accept connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipc_proto::{IpcMessage, IpcResponse, Result};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::conn::ConnectionPermit;
use crate::options::{ConnectionOptions, connection_options};
use crate::{Connection, PeerPolicy, sys};

/// A connection accepted by an [`IpcServer`]: receives [`IpcMessage`], sends [`IpcResponse`].
///
/// All its methods are those of [`Connection`]: `recv`, `send`, `set_timeout`, `split`,
/// `into_framed`, `peer_credentials`, and the `Stream`/`Sink` implementations.
pub type IpcConnection = Connection<sys::ServerStream, IpcMessage, IpcResponse>;

/// How an [`IpcServer`] binds and what its connections start with.
///
/// ```
/// use bunctl_ipc::{PeerPolicy, ServerOptions};
/// use std::time::Duration;
///
/// let options = ServerOptions::new()
///     .with_timeout(Duration::from_secs(5))
///     .with_max_message_size(1 << 20)
///     .with_peer_policy(PeerPolicy::SameUser);
/// assert_eq!(options.max_message_size(), 1 << 20);
/// assert_eq!(options.idle_timeout(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub(crate) connection: ConnectionOptions,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) peer_policy: PeerPolicy,
    pub(crate) max_connections: usize,
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) socket_mode: u32,
}

/// The default of [`ServerOptions::with_max_connections`], derived from what the process may open.
///
/// Every connection holds a descriptor, and a daemon needs more for the apps it runs (pipes for
/// their output, log files). So the default is half the process's soft descriptor limit
/// (`RLIMIT_NOFILE`) — 512 with the common limit of 1024 — and at most 4096. However low the limit,
/// the cap stays below it, so that a client past the cap can still be accepted and told the server
/// is busy. Raising the limit (`ulimit -n`, systemd's `LimitNOFILE=`) raises the cap with it. On
/// Windows, where handles have no such per-process limit, it is 1024.
pub fn default_max_connections() -> usize {
    connection_cap_for(sys::descriptor_limit())
}

fn connection_cap_for(descriptor_limit: Option<usize>) -> usize {
    // 4096: the ceiling systemd uses for its own varlink servers.
    match descriptor_limit {
        Some(limit) => (limit / 2).clamp(1, 4096),
        None => 1024,
    }
}

impl ServerOptions {
    /// Defaults: [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE), [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT),
    /// [`PeerPolicy::SameUser`], [`default_max_connections`], socket mode 0600.
    pub fn new() -> Self {
        ServerOptions {
            connection: ConnectionOptions::new(),
            idle_timeout: None,
            peer_policy: PeerPolicy::default(),
            max_connections: default_max_connections(),
            socket_mode: 0o600,
        }
    }

    connection_options!(
        "The initial timeout of each `send` and `recv` on accepted connections; with \
         [`serve`](crate::serve), the limit for writing a reply and for a started request \
         frame to complete."
    );

    /// How long a connection may stay silent, with no request in progress, nothing to write
    /// and no subscription, before [`serve`](crate::serve) closes it. Defaults to the
    /// [`with_timeout`](Self::with_timeout). Subscribed connections are never closed for being
    /// idle; a frame that has started arriving is bounded by the timeout instead.
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// Which peers are admitted.
    pub fn with_peer_policy(mut self, policy: PeerPolicy) -> Self {
        self.peer_policy = policy;
        self
    }

    /// How many accepted connections may be open at once (at least 1). A client arriving when
    /// all are taken receives one `Error { message: "server busy: ..." }` frame and is closed;
    /// open connections are unaffected, and the slot of a connection is free again when it is
    /// dropped (both halves, if split).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Unix only: the permission bits of the socket file (default 0600, owner only). Ignored
    /// on Windows, where the pipe's security descriptor admits the current user only.
    pub fn with_socket_mode(mut self, mode: u32) -> Self {
        self.socket_mode = mode & 0o777;
        self
    }

    /// The idle limit in force: the one set with [`with_idle_timeout`](Self::with_idle_timeout),
    /// or else the [`timeout`](Self::timeout).
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or(self.connection.timeout)
    }

    /// Which peers are admitted (see [`with_peer_policy`](Self::with_peer_policy)).
    pub fn peer_policy(&self) -> &PeerPolicy {
        &self.peer_policy
    }

    /// The cap on open connections (see [`with_max_connections`](Self::with_max_connections)).
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The socket file's permission bits (see [`with_socket_mode`](Self::with_socket_mode)).
    pub fn socket_mode(&self) -> u32 {
        self.socket_mode
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions::new()
    }
}

/// A listening endpoint: a Unix domain socket, or a Windows named pipe.
///
/// Dropping the server removes its socket file, if the file is still the one it created.
///
/// ```no_run
/// use bunctl_ipc::{IpcMessage, IpcResponse, IpcServer};
///
/// # async fn run() -> Result<(), bunctl_ipc::IpcError> {
/// let mut server = IpcServer::bind(bunctl_ipc::default_socket_path()).await?;
/// loop {
///     let mut conn = server.accept().await?;
///     tokio::spawn(async move {
///         while let Ok(msg) = conn.recv().await {
///             let reply = match msg {
///                 IpcMessage::List => IpcResponse::Data { data: serde_json::json!([]) },
///                 _ => IpcResponse::Error { message: "not supported".into() },
///             };
///             if conn.send(&reply).await.is_err() {
///                 break;
///             }
///         }
///     });
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct IpcServer {
    listener: sys::Listener,
    options: ServerOptions,
    endpoint: PathBuf,
    server_uid: u32,
    slots: Arc<Semaphore>,
    /// Bounds the tasks that tell refused clients why, so a flood cannot pile them up.
    refusals: Arc<Semaphore>,
}

/// Reports how many of an [`IpcServer`]'s connection slots are taken; from
/// [`IpcServer::connection_gauge`]. A connection's slot is free again once the connection
/// (both halves, or the `Framed` made from it) is dropped.
#[derive(Debug, Clone)]
pub struct ConnectionGauge {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl ConnectionGauge {
    /// Connections open now.
    pub fn open(&self) -> usize {
        open_slots(&self.slots, self.limit)
    }

    /// The most that may be open at once ([`ServerOptions::with_max_connections`]).
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// How many of `limit` connection slots are taken.
fn open_slots(slots: &Semaphore, limit: usize) -> usize {
    limit - slots.available_permits()
}

/// At most this many "server busy" replies are in flight; past it, refused clients are just
/// closed.
const MAX_PENDING_REFUSALS: usize = 32;

impl IpcServer {
    /// Binds `path` with default [`ServerOptions`].
    ///
    /// On Unix `path` is the socket file (see `ipc_transport_unix::UnixListener::bind` for what
    /// happens to an existing file: a live server's socket is never taken over, a stale one is
    /// reclaimed, anything else is left alone). On Windows it names the pipe (see the crate
    /// docs). Fails with [`IpcError::AddrInUse`](crate::IpcError::AddrInUse) when another
    /// server is running there.
    pub async fn bind(path: impl AsRef<Path>) -> Result<IpcServer> {
        Self::bind_with(path, ServerOptions::new()).await
    }

    /// Binds `path` with the given options.
    pub async fn bind_with(path: impl AsRef<Path>, options: ServerOptions) -> Result<IpcServer> {
        let path = path.as_ref();
        let listener = sys::bind(path, &options)?;
        debug!(endpoint = %path.display(), "server bound");
        Ok(Self::from_listener(listener, options, path.to_owned()))
    }

    pub(crate) fn from_listener(
        listener: sys::Listener,
        options: ServerOptions,
        endpoint: PathBuf,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(options.max_connections));
        let refusals = Arc::new(Semaphore::new(MAX_PENDING_REFUSALS));
        IpcServer { listener, options, endpoint, server_uid: sys::server_uid(), slots, refusals }
    }

    /// Waits for the next client that the peer policy admits.
    ///
    /// Rejected peers are closed at once and logged at `warn!`; transient OS failures (out of
    /// descriptors, a connection reset while queued) are retried with a back-off inside. Only
    /// a failure of the listener itself is returned. Cancel-safe.
    pub async fn accept(&mut self) -> Result<IpcConnection> {
        loop {
            let (stream, peer) = sys::accept(&mut self.listener).await?;
            if !self.options.peer_policy.allows(&peer, self.server_uid) {
                warn!(?peer, policy = ?self.options.peer_policy, "peer refused by policy");
                continue;
            }
            let mut conn = self.options.connection.connection(stream).with_peer(Some(peer));
            if let Some(idle) = self.options.idle_timeout {
                conn.set_idle_timeout(idle);
            }
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    debug!(?peer, "accepted connection");
                    return Ok(conn.with_permit(ConnectionPermit::new(permit)));
                }
                Err(_) => self.refuse_busy(conn),
            }
        }
    }

    /// Tells a client over the connection limit why it is closed, without holding up `accept`.
    fn refuse_busy(&self, mut conn: IpcConnection) {
        let limit = self.options.max_connections;
        warn!(peer = ?conn.peer_credentials(), limit, "connection limit reached; refusing client");
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else { return };
        conn.set_timeout(Duration::from_secs(1));
        tokio::spawn(async move {
            let message = format!("server busy: {limit} connections open; try again later");
            let _ = conn.send(&IpcResponse::Error { message }).await;
            drop(permit);
        });
    }

    /// How many accepted connections are open now.
    pub fn connection_count(&self) -> usize {
        open_slots(&self.slots, self.options.max_connections)
    }

    /// A handle that reports the open connections, and stays usable after the server has
    /// moved into [`serve`](crate::serve) — for a daemon's metrics or a test's bookkeeping.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), bunctl_ipc::IpcError> {
    /// let server = bunctl_ipc::IpcServer::bind("/tmp/demo.sock").await?;
    /// let gauge = server.connection_gauge();
    /// let handler = |_| async { bunctl_ipc::IpcResponse::Success { message: "ok".into() } };
    /// tokio::spawn(bunctl_ipc::serve(server, bunctl_ipc::EventBus::new(), handler));
    /// println!("{} of {} connections open", gauge.open(), gauge.limit());
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection_gauge(&self) -> ConnectionGauge {
        ConnectionGauge { slots: Arc::clone(&self.slots), limit: self.options.max_connections }
    }

    /// The endpoint this server listens on.
    pub fn endpoint(&self) -> &Path {
        &self.endpoint
    }

    /// The options in force.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }
}

#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
impl IpcServer {
    /// Adopts a listening socket bound elsewhere (by a supervisor, a parent, a test). The socket
    /// file is not unlinked or rebound, and is not removed on drop.
    pub fn from_std(
        listener: std::os::unix::net::UnixListener,
        options: ServerOptions,
    ) -> Result<IpcServer> {
        let endpoint = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned))
            .unwrap_or_default();
        let listener = sys::adopt(listener)?;
        Ok(Self::from_listener(listener, options, endpoint))
    }

    /// Adopts the socket passed by systemd socket activation, or `Ok(None)` when the process was
    /// not socket-activated (then bind as usual).
    pub fn from_systemd(options: ServerOptions) -> Result<Option<IpcServer>> {
        Ok(sys::adopt_systemd()?.map(|l| Self::from_listener(l, options, PathBuf::new())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_connection_cap_leaves_descriptors_to_refuse_clients_past_it() {
        for limit in [2, 3, 20, 64, 100, 127, 128, 1024, 1 << 20] {
            let cap = connection_cap_for(Some(limit));
            assert!(cap >= 1 && cap <= limit / 2, "limit {limit}: cap {cap}");
        }
    }

    #[test]
    fn the_default_connection_cap_follows_the_descriptor_limit_within_bounds() {
        assert_eq!(connection_cap_for(Some(1024)), 512);
        assert_eq!(connection_cap_for(Some(100)), 50);
        assert_eq!(connection_cap_for(Some(65536)), 4096);
        assert_eq!(connection_cap_for(Some(1 << 40)), 4096);
        assert_eq!(connection_cap_for(None), 1024);
        assert_eq!(ServerOptions::new().max_connections, default_max_connections());
    }
}
