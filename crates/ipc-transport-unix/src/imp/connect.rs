use std::io;
use std::path::Path;
use std::time::Duration;

use super::error::{EndpointError, Result, Step};
use tokio::net::UnixStream;
use tokio::net::unix::UCred;
use tokio::time::Instant;
use tracing::debug;

use super::path::check_path_len;

/// Connects to the server at `path`, waiting up to `timeout`.
///
/// A missing socket file or a refused connection (a stale file, nobody accepting) is
/// [`EndpointError::NotRunning`] naming the path. A server whose queue of pending connections is
/// full is retried with a short back-off until `timeout`, then [`EndpointError::ConnectTimeout`]. Any
/// other failure is [`EndpointError::Io`] naming the path (step
/// [`Connect`](Step::Connect)).
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
                return Err(EndpointError::NotRunning { path: path.to_owned(), source: e });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                    return Err(EndpointError::ConnectTimeout {
                        path: path.to_owned(),
                        after: timeout,
                    });
                }
                debug!(path = %path.display(), "server backlog full; retrying connect");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(Step::Connect.error(path, e)),
        }
    }
}

/// The credentials of the server at the other end of `stream`, connected to `path`; a failure
/// to read them is [`EndpointError::Io`] (step [`PeerCredentials`](Step::PeerCredentials)).
pub fn server_credentials(stream: &UnixStream, path: &Path) -> Result<UCred> {
    stream.peer_cred().map_err(Step::PeerCredentials.at(path))
}

/// Checks that a server reached at `path` runs as a user the client trusts: the client's own
/// effective uid, or root. Anything else is [`EndpointError::ServerIdentity`] naming the endpoint and
/// the uid found. Whoever can create the endpoint (a squatter in a shared directory, a stale
/// configuration pointing elsewhere) is otherwise talked to as if it were the daemon.
pub fn verify_server_uid(path: &Path, server_uid: u32) -> Result<()> {
    let me = super::current_uid();
    if server_uid == me || server_uid == 0 {
        return Ok(());
    }
    let expected =
        if me == 0 { "root (uid 0)".to_owned() } else { format!("this user (uid {me}) or root") };
    Err(EndpointError::ServerIdentity {
        path: path.to_owned(),
        found: format!("uid {server_uid}"),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_of_own_uid_or_root_is_accepted_and_another_uid_is_refused() {
        let me = crate::current_uid();
        let path = Path::new("/run/x/bunctl.sock");
        verify_server_uid(path, me).expect("own uid");
        verify_server_uid(path, 0).expect("root");
        let other = if me == 65534 { 65533 } else { 65534 };
        let e = verify_server_uid(path, other).expect_err("another uid");
        assert!(
            matches!(&e, EndpointError::ServerIdentity { found, .. } if *found == format!("uid {other}"))
        );
        let text = e.to_string();
        assert!(
            text.contains("/run/x/bunctl.sock") && text.contains(&format!("uid {other}")),
            "{text}"
        );
    }
}
