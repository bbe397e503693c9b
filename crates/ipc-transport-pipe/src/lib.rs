//! Windows named-pipe transport for bunctl IPC.
//!
//! This crate moves bytes; it knows nothing of JSON or frames (that is `ipc-proto`) and offers
//! no message API (that is `bunctl-ipc`, which picks this crate on `cfg(windows)`). It is the
//! counterpart of `ipc-transport-unix`, and builds empty everywhere else. What it adds over bare
//! `tokio::net::windows::named_pipe`:
//!
//! * **Names.** [`pipe_name`] maps an endpoint to a pipe: `\\.\pipe\...` is used verbatim,
//!   anything else becomes `\\.\pipe\bunctl_<file name>`, so `bind("app")` and
//!   `connect("app")` meet at `\\.\pipe\bunctl_app`.
//! * **Ownership.** [`PipeListener::bind`] creates the first instance with
//!   `FILE_FLAG_FIRST_PIPE_INSTANCE`: a name already taken — by another server or by a squatter
//!   — is [`EndpointError::AddrInUse`], never a silently shared
//!   pipe. Instances refuse remote clients (`PIPE_REJECT_REMOTE_CLIENTS`).
//! * **Access control.** Every instance carries a security descriptor whose DACL grants access
//!   to the current user (the SID in the process token) and `SYSTEM`, nobody else.
//! * **Always listening.** [`PipeListener::accept`] creates the next instance *before* it hands
//!   out a connected one, so some instance is always waiting and a client never sees "not found"
//!   while a server runs; it rides out transient failures with a bounded back-off.
//! * **Connecting.** [`connect`] retries `ERROR_PIPE_BUSY` (every instance taken) with a
//!   back-off up to its timeout, reports a missing pipe as
//!   [`EndpointError::NotRunning`], and allows the server only
//!   identification-level impersonation, so a squatting server cannot act as the client.
//! * **Closing loses nothing.** tokio's pipes finish writes in the background and report
//!   `flush` done at once; [`PipeStream`]'s `flush` waits until the pipe has taken every byte,
//!   so a reply followed by an immediate drop still reaches the peer (the handle is closed, never
//!   `DisconnectNamedPipe`d, which would discard unread data).
//! * **Peer identity.** [`PipeStream::peer_pid`] is the other end's process id
//!   (`GetNamedPipeClientProcessId` on the server side, `GetNamedPipeServerProcessId` on the
//!   client side). [`verify_server`] checks that the server runs as the current user or SYSTEM
//!   (its process token's user, or the pipe's owner as a fallback; the listener sets the owner
//!   to its user), failing with
//!   [`EndpointError::ServerIdentity`] otherwise.
//! * **Errors name the pipe.** Failures to build the security descriptor, create an instance
//!   or open the pipe are [`EndpointError::Io`] with the pipe
//!   name and the step.
//!
//! ```no_run
//! # #[cfg(windows)]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ipc_transport_pipe::PipeListener;
//! use std::time::Duration;
//!
//! let mut listener = PipeListener::bind("app")?; // \\.\pipe\bunctl_app
//! let client = ipc_transport_pipe::connect("app", Duration::from_secs(1)).await?;
//! let (server_end, client_pid) = listener.accept().await?;
//! assert_eq!(client_pid, Some(std::process::id()));
//! # drop((client, server_end));
//! # Ok(())
//! # }
//! ```
// The items the docs link to exist on Windows only; elsewhere the crate is empty.
#![cfg_attr(not(windows), allow(rustdoc::broken_intra_doc_links))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(windows)]
mod imp;
#[cfg(windows)]
#[cfg_attr(docsrs, doc(cfg(windows)))]
pub use imp::*;
