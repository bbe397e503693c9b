//! The reference daemon end to end: a real socket, real child processes, real events.
//! Every wait is on a reply, an event or a process, under a deadline; nothing sleeps.
//! Most tests need `sh` and signals, hence Unix only; helpers they share stay unused elsewhere.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bunctl_ipc::event_types::{LOG_LINE, PROCESS_EXITED, PROCESS_STARTED, STATUS_CHANGE};
use bunctl_ipc::{
    BusOptions, Event, EventBus, Follow, IpcClient, IpcError, IpcMessage, IpcResponse, IpcServer,
    SubscriptionType,
};
use bunctl_ipc_daemon::{Daemon, DaemonOptions};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PATIENCE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A daemon serving a fresh socket in this process.
struct Running {
    _dir: TempDir,
    path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), IpcError>>,
}

impl Running {
    async fn start(options: DaemonOptions) -> Running {
        Self::start_on(EventBus::new(), options).await
    }

    async fn start_on(bus: EventBus, options: DaemonOptions) -> Running {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tempfile::tempdir().expect("temp dir");
        // On Windows a path names the pipe `bunctl_<file name>`: give each daemon its own.
        let path = if cfg!(windows) {
            PathBuf::from(format!(r"\\.\pipe\bunctl-daemon-{}-{n}", std::process::id()))
        } else {
            dir.path().join("daemon.sock")
        };
        let server = IpcServer::bind(&path).await.expect("bind");
        let daemon = Daemon::with_options(bus, options);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            daemon
                .serve(server, async {
                    let _ = rx.await;
                })
                .await
        });
        Running { _dir: dir, path, shutdown: Some(tx), task }
    }

    async fn client(&self) -> IpcClient {
        within("connect", IpcClient::connect(&self.path)).await.expect("connect")
    }

    /// Shuts the daemon down and waits until it has finished.
    async fn stop(mut self) -> Result<(), IpcError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        within("daemon shutdown", &mut self.task).await.expect("daemon task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn call(client: &mut IpcClient, message: IpcMessage) -> IpcResponse {
    within("a reply", client.request(&message)).await.expect("reply")
}

fn start(name: &str, command: &str, args: &[&str]) -> IpcMessage {
    IpcMessage::Start {
        name: name.into(),
        config: json!({ "command": command, "args": args }).to_string(),
    }
}

fn data(reply: IpcResponse) -> Value {
    match reply {
        IpcResponse::Data { data } => data,
        other => panic!("expected Data, got {other:?}"),
    }
}

fn error_message(reply: IpcResponse) -> String {
    match reply {
        IpcResponse::Error { message } => message,
        other => panic!("expected Error, got {other:?}"),
    }
}

fn assert_success(reply: IpcResponse) -> String {
    match reply {
        IpcResponse::Success { message } => message,
        other => panic!("expected Success, got {other:?}"),
    }
}

/// The next event, without its position (what these tests compare is the daemon's part).
async fn next_event(client: &mut IpcClient) -> Event {
    within("an event", client.next_event()).await.expect("event").with_seq(None)
}

/// Events up to and including the first of `event_type`.
async fn events_until(client: &mut IpcClient, event_type: &str) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let event = next_event(client).await;
        let last = event.event_type == event_type;
        events.push(event);
        if last {
            return events;
        }
    }
}

/// Waits until process `pid` has exited, for at most `PATIENCE`; false if it is still there.
///
/// On Unix a killed orphan stays a zombie until init reaps it, and some inits (in containers)
/// never do: a zombie counts as gone.
#[cfg(unix)]
async fn gone(pid: u64) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut pause = Duration::from_millis(1);
    loop {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        });
        if !is_alive(pid) || zombie {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        // Nothing tells a test when an unrelated process exits: retry, under the deadline.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Waits until process `pid` has exited, for at most `PATIENCE`; false if it is still there.
#[cfg(windows)]
async fn gone(pid: u64) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, WAIT_OBJECT_0};
    use windows_sys::Win32::System::Threading::{
        OpenProcess, PROCESS_SYNCHRONIZE, WaitForSingleObject,
    };
    let pid = u32::try_from(pid).expect("pid");
    tokio::task::spawn_blocking(move || {
        // SAFETY: plain arguments; the handle is checked, and closed once used.
        let process = unsafe { OpenProcess(PROCESS_SYNCHRONIZE, 0, pid) };
        if process.is_null() {
            return true; // no such process any more
        }
        let millis = u32::try_from(PATIENCE.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: `process` is an open handle with SYNCHRONIZE access.
        let exited = unsafe { WaitForSingleObject(process, millis) } == WAIT_OBJECT_0;
        // SAFETY: closed once, here.
        unsafe { CloseHandle(process) };
        exited
    })
    .await
    .expect("the wait")
}

