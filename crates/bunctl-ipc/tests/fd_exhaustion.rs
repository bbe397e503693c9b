//! A server out of file descriptors backs off instead of failing or spinning, and recovers as
//! soon as descriptors are free again. The server runs in a child process whose descriptor
//! limit is lowered, so the test process keeps its own.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bunctl_ipc::{IpcClient, IpcMessage, ServerOptions};
use common::*;

const SOCKET_VAR: &str = "BUNCTL_FD_TEST_SOCKET";

/// The child: a server allowed only a few more descriptors than it has at start.
#[test]
#[ignore = "helper run as a child process by accept_backs_off_when_descriptors_run_out"]
fn child_server_with_few_descriptors() {
    let Some(path) = std::env::var_os(SOCKET_VAR) else { return };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    rt.expect("runtime").block_on(async move {
        let server =
            bunctl_ipc::IpcServer::bind_with(&path, ServerOptions::new()).await.expect("bind");
        let open = std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64;
        let limit = libc::rlimit { rlim_cur: open + 12, rlim_max: open + 12 };
        // SAFETY: setrlimit reads a valid rlimit struct; lowering our own limit is always allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        println!("READY");
        let bus = bunctl_ipc::EventBus::new();
        let _ = bunctl_ipc::serve(server, bus, |msg: IpcMessage| async move {
            bunctl_ipc::IpcResponse::Success { message: serde_json::to_string(&msg).expect("json") }
        })
        .await;
    });
}

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_backs_off_when_descriptors_run_out_and_recovers() {
    let ep = fresh_endpoint();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_server_with_few_descriptors", "--ignored", "--nocapture"])
        .env(SOCKET_VAR, ep.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l == "READY")
    });
    assert!(within("child ready", ready).await.expect("reader"), "child did not start");

    // Far more clients than the child has descriptors for: the kernel queues them, the child
    // accepts until EMFILE.
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(raw_client(&ep).await);
    }
    let pid = child.id();
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_ticks(pid) - before;
    // A spinning accept loop burns ~100 ticks per second; backing off costs next to nothing.
    assert!(spent < 30, "server used {spent} ticks of CPU in 1 s while out of descriptors");

    // Free descriptors: the queued clients are accepted (and leave), and a newcomer is served.
    clients.clear();
    let reply = within("served after recovery", async {
        loop {
            if let Ok(mut c) = IpcClient::connect(ep.path()).await
                && let Ok(reply) = c.request(&IpcMessage::List).await
            {
                return reply;
            }
        }
    })
    .await;
    assert_eq!(reply, echoed(&IpcMessage::List));
    let _ = child.kill();
    let out = child.wait_with_output().expect("child output");
    let log = String::from_utf8_lossy(&out.stderr);
    // The scenario really happened: the child hit the limit and backed off.
    assert!(log.contains("backing off"), "no back-off logged by the child:\n{log}");
}
