//! The implementation; the whole crate is empty on non-Unix targets.

mod bind;
mod connect;
mod lock;
mod path;
mod systemd;

pub use bind::{BindOptions, UnixListener};
pub use connect::{connect, server_credentials, verify_server_uid};
pub use path::{check_path_len, ensure_private_dir, max_path_len};
pub use systemd::listen_fds;
pub use tokio::net::UnixStream;
pub use tokio::net::unix::UCred;

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