/// The pid in the line `PREFIX PID` the app prints.
async fn printed_pid(client: &mut IpcClient, app: &str, prefix: &str) -> u64 {
    loop {
        let event = next_event(client).await;
        if event.event_type == LOG_LINE
            && event.data["app"] == app
            && let Some(pid) = event.data["line"].as_str().and_then(|l| l.strip_prefix(prefix))
        {
            return pid.trim().parse().expect("a pid");
        }
    }
}

/// `Start` of `sh -c SCRIPT`.
#[cfg(unix)]
fn sh(name: &str, script: &str) -> IpcMessage {
    start(name, "sh", &["-c", script])
}

#[cfg(unix)]
fn is_alive(pid: u64) -> bool {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_output_and_exit_arrive_as_events_and_stay_in_logs_and_status() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client
        .subscribe(SubscriptionType::AllEvents { app_name: Some("t".into()) })
        .await
        .expect("sub");
    let reply = call(&mut client, start("t", "sh", &["-c", "echo one; echo two >&2"])).await;
    assert!(assert_success(reply).starts_with("Started t (pid "));

    let events = events_until(&mut client, PROCESS_EXITED).await;
    assert_eq!(events[0].event_type, PROCESS_STARTED, "{events:?}");
    assert_eq!(events[0].app(), Some("t"));
    assert!(events[0].data["pid"].as_u64().is_some_and(|pid| pid > 0));
    assert_eq!(events[1], Event::new(STATUS_CHANGE, json!({"app": "t", "state": "running"})));
    let mut lines: Vec<Value> =
        events.iter().filter(|e| e.event_type == LOG_LINE).map(|e| e.data.clone()).collect();
    lines.sort_by_key(|l| l["line"].as_str().map(str::to_owned));
    assert_eq!(
        lines,
        [
            json!({"app": "t", "stream": "stdout", "line": "one"}),
            json!({"app": "t", "stream": "stderr", "line": "two"}),
        ]
    );
    assert_eq!(
        events.last().map(|e| e.data.clone()),
        Some(json!({"app": "t", "exit_code": 0, "signal": null}))
    );
    assert_eq!(events.len(), 5, "started, running, two lines, exited: {events:?}");
    assert_eq!(
        next_event(&mut client).await,
        Event::new(STATUS_CHANGE, json!({"app": "t", "state": "exited"}))
    );

    let mut logs =
        data(call(&mut client, IpcMessage::Logs { name: Some("t".into()), lines: 10 }).await);
    let logs = logs.as_array_mut().expect("array");
    logs.sort_by_key(|l| l["line"].as_str().map(str::to_owned));
    // The same lines, each with its position besides.
    for log in logs.iter_mut() {
        let seq = log.as_object_mut().and_then(|l| l.remove("seq"));
        assert!(seq.is_some_and(|s| s.as_u64().is_some()), "{log}: a position");
    }
    assert_eq!(logs.as_slice(), lines.as_slice());

    let status = data(call(&mut client, IpcMessage::Status { name: Some("t".into()) }).await);
    assert_eq!(
        status,
        json!({"name": "t", "state": "exited", "pid": null, "restarts": 0, "exit_code": 0, "signal": null})
    );
    assert!(daemon.stop().await.is_ok());
}

