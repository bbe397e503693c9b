//! The errors of this transport: endpoints that cannot be set up or reached.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `Result` with [`EndpointError`] as the default error.
pub type Result<T, E = EndpointError> = std::result::Result<T, E>;

/// Why a socket could not be bound, adopted or connected to. Every variant names the path (or
/// descriptor) concerned; [`Io`](Self::Io) also names the step that failed.
///
/// The enum is exhaustive (not `#[non_exhaustive]`): a `match` may cover every variant.
/// `bunctl-ipc` reports each as its `IpcError` of the same name.
// Deliberately exhaustive: a new variant must not compile until bunctl-ipc maps it.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Nothing listens at the path: no file, a stale file, or a missing private directory.
    #[error("no bunctl server is running at {}: {source}", path.display())]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// What connecting said (`NotFound`, `ConnectionRefused`).
        #[source]
        source: io::Error,
    },
    /// A live server already listens at the path (or holds its lock file).
    #[error("address in use: another server is running at {}", path.display())]
    AddrInUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The path exists and is not a socket; it is left untouched.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The path does not fit `sun_path`.
    #[error("socket path {} is {len} bytes long; the limit on this platform is {max}", path.display())]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest the platform accepts.
        max: usize,
    },
    /// The directory is not private to this user.
    #[error("refusing to use {}: {reason}", path.display())]
    InsecurePath {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The server's queue of pending connections stayed full for the whole timeout.
    #[error("connect timeout after {after:?}: the server at {} accepts no connections", path.display())]
    ConnectTimeout {
        /// The socket path.
        path: PathBuf,
        /// The limit.
        after: Duration,
    },
    /// The server runs as a user the client does not trust.
    #[error("the server at {} runs as {found}, not as {expected}; refusing to talk to it", path.display())]
    ServerIdentity {
        /// The socket path.
        path: PathBuf,
        /// Who the server is.
        found: String,
        /// Who it should be.
        expected: String,
    },
    /// A descriptor handed over for adoption is not a listening stream Unix socket.
    #[error("descriptor {fd} passed by {passed_by} is not a listening stream Unix socket: {found}")]
    NotAListener {
        /// The descriptor number.
        fd: i32,
        /// Who passed it (`"systemd"`, `"the caller"`).
        passed_by: &'static str,
        /// What it is instead.
        found: String,
    },
    /// A step of binding, adopting or connecting failed in the operating system.
    #[error("cannot {step} {}: {source}", path.display())]
    Io {
        /// The path the step worked on (the socket, its lock file, its directory).
        path: PathBuf,
        /// The step.
        step: Step,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The steps of binding, adopting and connecting, as named by [`EndpointError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Creating the socket's directory.
    CreateDirectory,
    /// Examining the socket's directory.
    CheckDirectory,
    /// Taking the lock file `<path>.lock`.
    Lock,
    /// Examining a file already at the path.
    InspectExisting,
    /// Connecting to an existing socket to see whether a server is alive.
    ProbeExisting,
    /// Removing a stale socket.
    RemoveStale,
    /// Creating the socket.
    CreateSocket,
    /// Setting the socket file's mode.
    SetPermissions,
    /// Binding the socket to the path.
    Bind,
    /// Listening.
    Listen,
    /// Adopting a listening socket bound elsewhere.
    Adopt,
    /// Connecting to a server.
    Connect,
    /// Reading the server's credentials.
    PeerCredentials,
}

impl Step {
    /// The error of this step failing at `path` with `source`.
    pub fn error(self, path: impl Into<PathBuf>, source: io::Error) -> EndpointError {
        EndpointError::Io { path: path.into(), step: self, source }
    }

    /// A closure for `map_err`: this step failed at `path`.
    pub fn at(self, path: &Path) -> impl FnOnce(io::Error) -> EndpointError + '_ {
        move |source| self.error(path, source)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::CreateDirectory => "create the directory",
            Step::CheckDirectory => "examine the directory",
            Step::Lock => "take the lock file",
            Step::InspectExisting => "examine the existing file at",
            Step::ProbeExisting => "probe the existing socket",
            Step::RemoveStale => "remove the stale socket",
            Step::CreateSocket => "create a socket for",
            Step::SetPermissions => "set the permissions of",
            Step::Bind => "bind",
            Step::Listen => "listen on",
            Step::Adopt => "adopt the listening socket",
            Step::Connect => "connect to",
            Step::PeerCredentials => "read the peer credentials at",
        })
    }
}
