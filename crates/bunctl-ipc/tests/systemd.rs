//! systemd socket activation end to end: a real process started the way systemd starts one
//! (`LISTEN_PID`/`LISTEN_FDS`, the listening socket at descriptor 3) adopts the socket, and the
//! programs it starts do not inherit it.
#![cfg(unix)]

mod common;

use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, Stdio};

use bunctl_ipc::{IpcClient, IpcMessage, IpcServer, ServerOptions};
use common::*;

/// Whether a program started now would find descriptor 3 open: `sh` tries to duplicate it.
fn fd3_reaches_a_child() -> bool {
    let out = Command::new("sh")
        .args(["-c", "if (exec 4<&3) 2>/dev/null; then echo inherited; else echo closed; fi"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run sh");
    match String::from_utf8_lossy(&out.stdout).trim() {
        "inherited" => true,
        "closed" => false,
        other => panic!("unexpected answer from sh: {other:?}"),
    }
}

/// The child side of `socket_activated_listener_is_not_inherited_by_started_programs_and_serves`:
/// run with descriptor 3 and `LISTEN_PID`/`LISTEN_FDS` set as systemd sets them, it reports
/// whether a program it starts inherits descriptor 3 before and after `IpcServer::from_systemd`,
/// then serves one client through the adopted listener. Does nothing when run normally.
#[test]
#[ignore = "helper run as a socket-activated child process"]
fn child_socket_activated_server() {
    if std::env::var_os("BUNCTL_TEST_SYSTEMD_CHILD").is_none() {
        return;
    }
    let before = fd3_reaches_a_child();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let adopted = IpcServer::from_systemd(ServerOptions::new());
        let mut server = match adopted {
            Ok(Some(server)) => server,
            Ok(None) => {
                println!("OUTCOME:not-activated");
                return;
            }
            Err(e) => {
                println!("OUTCOME:error:{e}");
                return;
            }
        };
        let after = fd3_reaches_a_child();
        let word = |inherited: bool| if inherited { "inherited" } else { "closed" };
        println!("OUTCOME:before={} after={}", word(before), word(after));
        let conn = within("accept", server.accept()).await.expect("accept");
        echo(conn).await;
    });
}

/// Starts this test binary's `child_socket_activated_server` the way systemd starts a
/// socket-activated service: through `sh`, so that `LISTEN_PID` is the pid the program will
/// have, with a copy of `fd` at descriptor 3 (not close-on-exec, as systemd passes it).
/// Returns the child and its `OUTCOME:` line.
async fn start_activated(fd: RawFd) -> (Child, String) {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#])
        .arg(&exe)
        .args(["--exact", "child_socket_activated_server", "--ignored", "--nocapture"])
        .env("BUNCTL_TEST_SYSTEMD_CHILD", "1")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn the socket-activated child");
    let rx = outcomes(&mut child);
    let outcome =
        tokio::task::spawn_blocking(move || rx.recv_timeout(PATIENCE)).await.expect("reader");
    let Ok(outcome) = outcome else {
        let _ = child.kill();
        let out = child.wait_with_output().expect("child output");
        panic!("child reported nothing: {}", String::from_utf8_lossy(&out.stderr));
    };
    (child, outcome)
}

#[tokio::test]
async fn socket_activated_listener_is_not_inherited_by_started_programs_and_serves() {
    let ep = fresh_endpoint();
    // A listening socket, as systemd would hold it; std opens it close-on-exec, and `dup2`
    // puts a copy at descriptor 3 without close-on-exec, as systemd passes it.
    let listener = std::os::unix::net::UnixListener::bind(ep.path()).expect("bind");
    let (child, outcome) = start_activated(listener.as_raw_fd()).await;
    assert_eq!(
        outcome, "before=inherited after=closed",
        "descriptor 3 must reach programs before adoption (the probe works) and not after"
    );

    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));
    drop(client);
    let mut child = child;
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join");
    assert!(status.expect("wait").success(), "the child served one client and exited cleanly");
    drop(listener);
}

#[tokio::test]
async fn socket_activation_with_a_datagram_socket_is_refused_naming_descriptor_3() {
    let ep = fresh_endpoint();
    let dgram = std::os::unix::net::UnixDatagram::bind(ep.path()).expect("bind");
    let (mut child, outcome) = start_activated(dgram.as_raw_fd()).await;
    assert_eq!(
        outcome,
        "error:descriptor 3 passed by systemd is not a listening stream Unix socket: \
         it is a datagram socket"
    );
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
}
