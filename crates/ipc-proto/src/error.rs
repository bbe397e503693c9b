//! The one error type of the bunctl IPC stack.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// `Result` with [`IpcError`] as the default error.
pub type Result<T, E = IpcError> = std::result::Result<T, E>;

/// The operation that ran out of time in an [`IpcError::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Connecting to a server.
    Connect,
    /// Writing a message.
    Send,
    /// Reading a message.
    Receive,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Connect => "connect",
            Operation::Send => "send",
            Operation::Receive => "receive",
        })
    }
}

/// The step of setting up, adopting or reaching an endpoint that failed, in an
/// [`IpcError::Endpoint`]. Its `Display` is the phrase the error message uses ("take the lock
/// file", ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndpointStep {
    /// Creating the socket's directory (and missing parents).
    CreateDirectory,
    /// Examining the socket's directory (`lstat`) to check that it is private.
    CheckDirectory,
    /// Opening or locking the lock file `<socket>.lock`.
    Lock,
    /// Examining (`lstat`) whatever already exists at the socket path.
    InspectExisting,
    /// Trying to connect to an existing socket file to learn whether a server still uses it.
    ProbeExisting,
    /// Removing a stale socket file that no server uses any more.
    RemoveStale,
    /// Creating the socket itself.
    CreateSocket,
    /// Setting the socket file's permissions.
    SetPermissions,
    /// Binding the socket to its path.
    Bind,
    /// Listening on the bound socket.
    Listen,
    /// Adopting a listening socket bound elsewhere (inherited, or passed by systemd).
    Adopt,
    /// Connecting to the server.
    Connect,
    /// Reading the other end's credentials (uid, pid) from the kernel.
    PeerCredentials,
    /// Finding out which user the server at the other end runs as.
    IdentifyServer,
    /// Building the security descriptor of a named pipe (Windows).
    SecurityDescriptor,
    /// Creating an instance of a named pipe (Windows).
    CreatePipe,
    /// Querying the state of a named pipe (Windows).
    QueryPipe,
}

impl EndpointStep {
    /// The error of this step failing at `endpoint` with `source`.
    pub fn error(self, endpoint: impl Into<PathBuf>, source: io::Error) -> IpcError {
        IpcError::Endpoint { endpoint: endpoint.into(), step: self, source }
    }

    /// A closure for `map_err`: this step failed at `endpoint`.
    pub fn at(self, endpoint: &std::path::Path) -> impl FnOnce(io::Error) -> IpcError + '_ {
        move |source| self.error(endpoint, source)
    }
}

impl fmt::Display for EndpointStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointStep::CreateDirectory => "create the directory",
            EndpointStep::CheckDirectory => "examine the directory",
            EndpointStep::Lock => "take the lock file",
            EndpointStep::InspectExisting => "examine the existing file at",
            EndpointStep::ProbeExisting => "probe the existing socket",
            EndpointStep::RemoveStale => "remove the stale socket",
            EndpointStep::CreateSocket => "create a socket for",
            EndpointStep::SetPermissions => "set the permissions of",
            EndpointStep::Bind => "bind",
            EndpointStep::Listen => "listen on",
            EndpointStep::Adopt => "adopt the listening socket",
            EndpointStep::Connect => "connect to",
            EndpointStep::PeerCredentials => "read the peer credentials at",
            EndpointStep::IdentifyServer => "identify the server at",
            EndpointStep::SecurityDescriptor => "build the security descriptor of the pipe",
            EndpointStep::CreatePipe => "create the pipe",
            EndpointStep::QueryPipe => "query the state of the pipe",
        })
    }
}

