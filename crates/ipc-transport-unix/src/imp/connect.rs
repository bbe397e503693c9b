use std::io;
use std::path::Path;
use std::time::Duration;

use ipc_proto::{IpcError, Operation, Result};
use tokio::net::UnixStream;
use tokio::time::Instant;
use tracing::debug;

use super::path::check_path_len;

/// Connects to the server at `path`, waiting up to `timeout`.
///
/// A missing socket file or a refused connection (a stale file, nobody accepting) is
/// [`IpcError::NotRunning`] naming the path. A server whose queue of pending connections is
/// full is retried with a short back-off until `timeout`, then [`IpcError::Timeout`].
pub async fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<UnixStream> {
    let path = path.as_ref();
    check_path_len(path)?;
    let deadline = Instant::now().checked_add(timeout);
    let mut backoff = Duration::from_millis(1);
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(IpcError::NotRunning { endpoint: path.to_owned(), source: e });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                    return Err(IpcError::Timeout {
                        operation: Operation::Connect,
                        after: timeout,
                        torn: false,
                    });
                }
                debug!(path = %path.display(), "server backlog full; retrying connect");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
