//! Adopting a listening socket from a descriptor (what systemd socket activation does): the
//! descriptor becomes close-on-exec, and anything but a listening stream Unix socket is refused
//! with an error naming the descriptor and what it is.
#![cfg(unix)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use ipc_transport_unix::EndpointError;
use ipc_transport_unix::UnixListener;
use socket2::{Domain, SockAddr, Socket, Type};

fn cloexec(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the flags of a descriptor the caller keeps open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(flags >= 0, "F_GETFD: {}", std::io::Error::last_os_error());
    flags & libc::FD_CLOEXEC != 0
}

fn clear_cloexec(fd: i32) {
    // SAFETY: as above, and F_SETFD only changes the flags of that descriptor.
    let ok = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    assert!(ok >= 0, "F_SETFD: {}", std::io::Error::last_os_error());
    assert!(!cloexec(fd));
}

#[tokio::test]
async fn adopted_listener_is_made_close_on_exec_and_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sock");
    let std_listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    clear_cloexec(std_listener.as_raw_fd());
    let listener = UnixListener::from_listening_fd(OwnedFd::from(std_listener)).expect("adopt");
    assert!(cloexec(listener.as_raw_fd()), "FD_CLOEXEC must be set on the adopted descriptor");
    assert_eq!(listener.path(), None, "an adopted socket file is not this listener's to remove");

    let client = tokio::net::UnixStream::connect(&path);
    let (accepted, client) = tokio::join!(listener.accept(), client);
    let (_stream, cred) = accepted.expect("accept");
    client.expect("connect");
    assert_eq!(cred.uid(), ipc_transport_unix::current_uid());
    drop(listener);
    assert!(path.exists(), "the socket file is left where it was");
}

/// Adopting `fd` fails with `NotAListener` naming it and describing it with `found`.
#[track_caller]
fn assert_refused(fd: OwnedFd, found: &str) {
    let raw = fd.as_raw_fd();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _guard = rt.enter();
    let e = UnixListener::from_listening_fd(fd).expect_err("must be refused");
    assert!(
        matches!(&e, EndpointError::NotAListener { fd, passed_by: "the caller", .. } if *fd == raw),
        "{e:?}"
    );
    let text = e.to_string();
    let expected = format!(
        "descriptor {raw} passed by the caller is not a listening stream Unix socket: {found}"
    );
    assert_eq!(text, expected);
}

#[test]
fn regular_file_descriptor_is_refused_naming_the_descriptor() {
    let file = tempfile::tempfile().expect("tempfile");
    assert_refused(OwnedFd::from(file), "it is not a socket but a regular file");
}

#[test]
fn datagram_unix_socket_is_refused_naming_the_descriptor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dgram = UnixDatagram::bind(dir.path().join("d.sock")).expect("bind");
    assert_refused(OwnedFd::from(dgram), "it is a datagram socket");
}

#[test]
fn connected_unix_stream_is_refused_naming_the_descriptor() {
    let (a, _b) = UnixStream::pair().expect("pair");
    let found = if cfg!(any(target_os = "linux", target_os = "android", target_os = "freebsd")) {
        "it is a stream socket that is not listening"
    } else {
        return; // no SO_ACCEPTCONN check on this OS
    };
    assert_refused(OwnedFd::from(a), found);
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
#[test]
fn bound_but_not_listening_stream_socket_is_refused_naming_the_descriptor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    socket.bind(&SockAddr::unix(dir.path().join("b.sock")).expect("addr")).expect("bind");
    assert_refused(OwnedFd::from(socket), "it is a stream socket that is not listening");
}

#[test]
fn tcp_listener_is_refused_naming_the_descriptor() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp bind");
    assert_refused(OwnedFd::from(tcp), "it is an IPv4 socket");
}

#[test]
fn pipe_is_refused_naming_the_descriptor() {
    let (reader, _writer) = std::io::pipe().expect("pipe");
    assert_refused(OwnedFd::from(reader), "it is not a socket but a pipe");
}

#[tokio::test]
async fn adopted_std_listener_with_a_pending_client_is_served() {
    // A client queued before adoption is not lost.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.sock");
    let std_listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let _queued = UnixStream::connect(&path).expect("queued connect");
    let listener = UnixListener::from_listening_fd(OwnedFd::from(std_listener)).expect("adopt");
    tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("in time")
        .expect("accept");
}
