//! The advisory lock that makes one server the owner of a socket path.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An exclusive `flock` on `<socket>.lock`, held for the listener's life.
#[derive(Debug)]
pub(crate) struct LockFile {
    path: PathBuf,
    file: File,
}

impl LockFile {
    /// Takes the lock without waiting; `Ok(None)` when another process holds it.
    ///
    /// The file is opened with `O_NOFOLLOW`: a symbolic link planted at the lock path is an
    /// error (saying so), and its target is neither created nor opened.
    pub(crate) fn try_acquire(path: PathBuf) -> io::Result<Option<LockFile>> {
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| explain_symlink(&path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
            // The previous owner unlinks the lock file when it stops. If that happened between
            // our open and our lock, we locked an orphan that a third process can no longer see;
            // start again on whatever the path names now.
            let ours = file.metadata()?;
            match fs::symlink_metadata(&path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {
                    return Ok(Some(LockFile { path, file }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so nobody can lock this inode and believe it is
        // the live one; the lock itself goes with the descriptor.
        if let (Ok(now), Ok(ours)) = (fs::symlink_metadata(&self.path), self.file.metadata())
            && now.dev() == ours.dev()
            && now.ino() == ours.ino()
            && let Err(e) = fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove lock file");
        }
    }
}

/// `O_NOFOLLOW` reports a symbolic link as `ELOOP` ("too many levels of symbolic links") on
/// Linux and macOS, `EMLINK` on FreeBSD; either way, say plainly what is there.
fn explain_symlink(path: &Path, e: io::Error) -> io::Error {
    match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_symlink() => io::Error::new(
            e.kind(),
            format!("it is a symbolic link, which is never followed ({e})"),
        ),
        _ => e,
    }
}

/// `<socket>.lock`, beside the socket.
pub(crate) fn lock_path_for(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}
