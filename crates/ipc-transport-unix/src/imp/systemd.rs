//! systemd socket activation (`sd_listen_fds(3)`), without libsystemd.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{EndpointError, Result};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

static TAKEN: AtomicBool = AtomicBool::new(false);

/// How many descriptors systemd passed to the process `my_pid`, given the values of
/// `LISTEN_PID` and `LISTEN_FDS`; `None` when they are absent, malformed, or meant for another
/// process (a parent that was activated and did not clear them).
pub fn listen_fds(listen_pid: Option<&str>, listen_fds: Option<&str>, my_pid: u32) -> Option<u32> {
    let pid: u32 = listen_pid?.trim().parse().ok()?;
    let n: u32 = listen_fds?.trim().parse().ok()?;
    (pid == my_pid && n > 0).then_some(n)
}

/// Takes ownership of descriptor 3 if systemd passed it to this process, once.
pub(crate) fn take_first_listen_fd() -> Result<Option<OwnedFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    if listen_fds(pid.as_deref(), fds.as_deref(), std::process::id()).is_none() {
        return Ok(None);
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF when it is closed.
    if unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_GETFD) } < 0 {
        return Err(EndpointError::NotAListener {
            fd: LISTEN_FDS_START,
            passed_by: "systemd",
            found: format!("it is not open ({})", std::io::Error::last_os_error()),
        });
    }
    // SAFETY: the socket-activation protocol hands descriptors LISTEN_FDS_START.. to this
    // process (LISTEN_PID matched), the descriptor is open (checked above), and TAKEN makes
    // sure it is wrapped only once.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) }))
}

#[cfg(test)]
mod tests {
    use super::listen_fds;

    #[test]
    fn listen_fds_only_counts_for_the_named_process() {
        assert_eq!(listen_fds(Some("42"), Some("1"), 42), Some(1));
        assert_eq!(listen_fds(Some("42"), Some("2"), 42), Some(2));
        assert_eq!(listen_fds(Some("41"), Some("1"), 42), None);
        assert_eq!(listen_fds(Some("42"), Some("0"), 42), None);
        assert_eq!(listen_fds(None, Some("1"), 42), None);
        assert_eq!(listen_fds(Some("x"), Some("1"), 42), None);
        assert_eq!(listen_fds(Some("42"), None, 42), None);
    }
}
