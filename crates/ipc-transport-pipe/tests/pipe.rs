//! The named-pipe transport over real pipes (on Linux CI: Windows binaries under Wine).
#![cfg(windows)]

use std::future::{Future, poll_fn};
use std::os::windows::io::{AsRawHandle, RawHandle};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Poll;
use std::time::Duration;

use ipc_transport_pipe::{EndpointError, Step};
use ipc_transport_pipe::{
    IdentitySource, PipeListener, connect, current_user_sid, pipe_owner_sid,
    server_process_user_sid, server_user_sid, verify_server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::windows::named_pipe::{ClientOptions, ServerOptions};

/// A deadline for anything a test waits on, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A pipe name no other test (or test process) uses.
fn fresh_name() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!(r"\\.\pipe\bunctl-pipe-test-{}-{n}", std::process::id()))
}

/// Polls `fut` exactly once.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx))).await
}

#[tokio::test]
async fn bind_and_connect_meet_on_the_same_plain_name() {
    // A plain name, as `IpcServer::bind("app")` passes it; unique per process.
    let plain = format!("meet-{}", std::process::id());
    let mut listener = PipeListener::bind(&plain).expect("bind");
    assert_eq!(listener.name().to_string_lossy(), format!(r"\\.\pipe\bunctl_{plain}"));
    let mut client = connect(&plain, PATIENCE).await.expect("connect");
    let (mut server, _) = within("accept", listener.accept()).await.expect("accept");
    client.write_all(b"hi").await.expect("write");
    client.flush().await.expect("flush");
    let mut buf = [0; 2];
    server.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"hi");
}

#[tokio::test]
async fn second_server_on_same_name_is_rejected() {
    let name = fresh_name();
    let _first = PipeListener::bind(&name).expect("first bind");
    match PipeListener::bind(&name) {
        Err(EndpointError::AddrInUse { path: endpoint }) => assert_eq!(endpoint, name),
        other => panic!("expected AddrInUse, got {other:?}"),
    }
}

#[tokio::test]
async fn name_squatted_by_a_foreign_pipe_is_rejected_not_shared() {
    let name = fresh_name();
    // Someone else's pipe, created without FILE_FLAG_FIRST_PIPE_INSTANCE and open to more
    // instances: a server that merely added an instance would share it with the squatter.
    let _squatter = ServerOptions::new().create(&name).expect("squatter");
    let e = PipeListener::bind(&name).expect_err("must not join the squatter's pipe");
    assert!(matches!(e, EndpointError::AddrInUse { .. }), "{e}");
}

#[tokio::test]
async fn connecting_where_no_pipe_exists_is_not_running_and_names_the_pipe() {
    let name = fresh_name();
    match connect(&name, PATIENCE).await {
        Err(EndpointError::NotRunning { path: endpoint, source }) => {
            assert_eq!(endpoint, name);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected NotRunning, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_clients_are_all_served() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0; 8];
                conn.read_exact(&mut buf).await.expect("request");
                conn.write_all(&buf).await.expect("reply");
                conn.flush().await.expect("flush");
            });
        }
    });
    let clients: Vec<_> = (0..50u64)
        .map(|i| {
            let name = name.clone();
            tokio::spawn(async move {
                let mut c = connect(&name, PATIENCE).await.expect("connect");
                c.write_all(&i.to_le_bytes()).await.expect("write");
                c.flush().await.expect("flush");
                let mut buf = [0; 8];
                c.read_exact(&mut buf).await.expect("reply");
                assert_eq!(u64::from_le_bytes(buf), i);
            })
        })
        .collect();
    for c in clients {
        within("client", c).await.expect("client task");
    }
}

#[tokio::test]
async fn busy_pipe_is_retried_until_an_instance_is_free() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    // The one waiting instance is taken by a first client; nothing has been accepted yet, so
    // there is no second instance: the pipe is busy.
    let first = connect(&name, PATIENCE).await.expect("first client");
    let busy = ClientOptions::new().open(&name).expect_err("every instance is taken");
    assert_eq!(busy.raw_os_error(), Some(windows_sys::Win32::Foundation::ERROR_PIPE_BUSY as i32));

    let mut second = pin!(connect(&name, PATIENCE));
    // Its first attempt meets the busy pipe: it must wait, not fail.
    assert!(poll_once(&mut second).await.is_pending(), "a busy pipe must be retried");
    // Accepting the first client puts up the next instance, which the retry finds.
    let (_first_conn, _) = within("accept first", listener.accept()).await.expect("accept");
    let (second, accepted) =
        within("second", async { tokio::join!(second, listener.accept()) }).await;
    second.expect("second client connects once an instance is free");
    accepted.expect("accept second");
    drop(first);
}

