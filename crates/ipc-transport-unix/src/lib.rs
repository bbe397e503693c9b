//! Unix-domain-socket transport for bunctl IPC.
//!
//! This crate moves bytes; it knows nothing of JSON or frames (that is `ipc-proto`) and offers
//! no message API (that is `bunctl-ipc`, which picks this crate on every `cfg(unix)` target).
//! What it adds over a bare `tokio::net::UnixListener`:
//!
//! * [`UnixListener::bind`] never removes a socket that a live server is listening on, reclaims a stale one
//!   (nobody accepting), refuses to touch a path that is not a socket, and holds an advisory lock
//!   file (`<path>.lock`) for the listener's life so that two servers racing for one path cannot
//!   both win or delete each other's socket.
//! * The socket file is owner-only (mode 0600 by default) from the moment it exists, whatever the
//!   umask, and is removed on drop only if it is still the file this listener created.
//! * [`UnixListener::accept`] reports each peer's uid, gid and pid (`SO_PEERCRED` on Linux,
//!   `getpeereid`/`LOCAL_PEERCRED` elsewhere), and rides out transient failures such as
//!   descriptor exhaustion with a bounded back-off instead of failing or spinning.
//! * Paths too long for `sun_path` fail with an error naming the limit; [`connect`] turns "nothing
//!   there" and "nobody listening" into one [`EndpointError::NotRunning`].
//! * Listeners can be adopted from a `std` listener, a descriptor or systemd socket activation;
//!   an adopted descriptor must be a listening stream Unix socket
//!   ([`EndpointError::NotAListener`] otherwise) and is made close-on-exec, so programs
//!   the server starts do not inherit it.
//! * Every other failure of bind or connect is [`EndpointError::Io`], naming the
//!   path (directory, lock file, socket) and the step; the lock file is never followed through
//!   a symbolic link. [`verify_server_uid`] is the client's check of the server's uid.
//!
//! ```no_run
//! # #[cfg(unix)]
//! # mod example {
//! use ipc_transport_unix::{BindOptions, UnixListener};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = UnixListener::bind("/run/user/1000/bunctl.sock", &BindOptions::default())?;
//! let (stream, peer) = listener.accept().await?;
//! println!("uid {} connected (pid {:?})", peer.uid(), peer.pid());
//! # drop(stream);
//! # Ok(())
//! # }
//! # }
//! ```

// The items the docs link to exist on Unix only; elsewhere the crate is empty.
#![cfg_attr(not(unix), allow(rustdoc::broken_intra_doc_links))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(unix)]
mod imp;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub use imp::*;