/// Everything that can go wrong between a bunctl client and server.
///
/// Peer misbehaviour is reported here as data, never as a panic. Variants are grouped by where
/// they arise:
///
/// * framing and decoding: [`FrameTooLarge`](Self::FrameTooLarge),
///   [`EmptyFrame`](Self::EmptyFrame), [`InvalidMessage`](Self::InvalidMessage),
///   [`Encode`](Self::Encode);
/// * the connection: [`Timeout`](Self::Timeout), [`Closed`](Self::Closed),
///   [`Truncated`](Self::Truncated), [`Poisoned`](Self::Poisoned), [`Io`](Self::Io);
/// * the other side's answer: [`Refused`](Self::Refused),
///   [`UnexpectedReply`](Self::UnexpectedReply);
/// * endpoints: [`NotRunning`](Self::NotRunning), [`AddrInUse`](Self::AddrInUse),
///   [`NotASocket`](Self::NotASocket), [`PathTooLong`](Self::PathTooLong),
///   [`InsecurePath`](Self::InsecurePath), [`Endpoint`](Self::Endpoint),
///   [`ServerIdentity`](Self::ServerIdentity), [`NotAListener`](Self::NotAListener).
///
/// [`is_recoverable`](Self::is_recoverable) says whether the connection can still be used after
/// the error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpcError {
    /// An operating-system I/O error not covered by a more specific variant.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    /// A frame's payload length is over the limit.
    ///
    /// When receiving, this is decided from the 4-byte header alone, before any memory is
    /// reserved; the stream cannot be resynchronised afterwards (skipping the body would mean
    /// reading what the peer merely claims), so every later receive on it fails the same way.
    /// When sending, serialization stops as soon as the payload passes the limit, so `size` is
    /// the number of bytes produced when it stopped (a lower bound), and nothing is written.
    #[error("message size {size} exceeds maximum allowed size {max}")]
    FrameTooLarge {
        /// The claimed (receiving) or reached (sending) payload size in bytes.
        size: usize,
        /// The limit in force.
        max: usize,
    },

    /// A frame header announced a payload of zero bytes. The header is consumed and the stream
    /// stays in sync.
    #[error("empty frame: a message must have at least one byte of JSON")]
    EmptyFrame,

    /// A frame arrived whole but its payload is not valid UTF-8 JSON of the expected shape.
    /// Exactly that frame is consumed, so the stream stays in sync and the next frame decodes.
    #[error("invalid message: {0}")]
    InvalidMessage(#[source] serde_json::Error),

    /// A value could not be serialized to JSON (only possible for custom types with failing
    /// `Serialize` impls). Nothing was written.
    #[error("failed to encode message: {0}")]
    Encode(#[source] serde_json::Error),

    /// An operation did not finish in time. A receive timeout leaves the connection usable;
    /// see [`Poisoned`](Self::Poisoned) for sends.
    #[error("{operation} timeout after {after:?}")]
    Timeout {
        /// What timed out.
        operation: Operation,
        /// The limit that was exceeded.
        after: Duration,
    },

    /// The peer closed the connection cleanly, between two frames.
    #[error("connection closed by peer")]
    Closed,

    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame: received {received} of {expected} bytes")]
    Truncated {
        /// Bytes of the frame (header included) that arrived.
        received: usize,
        /// Bytes the frame needed (header included; 4 when the header itself was cut).
        expected: usize,
    },

    /// An earlier send stopped part-way through a frame (it timed out), so the byte stream can
    /// no longer be trusted and this connection refuses to send more.
    #[error("connection unusable: an earlier send was interrupted part-way through a frame")]
    Poisoned,

    /// The server answered a request with [`IpcResponse::Error`](crate::IpcResponse::Error).
    #[error("server refused the request: {message}")]
    Refused {
        /// The server's explanation.
        message: String,
    },

    /// The server answered with a response of a kind the request does not expect.
    #[error("unexpected reply from server: expected {expected}, got {got}")]
    UnexpectedReply {
        /// What the request expects.
        expected: &'static str,
        /// A short description of what arrived.
        got: String,
    },

    /// No server is listening at the endpoint (nothing there, or nobody accepting).
    #[error("no bunctl server is running at {}: {source}", endpoint.display())]
    NotRunning {
        /// The socket path or pipe name that was tried.
        endpoint: PathBuf,
        /// The underlying error (`NotFound`, `ConnectionRefused`, ...).
        #[source]
        source: io::Error,
    },

    /// Another server is already listening at the endpoint.
    #[error("address in use: another server is running at {}", endpoint.display())]
    AddrInUse {
        /// The socket path or pipe name.
        endpoint: PathBuf,
    },

    /// The path exists and is not a socket; it is left untouched.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The offending path.
        path: PathBuf,
    },

    /// The socket path does not fit the platform's `sun_path` field.
    #[error("socket path {} is {len} bytes long; the limit on this platform is {max}", path.display())]
    PathTooLong {
        /// The offending path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest path the platform accepts.
        max: usize,
    },

    /// The socket or its directory is owned by someone else or open to other users.
    #[error("refusing to use {}: {reason}", path.display())]
    InsecurePath {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An operating-system call failed while setting up, adopting or reaching an endpoint:
    /// `step` says which, `endpoint` the path it concerned (the socket, its directory, the lock
    /// file, or the pipe name), e.g. "cannot take the lock file /run/x/bunctl.sock.lock:
    /// Permission denied (os error 13)".
    #[error("cannot {step} {}: {source}", endpoint.display())]
    Endpoint {
        /// The path the step acted on.
        endpoint: PathBuf,
        /// What was being done.
        step: EndpointStep,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The server at the endpoint runs as a user the client does not trust: on Unix neither
    /// the client's own uid nor root, on Windows neither the client's own SID nor SYSTEM. Who
    /// holds an endpoint name is not proof of who it is; a client refuses to talk to such a
    /// server unless told otherwise (`ClientOptions::verify_server(false)` in `bunctl-ipc`,
    /// e.g. for a system daemon that serves other users).
    #[error("the server at {} runs as {found}, not as {expected}; refusing to talk to it", endpoint.display())]
    ServerIdentity {
        /// The socket path or pipe name.
        endpoint: PathBuf,
        /// Who the server runs as (`uid 65534`, `S-1-5-21-...`).
        found: String,
        /// Whom the client accepts (`this user (uid 1000) or root`, ...).
        expected: String,
    },

    /// A descriptor handed over for adoption (by systemd socket activation, or by the caller)
    /// is not a listening stream Unix socket, e.g. "descriptor 3 passed by systemd is not a
    /// listening stream Unix socket: it is a datagram socket".
    #[error("descriptor {fd} passed by {passed_by} is not a listening stream Unix socket: {found}")]
    NotAListener {
        /// The descriptor number.
        fd: i32,
        /// Who passed it (`systemd`, `the caller`).
        passed_by: &'static str,
        /// What it is instead.
        found: String,
    },
}

impl IpcError {
    /// True when the stream is still in sync after this error and the connection can be used
    /// for the next message: a receive timeout, an empty frame, or a frame with invalid JSON.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            IpcError::EmptyFrame
                | IpcError::InvalidMessage(_)
                | IpcError::Encode(_)
                | IpcError::Timeout { operation: Operation::Receive, .. }
        )
    }

    /// True for [`Timeout`](Self::Timeout) of any operation.
    pub fn is_timeout(&self) -> bool {
        matches!(self, IpcError::Timeout { .. })
    }

    /// True when the peer went away: [`Closed`](Self::Closed), [`Truncated`](Self::Truncated),
    /// or an I/O error meaning the same (broken pipe, reset).
    pub fn is_disconnect(&self) -> bool {
        match self {
            IpcError::Closed | IpcError::Truncated { .. } => true,
            IpcError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_display_contains_the_phrase_bunctl_matches_on() {
        let e = IpcError::FrameTooLarge { size: 11_534_336, max: 10_485_760 };
        assert_eq!(e.to_string(), "message size 11534336 exceeds maximum allowed size 10485760");
    }

    #[test]
    fn timeout_display_contains_timeout() {
        let e =
            IpcError::Timeout { operation: Operation::Receive, after: Duration::from_millis(500) };
        assert_eq!(e.to_string(), "receive timeout after 500ms");
        assert!(e.is_timeout() && e.is_recoverable());
        let s = IpcError::Timeout { operation: Operation::Send, after: Duration::from_secs(30) };
        assert_eq!(s.to_string(), "send timeout after 30s");
        assert!(!s.is_recoverable());
    }

    #[test]
    fn endpoint_error_names_the_step_and_the_path() {
        let source = io::Error::new(io::ErrorKind::PermissionDenied, "Permission denied");
        let e = EndpointStep::Lock.error("/run/x/bunctl.sock.lock", source);
        assert_eq!(
            e.to_string(),
            "cannot take the lock file /run/x/bunctl.sock.lock: Permission denied"
        );
        assert!(!e.is_recoverable() && !e.is_disconnect() && !e.is_timeout());
    }

    #[test]
    fn disconnects_are_classified() {
        assert!(IpcError::Closed.is_disconnect());
        assert!(IpcError::Truncated { received: 2, expected: 4 }.is_disconnect());
        assert!(IpcError::Io(io::ErrorKind::BrokenPipe.into()).is_disconnect());
        assert!(!IpcError::EmptyFrame.is_disconnect());
    }
}