#[tokio::test]
async fn busy_pipe_times_out_as_a_connect_timeout() {
    let name = fresh_name();
    let _listener = PipeListener::bind(&name).expect("bind");
    let _only_instance = connect(&name, PATIENCE).await.expect("first client");
    let after = Duration::from_millis(100);
    match within("connect", connect(&name, after)).await {
        Err(EndpointError::ConnectTimeout { after: a, .. }) => assert_eq!(a, after),
        other => panic!("expected a connect timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn reply_then_immediate_drop_is_not_lost() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let mut client = connect(&name, PATIENCE).await.expect("connect");
    let (mut server, _) = within("accept", listener.accept()).await.expect("accept");
    client.write_all(b"request").await.expect("request");
    client.flush().await.expect("flush");
    let mut req = [0; 7];
    server.read_exact(&mut req).await.expect("read request");

    // The reply is written and the server is gone — connection and listener — before the
    // client reads a single byte.
    server.write_all(b"reply").await.expect("reply");
    server.flush().await.expect("flush");
    drop(server);
    drop(listener);

    let mut got = Vec::new();
    within("read", client.read_to_end(&mut got)).await.expect("reply, then end of stream");
    assert_eq!(got, b"reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_larger_than_the_pipe_buffer_then_drop_is_not_lost() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let mut client = connect(&name, PATIENCE).await.expect("connect");
    let (mut server, _) = within("accept", listener.accept()).await.expect("accept");
    let reply: Vec<u8> = (0..4u32 << 20).map(|i| i as u8).collect();
    let sent = reply.clone();
    let srv = tokio::spawn(async move {
        server.write_all(&sent).await.expect("reply");
        server.flush().await.expect("flush");
        drop(server);
    });
    let mut got = Vec::new();
    within("read", client.read_to_end(&mut got)).await.expect("whole reply");
    assert!(got == reply, "got {} of {} bytes, or wrong bytes", got.len(), reply.len());
    srv.await.expect("server");
}

#[tokio::test]
async fn flush_waits_until_the_pipe_has_taken_every_byte() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let mut client = connect(&name, PATIENCE).await.expect("connect");
    let (mut server, _) = within("accept", listener.accept()).await.expect("accept");
    // More than the pipe's 64 KiB buffer: the write cannot complete until the server reads.
    let data = vec![7u8; 1 << 20];
    client.write_all(&data).await.expect("write is accepted in the background");
    {
        let mut flush = pin!(client.flush());
        assert!(poll_once(&mut flush).await.is_pending(), "flush returned with bytes in flight");
        let mut got = vec![0; data.len()];
        let (flushed, read) =
            within("drain", async { tokio::join!(flush, server.read_exact(&mut got)) }).await;
        flushed.expect("flush completes once the server has read");
        read.expect("read");
        assert!(got == data);
    }
}

#[tokio::test]
async fn both_ends_know_the_other_process() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let client = connect(&name, PATIENCE).await.expect("connect");
    let (server, pid) = within("accept", listener.accept()).await.expect("accept");
    assert_eq!(pid, Some(std::process::id()));
    assert_eq!(server.peer_pid().expect("client pid"), std::process::id());
    assert_eq!(client.peer_pid().expect("server pid"), std::process::id());
}

/// Environment of a child process run by [`spawn_child`]: the pipe, and what to do on it.
const CHILD_PIPE: &str = "BUNCTL_PIPE_TEST_CHILD_PIPE";
const CHILD_ROLE: &str = "BUNCTL_PIPE_TEST_CHILD_ROLE";
const CHILD_BYTES: usize = 1 << 20;
const REPLY: &[u8] = b"reply";

/// Runs this test executable again as a client of `name`, in the role `role` of
/// [`child_process`].
fn spawn_child(name: &PathBuf, role: &str) -> std::process::Child {
    let exe = std::env::current_exe().expect("test executable");
    std::process::Command::new(exe)
        .args(["--exact", "child_process", "--ignored", "--nocapture"])
        .env(CHILD_PIPE, name)
        .env(CHILD_ROLE, role)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn child")
}

async fn wait_success(mut child: std::process::Child) {
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join");
    assert!(status.expect("child status").success(), "the child process failed");
}

#[tokio::test]
async fn bytes_written_just_before_the_writer_process_exits_are_not_lost() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let child = spawn_child(&name, "write-and-exit");
    let (mut conn, pid) = within("accept", listener.accept()).await.expect("accept");
    assert_eq!(pid, Some(child.id()), "the server sees the child's process id");
    let mut got = Vec::new();
    within("read", conn.read_to_end(&mut got)).await.expect("read until the child is gone");
    assert_eq!(got.len(), CHILD_BYTES, "bytes lost when the writer exited");
    assert!(got.iter().enumerate().all(|(i, &b)| b == i as u8));
    wait_success(child).await;
}

