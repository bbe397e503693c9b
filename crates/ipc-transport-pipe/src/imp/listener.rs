//! Creating pipe instances and accepting clients on them.

use std::ffi::{OsStr, OsString};
use std::io;
use std::mem;
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::Duration;

use super::error::{EndpointError, Result, Step};
use tokio::net::windows::named_pipe::{NamedPipeServer, PipeMode, ServerOptions};
use tracing::{debug, warn};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_COMMITMENT_LIMIT, ERROR_NO_DATA,
    ERROR_NO_SYSTEM_RESOURCES, ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_ENOUGH_QUOTA,
    ERROR_OPERATION_ABORTED, ERROR_OUTOFMEMORY, ERROR_PIPE_BUSY, ERROR_PIPE_NOT_CONNECTED,
    ERROR_TOO_MANY_OPEN_FILES, ERROR_WORKING_SET_QUOTA,
};
use windows_sys::Win32::System::Pipes::GetNamedPipeHandleStateW;

use super::name::pipe_name;
use super::security::PipeSecurity;
use super::stream::{PipeStream, ServerStream};

/// First and longest wait between attempts when the system is short of resources.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// A named pipe this process owns, accepting clients one instance at a time.
///
/// A named pipe is a set of *instances* sharing a name; each serves one client. The listener
/// always holds one instance waiting for the next client, and creates its successor before it
/// hands a connected instance out, so from [`bind`](Self::bind) until the listener is dropped
/// a client never finds the name missing — at worst it finds every instance busy for a moment,
/// which [`connect`](crate::connect) retries. Dropping the listener closes the waiting
/// instance; the name disappears with the last instance (connections already handed out keep
/// working). If an `accept` was pending, the runtime closes that instance's handle on its next
/// turn rather than during the drop, so the name is free for a new [`bind`](Self::bind) a
/// moment later, not at the instant of the drop.
#[derive(Debug)]
pub struct PipeListener {
    name: OsString,
    security: PipeSecurity,
    /// The instance waiting for (or already holding) the next client.
    instance: NamedPipeServer,
}

impl PipeListener {
    /// Creates the first instance of the pipe `endpoint` names (see [`pipe_name`](crate::pipe_name)).
    /// Must be called within a tokio runtime.
    ///
    /// The instance is created with `FILE_FLAG_FIRST_PIPE_INSTANCE`, so if the name exists —
    /// another server, or anyone squatting on it — this fails with [`EndpointError::AddrInUse`]
    /// naming the pipe, instead of quietly adding an instance to someone else's pipe. The pipe
    /// accepts local clients only (`PIPE_REJECT_REMOTE_CLIENTS`) and its DACL admits the
    /// current user and SYSTEM only, and its owner is the current user. Other failures are
    /// [`EndpointError::Io`] naming the pipe and the step.
    pub fn bind(endpoint: impl AsRef<Path>) -> Result<PipeListener> {
        let name = pipe_name(endpoint.as_ref())?;
        let path = PathBuf::from(&name);
        let security =
            PipeSecurity::current_user_only().map_err(Step::SecurityDescriptor.at(&path))?;
        let instance = create_instance(&name, &security, true).map_err(|e| {
            // ACCESS_DENIED is what FIRST_PIPE_INSTANCE reports for an existing name;
            // PIPE_BUSY what an existing pipe at its instance limit reports.
            if matches!(raw_error(&e), Some(ERROR_ACCESS_DENIED | ERROR_PIPE_BUSY)) {
                debug!(pipe = ?name, error = %e, "pipe name already taken");
                EndpointError::AddrInUse { path: PathBuf::from(&name) }
            } else {
                Step::CreatePipe.error(&path, e)
            }
        })?;
        // Some implementations (Wine 8) ignore FILE_FLAG_FIRST_PIPE_INSTANCE and quietly add
        // an instance to an existing pipe. Counting the instances catches that: right after
        // creating the first one there must be exactly one. (Two servers racing there both
        // see two and both fail — a clash is refused, never shared.)
        match instance_count(&instance).map_err(Step::QueryPipe.at(&path))? {
            1 => {}
            n => {
                debug!(pipe = ?name, instances = n, "pipe name already taken");
                return Err(EndpointError::AddrInUse { path: PathBuf::from(&name) });
            }
        }
        debug!(pipe = ?name, "listening");
        Ok(PipeListener { name, security, instance })
    }

