//! Binding, adopting and accepting.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{EndpointError, Result, Step};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use tokio::net::UnixStream;
use tokio::net::unix::UCred;
use tracing::{debug, info, warn};

use super::lock::{LockFile, lock_path_for};
use super::path::{check_path_len, create_parent_dir, ensure_private_dir};

/// How [`UnixListener::bind`] sets up the socket.
#[derive(Debug, Clone)]
pub struct BindOptions {
    mode: u32,
    private_dir: bool,
    backlog: i32,
}

impl BindOptions {
    /// Owner-only socket (0600), backlog 1024, parent directory not checked.
    pub fn new() -> Self {
        BindOptions { mode: 0o600, private_dir: false, backlog: 1024 }
    }

    /// Permission bits of the socket file (only the low nine bits are used). Connecting needs
    /// write permission, so 0600 admits the owner only and 0666 admits every local user (then
    /// rely on a peer policy).
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Require the parent directory to be private to this user (see
    /// [`ensure_private_dir`](crate::ensure_private_dir)).
    pub fn with_private_dir(mut self, yes: bool) -> Self {
        self.private_dir = yes;
        self
    }

    /// Length of the kernel's queue of connections not yet accepted.
    pub fn with_backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The permission bits the socket file gets (see [`with_mode`](Self::with_mode)).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Whether the parent directory must be private (see
    /// [`with_private_dir`](Self::with_private_dir)).
    pub fn private_dir(&self) -> bool {
        self.private_dir
    }

    /// The listen backlog (see [`with_backlog`](Self::with_backlog)).
    pub fn backlog(&self) -> i32 {
        self.backlog
    }
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions::new()
    }
}

/// What this listener created and must clean up.
#[derive(Debug)]
struct Owned {
    path: PathBuf,
    /// (device, inode) of the socket file this listener created.
    identity: (u64, u64),
    /// Dropped after the socket file is removed (field order matters).
    _lock: LockFile,
}

impl Drop for Owned {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(md) if (md.dev(), md.ino()) == self.identity => match fs::remove_file(&self.path) {
                Ok(()) => debug!(path = %self.path.display(), "removed socket file"),
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "could not remove socket file")
                }
            },
            Ok(_) => {
                debug!(path = %self.path.display(), "socket path now belongs to someone else; left alone")
            }
            Err(_) => {}
        }
    }
}

/// A listening Unix socket that cleans up after itself.
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    owned: Option<Owned>,
}

/// What a non-blocking connect to an existing socket file says about it.
enum Probe {
    /// Someone accepts (or the backlog is full): a live server.
    Live,
    /// Connection refused: the file is left over from a server that is gone.
    Stale,
    /// The file disappeared meanwhile.
    Gone,
}

fn probe(path: &Path) -> io::Result<Probe> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => Ok(Probe::Live),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Probe::Live),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(Probe::Live),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(Probe::Stale),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Probe::Gone),
        Err(e) => Err(e),
    }
}

