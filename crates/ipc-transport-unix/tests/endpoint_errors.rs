//! Every failure of binding or connecting names the path it concerns and the step that failed;
//! the lock file is never followed through a symbolic link.
#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use ipc_transport_unix::{BindOptions, UnixListener, connect};
use ipc_transport_unix::{EndpointError, Step};

fn bind(path: &Path) -> Result<UnixListener, EndpointError> {
    UnixListener::bind(path, &BindOptions::new())
}

/// `e` is an [`EndpointError::Endpoint`] of `step` at `path`, and its message says both.
#[track_caller]
fn assert_names(e: &EndpointError, path: &Path, step: Step) {
    let text = e.to_string();
    assert!(
        matches!(e, EndpointError::Io { path: endpoint, step: s, .. } if endpoint == path && *s == step),
        "expected step {step:?} at {}: {e:?}",
        path.display()
    );
    let expected = format!("cannot {step} {}: ", path.display());
    assert!(text.starts_with(&expected), "must start with {expected:?}: {text}");
}

#[tokio::test]
async fn lock_file_under_a_regular_file_names_the_lock_path_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    fs::write(&file, b"not a directory").expect("write");
    // The parent "directory" exists (it is a file), so the first thing to fail is the lock.
    let socket = file.join("s.sock");
    let e = bind(&socket).expect_err("cannot lock under a file");
    assert_names(&e, &file.join("s.sock.lock"), Step::Lock);
}

#[tokio::test]
async fn lock_path_that_is_a_directory_names_the_lock_path_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let lock = dir.path().join("s.sock.lock");
    fs::create_dir(&lock).expect("mkdir");
    let e = bind(&socket).expect_err("a directory is no lock file");
    assert_names(&e, &lock, Step::Lock);
    assert!(lock.is_dir(), "left alone");
}

#[tokio::test]
async fn lock_file_symlink_is_refused_and_its_target_is_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let lock = dir.path().join("s.sock.lock");
    let target = dir.path().join("victim");
    std::os::unix::fs::symlink(&target, &lock).expect("symlink");
    let e = bind(&socket).expect_err("symlinked lock");
    assert_names(&e, &lock, Step::Lock);
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(!target.exists(), "the symlink's target must not be created");
    assert!(fs::symlink_metadata(&lock).expect("still there").file_type().is_symlink());
}

#[tokio::test]
async fn lock_file_symlink_to_an_existing_file_leaves_it_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let lock = dir.path().join("s.sock.lock");
    let target = dir.path().join("precious");
    fs::write(&target, b"keep me").expect("write");
    std::os::unix::fs::symlink(&target, &lock).expect("symlink");
    let e = bind(&socket).expect_err("symlinked lock");
    assert_names(&e, &lock, Step::Lock);
    assert_eq!(fs::read(&target).expect("read"), b"keep me");
}

#[tokio::test]
async fn parent_directory_that_cannot_be_created_names_the_directory_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    fs::write(&file, b"").expect("write");
    let missing = file.join("sub");
    let e = bind(&missing.join("s.sock")).expect_err("cannot create under a file");
    assert_names(&e, &missing, Step::CreateDirectory);
}

#[tokio::test]
async fn private_directory_that_cannot_be_created_names_the_directory_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    fs::write(&file, b"").expect("write");
    let private = file.join("p");
    let e = ipc_transport_unix::ensure_private_dir(&private, true).expect_err("under a file");
    assert_names(&e, &private, Step::CreateDirectory);
}

#[tokio::test]
async fn missing_private_directory_names_the_directory_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("missing");
    let e = ipc_transport_unix::ensure_private_dir(&private, false).expect_err("missing");
    assert_names(&e, &private, Step::CheckDirectory);
}

#[tokio::test]
async fn datagram_socket_at_the_path_names_the_path_and_the_probe_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let _dgram = std::os::unix::net::UnixDatagram::bind(&socket).expect("dgram bind");
    let e = bind(&socket).expect_err("a datagram socket is in the way");
    assert_names(&e, &socket, Step::ProbeExisting);
    assert!(fs::symlink_metadata(&socket).is_ok(), "left alone");
}

#[tokio::test]
async fn connecting_to_a_datagram_socket_names_the_path_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("s.sock");
    let _dgram = std::os::unix::net::UnixDatagram::bind(&socket).expect("dgram bind");
    let e = connect(&socket, Duration::from_secs(5)).await.expect_err("datagram");
    assert_names(&e, &socket, Step::Connect);
}

#[tokio::test]
async fn connecting_under_a_regular_file_names_the_path_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    fs::write(&file, b"").expect("write");
    let socket = file.join("s.sock");
    let e = connect(&socket, Duration::from_secs(5)).await.expect_err("ENOTDIR");
    assert_names(&e, &socket, Step::Connect);
}

/// Child side of the tests below that need another user: binds `BUNCTL_TEST_BIND` and prints
/// the outcome. Does nothing when run normally.
#[test]
#[ignore = "helper run as a child process as another uid"]
fn child_binds() {
    let Some(path) = std::env::var_os("BUNCTL_TEST_BIND") else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _guard = rt.enter();
    match bind(Path::new(&path)) {
        Ok(_) => println!("OUTCOME:bound"),
        Err(EndpointError::Io { path: endpoint, step, .. }) => {
            println!("OUTCOME:{step:?}|{}", endpoint.display())
        }
        Err(e) => println!("OUTCOME:other|{e:?}"),
    }
}

const NOBODY: u32 = 65534;

/// Runs `child_binds` on `path` as uid 65534; `None` (with the reason printed) unless root.
fn bind_as_nobody(path: &Path) -> Option<String> {
    use std::os::unix::process::CommandExt;
    if ipc_transport_unix::current_uid() != 0 {
        eprintln!("skipped: needs root to run a child as another uid (CI runs as root)");
        return None;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_binds", "--ignored", "--nocapture"])
        .env("BUNCTL_TEST_BIND", path)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let outcome = stdout.lines().find_map(|l| l.strip_prefix("OUTCOME:")).map(str::to_owned);
    Some(outcome.unwrap_or_else(|| {
        panic!("child printed no outcome: {stdout} {}", String::from_utf8_lossy(&out.stderr))
    }))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn stale_socket_that_cannot_be_removed_names_the_path_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Sticky and world-writable, like /tmp: anyone may create files, only owners remove them.
    chmod(dir.path(), 0o1777);
    let socket = dir.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind")); // stale, root's
    chmod(&socket, 0o777); // so that the probe may connect and find it stale
    let Some(outcome) = bind_as_nobody(&socket) else { return };
    assert_eq!(outcome, format!("RemoveStale|{}", socket.display()));
}

#[test]
fn socket_that_cannot_be_bound_names_the_path_and_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The directory is not writable by the other user, but the lock file in it is.
    chmod(dir.path(), 0o755);
    let lock = dir.path().join("s.sock.lock");
    fs::write(&lock, b"").expect("lock file");
    chmod(&lock, 0o666);
    let socket = dir.path().join("s.sock");
    let Some(outcome) = bind_as_nobody(&socket) else { return };
    assert_eq!(outcome, format!("Bind|{}", socket.display()));
}
