use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use super::error::{EndpointError, Result, Step};

/// The longest socket path, in bytes, that fits `sun_path` with its terminating NUL.
pub const fn max_path_len() -> usize {
    // sizeof(sockaddr_un.sun_path): 108 on Linux and Android, 104 on the BSDs and macOS.
    if cfg!(any(target_os = "linux", target_os = "android")) { 107 } else { 103 }
}

/// Fails with [`EndpointError::PathTooLong`] when `path` cannot be a Unix socket address here.
pub fn check_path_len(path: &Path) -> Result<()> {
    let len = path.as_os_str().as_bytes().len();
    if len > max_path_len() {
        return Err(EndpointError::PathTooLong { path: path.to_owned(), len, max: max_path_len() });
    }
    Ok(())
}

/// Makes sure `dir` is a private directory of this user: creates it with mode 0700 when `create`
/// is set and it is missing, then refuses it ([`EndpointError::InsecurePath`]) if it is not a real
/// directory, is owned by another uid, or grants any access to group or others. A directory that
/// cannot be created or examined is [`EndpointError::Io`] naming it (a missing one, with `create`
/// unset: step [`CheckDirectory`](Step::CheckDirectory), kind `NotFound`).
pub fn ensure_private_dir(dir: &Path, create: bool) -> Result<()> {
    if create {
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Step::CreateDirectory.error(dir, e)),
        }
    }
    // The same rule tmux applies to its socket directory.
    let insecure = |reason: String| EndpointError::InsecurePath { path: dir.to_owned(), reason };
    let md = fs::symlink_metadata(dir).map_err(Step::CheckDirectory.at(dir))?;
    if !md.is_dir() {
        return Err(insecure("not a directory (a symbolic link or a file is not accepted)".into()));
    }
    let me = super::current_uid();
    if md.uid() != me {
        return Err(insecure(format!("owned by uid {}, not by this user (uid {me})", md.uid())));
    }
    let mode = md.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(insecure(format!(
            "mode {mode:04o} gives group or others access; it must be 0700"
        )));
    }
    Ok(())
}

/// Creates `dir` and its missing parents, new directories with mode 0700.
pub(crate) fn create_parent_dir(dir: &Path) -> Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Step::CreateDirectory.at(dir))
}
