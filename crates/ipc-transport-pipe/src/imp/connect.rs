//! Opening the client end.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{EndpointError, Result, Step};
use tokio::net::windows::named_pipe::{ClientOptions, PipeMode};
use tokio::time::Instant;
use tracing::debug;
use windows_sys::Win32::Foundation::ERROR_PIPE_BUSY;
use windows_sys::Win32::Storage::FileSystem::SECURITY_IDENTIFICATION;

use super::name::pipe_name;
use super::stream::{ClientStream, PipeStream};

/// First and longest wait between attempts while every instance is busy.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(50));

/// Connects to the server at `endpoint` (see [`pipe_name`](crate::pipe_name)), waiting up to
/// `timeout`. Must be called within a tokio runtime.
///
/// A pipe that does not exist is [`EndpointError::NotRunning`] naming the pipe. A pipe whose
/// instances are all busy (`ERROR_PIPE_BUSY`: the server has not yet put up the next one) is
/// retried with a back-off from 1 ms doubling to 50 ms until `timeout`, then
/// [`EndpointError::ConnectTimeout`]. The server is granted identification-level impersonation only
/// (`SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION`): it can learn who the client is, but
/// cannot act as the client — which matters if someone else's server holds the name. Any
/// other failure to open the pipe is [`EndpointError::Io`] naming it (step
/// [`Connect`](Step::Connect)). Who runs the server is checked separately, by
/// [`verify_server`](crate::verify_server).
pub async fn connect(endpoint: impl AsRef<Path>, timeout: Duration) -> Result<ClientStream> {
    let name = pipe_name(endpoint.as_ref())?;
    let deadline = Instant::now().checked_add(timeout);
    let mut options = ClientOptions::new();
    options.pipe_mode(PipeMode::Byte).security_qos_flags(SECURITY_IDENTIFICATION);
    let mut backoff = BACKOFF.0;
    loop {
        match options.open(&name) {
            Ok(pipe) => return Ok(PipeStream::new(pipe)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(EndpointError::NotRunning { path: PathBuf::from(&name), source: e });
            }
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                let now = Instant::now();
                let wait = match deadline {
                    Some(d) if now >= d => {
                        return Err(EndpointError::ConnectTimeout {
                            path: PathBuf::from(&name),
                            after: timeout,
                        });
                    }
                    // The last attempt is made at the deadline itself.
                    Some(d) => backoff.min(d - now),
                    None => backoff,
                };
                debug!(pipe = ?name, retry_in = ?wait, "every pipe instance busy; retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
            Err(e) => return Err(Step::Connect.error(&name, e)),
        }
    }
}