impl UnixListener {
    /// Binds a listening socket at `path`. Must be called within a tokio runtime.
    ///
    /// In order: the path length is checked; a missing parent directory is created (0700); the
    /// lock `<path>.lock` is taken (held by another process: [`EndpointError::AddrInUse`]; a
    /// symbolic link there is refused, never followed); an existing `path` is examined — a live
    /// socket gives [`EndpointError::AddrInUse`] and is left alone, a stale one is removed, anything
    /// that is not a socket gives [`EndpointError::NotASocket`] and is left alone; then the socket
    /// is bound with its mode already restricted, so it is never reachable with looser
    /// permissions. Any other failure is [`EndpointError::Io`], naming the path concerned (the
    /// directory, the lock file or the socket) and the step.
    pub fn bind(path: impl AsRef<Path>, options: &BindOptions) -> Result<UnixListener> {
        let path = path.as_ref();
        check_path_len(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if options.private_dir {
                ensure_private_dir(dir, true)?;
            } else if !dir.exists() {
                create_parent_dir(dir)?;
            }
        }
        let in_use = || EndpointError::AddrInUse { path: path.to_owned() };
        let lock_path = lock_path_for(path);
        let lock = LockFile::try_acquire(lock_path.clone())
            .map_err(Step::Lock.at(&lock_path))?
            .ok_or_else(in_use)?;

        match fs::symlink_metadata(path) {
            Ok(md) if md.file_type().is_socket() => {
                match probe(path).map_err(Step::ProbeExisting.at(path))? {
                    Probe::Live => return Err(in_use()),
                    Probe::Stale => {
                        info!(path = %path.display(), "removing stale socket left by a previous server");
                        match fs::remove_file(path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(Step::RemoveStale.error(path, e)),
                        }
                    }
                    Probe::Gone => {}
                }
            }
            Ok(_) => return Err(EndpointError::NotASocket { path: path.to_owned() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Step::InspectExisting.error(path, e)),
        }

        let socket =
            Socket::new(Domain::UNIX, Type::STREAM, None).map_err(Step::CreateSocket.at(path))?;
        let socket = restrict_mode(socket, options.mode);
        let addr = SockAddr::unix(path).map_err(Step::Bind.at(path))?;
        socket.bind(&addr).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse { in_use() } else { Step::Bind.error(path, e) }
        })?;
        // Whatever the umask took away, the final mode is exactly the requested one.
        let identity = (|| {
            fs::set_permissions(path, Permissions::from_mode(options.mode))
                .map_err(Step::SetPermissions.at(path))?;
            socket.listen(options.backlog).map_err(Step::Listen.at(path))?;
            socket.set_nonblocking(true).map_err(Step::Listen.at(path))?;
            let md = fs::symlink_metadata(path).map_err(Step::Listen.at(path))?;
            Ok::<_, EndpointError>((md.dev(), md.ino()))
        })();
        let identity = match identity {
            Ok(id) => id,
            Err(e) => {
                let _ = fs::remove_file(path);
                return Err(e);
            }
        };
        let inner =
            tokio::net::UnixListener::from_std(socket.into()).map_err(Step::Listen.at(path))?;
        debug!(path = %path.display(), mode = format_args!("{:04o}", options.mode), "listening");
        Ok(UnixListener {
            inner,
            owned: Some(Owned { path: path.to_owned(), identity, _lock: lock }),
        })
    }

    /// Adopts a listener bound elsewhere (inherited, passed by a supervisor, bound by a test).
    /// It is switched to non-blocking mode; its socket file is never removed by this listener.
    /// Must be called within a tokio runtime.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> Result<UnixListener> {
        let name = adopted_name(SockRef::from(&listener), listener.as_raw_fd());
        listener.set_nonblocking(true).map_err(Step::Adopt.at(&name))?;
        let inner = tokio::net::UnixListener::from_std(listener).map_err(Step::Adopt.at(&name))?;
        Ok(UnixListener { inner, owned: None })
    }

    /// Adopts a listening socket descriptor handed over by the caller (inherited from a parent,
    /// received from a supervisor). See [`from_systemd`](Self::from_systemd) for what is
    /// checked and set; errors say the descriptor was "passed by the caller".
    pub fn from_listening_fd(fd: OwnedFd) -> Result<UnixListener> {
        adopt_fd(fd, "the caller")
    }

    /// Adopts the socket systemd passed by socket activation (`LISTEN_PID`/`LISTEN_FDS`, first
    /// descriptor), or `Ok(None)` when this process was not socket-activated. Succeeds at most
    /// once per process. The socket is not unlinked or rebound.
    ///
    /// As `sd_listen_fds(3)` does, the descriptor is made close-on-exec, so that programs this
    /// process starts do not inherit the listener (and cannot accept its clients). It must be
    /// a listening stream Unix socket (`SO_TYPE`; `SO_ACCEPTCONN` where the OS reports it:
    /// Linux, Android, FreeBSD); anything else is [`EndpointError::NotAListener`] naming the
    /// descriptor and what it is instead.
    pub fn from_systemd() -> Result<Option<UnixListener>> {
        match super::systemd::take_first_listen_fd()? {
            None => Ok(None),
            Some(fd) => adopt_fd(fd, "systemd").map(Some),
        }
    }

    /// The socket path this listener created, if it created one (adopted listeners: `None`).
    pub fn path(&self) -> Option<&Path> {
        self.owned.as_ref().map(|o| o.path.as_path())
    }

    /// Waits for the next connection and returns it with its peer's credentials.
    ///
    /// Transient failures — descriptor or memory exhaustion (`EMFILE`, `ENFILE`, `ENOBUFS`,
    /// `ENOMEM`) and connections that died in the queue (`ECONNABORTED`, `EPROTO`, ...) — are
    /// logged at `warn!` and retried, with a back-off from 5 ms doubling to 1 s for exhaustion,
    /// so the loop neither fails nor spins while descriptors are short. Only other errors are
    /// returned. Cancel-safe: dropping the future loses no connection.
    pub async fn accept(&self) -> io::Result<(UnixStream, UCred)> {
        let mut backoff = Duration::from_millis(5);
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => match stream.peer_cred() {
                    Ok(cred) => return Ok((stream, cred)),
                    Err(e) => debug!(error = %e, "peer vanished before its credentials were read"),
                },
                Err(e) => match classify(&e) {
                    Transient::Exhausted => {
                        warn!(error = %e, retry_in = ?backoff, "accept failed; backing off");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                    Transient::PeerGone => debug!(error = %e, "connection died before accept"),
                    Transient::No => return Err(e),
                },
            }
        }
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