#[tokio::test]
async fn client_that_reads_its_reply_and_leaves_does_not_fail_the_reply() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let child = spawn_child(&name, "read-reply-and-exit");
    let (mut conn, _) = within("accept", listener.accept()).await.expect("accept");
    conn.write_all(REPLY).await.expect("reply");
    // The client has read the reply and its process is gone before the flush looks.
    wait_success(child).await;
    within("flush", conn.flush()).await.expect("a delivered reply is not a failed flush");
    let mut rest = Vec::new();
    let end = within("read", conn.read_to_end(&mut rest)).await;
    assert!(rest.is_empty() && end.is_ok(), "the departure shows as end of stream: {end:?}");
}

/// Run as a child process by the tests above, as a client of the pipe in `CHILD_PIPE`:
/// `write-and-exit` writes more than the pipe buffer holds, flushes and exits the process at
/// once, dropping nothing; `read-reply-and-exit` reads [`REPLY`] and exits.
#[test]
#[ignore = "helper process of the tests that need a peer process to exit"]
fn child_process() {
    let (Some(name), Some(role)) = (std::env::var_os(CHILD_PIPE), std::env::var(CHILD_ROLE).ok())
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    rt.block_on(async {
        let mut c = connect(&name, PATIENCE).await.expect("child connect");
        match role.as_str() {
            "write-and-exit" => {
                let data: Vec<u8> = (0..CHILD_BYTES).map(|i| i as u8).collect();
                c.write_all(&data).await.expect("child write");
                c.flush().await.expect("child flush");
            }
            "read-reply-and-exit" => {
                let mut buf = [0; REPLY.len()];
                c.read_exact(&mut buf).await.expect("child read");
                assert_eq!(buf, REPLY);
            }
            other => panic!("unknown child role {other}"),
        }
        std::process::exit(0);
    })
}

