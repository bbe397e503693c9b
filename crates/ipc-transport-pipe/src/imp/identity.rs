//! Who runs the server a client reached: the user SID of the pipe server's process, or the
//! pipe's owner when the process cannot be examined.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::ptr;

use super::error::{EndpointError, Result, Step};
use tracing::debug;
use windows_sys::Win32::Foundation::ERROR_SUCCESS;
use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_KERNEL_OBJECT};
use windows_sys::Win32::Security::{OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID};
use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION};

use super::name::pipe_name;
use super::security::{LocalBox, TokenUserInfo, current_user_sid, sid_to_string};
use super::stream::ClientStream;

/// The SID of `LocalSystem` (`NT AUTHORITY\SYSTEM`).
pub const SYSTEM_SID: &str = "S-1-5-18";

/// How the server's identity was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// The user of the server process's token (`GetNamedPipeServerProcessId`, `OpenProcess`,
    /// `OpenProcessToken`, `GetTokenInformation(TokenUser)`).
    ProcessToken,
    /// The owner of the pipe object (`GetSecurityInfo`), when the process could not be opened.
    PipeOwner,
}

/// The user SID (`S-1-5-...`) of the process that runs the server end of `stream`, read from
/// its token.
pub fn server_process_user_sid(stream: &ClientStream) -> io::Result<String> {
    let pid = stream.peer_pid()?;
    // SAFETY: OpenProcess has no memory preconditions; it returns null on failure.
    let raw = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: OpenProcess succeeded: `raw` is an open handle that nobody else owns.
    let process = unsafe { OwnedHandle::from_raw_handle(raw) };
    TokenUserInfo::of_process(process.as_raw_handle())?.sid_string()
}

/// The owner SID of the pipe behind `stream` (bunctl servers set it to their user).
pub fn pipe_owner_sid(stream: &ClientStream) -> io::Result<String> {
    let mut owner: PSID = ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: the handle is open for the borrow of `stream`; the out-pointers are valid; only
    // the owner is requested, and `sd` receives the memory it points into.
    let rc = unsafe {
        GetSecurityInfo(
            stream.as_raw_handle(),
            SE_KERNEL_OBJECT,
            OWNER_SECURITY_INFORMATION,
            &mut owner,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut sd,
        )
    };
    if rc != ERROR_SUCCESS {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    // SAFETY: `GetSecurityInfo` LocalAlloc'ed it for us to free; nothing writes to it.
    let sd = unsafe { LocalBox::from_raw(sd) };
    if owner.is_null() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "the pipe has no owner"));
    }
    // SAFETY: `owner` points into `sd`, which lives until after the call.
    let sid = unsafe { sid_to_string(owner) };
    drop(sd);
    sid
}

/// Who runs the server end of `stream`: the server process's token user, or, if the process
/// cannot be opened or its token read (another user's process usually cannot), the pipe's
/// owner.
pub fn server_user_sid(stream: &ClientStream) -> io::Result<(String, IdentitySource)> {
    match server_process_user_sid(stream) {
        Ok(sid) => Ok((sid, IdentitySource::ProcessToken)),
        Err(e) => {
            debug!(error = %e, "cannot read the server process's token; using the pipe's owner");
            pipe_owner_sid(stream).map(|sid| (sid, IdentitySource::PipeOwner))
        }
    }
}

/// Checks that the server reached through `stream` at `endpoint` runs as the current user or
/// as SYSTEM; anything else is [`EndpointError::ServerIdentity`] naming the pipe and the SID found.
/// Failing to find out at all is [`EndpointError::Io`] (step
/// [`IdentifyServer`](Step::IdentifyServer)).
pub fn verify_server(stream: &ClientStream, endpoint: &Path) -> Result<()> {
    let name = pipe_name(endpoint).map(PathBuf::from).unwrap_or_else(|_| endpoint.to_owned());
    let fail = Step::IdentifyServer.at(&name);
    let me = current_user_sid().map_err(Step::IdentifyServer.at(&name))?;
    let (found, source) = server_user_sid(stream).map_err(fail)?;
    if found == me || found == SYSTEM_SID {
        return Ok(());
    }
    let how = match source {
        IdentitySource::ProcessToken => "process token",
        IdentitySource::PipeOwner => "pipe owner",
    };
    Err(EndpointError::ServerIdentity {
        path: name,
        found: format!("{found} (from its {how})"),
        expected: format!("this user ({me}) or SYSTEM ({SYSTEM_SID})"),
    })
}
