//! What a client checks before it talks: that a server runs at all (a missing private directory
//! means none does), and that the server runs as this user or root.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use bunctl_ipc::{
    ClientOptions, IpcClient, IpcError, IpcMessage, IpcServer, PeerPolicy, ServerOptions,
};
use common::*;

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    ipc_transport_unix::current_uid() == 0
}

/// Runs the helper test `name` of this binary as a child process, as `uid` when given.
fn child(name: &str, uid: Option<u32>, envs: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", name, "--ignored", "--nocapture"])
        .env("BUNCTL_TEST_CHILD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd
}

/// The first `OUTCOME:` line `child` prints.
fn outcome(child: &mut Child) -> String {
    outcomes(child).recv_timeout(PATIENCE).unwrap_or_else(|_| {
        let _ = child.kill();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        panic!("child printed no outcome: {err}")
    })
}

/// Child side of `connecting_where_the_private_directory_is_missing_is_not_running_naming_the_socket`:
/// connects to the default endpoint (no `XDG_RUNTIME_DIR`) and prints the error.
#[test]
#[ignore = "helper run as a child process"]
fn child_connects_to_the_default_endpoint() {
    if std::env::var_os("BUNCTL_TEST_CHILD").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let path = bunctl_ipc::default_socket_path();
    match rt.block_on(IpcClient::connect(&path)) {
        Ok(_) => println!("OUTCOME:connected"),
        Err(e @ IpcError::NotRunning { .. }) => {
            let IpcError::NotRunning { endpoint, .. } = &e else { unreachable!() };
            println!("OUTCOME:not-running|{}|{e}", endpoint.display());
        }
        Err(e) => println!("OUTCOME:other|{e:?}|{e}"),
    }
}

#[test]
fn connecting_where_the_private_directory_is_missing_is_not_running_naming_the_socket() {
    let me = ipc_transport_unix::current_uid();
    let dir_of = |uid: u32| format!("/tmp/bunctl-{uid}");
    // Root runs the client as a uid whose directory surely does not exist; anyone else runs it
    // as themselves, if their directory does not exist yet.
    let uid = if is_root() {
        (3_000_000_000u32..).find(|u| !Path::new(&dir_of(*u)).exists())
    } else {
        Some(me).filter(|u| !Path::new(&dir_of(*u)).exists())
    };
    let Some(uid) = uid else {
        eprintln!("skipped: {} exists and only root can run as another uid", dir_of(me));
        return;
    };
    let mut cmd = child("child_connects_to_the_default_endpoint", (uid != me).then_some(uid), &[]);
    cmd.env_remove("XDG_RUNTIME_DIR");
    let mut process = cmd.spawn().expect("spawn");
    let got = outcome(&mut process);
    let _ = process.wait();
    let socket = format!("{}/bunctl.sock", dir_of(uid));
    let expected = format!("not-running|{socket}|no bunctl server is running at {socket}: ");
    assert!(got.starts_with(&expected), "expected {expected:?}, got {got:?}");
    assert!(!Path::new(&dir_of(uid)).exists(), "a client creates nothing");
}

/// Child side of `server_of_another_uid_is_refused_unless_verification_is_off`: binds
/// `BUNCTL_TEST_SOCKET` admitting any user, says so, and echoes until killed.
#[test]
#[ignore = "helper run as a child process"]
fn child_serves_any_user() {
    let Some(path) = std::env::var_os("BUNCTL_TEST_SOCKET") else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let options =
            ServerOptions::new().with_socket_mode(0o666).with_peer_policy(PeerPolicy::AnyUser);
        let mut server = match IpcServer::bind_with(&path, options).await {
            Ok(server) => server,
            Err(e) => {
                println!("OUTCOME:error:{e}");
                return;
            }
        };
        println!("OUTCOME:listening");
        while let Ok(conn) = server.accept().await {
            tokio::spawn(echo(conn));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_of_another_uid_is_refused_unless_verification_is_off() {
    if !is_root() {
        eprintln!("skipped: needs root to run the server as another uid (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The other user's server must be able to create its socket and lock file here.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let socket = dir.path().join("other.sock");
    let mut server =
        child("child_serves_any_user", Some(NOBODY), &[("BUNCTL_TEST_SOCKET", &socket)])
            .spawn()
            .expect("spawn server");
    let ready = tokio::task::block_in_place(|| outcome(&mut server));
    assert_eq!(ready, "listening");

    let e = IpcClient::connect(&socket).await.expect_err("must refuse a server of uid 65534");
    match &e {
        IpcError::ServerIdentity { endpoint, found, .. } => {
            assert_eq!(endpoint, &socket);
            assert_eq!(found, &format!("uid {NOBODY}"));
        }
        other => panic!("expected ServerIdentity, got {other:?}"),
    }
    let text = e.to_string();
    assert!(text.contains(&socket.display().to_string()) && text.contains("uid 65534"), "{text}");

    let options = ClientOptions::new().with_verify_server(false);
    let mut client = IpcClient::connect_with(&socket, options).await.expect("unverified connect");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));
    assert_eq!(client.peer_credentials().and_then(|p| p.uid), Some(NOBODY));
    drop(client);
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test]
async fn server_of_the_same_user_is_accepted_with_verification_on() {
    let ep = fresh_endpoint();
    let _server = echo_server(&ep).await;
    let mut client = IpcClient::connect(ep.path()).await.expect("own server");
    assert_eq!(client.request(&IpcMessage::List).await.expect("reply"), echoed(&IpcMessage::List));
    let peer = client.peer_credentials().expect("credentials");
    assert_eq!(peer.uid, Some(ipc_transport_unix::current_uid()));
}
