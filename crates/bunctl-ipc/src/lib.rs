//! Talk between the bunctl CLI and its daemon on one machine.
//!
//! A daemon binds an [`IpcServer`] and answers each [`IpcConnection`]; the CLI connects an
//! [`IpcClient`] and sends [`IpcMessage`]s, getting [`IpcResponse`]s back — including pushed
//! events once it has subscribed. Messages are JSON in length-prefixed frames (the wire is
//! described in the `ipc-proto` crate and in `WIRE.md`).
//!
//! ```no_run
//! use bunctl_ipc::{IpcClient, IpcMessage, IpcServer, IpcResponse};
//!
//! # async fn demo() -> Result<(), bunctl_ipc::IpcError> {
//! // daemon
//! let mut server = IpcServer::bind("/tmp/demo.sock").await?;
//! tokio::spawn(async move {
//!     let mut conn = server.accept().await?;
//!     while let Ok(msg) = conn.recv().await {
//!         conn.send(&IpcResponse::Success { message: format!("got {msg:?}") }).await?;
//!     }
//!     Ok::<_, bunctl_ipc::IpcError>(())
//! });
//!
//! // CLI
//! let mut client = IpcClient::connect("/tmp/demo.sock").await?;
//! let reply = client.request(&IpcMessage::List).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Platforms
//!
//! | | transport | endpoint given as `"/run/user/1000/bunctl.sock"` or `"app"` |
//! |---|---|---|
//! | Unix (Linux, macOS, BSDs) | Unix domain socket, `ipc-transport-unix` | that socket file |
//! | Windows | named pipe, `ipc-transport-pipe` | `\\.\pipe\bunctl_<file name>`, or the name itself if it already is a pipe name |
//!
//! The choice is made at compile time, per target: the same [`IpcServer`], [`IpcClient`] and
//! [`Connection`] code runs over either stream, so behaviour above the byte stream (framing,
//! limits, timeouts, cancel safety, events) is identical everywhere. [`default_socket_path`]
//! gives the per-user default endpoint.
//!
//! # What you can rely on
//!
//! * **Cancel safety.** [`Connection::recv`], [`IpcClient::recv`] and
//!   [`IpcClient::next_event`] can be dropped at any point (in `tokio::select!`, by a timeout)
//!   without losing data; see [`Connection`].
//! * **Timeouts.** Every public call has one deadline and keeps it: each `send`/`recv` is
//!   bounded ([`DEFAULT_TIMEOUT`], or `set_timeout`), [`IpcClient::request`] bounds writing
//!   *and* waiting for the reply together, and a connect with
//!   [`ClientOptions::with_wait_for_server`] ends by its wait. A receive timeout leaves the
//!   connection usable; a send interrupted mid-frame poisons it ([`IpcError::is_recoverable`]
//!   says which, for every error).
//! * **Reply pairing.** Replies come back in request order. [`IpcClient::request`] counts the
//!   replies still owed to requests that timed out or whose future was dropped, and discards
//!   them as they arrive, so a request never receives another request's reply. A plain
//!   [`IpcClient::send`] + [`IpcClient::recv`] pair is matched by order alone: after a `recv`
//!   timed out, its reply is what the next `recv` returns, and keeping track is the caller's
//!   job.
//! * **Limits.** Frames over [`MAX_MESSAGE_SIZE`] are refused before memory is reserved for them.
//! * **Errors are typed.** One [`IpcError`] enum; the peer leaving cleanly is
//!   [`IpcError::Closed`], leaving mid-frame is [`IpcError::Truncated`], a bad frame is
//!   [`IpcError::InvalidMessage`] and the connection goes on.
//! * **History, then live, resumable.** [`IpcClient::follow`] gives the last N events or
//!   every event after a [`Cursor`], then live ones: each matching event once, in order, with
//!   every gap named in a `lagged` notice; a cursor of a restarted daemon gets a `reset` first.
//!   [`IpcClient::hello`] tells an old daemon (protocol 0) from a new one.
//! * **Access control.** The socket is owner-only and each connection's peer is checked against a
//!   [`PeerPolicy`] (see [`ServerOptions`]).
//!
//! # Logging
//!
//! Through `tracing`: `trace!` for per-frame detail, `debug!` for connection lifecycle,
//! `warn!` for refused peers, stale-socket trouble and poisoned connections, `error!` for
//! failures the library cannot report to a caller.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod bus;
mod client;
mod conn;
mod event;
mod options;
mod peer;
mod queue;
mod serve;
mod server;

#[cfg(unix)]
#[path = "sys_unix.rs"]
mod sys;
#[cfg(windows)]
#[path = "sys_windows.rs"]
mod sys;

pub use bus::{
    BusEvent, BusOptions, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_CAPACITY, DEFAULT_RETAINED_BYTES,
    DEFAULT_RETAINED_EVENTS, EventBus, Replay, Subscription,
};
pub use client::{ClientConnection, ClientOptions, DEFAULT_HELD_EVENTS, EventStream, IpcClient};
pub use conn::{Connection, FramedIo, RecvHalf, SendHalf, SplitStream};
pub use event::Event;
pub use peer::{PeerCredentials, PeerPolicy};
pub use serve::{
    Handler, RequestContext, SUBSCRIBED, UNSUBSCRIBED, serve, serve_connection,
    serve_connection_until, serve_until,
};
pub use server::{
    ConnectionGauge, IpcConnection, IpcServer, ServerOptions, default_max_connections,
};

pub use ipc_proto::{
    self as proto, ClientCodec, Cursor, DEFAULT_TIMEOUT, EndpointStep, Follow, FollowStart,
    FrameConfig, Hello, IpcCodec, IpcError, IpcMessage, IpcResponse, MAX_MESSAGE_SIZE, Operation,
    PROTOCOL_VERSION, Request, Result, ServerCodec, ServerInfo, SubscriptionType,
};

/// Event type names (`"log_line"`, `"process_started"`, ...) and the subscription filter.
pub use ipc_proto::event as event_types;

/// The default endpoint of the current user's daemon. Computes; does no I/O.
///
/// On Unix: `$XDG_RUNTIME_DIR/bunctl.sock` when `XDG_RUNTIME_DIR` is set to an absolute path,
/// otherwise `/tmp/bunctl-<uid>/bunctl.sock` — never a socket shared by all users in `/tmp`.
/// That fallback directory is created with mode 0700 by [`IpcServer::bind`], and both `bind`
/// and [`IpcClient::connect`] refuse it ([`IpcError::InsecurePath`]) when it belongs to another
/// user or is open to group or others.
///
/// On Windows: `\\.\pipe\bunctl_<SID>`, the SID being the current user's (from the process
/// token), so two users' daemons never share a pipe; the pipe's DACL admits that user and
/// SYSTEM only.
pub fn default_socket_path() -> std::path::PathBuf {
    sys::default_endpoint()
}