#[cfg(unix)]
#[tokio::test]
async fn nonzero_exit_code_is_reported() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::StatusEvents { app_name: None }).await.expect("sub");
    assert_success(call(&mut client, start("t", "sh", &["-c", "exit 3"])).await);
    let exited = events_until(&mut client, PROCESS_EXITED).await.pop().expect("event");
    assert_eq!(exited.data, json!({"app": "t", "exit_code": 3, "signal": null}));
    let status = data(call(&mut client, IpcMessage::Status { name: None }).await);
    assert_eq!(status[0]["exit_code"], 3);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_terminates_a_running_app_with_sigterm() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    assert_success(call(&mut client, start("t", "sleep", &["30"])).await);
    let pid = data(call(&mut client, IpcMessage::Status { name: Some("t".into()) }).await)["pid"]
        .as_u64()
        .expect("pid");
    assert!(is_alive(pid));
    client
        .subscribe(SubscriptionType::StatusEvents { app_name: Some("t".into()) })
        .await
        .expect("sub");

    assert_eq!(
        assert_success(call(&mut client, IpcMessage::Stop { name: "t".into() }).await),
        "Stopped t"
    );
    assert!(!is_alive(pid), "the process is gone when Stop replies");
    // The reply came after these events (the request held them back for us).
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_event(&mut client).await.data);
    }
    assert_eq!(
        seen,
        [
            json!({"app": "t", "state": "stopping"}),
            json!({"app": "t", "exit_code": null, "signal": libc::SIGTERM}),
            json!({"app": "t", "state": "stopped"}),
        ]
    );
    let status = data(call(&mut client, IpcMessage::Status { name: Some("t".into()) }).await);
    assert_eq!(status["state"], "stopped");
    assert_eq!(status["pid"], Value::Null);
    // Stopping again is harmless.
    assert_eq!(
        assert_success(call(&mut client, IpcMessage::Stop { name: "t".into() }).await),
        "t is not running"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_to_sigkill_after_the_grace_period() {
    let daemon =
        Running::start(DaemonOptions::new().with_stop_grace(Duration::from_millis(200))).await;
    let mut client = daemon.client().await;
    client
        .subscribe(SubscriptionType::AllEvents { app_name: Some("t".into()) })
        .await
        .expect("sub");
    // SIGTERM is ignored (and stays ignored across exec) once "ready" is printed.
    let stubborn = start("t", "sh", &["-c", "trap '' TERM; echo ready; exec sleep 30"]);
    assert_success(call(&mut client, stubborn).await);
    loop {
        let event = next_event(&mut client).await;
        if event.event_type == LOG_LINE && event.data["line"] == "ready" {
            break;
        }
    }
    assert_success(call(&mut client, IpcMessage::Stop { name: "t".into() }).await);
    let exited = events_until(&mut client, PROCESS_EXITED).await.pop().expect("event");
    assert_eq!(exited.data["signal"], libc::SIGKILL);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_spawns_a_new_process_and_delete_forgets_the_app() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    assert_success(call(&mut client, start("t", "sleep", &["30"])).await);
    let status = || IpcMessage::Status { name: Some("t".into()) };
    let first = data(call(&mut client, status()).await)["pid"].as_u64().expect("pid");

    let reply = assert_success(call(&mut client, IpcMessage::Restart { name: "t".into() }).await);
    assert!(reply.starts_with("Restarted t (pid "), "{reply}");
    let after = data(call(&mut client, status()).await);
    let second = after["pid"].as_u64().expect("pid");
    assert_ne!(first, second);
    assert!(!is_alive(first) && is_alive(second));
    assert_eq!(after["restarts"], 1);
    assert_eq!(after["state"], "running");

    assert_eq!(data(call(&mut client, IpcMessage::List).await), json!(["t"]));
    assert_eq!(
        assert_success(call(&mut client, IpcMessage::Delete { name: "t".into() }).await),
        "Deleted t"
    );
    assert!(!is_alive(second));
    assert_eq!(data(call(&mut client, IpcMessage::List).await), json!([]));
    assert_eq!(error_message(call(&mut client, status()).await), "unknown app: t");
}

/// The environment variable that turns this test executable into an app (see [`test_app`]).
const ROLE: &str = "BUNCTL_DAEMON_TEST_ROLE";

/// Not a test: when [`ROLE`] is set, this executable, run as `EXE test_app --exact
/// --nocapture`, is an app for the daemon to supervise, the same on every platform (no shell
/// needed). Roles: `hello` prints a line on each stream and exits 0; `fail` exits 2; `wait`
/// blocks forever; `parent` starts a `wait` child of its own, prints `grandchild PID`, then
/// blocks forever.
#[test]
fn test_app() {
    let Ok(role) = std::env::var(ROLE) else { return };
    match role.as_str() {
        "hello" => {
            println!("hello from the test app");
            eprintln!("a line on stderr");
            std::process::exit(0);
        }
        "fail" => std::process::exit(2),
        "wait" => {}
        "parent" => {
            // So that the grandchild cannot start before the daemon has put this app in a job.
            #[cfg(windows)]
            wait_until_in_a_job();
            let child = std::process::Command::new(std::env::current_exe().expect("exe"))
                .args(test_app_args())
                .env(ROLE, "wait")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn the grandchild");
            println!("grandchild {}", child.id());
            std::mem::forget(child);
        }
        other => panic!("unknown {ROLE}: {other}"),
    }
    loop {
        std::thread::park();
    }
}

/// Returns once this process is in a job (or after `PATIENCE`).
#[cfg(windows)]
fn wait_until_in_a_job() {
    use windows_sys::Win32::System::JobObjects::IsProcessInJob;
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut in_job = 0;
        // SAFETY: this process's pseudo-handle; a null job handle asks about any job.
        let ok = unsafe { IsProcessInJob(GetCurrentProcess(), std::ptr::null_mut(), &mut in_job) };
        if ok == 0 || in_job != 0 || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::yield_now();
    }
}

