//! Unix-socket specifics: what `bind` does to existing files, permissions, peer policy, adoption.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use bunctl_ipc::{IpcClient, IpcError, IpcMessage, IpcServer, PeerPolicy, ServerOptions};
use common::*;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("stat").permissions().mode() & 0o777
}

#[tokio::test]
async fn stale_socket_is_reclaimed() {
    let ep = fresh_endpoint();
    // A socket file whose server is gone: std's listener does not unlink on drop.
    drop(std::os::unix::net::UnixListener::bind(ep.path()).expect("std bind"));
    assert!(fs::symlink_metadata(ep.path()).expect("left over").file_type().is_socket());
    let _server = echo_server(&ep).await;
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));
}

#[tokio::test]
async fn live_socket_is_never_stolen() {
    let ep = fresh_endpoint();
    let _first = echo_server(&ep).await;
    let e = IpcServer::bind(ep.path()).await.expect_err("second server");
    assert!(matches!(e, IpcError::AddrInUse { .. }), "{e}");
    assert!(e.to_string().contains("another server is running"), "{e}");
    // The first server still owns the path and serves.
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));
}

#[tokio::test]
async fn live_socket_of_a_server_without_lock_is_never_stolen() {
    let ep = fresh_endpoint();
    let foreign = std::os::unix::net::UnixListener::bind(ep.path()).expect("std bind");
    let e = IpcServer::bind(ep.path()).await.expect_err("in use");
    assert!(matches!(e, IpcError::AddrInUse { .. }), "{e}");
    assert!(fs::symlink_metadata(ep.path()).expect("still there").file_type().is_socket());
    drop(foreign);
}

#[tokio::test]
async fn regular_file_and_directory_are_never_deleted() {
    let ep = fresh_endpoint();
    fs::write(ep.path(), b"precious").expect("write");
    let e = IpcServer::bind(ep.path()).await.expect_err("not a socket");
    assert!(matches!(e, IpcError::NotASocket { .. }), "{e}");
    assert_eq!(fs::read(ep.path()).expect("file kept"), b"precious");

    let ep = fresh_endpoint();
    fs::create_dir(ep.path()).expect("mkdir");
    let e = IpcServer::bind(ep.path()).await.expect_err("not a socket");
    assert!(matches!(e, IpcError::NotASocket { .. }), "{e}");
    assert!(ep.path().is_dir());
}

#[tokio::test]
async fn socket_is_owner_only_and_missing_parent_is_created_0700() {
    let ep = fresh_endpoint();
    let nested = ep.path().with_file_name("sub").join("deeper").join("d.sock");
    let server = IpcServer::bind(&nested).await.expect("bind");
    assert_eq!(mode(&nested), 0o600);
    assert_eq!(mode(nested.parent().expect("parent")), 0o700);
    drop(server);
}

#[tokio::test]
async fn socket_mode_option_is_applied_exactly() {
    let ep = fresh_endpoint();
    let _server = IpcServer::bind_with(ep.path(), ServerOptions::new().with_socket_mode(0o660))
        .await
        .expect("bind");
    assert_eq!(mode(ep.path()), 0o660);
}

#[tokio::test]
async fn path_longer_than_sun_path_is_refused_naming_the_limit() {
    let long = format!("/tmp/{}.sock", "x".repeat(200));
    let e = IpcServer::bind(&long).await.expect_err("too long");
    assert!(
        matches!(e, IpcError::PathTooLong { max, .. } if max == ipc_transport_unix::max_path_len())
    );
    assert!(e.to_string().contains(&ipc_transport_unix::max_path_len().to_string()), "{e}");
    let e = IpcClient::connect(&long).await.expect_err("too long");
    assert!(matches!(e, IpcError::PathTooLong { .. }), "{e}");
}

#[tokio::test]
async fn dropping_the_server_removes_its_socket_and_lock() {
    let ep = fresh_endpoint();
    let server = IpcServer::bind(ep.path()).await.expect("bind");
    let lock = format!("{}.lock", ep.path().display());
    assert!(Path::new(&lock).exists());
    drop(server);
    assert!(!ep.path().exists(), "socket removed");
    assert!(!Path::new(&lock).exists(), "lock removed");
    // And the path can be bound again at once.
    let _again = IpcServer::bind(ep.path()).await.expect("rebind");
}

#[tokio::test]
async fn dropping_the_server_leaves_a_successors_socket_alone() {
    let ep = fresh_endpoint();
    let server = IpcServer::bind(ep.path()).await.expect("bind");
    // Someone replaced the file (by hand, or a server that ignores the lock).
    fs::remove_file(ep.path()).expect("rm");
    let successor = std::os::unix::net::UnixListener::bind(ep.path()).expect("successor");
    drop(server);
    assert!(fs::symlink_metadata(ep.path()).expect("kept").file_type().is_socket());
    drop(successor);
}

#[test]
fn servers_racing_for_one_path_cannot_both_win() {
    use std::sync::{Arc, Barrier};
    let ep = fresh_endpoint();
    for _round in 0..20 {
        let start = Arc::new(Barrier::new(4));
        let all_tried = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = ep.path().to_owned();
                let (start, all_tried) = (start.clone(), all_tried.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    start.wait();
                    let result = rt.block_on(IpcServer::bind(&path));
                    // The winner keeps its server until every contender has tried.
                    all_tried.wait();
                    result.map(drop).map_err(|e| e.to_string())
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().expect("thread")).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(e.contains("address in use"), "{e}");
        }
        assert!(!ep.path().exists(), "the winner removed its socket when it stopped");
    }
}

