//! The errors of this transport: pipes that cannot be created or reached.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `Result` with [`EndpointError`] as the default error.
pub type Result<T, E = EndpointError> = std::result::Result<T, E>;

/// Why a pipe could not be created or connected to. Every variant names the pipe;
/// [`Io`](Self::Io) also names the step that failed.
///
/// The enum is exhaustive (not `#[non_exhaustive]`): a `match` may cover every variant.
/// `bunctl-ipc` reports each as its `IpcError` of the same name.
// Deliberately exhaustive: a new variant must not compile until bunctl-ipc maps it.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// No pipe of that name exists: no server is running.
    #[error("no bunctl server is running at {}: {source}", path.display())]
    NotRunning {
        /// The pipe name.
        path: PathBuf,
        /// What opening it said.
        #[source]
        source: io::Error,
    },
    /// Another process already owns the pipe name.
    #[error("address in use: another server is running at {}", path.display())]
    AddrInUse {
        /// The pipe name.
        path: PathBuf,
    },
    /// The endpoint names no pipe (it has no file name: `""`, `".."`, `C:\`).
    #[error("endpoint {} names no pipe: it has no file name", path.display())]
    InvalidName {
        /// The endpoint as given.
        path: PathBuf,
    },
    /// Every instance of the pipe stayed busy for the whole timeout.
    #[error("connect timeout after {after:?}: every instance of {} stayed busy", path.display())]
    ConnectTimeout {
        /// The pipe name.
        path: PathBuf,
        /// The limit.
        after: Duration,
    },
    /// The server runs as a user the client does not trust.
    #[error("the server at {} runs as {found}, not as {expected}; refusing to talk to it", path.display())]
    ServerIdentity {
        /// The pipe name.
        path: PathBuf,
        /// Who the server is.
        found: String,
        /// Who it should be.
        expected: String,
    },
    /// A step of creating or opening the pipe failed in the operating system.
    #[error("cannot {step} {}: {source}", path.display())]
    Io {
        /// The pipe name.
        path: PathBuf,
        /// The step.
        step: Step,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The steps of creating and opening a pipe, as named by [`EndpointError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Building the pipe's security descriptor.
    SecurityDescriptor,
    /// Creating a pipe instance.
    CreatePipe,
    /// Asking the pipe how many instances it has.
    QueryPipe,
    /// Opening the pipe as a client.
    Connect,
    /// Finding out who runs the server.
    IdentifyServer,
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
            Step::SecurityDescriptor => "build the security descriptor of the pipe",
            Step::CreatePipe => "create the pipe",
            Step::QueryPipe => "query the state of the pipe",
            Step::Connect => "connect to",
            Step::IdentifyServer => "identify the server at",
        })
    }
}
