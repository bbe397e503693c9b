//! Windows: named pipes from `ipc-transport-pipe`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipc_proto::{EndpointStep, IpcError, Operation, Result};
use ipc_transport_pipe::{EndpointError, PipeEnd, PipeListener, PipeStream, Step};
use tokio::io::{ReadHalf, WriteHalf};

use crate::{PeerCredentials, ServerOptions, SplitStream};

/// The stream a server gets from `accept`.
pub type ServerStream = ipc_transport_pipe::ServerStream;
/// The stream a client gets from `connect`.
pub type ClientStream = ipc_transport_pipe::ClientStream;
/// The platform listener.
pub type Listener = PipeListener;

/// A pipe end is one handle read and written through `&self`; tokio's generic split (a lock
/// held only for the duration of each poll) divides it without contention worth avoiding.
impl<P: PipeEnd> SplitStream for PipeStream<P> {
    type Read = ReadHalf<PipeStream<P>>;
    type Write = WriteHalf<PipeStream<P>>;

    fn split_stream(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// Windows reports a peer's process, not a uid: access is the pipe's DACL's business.
fn creds(pid: Option<u32>) -> PeerCredentials {
    PeerCredentials { pid, uid: None, gid: None }
}

/// Windows limits handles per process only by memory.
pub fn descriptor_limit() -> Option<usize> {
    None
}

/// Windows has no uid. Peers carry none either, so `PeerPolicy::SameUser` never compares it
/// (the DACL already admits only this user).
pub fn server_uid() -> u32 {
    0
}

/// `\\.\pipe\bunctl_<SID of the current user>`: per user, and the SID — unlike a user name —
/// cannot be chosen by another account.
pub fn default_endpoint() -> PathBuf {
    let user = ipc_transport_pipe::current_user_sid().unwrap_or_else(|e| {
        // Reading one's own process token does not fail in practice; should it, the user name
        // still keeps users apart, and the DACL plus the first-instance rule keep a clash safe.
        tracing::warn!(error = %e, "cannot read the user SID; naming the pipe after %USERNAME%");
        std::env::var("USERNAME").unwrap_or_else(|_| "unknown-user".into())
    });
    PathBuf::from(format!(r"\\.\pipe\bunctl_{user}"))
}

pub fn bind(path: &Path, _options: &ServerOptions) -> Result<Listener> {
    PipeListener::bind(path).map_err(endpoint_error)
}

/// The transport's error as the facade's: the same variants, names and messages.
fn endpoint_error(e: EndpointError) -> IpcError {
    match e {
        EndpointError::NotRunning { path, source } => {
            IpcError::NotRunning { endpoint: path, source }
        }
        EndpointError::AddrInUse { path } => IpcError::AddrInUse { endpoint: path },
        EndpointError::InvalidName { path } => IpcError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("endpoint {} names no pipe: it has no file name", path.display()),
        )),
        EndpointError::ConnectTimeout { after, .. } => {
            IpcError::Timeout { operation: Operation::Connect, after, torn: false }
        }
        EndpointError::ServerIdentity { path, found, expected } => {
            IpcError::ServerIdentity { endpoint: path, found, expected }
        }
        EndpointError::Io { path, step, source } => {
            let step = match step {
                Step::SecurityDescriptor => EndpointStep::SecurityDescriptor,
                Step::CreatePipe => EndpointStep::CreatePipe,
                Step::QueryPipe => EndpointStep::QueryPipe,
                Step::Connect => EndpointStep::Connect,
                Step::IdentifyServer => EndpointStep::IdentifyServer,
            };
            step.error(path, source)
        }
    }
}

pub async fn accept(listener: &mut Listener) -> std::io::Result<(ServerStream, PeerCredentials)> {
    let (stream, pid) = listener.accept().await?;
    Ok((stream, creds(pid)))
}

/// Connects to the pipe `path` names; with `verify_server`, refuses a server that runs as
/// neither this user nor SYSTEM (see `ipc_transport_pipe::verify_server`).
pub async fn connect(
    path: &Path,
    timeout: Duration,
    verify_server: bool,
) -> Result<(ClientStream, PeerCredentials)> {
    let stream = ipc_transport_pipe::connect(path, timeout).await.map_err(endpoint_error)?;
    if verify_server {
        ipc_transport_pipe::verify_server(&stream, path).map_err(endpoint_error)?;
    }
    let pid = stream.peer_pid().ok();
    Ok((stream, creds(pid)))
}