    /// The full pipe name (`\\.\pipe\...`).
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// Waits for the next client and returns its connection with the client's process id
    /// (`None` if Windows could not report it).
    ///
    /// Before the connected instance is returned, a new instance is created in its place. If
    /// that fails for lack of resources (memory, handles, quota), or an instance turns out to
    /// be broken because its client vanished, the failure is logged and retried — after a
    /// back-off from 5 ms doubling to 1 s for exhaustion — so the loop neither fails nor spins;
    /// only other errors are returned. Cancel-safe: a client that connected while the future
    /// was dropped is returned by the next call.
    pub async fn accept(&mut self) -> io::Result<(ServerStream, Option<u32>)> {
        let mut backoff = BACKOFF.0;
        loop {
            let step = match self.instance.connect().await {
                Ok(()) => self.replace_instance().map(Some),
                Err(e) if classify(&e) == Transient::PeerGone => {
                    debug!(error = %e, "client vanished before it was accepted");
                    self.replace_instance().map(|_broken| None)
                }
                Err(e) => Err(e),
            };
            match step {
                Ok(Some(connected)) => {
                    let stream = PipeStream::new(connected);
                    let pid = stream
                        .peer_pid()
                        .inspect_err(|e| debug!(error = %e, "client process id unavailable"))
                        .ok();
                    return Ok((stream, pid));
                }
                Ok(None) => {}
                Err(e) if classify(&e) == Transient::Exhausted => {
                    warn!(error = %e, retry_in = ?backoff, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates the next waiting instance and returns the one it replaces. On failure nothing
    /// changes: the current instance (connected or not) stays, for the next attempt.
    fn replace_instance(&mut self) -> io::Result<NamedPipeServer> {
        let next = create_instance(&self.name, &self.security, false)?;
        Ok(mem::replace(&mut self.instance, next))
    }
}

/// Creates one instance of the pipe `name`: byte mode, both directions, local clients only,
/// with the listener's security descriptor.
fn create_instance(
    name: &OsStr,
    security: &PipeSecurity,
    first: bool,
) -> io::Result<NamedPipeServer> {
    let mut attributes = security.attributes();
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true)
        .pipe_mode(PipeMode::Byte)
        .access_inbound(true)
        .access_outbound(true);
    // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES that lives across the call, and the
    // descriptor it points to is owned by `security`, borrowed for the call;
    // CreateNamedPipeW reads both during the call and keeps neither.
    unsafe { options.create_with_security_attributes_raw(name, (&raw mut attributes).cast()) }
}

/// How many instances the pipe of `instance` has, whoever created them.
fn instance_count(instance: &NamedPipeServer) -> io::Result<u32> {
    let mut count = 0u32;
    // SAFETY: the handle is open for the duration of the borrow; only the instance count is
    // requested, every other output is null (allowed: each is optional).
    let ok = unsafe {
        GetNamedPipeHandleStateW(
            instance.as_raw_handle(),
            ptr::null_mut(),
            &mut count,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(count)
}

fn raw_error(e: &io::Error) -> Option<u32> {
    e.raw_os_error().and_then(|c| u32::try_from(c).ok())
}

#[derive(Debug, PartialEq, Eq)]
enum Transient {
    /// The process or system is short of memory, handles or quota: wait before retrying.
    Exhausted,
    /// The instance's client went away before it was accepted: replace the instance.
    PeerGone,
    /// A real error.
    No,
}

fn classify(e: &io::Error) -> Transient {
    match raw_error(e) {
        Some(
            ERROR_NOT_ENOUGH_MEMORY
            | ERROR_OUTOFMEMORY
            | ERROR_NO_SYSTEM_RESOURCES
            | ERROR_NOT_ENOUGH_QUOTA
            | ERROR_WORKING_SET_QUOTA
            | ERROR_COMMITMENT_LIMIT
            | ERROR_TOO_MANY_OPEN_FILES
            // At the instance limit: wait for connections to end.
            | ERROR_PIPE_BUSY,
        ) => Transient::Exhausted,
        Some(
            ERROR_BROKEN_PIPE | ERROR_NO_DATA | ERROR_PIPE_NOT_CONNECTED | ERROR_OPERATION_ABORTED,
        ) => Transient::PeerGone,
        _ => Transient::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_exhaustion_is_waited_out_and_vanished_clients_are_skipped() {
        let os = |code: u32| io::Error::from_raw_os_error(code as i32);
        assert_eq!(classify(&os(ERROR_NO_SYSTEM_RESOURCES)), Transient::Exhausted);
        assert_eq!(classify(&os(ERROR_PIPE_BUSY)), Transient::Exhausted);
        assert_eq!(classify(&os(ERROR_NO_DATA)), Transient::PeerGone);
        assert_eq!(classify(&os(ERROR_ACCESS_DENIED)), Transient::No);
        assert_eq!(classify(&io::Error::other("x")), Transient::No);
    }
}
