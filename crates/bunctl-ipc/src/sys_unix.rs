//! Unix: Unix domain sockets from `ipc-transport-unix`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipc_proto::{EndpointStep, IpcError, Operation, Result};
use ipc_transport_unix::{BindOptions, EndpointError, Step, UCred, UnixListener};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::{PeerCredentials, ServerOptions, SplitStream};

/// The stream a server gets from `accept`.
pub type ServerStream = UnixStream;
/// The stream a client gets from `connect`.
pub type ClientStream = UnixStream;
/// The platform listener.
pub type Listener = UnixListener;

// tokio's owned halves: zero-cost, with no lock shared between the reader and the writer.
impl SplitStream for UnixStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    fn split_stream(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

fn creds(c: UCred) -> PeerCredentials {
    PeerCredentials {
        pid: c.pid().and_then(|p| u32::try_from(p).ok()),
        uid: Some(c.uid()),
        gid: Some(c.gid()),
    }
}

/// The soft limit on open descriptors of this process, if it has one.
pub fn descriptor_limit() -> Option<usize> {
    ipc_transport_unix::descriptor_limit()
}

pub fn server_uid() -> u32 {
    ipc_transport_unix::current_uid()
}

/// The directory `default_socket_path` falls back to without `XDG_RUNTIME_DIR`.
pub fn private_fallback_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/bunctl-{}", server_uid()))
}

pub fn default_endpoint() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("bunctl.sock"),
        _ => private_fallback_dir().join("bunctl.sock"),
    }
}

/// Whether `path` lives in the private fallback directory, which must be checked.
fn in_private_dir(path: &Path) -> bool {
    path.parent() == Some(private_fallback_dir().as_path())
}

pub fn bind(path: &Path, options: &ServerOptions) -> Result<Listener> {
    let opts =
        BindOptions::new().with_mode(options.socket_mode).with_private_dir(in_private_dir(path));
    UnixListener::bind(path, &opts).map_err(endpoint_error)
}

/// Adopts a listener bound elsewhere.
pub fn adopt(listener: std::os::unix::net::UnixListener) -> Result<Listener> {
    UnixListener::from_std(listener).map_err(endpoint_error)
}

/// Adopts systemd's listening socket, if the process was socket-activated.
pub fn adopt_systemd() -> Result<Option<Listener>> {
    UnixListener::from_systemd().map_err(endpoint_error)
}

/// The transport's error as the facade's: the same variants, names and messages.
fn endpoint_error(e: EndpointError) -> IpcError {
    match e {
        EndpointError::NotRunning { path, source } => {
            IpcError::NotRunning { endpoint: path, source }
        }
        EndpointError::AddrInUse { path } => IpcError::AddrInUse { endpoint: path },
        EndpointError::NotASocket { path } => IpcError::NotASocket { path },
        EndpointError::PathTooLong { path, len, max } => IpcError::PathTooLong { path, len, max },
        EndpointError::InsecurePath { path, reason } => IpcError::InsecurePath { path, reason },
        EndpointError::ConnectTimeout { after, .. } => {
            IpcError::Timeout { operation: Operation::Connect, after, torn: false }
        }
        EndpointError::ServerIdentity { path, found, expected } => {
            IpcError::ServerIdentity { endpoint: path, found, expected }
        }
        EndpointError::NotAListener { fd, passed_by, found } => {
            IpcError::NotAListener { fd, passed_by, found }
        }
        EndpointError::Io { path, step, source } => step_of(step).error(path, source),
    }
}

fn step_of(step: Step) -> EndpointStep {
    match step {
        Step::CreateDirectory => EndpointStep::CreateDirectory,
        Step::CheckDirectory => EndpointStep::CheckDirectory,
        Step::Lock => EndpointStep::Lock,
        Step::InspectExisting => EndpointStep::InspectExisting,
        Step::ProbeExisting => EndpointStep::ProbeExisting,
        Step::RemoveStale => EndpointStep::RemoveStale,
        Step::CreateSocket => EndpointStep::CreateSocket,
        Step::SetPermissions => EndpointStep::SetPermissions,
        Step::Bind => EndpointStep::Bind,
        Step::Listen => EndpointStep::Listen,
        Step::Adopt => EndpointStep::Adopt,
        Step::Connect => EndpointStep::Connect,
        Step::PeerCredentials => EndpointStep::PeerCredentials,
    }
}

pub async fn accept(listener: &mut Listener) -> std::io::Result<(ServerStream, PeerCredentials)> {
    let (stream, cred) = listener.accept().await?;
    Ok((stream, creds(cred)))
}

/// Connects to `path`; with `verify_server`, refuses a server that runs as neither this user
/// nor root. A missing private fallback directory means no server ever ran here for this
/// user: [`IpcError::NotRunning`] naming the socket, like a missing socket file.
pub async fn connect(
    path: &Path,
    timeout: Duration,
    verify_server: bool,
) -> Result<(ClientStream, PeerCredentials)> {
    if in_private_dir(path) {
        match ipc_transport_unix::ensure_private_dir(path.parent().unwrap_or(path), false) {
            Ok(()) => {}
            Err(EndpointError::Io { step: Step::CheckDirectory, source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(IpcError::NotRunning { endpoint: path.to_owned(), source });
            }
            Err(e) => return Err(endpoint_error(e)),
        }
    }
    let stream = ipc_transport_unix::connect(path, timeout).await.map_err(endpoint_error)?;
    let cred = ipc_transport_unix::server_credentials(&stream, path).map_err(endpoint_error)?;
    if verify_server {
        ipc_transport_unix::verify_server_uid(path, cred.uid()).map_err(endpoint_error)?;
    }
    Ok((stream, creds(cred)))
}
