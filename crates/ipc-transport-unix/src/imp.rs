//! The implementation; the whole crate is empty on non-Unix targets.

mod bind;
mod connect;
mod error;
mod lock;
mod path;
mod systemd;

pub use bind::{BindOptions, UnixListener};
pub use connect::{connect, server_credentials, verify_server_uid};
pub use error::{EndpointError, Result, Step};
pub use path::{check_path_len, ensure_private_dir, max_path_len};
pub use systemd::listen_fds;
pub use tokio::net::UnixStream;
pub use tokio::net::unix::UCred;

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The soft limit on this process's open descriptors (`RLIMIT_NOFILE`), or `None` when it is
/// unlimited or cannot be read.
pub fn descriptor_limit() -> Option<usize> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer and has no other effect.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then(|| usize::try_from(limit.rlim_cur).ok()).flatten()
}