/// The (type, SID) of every entry of the DACL of the object behind `handle`, read back with
/// `GetSecurityInfo`.
fn dacl_entries(handle: RawHandle) -> Vec<(u8, String)> {
    use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, GetSecurityInfo, SE_KERNEL_OBJECT,
    };
    use windows_sys::Win32::Security::{
        ACCESS_ALLOWED_ACE, ACL, DACL_SECURITY_INFORMATION, GetAce, PSECURITY_DESCRIPTOR,
    };

    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `handle` is an open pipe handle; the out-pointers are valid; only the DACL is
    // requested. `sd` owns the returned memory and is freed below.
    let rc = unsafe {
        GetSecurityInfo(
            handle,
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    assert_eq!(rc, ERROR_SUCCESS, "GetSecurityInfo");
    assert!(!dacl.is_null(), "the pipe has a DACL (a null DACL would admit everyone)");
    let mut entries = Vec::new();
    // SAFETY: `dacl` points into `sd`, alive until the LocalFree below.
    let count = unsafe { (*dacl).AceCount };
    for i in 0..u32::from(count) {
        let mut ace = std::ptr::null_mut();
        // SAFETY: `i` is below the ACL's entry count.
        assert_ne!(unsafe { GetAce(dacl, i, &mut ace) }, 0, "GetAce");
        let ace = ace.cast::<ACCESS_ALLOWED_ACE>();
        // SAFETY: every ACE starts with its header; for the allow/deny types checked by the
        // caller the SID starts at `SidStart`.
        let (kind, sid) = unsafe { ((*ace).Header.AceType, (&raw mut (*ace).SidStart).cast()) };
        let mut wide = std::ptr::null_mut();
        // SAFETY: `sid` is the entry's SID; `wide` receives a LocalAlloc'ed string.
        assert_ne!(unsafe { ConvertSidToStringSidW(sid, &mut wide) }, 0, "SID to string");
        // SAFETY: NUL-terminated string from ConvertSidToStringSidW, freed right after.
        let text = unsafe {
            let len = (0..).take_while(|&i| *wide.add(i) != 0).count();
            let s = String::from_utf16_lossy(std::slice::from_raw_parts(wide, len));
            LocalFree(wide.cast());
            s
        };
        entries.push((kind, text));
    }
    // SAFETY: allocated by GetSecurityInfo for the caller to free; nothing points into it now.
    unsafe { LocalFree(sd) };
    entries
}

#[tokio::test]
async fn pipe_dacl_admits_only_the_current_user_and_system() {
    use windows_sys::Win32::System::SystemServices::ACCESS_ALLOWED_ACE_TYPE;

    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let client = connect(&name, PATIENCE).await.expect("connect");
    let (server, _) = within("accept", listener.accept()).await.expect("accept");
    let me = current_user_sid().expect("user SID");
    // Wine stores and reports the DACL but does not enforce it, so this checks that the
    // descriptor is applied — as seen from both ends — not that other users are refused.
    for (end, handle) in [("server", server.as_raw_handle()), ("client", client.as_raw_handle())] {
        let mut entries = dacl_entries(handle);
        entries.sort();
        let allow = ACCESS_ALLOWED_ACE_TYPE as u8;
        let mut expected = vec![(allow, me.clone()), (allow, "S-1-5-18".to_owned())];
        expected.sort();
        assert_eq!(entries, expected, "{end} end: DACL must be the current user and SYSTEM only");
    }
}

#[tokio::test]
async fn server_process_sid_lookup_finds_the_current_user() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let client = connect(&name, PATIENCE).await.expect("connect");
    let _server = within("accept", listener.accept()).await.expect("accept");
    let me = current_user_sid().expect("user SID");
    assert_eq!(server_process_user_sid(&client).expect("server process token"), me);
    assert_eq!(server_user_sid(&client).expect("lookup"), (me, IdentitySource::ProcessToken));
}

#[tokio::test]
async fn pipe_owner_is_the_current_user() {
    // The fallback when the server process cannot be opened: bunctl sets the pipe's owner to
    // its user explicitly, so the owner names the server's user.
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let client = connect(&name, PATIENCE).await.expect("connect");
    let _server = within("accept", listener.accept()).await.expect("accept");
    assert_eq!(pipe_owner_sid(&client).expect("owner"), current_user_sid().expect("user SID"));
}

#[tokio::test]
async fn server_of_the_current_user_passes_verification() {
    let name = fresh_name();
    let mut listener = PipeListener::bind(&name).expect("bind");
    let client = connect(&name, PATIENCE).await.expect("connect");
    let _server = within("accept", listener.accept()).await.expect("accept");
    verify_server(&client, &name).expect("same user");
}

#[tokio::test]
async fn pipe_name_too_long_to_create_names_the_pipe_and_step() {
    // Windows limits pipe names to 256 characters; the name is refused by CreateNamedPipeW.
    let long = PathBuf::from(format!(r"\\.\pipe\{}", "x".repeat(300)));
    match PipeListener::bind(&long) {
        Err(EndpointError::Io { path: endpoint, step, .. }) => {
            assert_eq!(endpoint, long);
            assert_eq!(step, Step::CreatePipe);
        }
        Err(other) => panic!("expected an Endpoint error, got {other:?}"),
        Ok(_) => panic!("a 300-character pipe name must be refused"),
    }
}