fn test_app_args() -> [&'static str; 3] {
    ["test_app", "--exact", "--nocapture"]
}

/// `Start` of this executable as an app in `role` (see [`test_app`]).
fn start_test_app(name: &str, role: &str) -> IpcMessage {
    let exe = std::env::current_exe().expect("exe");
    IpcMessage::Start {
        name: name.into(),
        config: json!({ "command": exe, "args": test_app_args(), "env": { ROLE: role } })
            .to_string(),
    }
}

/// The lifecycle on every platform, with no shell: this test executable is the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_start_print_exit_and_stop_on_every_platform() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("sub");

    assert_success(call(&mut client, start_test_app("hello", "hello")).await);
    let events = events_until(&mut client, PROCESS_EXITED).await;
    let line = |stream: &str, line: &str| {
        Event::new(LOG_LINE, json!({"app": "hello", "stream": stream, "line": line}))
    };
    assert!(events.contains(&line("stdout", "hello from the test app")), "{events:?}");
    assert!(events.contains(&line("stderr", "a line on stderr")), "{events:?}");
    assert_eq!(events.last().map(|e| e.data["exit_code"].clone()), Some(json!(0)));

    assert_success(call(&mut client, start_test_app("bad", "fail")).await);
    let events = events_until(&mut client, PROCESS_EXITED).await;
    assert_eq!(events.last().map(|e| e.data["exit_code"].clone()), Some(json!(2)));

    assert_success(call(&mut client, start_test_app("long", "wait")).await);
    let status = data(call(&mut client, IpcMessage::Status { name: Some("long".into()) }).await);
    assert_eq!(status["state"], "running");
    assert_eq!(
        assert_success(call(&mut client, IpcMessage::Stop { name: "long".into() }).await),
        "Stopped long"
    );
    let status = data(call(&mut client, IpcMessage::Status { name: Some("long".into()) }).await);
    assert_eq!(status["state"], "stopped");
    assert_eq!(status["pid"], Value::Null);
    assert!(daemon.stop().await.is_ok());
}

