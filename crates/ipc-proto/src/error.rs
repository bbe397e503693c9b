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
    /// Examining the socket's directory (without following a symbolic link) to check that it is
    /// private.
    CheckDirectory,
    /// Opening or locking the lock file `<socket>.lock`.
    Lock,
    /// Examining (without following a symbolic link) whatever already exists at the socket path.
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
///   [`UnexpectedReply`](Self::UnexpectedReply), [`Unsupported`](Self::Unsupported);
/// * endpoints: [`NotRunning`](Self::NotRunning), [`AddrInUse`](Self::AddrInUse),
///   [`NotASocket`](Self::NotASocket), [`PathTooLong`](Self::PathTooLong),
///   [`InsecurePath`](Self::InsecurePath), [`Endpoint`](Self::Endpoint),
///   [`ServerIdentity`](Self::ServerIdentity), [`NotAListener`](Self::NotAListener).
///
/// [`is_recoverable`](Self::is_recoverable) says, for every variant and direction, whether the
/// connection that returned the error can still be used; each variant's documentation says what
/// state the stream is left in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpcError {
    /// An operating-system I/O error not covered by a more specific variant.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    /// A frame's payload length is over the limit.
    ///
    /// When receiving ([`Operation::Receive`]), this is decided from the 4-byte header alone,
    /// before any memory is reserved; the stream cannot be resynchronised afterwards (skipping
    /// the body would mean reading what the peer merely claims), so every later receive on it
    /// fails the same way: the connection is finished.
    ///
    /// When sending ([`Operation::Send`]), serialization stops as soon as the payload passes the
    /// limit, so `size` is the number of bytes produced when it stopped (a lower bound). Nothing
    /// is written and the connection stays usable.
    #[error("message size {size} exceeds maximum allowed size {max}")]
    FrameTooLarge {
        /// The claimed (receiving) or reached (sending) payload size in bytes.
        size: usize,
        /// The limit in force.
        max: usize,
        /// Which direction hit the limit: [`Operation::Receive`] or [`Operation::Send`].
        operation: Operation,
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

    /// An operation did not finish in time.
    ///
    /// * [`Operation::Receive`]: the connection stays usable; a frame in progress is kept and
    ///   the next receive continues it.
    /// * [`Operation::Send`] with `torn == false`: not one byte of the frame had been written,
    ///   so the frame was withdrawn and the connection stays usable.
    /// * [`Operation::Send`] with `torn == true`: part of the frame had been written. The peer
    ///   would see a torn frame if anything followed, so the connection refuses every later
    ///   send ([`Poisoned`](Self::Poisoned)).
    /// * [`Operation::Connect`]: there is no connection.
    #[error("{operation} timeout after {after:?}{}", if *torn { " (part of the frame was written; connection unusable)" } else { "" })]
    Timeout {
        /// What timed out.
        operation: Operation,
        /// The limit that was exceeded.
        after: Duration,
        /// Sends only: time ran out after part of the frame had been written.
        torn: bool,
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

    /// The server does not support what was asked of it: it speaks an older protocol (e.g.
    /// "the daemon does not support following from a cursor (it speaks protocol 0)").
    #[error("the daemon does not support {feature} (it speaks protocol {protocol})")]
    Unsupported {
        /// What was asked, e.g. `"history"`, `"following from a cursor"`.
        feature: &'static str,
        /// The protocol the server speaks.
        protocol: u32,
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
    /// server unless told otherwise (`ClientOptions::with_verify_server(false)` in `bunctl-ipc`,
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
    /// True when the connection that returned this error can still be used, in both
    /// directions, for the next message: the byte stream is in sync and nothing was torn.
    ///
    /// | error | usable afterwards |
    /// |---|---|
    /// | [`EmptyFrame`](Self::EmptyFrame), [`InvalidMessage`](Self::InvalidMessage) (received) | yes: exactly that frame was consumed |
    /// | [`Encode`](Self::Encode), [`FrameTooLarge`](Self::FrameTooLarge) on send | yes: nothing was written |
    /// | [`FrameTooLarge`](Self::FrameTooLarge) on receive | no: the stream cannot be resynchronised |
    /// | [`Timeout`](Self::Timeout) on receive | yes: a partial frame is kept |
    /// | [`Timeout`](Self::Timeout) on send | yes if the frame was withdrawn, no if it was torn |
    /// | [`Timeout`](Self::Timeout) on connect | no: there is no connection |
    /// | [`Refused`](Self::Refused), [`UnexpectedReply`](Self::UnexpectedReply), [`Unsupported`](Self::Unsupported) | yes: a whole reply was read |
    /// | [`Closed`](Self::Closed), [`Truncated`](Self::Truncated), [`Poisoned`](Self::Poisoned), [`Io`](Self::Io) | no |
    /// | endpoint errors ([`NotRunning`](Self::NotRunning), [`AddrInUse`](Self::AddrInUse), ...) | no: there is no connection |
    pub fn is_recoverable(&self) -> bool {
        match self {
            IpcError::EmptyFrame
            | IpcError::InvalidMessage(_)
            | IpcError::Encode(_)
            | IpcError::Refused { .. }
            | IpcError::Unsupported { .. }
            | IpcError::UnexpectedReply { .. } => true,
            IpcError::FrameTooLarge { operation, .. } => *operation == Operation::Send,
            IpcError::Timeout { operation: Operation::Receive, .. } => true,
            IpcError::Timeout { operation: Operation::Send, torn, .. } => !torn,
            IpcError::Timeout { operation: Operation::Connect, .. } => false,
            IpcError::Io(_)
            | IpcError::Closed
            | IpcError::Truncated { .. }
            | IpcError::Poisoned
            | IpcError::NotRunning { .. }
            | IpcError::AddrInUse { .. }
            | IpcError::NotASocket { .. }
            | IpcError::PathTooLong { .. }
            | IpcError::InsecurePath { .. }
            | IpcError::Endpoint { .. }
            | IpcError::ServerIdentity { .. }
            | IpcError::NotAListener { .. } => false,
        }
    }

    /// True for [`Closed`](Self::Closed): the peer ended the connection cleanly, between two
    /// frames (the daemon stopped, or the client is done).
    pub fn is_closed(&self) -> bool {
        matches!(self, IpcError::Closed)
    }

    /// True for [`NotRunning`](Self::NotRunning): no server listens at the endpoint.
    pub fn is_not_running(&self) -> bool {
        matches!(self, IpcError::NotRunning { .. })
    }

    /// True for [`FrameTooLarge`](Self::FrameTooLarge), in either direction.
    pub fn is_too_large(&self) -> bool {
        matches!(self, IpcError::FrameTooLarge { .. })
    }

    /// The [`io::ErrorKind`] this error is closest to, used by `From<IpcError> for io::Error`.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            IpcError::Io(e) => e.kind(),
            IpcError::NotRunning { source, .. } => source.kind(),
            IpcError::FrameTooLarge { .. }
            | IpcError::EmptyFrame
            | IpcError::InvalidMessage(_)
            | IpcError::UnexpectedReply { .. } => io::ErrorKind::InvalidData,
            IpcError::Encode(_) => io::ErrorKind::InvalidInput,
            IpcError::Timeout { .. } => io::ErrorKind::TimedOut,
            IpcError::Closed | IpcError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            IpcError::Poisoned => io::ErrorKind::BrokenPipe,
            IpcError::Refused { .. } => io::ErrorKind::Other,
            IpcError::Unsupported { .. } => io::ErrorKind::Unsupported,
            IpcError::AddrInUse { .. } => io::ErrorKind::AddrInUse,
            IpcError::NotASocket { .. } => io::ErrorKind::AlreadyExists,
            IpcError::PathTooLong { .. } => io::ErrorKind::InvalidInput,
            IpcError::InsecurePath { .. } | IpcError::ServerIdentity { .. } => {
                io::ErrorKind::PermissionDenied
            }
            IpcError::Endpoint { source, .. } => source.kind(),
            IpcError::NotAListener { .. } => io::ErrorKind::InvalidInput,
        }
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

/// For code whose errors are `std::io::Error`: `?` works, the kind is [`IpcError::io_kind`], and
/// the message and source chain are kept. An [`IpcError::Io`] gives back the original
/// `io::Error`.
impl From<IpcError> for io::Error {
    fn from(e: IpcError) -> io::Error {
        match e {
            IpcError::Io(inner) => inner,
            other => io::Error::new(other.io_kind(), other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_display_contains_the_phrase_bunctl_matches_on() {
        let e = IpcError::FrameTooLarge {
            size: 11_534_336,
            max: 10_485_760,
            operation: Operation::Receive,
        };
        assert_eq!(e.to_string(), "message size 11534336 exceeds maximum allowed size 10485760");
    }

    #[test]
    fn timeout_display_contains_timeout() {
        let e = IpcError::Timeout {
            operation: Operation::Receive,
            after: Duration::from_millis(500),
            torn: false,
        };
        assert_eq!(e.to_string(), "receive timeout after 500ms");
        let s = IpcError::Timeout {
            operation: Operation::Send,
            after: Duration::from_secs(30),
            torn: true,
        };
        assert_eq!(
            s.to_string(),
            "send timeout after 30s (part of the frame was written; connection unusable)"
        );
        assert!(e.is_timeout() && s.is_timeout());
    }

    /// Position of each variant in `every_error_and_direction_says_whether_the_connection_is_usable`'s
    /// table. The match has no wildcard: a new variant does not compile until it is classified.
    fn variant_index(e: &IpcError) -> usize {
        match e {
            IpcError::Io(_) => 0,
            IpcError::FrameTooLarge { .. } => 1,
            IpcError::EmptyFrame => 2,
            IpcError::InvalidMessage(_) => 3,
            IpcError::Encode(_) => 4,
            IpcError::Timeout { .. } => 5,
            IpcError::Closed => 6,
            IpcError::Truncated { .. } => 7,
            IpcError::Poisoned => 8,
            IpcError::Refused { .. } => 9,
            IpcError::UnexpectedReply { .. } => 10,
            IpcError::NotRunning { .. } => 11,
            IpcError::AddrInUse { .. } => 12,
            IpcError::NotASocket { .. } => 13,
            IpcError::PathTooLong { .. } => 14,
            IpcError::InsecurePath { .. } => 15,
            IpcError::Endpoint { .. } => 16,
            IpcError::ServerIdentity { .. } => 17,
            IpcError::NotAListener { .. } => 18,
            IpcError::Unsupported { .. } => 19,
        }
    }
    const VARIANTS: usize = 20;

    #[test]
    fn every_error_and_direction_says_whether_the_connection_is_usable() {
        let json_error = || serde_json::from_str::<u8>("x").expect_err("not JSON");
        let after = Duration::from_secs(1);
        let path = || PathBuf::from("/run/test.sock");
        let timeout = |operation, torn| IpcError::Timeout { operation, after, torn };
        let too_large = |operation| IpcError::FrameTooLarge { size: 11, max: 10, operation };
        let table: Vec<(IpcError, bool)> = vec![
            (IpcError::Io(io::ErrorKind::BrokenPipe.into()), false),
            (too_large(Operation::Receive), false),
            (too_large(Operation::Send), true),
            (IpcError::EmptyFrame, true),
            (IpcError::InvalidMessage(json_error()), true),
            (IpcError::Encode(json_error()), true),
            (timeout(Operation::Receive, false), true),
            (timeout(Operation::Send, false), true),
            (timeout(Operation::Send, true), false),
            (timeout(Operation::Connect, false), false),
            (IpcError::Closed, false),
            (IpcError::Truncated { received: 2, expected: 4 }, false),
            (IpcError::Poisoned, false),
            (IpcError::Refused { message: "no such app".into() }, true),
            (IpcError::UnexpectedReply { expected: "Success", got: "Data".into() }, true),
            (IpcError::Unsupported { feature: "history", protocol: 0 }, true),
            (
                IpcError::NotRunning { endpoint: path(), source: io::ErrorKind::NotFound.into() },
                false,
            ),
            (IpcError::AddrInUse { endpoint: path() }, false),
            (IpcError::NotASocket { path: path() }, false),
            (IpcError::PathTooLong { path: path(), len: 200, max: 107 }, false),
            (IpcError::InsecurePath { path: path(), reason: "mode 0755".into() }, false),
            (EndpointStep::Lock.error(path(), io::ErrorKind::PermissionDenied.into()), false),
            (
                IpcError::ServerIdentity {
                    endpoint: path(),
                    found: "uid 65534".into(),
                    expected: "uid 1000 or root".into(),
                },
                false,
            ),
            (IpcError::NotAListener { fd: 3, passed_by: "systemd", found: "a file".into() }, false),
        ];
        let mut seen = [false; VARIANTS];
        for (error, usable) in &table {
            seen[variant_index(error)] = true;
            assert_eq!(error.is_recoverable(), *usable, "{error:?}");
        }
        assert!(seen.iter().all(|s| *s), "a variant is missing from the table: {seen:?}");
    }

    #[test]
    fn converts_into_io_error_with_kind_message_and_source() {
        fn io_based() -> io::Result<()> {
            Err(IpcError::Timeout {
                operation: Operation::Receive,
                after: Duration::from_secs(1),
                torn: false,
            })?
        }
        let e = io_based().expect_err("converted");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(e.to_string(), "receive timeout after 1s");
        let back = e.into_inner().and_then(|b| b.downcast::<IpcError>().ok());
        assert!(back.is_some_and(|b| b.is_timeout()));
        let original = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        let e: io::Error = IpcError::Io(original).into();
        assert_eq!((e.kind(), e.to_string().as_str()), (io::ErrorKind::ConnectionReset, "reset"));
        let not_running: io::Error = IpcError::NotRunning {
            endpoint: PathBuf::from("/run/b.sock"),
            source: io::ErrorKind::NotFound.into(),
        }
        .into();
        assert_eq!(not_running.kind(), io::ErrorKind::NotFound);
        assert!(not_running.to_string().contains("/run/b.sock"));
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