#[tokio::test]
async fn private_directory_is_refused_when_open_to_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("p");
    ipc_transport_unix::ensure_private_dir(&private, true).expect("creates it 0700");
    assert_eq!(mode(&private), 0o700);

    fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).expect("chmod");
    let e = ipc_transport_unix::ensure_private_dir(&private, false).expect_err("0755");
    assert!(matches!(e, ipc_transport_unix::EndpointError::InsecurePath { .. }), "{e}");
    assert!(e.to_string().contains("0755"), "{e}");

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&private, &link).expect("symlink");
    assert!(ipc_transport_unix::ensure_private_dir(&link, false).is_err(), "symlink refused");

    if ipc_transport_unix::current_uid() == 0 {
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(&private, Some(65534), None).expect("chown");
        let e = ipc_transport_unix::ensure_private_dir(&private, false).expect_err("other owner");
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    }
}

#[tokio::test]
async fn server_adopted_from_a_std_listener_serves_and_leaves_the_file() {
    let ep = fresh_endpoint();
    let std_listener = std::os::unix::net::UnixListener::bind(ep.path()).expect("std bind");
    let mut server = IpcServer::from_std(std_listener, ServerOptions::new()).expect("adopt");
    assert_eq!(server.endpoint(), ep.path());
    let srv = tokio::spawn(async move {
        echo(server.accept().await.expect("accept")).await;
        server
    });
    let mut client = IpcClient::connect(ep.path()).await.expect("connect");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));
    drop(client);
    drop(within("server", srv).await.expect("task"));
    assert!(ep.path().exists(), "an adopted listener does not unlink what it did not create");
}

#[tokio::test]
async fn accepted_connection_carries_the_peers_uid_gid_and_pid() {
    let ep = fresh_endpoint();
    let mut server = IpcServer::bind(ep.path()).await.expect("bind");
    let srv =
        tokio::spawn(async move { server.accept().await.expect("accept").peer_credentials() });
    let _client = IpcClient::connect(ep.path()).await.expect("connect");
    let peer = within("accept", srv).await.expect("task").expect("credentials");
    assert_eq!(peer.uid, Some(ipc_transport_unix::current_uid()));
    assert_eq!(peer.pid, Some(std::process::id()));
    assert!(peer.gid.is_some());
}

/// The child side of `peer_policy_refuses_another_uid`: connects to `BUNCTL_TEST_SOCKET`,
/// sends `List`, and prints what came back. Does nothing when run normally.
#[test]
#[ignore = "helper run as a child process by peer_policy_refuses_another_uid"]
fn child_client_sends_list() {
    let Some(path) = std::env::var_os("BUNCTL_TEST_SOCKET") else { return };
    let outcome = (|| {
        let mut s = std::os::unix::net::UnixStream::connect(&path)?;
        bunctl_ipc::proto::blocking::write_message(&mut s, &IpcMessage::List)?;
        bunctl_ipc::proto::blocking::read_message::<bunctl_ipc::IpcResponse, _>(&mut s)
    })();
    match outcome {
        Ok(reply) => println!("OUTCOME:served:{reply:?}"),
        Err(IpcError::Closed) => println!("OUTCOME:closed"),
        Err(e) => println!("OUTCOME:error:{e}"),
    }
}

fn run_child_as(uid: Option<u32>, socket: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", "child_client_sends_list", "--ignored", "--nocapture"])
        .env("BUNCTL_TEST_SOCKET", socket);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout.lines().find_map(|l| l.strip_prefix("OUTCOME:").map(str::to_owned)).unwrap_or_else(
        || panic!("child printed no outcome: {stdout} {}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_policy_refuses_another_uid_and_serves_the_owner() {
    if ipc_transport_unix::current_uid() != 0 {
        eprintln!("skipped: needs root to run a child as another uid (CI runs as root)");
        return;
    }
    const NOBODY: u32 = 65534;
    let ep = fresh_endpoint();
    // Let the other user reach the socket at all: open directory, 0666 socket.
    fs::set_permissions(ep.path().parent().expect("dir"), fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let options =
        ServerOptions::new().with_socket_mode(0o666).with_peer_policy(PeerPolicy::SameUser);
    let mut server = IpcServer::bind_with(ep.path(), options).await.expect("bind");
    tokio::spawn(async move {
        while let Ok(conn) = server.accept().await {
            tokio::spawn(echo(conn));
        }
    });
    let path = ep.path().to_owned();
    let (other, owner) = tokio::task::spawn_blocking(move || {
        (run_child_as(Some(NOBODY), &path), run_child_as(None, &path))
    })
    .await
    .expect("children");
    // Refused peers are closed at once. Depending on timing the child sees an orderly end of
    // stream, a reset (its request was still unread), or a broken pipe (it was still writing).
    assert!(
        other == "closed" || other.contains("Connection reset") || other.contains("Broken pipe"),
        "uid {NOBODY} must be refused: {other}"
    );
    assert!(owner.starts_with("served:"), "same uid must be served: {owner}");

    // With AnyUser, the same child is served.
    let ep = fresh_endpoint();
    fs::set_permissions(ep.path().parent().expect("dir"), fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let options =
        ServerOptions::new().with_socket_mode(0o666).with_peer_policy(PeerPolicy::AnyUser);
    let mut server = IpcServer::bind_with(ep.path(), options).await.expect("bind");
    tokio::spawn(async move {
        while let Ok(conn) = server.accept().await {
            tokio::spawn(echo(conn));
        }
    });
    let path = ep.path().to_owned();
    let other = tokio::task::spawn_blocking(move || run_child_as(Some(NOBODY), &path))
        .await
        .expect("child");
    assert!(other.starts_with("served:"), "AnyUser serves uid {NOBODY}: {other}");
}