#[tokio::test]
async fn bad_requests_get_error_replies_that_name_the_problem() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    for request in [
        IpcMessage::Stop { name: "ghost".into() },
        IpcMessage::Restart { name: "ghost".into() },
        IpcMessage::Delete { name: "ghost".into() },
        IpcMessage::Status { name: Some("ghost".into()) },
        IpcMessage::Logs { name: Some("ghost".into()), lines: 5 },
    ] {
        assert_eq!(error_message(call(&mut client, request).await), "unknown app: ghost");
    }
    let bad_config = |config: &str| IpcMessage::Start { name: "web".into(), config: config.into() };
    let message = error_message(call(&mut client, bad_config("not json")).await);
    assert!(message.starts_with("invalid config for web: expected"), "{message}");
    let message = error_message(call(&mut client, bad_config(r#"{"args":[]}"#)).await);
    assert!(message.contains("missing field `command`"), "{message}");
    let message = error_message(call(&mut client, bad_config(r#"{"command":"x","arg":[]}"#)).await);
    assert!(message.contains("unknown field `arg`"), "{message}");
    let message = error_message(call(&mut client, bad_config(r#"{"command":""}"#)).await);
    assert!(message.contains("`command` must not be empty"), "{message}");

    let missing = start("web", "/nonexistent/bunctl-test-binary", &[]);
    let message = error_message(call(&mut client, missing).await);
    assert!(message.starts_with("failed to start web: cannot run"), "{message}");
    assert_eq!(
        data(call(&mut client, IpcMessage::List).await),
        json!([]),
        "a failed start leaves no app"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn duplicate_names_are_refused() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    assert_success(call(&mut client, start("web", "sleep", &["30"])).await);
    let message = error_message(call(&mut client, start("web", "sleep", &["30"])).await);
    assert_eq!(message, "app web already exists (Restart it, or Delete it first)");
    assert!(daemon.stop().await.is_ok());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_keep_the_last_lines_of_each_app_and_merge_apps_in_output_order() {
    let bus = EventBus::with_options(BusOptions::new().with_retained_events(5));
    let daemon = Running::start_on(bus, DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::StatusEvents { app_name: None }).await.expect("sub");
    assert_success(
        call(&mut client, start("a", "sh", &["-c", "for i in 1 2 3 4 5 6 7 8; do echo a$i; done"]))
            .await,
    );
    events_until(&mut client, PROCESS_EXITED).await;
    assert_success(call(&mut client, start("b", "sh", &["-c", "echo b1; echo b2"])).await);
    events_until(&mut client, PROCESS_EXITED).await;

    let lines = |reply: IpcResponse| -> Vec<String> {
        data(reply)
            .as_array()
            .expect("array")
            .iter()
            .map(|l| {
                format!(
                    "{}:{}",
                    l["app"].as_str().unwrap_or("?"),
                    l["line"].as_str().unwrap_or("?")
                )
            })
            .collect()
    };
    let a = |n| IpcMessage::Logs { name: Some("a".into()), lines: n };
    assert_eq!(lines(call(&mut client, a(3)).await), ["a:a6", "a:a7", "a:a8"]);
    assert_eq!(lines(call(&mut client, a(100)).await), ["a:a4", "a:a5", "a:a6", "a:a7", "a:a8"]);
    assert_eq!(lines(call(&mut client, a(0)).await), Vec::<String>::new());
    assert_eq!(
        lines(call(&mut client, IpcMessage::Logs { name: None, lines: 4 }).await),
        ["a:a7", "a:a8", "b:b1", "b:b2"]
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_follow_history_are_one_store_and_lines_carry_their_positions() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::StatusEvents { app_name: None }).await.expect("sub");
    let script = "for i in 1 2 3 4 5 6; do echo a$i; done";
    assert_success(call(&mut client, start("a", "sh", &["-c", script])).await);
    events_until(&mut client, PROCESS_EXITED).await;

    let logs = data(call(&mut client, IpcMessage::Logs { name: Some("a".into()), lines: 4 }).await);
    let from_logs: Vec<(u64, String)> = logs
        .as_array()
        .expect("array")
        .iter()
        .map(|l| (l["seq"].as_u64().expect("seq"), l["line"].as_str().expect("line").to_owned()))
        .collect();
    let mut follower = daemon.client().await;
    let logs_of_a = SubscriptionType::LogEvents { app_name: Some("a".into()) };
    within("follow", follower.follow(Follow::history(logs_of_a, 4))).await.expect("follow");
    let mut from_follow = Vec::new();
    for _ in 0..4 {
        let event = within("event", follower.next_event()).await.expect("event");
        from_follow
            .push((event.seq().expect("seq"), event.data["line"].as_str().expect("l").into()));
    }
    assert_eq!(from_logs, from_follow);
    assert_eq!(
        from_logs.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
        ["a3", "a4", "a5", "a6"]
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_created_again_under_an_old_name_has_none_of_the_old_ones_lines() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::StatusEvents { app_name: None }).await.expect("sub");
    assert_success(call(&mut client, start("a", "sh", &["-c", "echo old"])).await);
    events_until(&mut client, PROCESS_EXITED).await;
    assert_success(call(&mut client, IpcMessage::Delete { name: "a".into() }).await);
    assert_success(call(&mut client, start("a", "sh", &["-c", "echo new"])).await);
    events_until(&mut client, PROCESS_EXITED).await;
    let logs =
        data(call(&mut client, IpcMessage::Logs { name: Some("a".into()), lines: 10 }).await);
    let lines: Vec<&str> =
        logs.as_array().expect("array").iter().filter_map(|l| l["line"].as_str()).collect();
    assert_eq!(lines, ["new"]);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_app_and_removes_the_socket() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    assert_success(call(&mut client, start("a", "sleep", &["30"])).await);
    assert_success(call(&mut client, start("b", "sleep", &["30"])).await);
    let status = data(call(&mut client, IpcMessage::Status { name: None }).await);
    let pids: Vec<u64> =
        status.as_array().expect("array").iter().map(|s| s["pid"].as_u64().expect("pid")).collect();
    assert!(pids.iter().all(|&pid| is_alive(pid)));
    let path = daemon.path.clone();

    assert!(daemon.stop().await.is_ok());
    assert!(!path.exists(), "socket removed");
    assert!(pids.iter().all(|&pid| !is_alive(pid)), "apps stopped");
    let err = within("close", client.recv()).await.expect_err("connection closed");
    assert!(err.is_disconnect(), "{err:?}");
}

/// Stop ends the grandchildren too, on every platform: the app (this test executable) starts
/// a child of its own, which Stop must end along with it (Unix: the process group; Windows:
/// the job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_apps_grandchildren_on_every_platform() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("sub");
    assert_success(call(&mut client, start_test_app("tree", "parent")).await);
    let grandchild = printed_pid(&mut client, "tree", "grandchild ").await;
    assert_eq!(
        assert_success(call(&mut client, IpcMessage::Stop { name: "tree".into() }).await),
        "Stopped tree"
    );
    assert!(gone(grandchild).await, "grandchild {grandchild} outlived Stop");
    assert!(daemon.stop().await.is_ok());
}

/// The grace period is the main process's: a grandchild that ignores SIGTERM is killed once
/// the main process has exited, and Stop replies after that.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_a_grandchild_that_ignores_sigterm() {
    let daemon =
        Running::start(DaemonOptions::new().with_stop_grace(Duration::from_secs(10))).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("sub");
    let script = "(trap '' TERM; exec sleep 300) & echo \"grandchild $!\"; wait";
    assert_success(call(&mut client, sh("t", script)).await);
    let grandchild = printed_pid(&mut client, "t", "grandchild ").await;
    assert!(is_alive(grandchild));
    let began = tokio::time::Instant::now();
    assert_success(call(&mut client, IpcMessage::Stop { name: "t".into() }).await);
    assert!(gone(grandchild).await, "grandchild {grandchild} outlived Stop");
    assert!(began.elapsed() < Duration::from_secs(10), "no wait for the grace period");
    let exited = events_until(&mut client, PROCESS_EXITED).await.pop().expect("event");
    assert_eq!(exited.data["signal"], libc::SIGTERM, "the main process obeyed SIGTERM");
}

/// An app whose main process exits leaves nothing behind: its leftovers are stopped before
/// `process_exited` is published.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_exits_leaves_no_process_behind() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("sub");
    assert_success(call(&mut client, sh("t", "sleep 300 & echo \"grandchild $!\"")).await);
    let grandchild = printed_pid(&mut client, "t", "grandchild ").await;
    let exited = events_until(&mut client, PROCESS_EXITED).await.pop().expect("event");
    assert_eq!(exited.data["exit_code"], 0);
    assert!(gone(grandchild).await, "grandchild {grandchild} outlived its app");
    assert!(daemon.stop().await.is_ok());
}

/// The daemon's shutdown ends every app's whole process group, not only the main processes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_apps_process_group() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("sub");
    let script = "sleep 300 & echo \"grandchild $!\"; wait";
    assert_success(call(&mut client, sh("a", script)).await);
    let a = printed_pid(&mut client, "a", "grandchild ").await;
    assert_success(call(&mut client, sh("b", script)).await);
    let b = printed_pid(&mut client, "b", "grandchild ").await;
    assert!(is_alive(a) && is_alive(b));
    assert!(daemon.stop().await.is_ok());
    assert!(gone(a).await && gone(b).await, "grandchildren outlived the daemon");
}

/// A runtime shut down without `Daemon::shutdown` (a panic, an early return from `main`) still
/// ends its apps' process groups: dropping a supervisor kills its tree.
#[cfg(unix)]
#[test]
fn a_runtime_dropped_without_shutdown_ends_its_apps_process_groups() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let grandchild = runtime.block_on(async {
        let daemon = Running::start(DaemonOptions::new()).await;
        let mut client = daemon.client().await;
        client.subscribe(SubscriptionType::LogEvents { app_name: None }).await.expect("sub");
        let script = "sleep 300 & echo \"grandchild $!\"; wait";
        assert_success(call(&mut client, sh("a", script)).await);
        printed_pid(&mut client, "a", "grandchild ").await
    });
    assert!(is_alive(grandchild));
    drop(runtime);
    let checker = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    assert!(checker.block_on(gone(grandchild)), "grandchild {grandchild} outlived the runtime");
}

/// One app flooding its output does not hold up requests: `List` and `Status` are answered
/// while it prints.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_while_an_app_floods_its_output() {
    let daemon = Running::start(DaemonOptions::new()).await;
    let mut client = daemon.client().await;
    assert_success(call(&mut client, sh("flood", "while :; do echo flood; done")).await);
    for _ in 0..100 {
        assert_eq!(data(call(&mut client, IpcMessage::List).await), json!(["flood"]));
        let status = data(call(&mut client, IpcMessage::Status { name: None }).await);
        assert_eq!(status[0]["state"], "running");
    }
    let logs = data(call(&mut client, IpcMessage::Logs { name: None, lines: 5 }).await);
    assert_eq!(logs.as_array().map(Vec::len), Some(5), "it was printing all along");
    assert!(daemon.stop().await.is_ok());
}

/// Waits on `events` for an event of `event_type` whose data has `key` = `value`.
#[cfg(unix)]
async fn wait_for(events: &mut bunctl_ipc::Subscription, event_type: &str, key: &str, value: &str) {
    within(value, async {
        loop {
            let event = events.recv().await.expect("bus alive");
            if event.event_type() == event_type && event.data()[key] == value {
                return;
            }
        }
    })
    .await
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_returns_no_app_runs_and_none_starts_even_mid_restart() {
    let bus = EventBus::new();
    let options = DaemonOptions::new().with_stop_grace(Duration::from_millis(300));
    let daemon = Daemon::with_options(bus.clone(), options);
    let mut events = bus.subscribe(SubscriptionType::AllEvents { app_name: Some("t".into()) });
    // Ignores SIGTERM, so a stop takes the whole grace period.
    let stubborn = start("t", "sh", &["-c", "trap '' TERM; echo ready; exec sleep 30"]);
    assert_success(daemon.handle(stubborn).await);
    wait_for(&mut events, LOG_LINE, "line", "ready").await;

    let restarting = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.handle(IpcMessage::Restart { name: "t".into() }).await }
    });
    wait_for(&mut events, STATUS_CHANGE, "state", "stopping").await;
    within("shutdown", daemon.shutdown()).await;
    let status = || IpcMessage::Status { name: Some("t".into()) };
    let after_shutdown = data(daemon.handle(status()).await);
    assert_eq!(after_shutdown["pid"], Value::Null, "{after_shutdown}");

    // The restart that was under way ends without starting anything.
    let reply = within("restart", restarting).await.expect("task");
    let after_restart = data(daemon.handle(status()).await);
    assert_eq!(after_restart["pid"], Value::Null, "restart: {reply:?}, then {after_restart}");
    assert_ne!(after_restart["state"], "running");
    while let Some(event) = events.try_recv() {
        assert_ne!(event.event_type(), PROCESS_STARTED, "started after shutdown: {event:?}");
    }
    // And nothing starts from now on.
    let again = start("u", "sleep", &["30"]);
    assert_eq!(error_message(daemon.handle(again).await), "daemon is shutting down");
}