/// What an adopted socket is called in errors: its path, or `descriptor N` when it has none.
fn adopted_name(socket: SockRef<'_>, fd: RawFd) -> PathBuf {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_owned))
        .unwrap_or_else(|| PathBuf::from(format!("descriptor {fd}")))
}

/// Checks that `fd` is a listening stream Unix socket, makes it close-on-exec and adopts it.
fn adopt_fd(fd: OwnedFd, passed_by: &'static str) -> Result<UnixListener> {
    let raw = fd.as_raw_fd();
    check_listener(fd.as_fd()).map_err(|found| EndpointError::NotAListener {
        fd: raw,
        passed_by,
        found,
    })?;
    let name = adopted_name(SockRef::from(&fd), raw);
    SockRef::from(&fd).set_cloexec(true).map_err(Step::Adopt.at(&name))?;
    let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))?;
    debug!(socket = %name.display(), fd = raw, passed_by, "adopted listening socket");
    Ok(listener)
}

/// `Ok` for a listening stream Unix socket, else what `fd` is instead.
fn check_listener(fd: BorrowedFd<'_>) -> std::result::Result<(), String> {
    let md = File::from(fd.try_clone_to_owned().map_err(|e| format!("it cannot be used ({e})"))?)
        .metadata()
        .map_err(|e| format!("it cannot be examined ({e})"))?;
    let kind = md.file_type();
    if !kind.is_socket() {
        let what = if kind.is_file() {
            "a regular file"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a pipe"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else {
            "something else"
        };
        return Err(format!("it is not a socket but {what}"));
    }
    let socket = SockRef::from(&fd);
    let addr = socket.local_addr().map_err(|e| format!("its address cannot be read ({e})"))?;
    match addr.domain() {
        Domain::UNIX => {}
        Domain::IPV4 => return Err("it is an IPv4 socket".into()),
        Domain::IPV6 => return Err("it is an IPv6 socket".into()),
        other => return Err(format!("it is a socket of address family {}", i32::from(other))),
    }
    match socket.r#type().map_err(|e| format!("its type cannot be read ({e})"))? {
        Type::STREAM => {}
        Type::DGRAM => return Err("it is a datagram socket".into()),
        Type::SEQPACKET => return Err("it is a sequenced-packet socket".into()),
        other => return Err(format!("it is a socket of type {}", i32::from(other))),
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    if !socket.is_listener().map_err(|e| format!("SO_ACCEPTCONN cannot be read ({e})"))? {
        return Err("it is a stream socket that is not listening".into());
    }
    Ok(())
}

enum Transient {
    /// The process or system is out of descriptors or memory: wait before retrying.
    Exhausted,
    /// That one connection failed: retry at once.
    PeerGone,
    /// A real error.
    No,
}

fn classify(e: &io::Error) -> Transient {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Transient::Exhausted,
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR | libc::EPERM | libc::ECONNRESET) => {
            Transient::PeerGone
        }
        _ if e.kind() == io::ErrorKind::Interrupted => Transient::PeerGone,
        _ => Transient::No,
    }
}

/// Sets the socket inode's mode before `bind`. Linux creates the socket file from that inode's
/// mode (minus the umask), so the file never exists with looser permissions than requested. On
/// systems where `fchmod` on a socket fails or does nothing, the `chmod` after `bind` still
/// applies the mode.
fn restrict_mode(socket: Socket, mode: u32) -> Socket {
    let file = File::from(OwnedFd::from(socket));
    if let Err(e) = file.set_permissions(Permissions::from_mode(mode)) {
        debug!(error = %e, "fchmod on the socket before bind is not supported here");
    }
    Socket::from(OwnedFd::from(file))
}
