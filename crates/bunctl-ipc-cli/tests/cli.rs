//! The `bunctl-ipc` binary end to end, run as a process the way a user or a script runs it.
//!
//! Each test has its own temporary directory and, where it needs one, its own `serve` process.
//! Nothing sleeps to synchronise: a served socket is ready once it accepts a connection, a
//! watcher once it has said so on stderr, an app's output once the daemon reports it exited;
//! every wait has a deadline. Tests that start apps use `sh`/`sleep` and signals: Unix only.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

const PATIENCE: Duration = Duration::from_secs(30);

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bunctl-ipc"));
    command.env_remove("BUNCTL_SOCKET").env("RUST_LOG", "warn");
    command
}

/// Kills `pid` if a wait for it gave up, so that no stray process outlives the test.
fn kill(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: signal delivery has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Waits for `child` to finish, collecting its output, for at most `PATIENCE`.
fn finish(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("collect output"),
        Err(_) => {
            kill(pid);
            panic!("bunctl-ipc (pid {pid}) did not finish within {PATIENCE:?}");
        }
    }
}

/// Runs `bunctl-ipc ARGS` with `input` on stdin.
fn run_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bunctl-ipc");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = finish(child);
    writer.join().expect("stdin writer").expect("write stdin");
    output
}

fn run(args: &[&str]) -> Output {
    run_with_input(args, b"")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// A `bunctl-ipc serve` process on a socket in its own temporary directory.
struct Server {
    dir: TempDir,
    socket: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `serve` and returns once the socket accepts connections.
    #[cfg(unix)]
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("cli.sock");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let child = bin()
            .args(["serve", "--socket"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bunctl-ipc serve");
        let mut server = Server { dir, socket, child: Some(child) };
        server.wait_until_ready();
        server
    }

    /// Polls the socket with a bounded back-off until it accepts a connection.
    #[cfg(unix)]
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        let mut backoff = Duration::from_millis(1);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("serve exited early with {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "serve did not listen within {PATIENCE:?}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    fn socket(&self) -> &str {
        self.socket.to_str().expect("UTF-8 temp path")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `bunctl-ipc --socket SOCKET ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--socket", self.socket()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// A `call` that must succeed; its stdout.
    #[track_caller]
    fn call_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["call"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert_exit(&output, 0);
        stdout(&output)
    }

    /// The reply data of `call --json ARGS`.
    #[track_caller]
    fn call_data(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let line = self.call_ok(&all);
        let reply: Value = serde_json::from_str(line.trim()).expect("one JSON line");
        reply["Data"]["data"].clone()
    }

    /// Asks for the app's status until its state is `state`, within `PATIENCE`.
    #[track_caller]
    fn wait_for_state(&self, app: &str, state: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.call_data(&["status", app]);
            if status["state"] == state {
                return status;
            }
            assert!(Instant::now() < deadline, "{app} never reached {state}: {status}");
        }
    }

    /// SIGTERM, then waits: the server must exit 0 and remove its socket.
    #[cfg(unix)]
    fn stop(mut self) {
        self.stop_child();
    }

    #[cfg(unix)]
    fn stop_child(&mut self) {
        let child = self.child.take().expect("running");
        signal(&child, libc::SIGTERM);
        let output = finish(child);
        assert!(output.status.success(), "serve: {:?}\n{}", output.status, self.log());
        assert!(!self.socket.exists(), "socket removed");
    }

    /// Stops the daemon and starts a new one on the same socket (a new bus, no apps).
    #[cfg(unix)]
    fn restart(&mut self) {
        self.stop_child();
        let log = std::fs::File::options()
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .expect("log file");
        let child = bin()
            .args(["serve", "--socket"])
            .arg(&self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bunctl-ipc serve");
        self.child = Some(child);
        self.wait_until_ready();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets the daemon stop its apps before it exits; SIGKILL only if it hangs.
            #[cfg(unix)]
            signal(&child, libc::SIGTERM);
            let pid = child.id();
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(child.wait());
            });
            if rx.recv_timeout(PATIENCE).is_err() {
                kill(pid);
            }
        }
    }
}

#[cfg(unix)]
fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signal delivery to a child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Lines of a child's stdout, read on a thread so that waits can have deadlines.
struct Lines {
    rx: mpsc::Receiver<String>,
}

impl Lines {
    fn new(output: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    #[track_caller]
    fn next(&self, what: &str) -> String {
        self.rx.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("no line: waited for {what}"))
    }

    /// Every line still to come, until the writer closes its end (its process exited).
    #[track_caller]
    fn rest(&self) -> Vec<String> {
        let mut rest = Vec::new();
        loop {
            match self.rx.recv_timeout(PATIENCE) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the output never ended"),
            }
        }
    }

    /// The next line that is not a loss notice (`missed N events ...`): a follower may lose
    /// events at any time, e.g. those still queued for it when its daemon shuts down.
    #[track_caller]
    fn next_but_losses(&self, what: &str) -> String {
        loop {
            let line = self.next(what);
            if !line.starts_with("missed ") {
                return line;
            }
        }
    }

    /// The same lines, each passed through `f`.
    fn map(self, f: impl Fn(&str) -> String + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(line) = self.rx.recv() {
                if tx.send(f(&line)).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }
}

/// A running `watch` and its stdout and stderr lines, once it has confirmed its subscription.
#[cfg(unix)]
fn start_watch(server: &Server, args: &[&str]) -> (Child, Lines, Lines) {
    let mut all = vec!["watch"];
    all.extend_from_slice(args);
    start_follower(server, &all)
}

/// A running follower (`watch ...`, `logs ... --follow`) and its stdout and stderr lines, once
/// it has confirmed its subscription.
#[cfg(unix)]
fn start_follower(server: &Server, args: &[&str]) -> (Child, Lines, Lines) {
    let mut child = bin()
        .args(["--socket", server.socket()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stdout: ChildStdout = child.stdout.take().expect("stdout");
    let stderr = Lines::new(child.stderr.take().expect("stderr"));
    let ready = stderr.next("watch to confirm its subscription");
    assert!(ready.starts_with("watching "), "{ready}");
    (child, Lines::new(stdout), stderr)
}

#[cfg(unix)]
fn wait_status(child: Child) -> ExitStatus {
    finish(child).status
}

#[cfg(unix)]
#[test]
fn call_start_list_status_stop_restart_delete_print_human_output() {
    let server = Server::start();
    assert_eq!(server.call_ok(&["list"]), "no apps\n");
    let started = server.call_ok(&["start", "web", "--command", "sleep", "--", "30"]);
    assert!(started.starts_with("Started web (pid "), "{started}");
    let config = r#"{"command":"sleep","args":["30"]}"#;
    assert!(server.call_ok(&["start", "api", "--config", config]).starts_with("Started api"));

    assert_eq!(server.call_ok(&["list"]), "NAME\napi\nweb\n");
    let status = server.call_ok(&["status"]);
    let rows: Vec<Vec<&str>> = status.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "STATE", "PID", "RESTARTS", "EXIT"], "{status}");
    assert_eq!(rows.len(), 3, "{status}");
    assert_eq!((rows[1][0], rows[1][1], rows[1][3], rows[1][4]), ("api", "running", "0", "-"));
    assert!(rows[1][2].parse::<u32>().is_ok(), "a pid: {status}");

    assert_eq!(server.call_ok(&["stop", "web"]), "Stopped web\n");
    let web = server.call_ok(&["status", "web"]);
    assert_eq!(
        web.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["web", "stopped", "-", "0", "SIGTERM"]),
        "{web}"
    );
    assert!(server.call_ok(&["restart", "web"]).starts_with("Restarted web (pid "));
    assert_eq!(server.call_data(&["status", "web"])["restarts"], 1);
    assert_eq!(server.call_ok(&["delete", "web"]), "Deleted web\n");
    assert_eq!(server.call_ok(&["delete", "api"]), "Deleted api\n");
    assert_eq!(server.call_ok(&["list"]), "no apps\n");
    server.stop();
}

/// `serve` on SIGTERM: exits 0 (checked by `Server::stop`, as is the socket's removal) after
/// stopping its apps.
#[cfg(unix)]
#[test]
fn serve_stops_its_apps_and_removes_the_socket_on_sigterm() {
    let server = Server::start();
    server.call_ok(&["start", "app", "--command", "sleep", "--", "30"]);
    let pid = server.call_data(&["status", "app"])["pid"].as_u64().expect("pid");
    let pid = libc::pid_t::try_from(pid).expect("pid");
    server.stop();
    // The daemon reaped the app before it exited, so the pid is free.
    // SAFETY: signal 0 only checks whether the process exists.
    assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the app outlived the daemon");
}

#[cfg(unix)]
#[test]
fn call_logs_shows_an_apps_output_and_honours_lines() {
    let server = Server::start();
    server.call_ok(&[
        "start",
        "echo",
        "--command",
        "sh",
        "--",
        "-c",
        "echo one; echo two; echo three",
    ]);
    let status = server.wait_for_state("echo", "exited");
    assert_eq!(status["exit_code"], 0);
    assert_eq!(
        server.call_ok(&["logs", "echo"]),
        "echo  stdout  one\necho  stdout  two\necho  stdout  three\n"
    );
    assert_eq!(server.call_ok(&["logs", "--lines", "1"]), "echo  stdout  three\n");
    let mut records = server.call_data(&["logs", "echo", "-n", "2"]);
    for record in records.as_array_mut().expect("array") {
        let seq = record.as_object_mut().and_then(|r| r.remove("seq"));
        assert!(seq.is_some_and(|s| s.is_u64()), "each line has its position");
    }
    assert_eq!(
        records,
        json!([
            {"app": "echo", "stream": "stdout", "line": "two"},
            {"app": "echo", "stream": "stdout", "line": "three"},
        ])
    );
    // `logs` prints the lines themselves.
    assert_eq!(stdout(&server.run(&["logs", "echo", "-n", "2"])), "two\nthree\n");
    assert_eq!(stdout(&server.run(&["logs", "-n", "1"])), "echo | three\n");
}

#[cfg(unix)]
#[test]
fn call_start_passes_cwd_and_env_to_the_app() {
    let server = Server::start();
    let dir = server.dir.path().to_str().expect("UTF-8").to_owned();
    server.call_ok(&[
        "start",
        "env",
        "--command",
        "sh",
        "--cwd",
        &dir,
        "--env",
        "GREETING=hi there",
        "--",
        "-c",
        "echo \"$GREETING\"; pwd",
    ]);
    server.wait_for_state("env", "exited");
    let lines: Vec<String> = server
        .call_data(&["logs", "env"])
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["line"].as_str().unwrap_or_default().to_owned())
        .collect();
    let canonical = std::fs::canonicalize(&dir).expect("canonical");
    assert_eq!(lines[0], "hi there");
    assert_eq!(std::fs::canonicalize(&lines[1]).expect("a path"), canonical);
}

#[cfg(unix)]
#[test]
fn call_raw_sends_any_message_as_given() {
    let server = Server::start();
    assert_eq!(server.call_ok(&["--raw", r#""List""#]), "no apps\n");
    let output = server.run(&[
        "call",
        "--json",
        "--raw",
        r#"{"Subscribe":{"subscription":{"LogEvents":{"app_name":null}}}}"#,
    ]);
    assert_exit(&output, 0);
    let reply: Value = serde_json::from_str(stdout(&output).trim()).expect("JSON");
    assert!(reply["Success"]["message"].is_string(), "{reply}");

    let output = server.run(&["call", "--raw", r#"{"Frobnicate":{}}"#]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("not a bunctl message"), "{}", stderr(&output));
}

#[cfg(unix)]
#[test]
fn error_reply_exits_1_with_the_servers_message_on_stderr() {
    let server = Server::start();
    for kind in ["stop", "restart", "delete", "status", "logs"] {
        let output = server.run(&["call", kind, "ghost"]);
        assert_exit(&output, 1);
        assert!(output.stdout.is_empty(), "{kind}: {}", stdout(&output));
        assert_eq!(stderr(&output), "error: unknown app: ghost\n", "{kind}");
    }
    let output = server.run(&["call", "start", "bad", "--command", "/nonexistent/program"]);
    assert_exit(&output, 1);
    assert!(stderr(&output).starts_with("error: failed to start bad: cannot run"));
}

#[test]
fn no_server_exits_2_naming_the_socket_and_how_to_start_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("nobody-home.sock");
    let socket = socket.to_str().expect("UTF-8 temp path");
    for args in [&["call", "list"][..], &["watch"], &["bench", "--requests", "10"]] {
        let mut all = vec!["--socket", socket];
        all.extend_from_slice(args);
        let output = run(&all);
        assert_exit(&output, 2);
        let err = stderr(&output);
        assert!(err.contains("nobody-home.sock"), "{args:?}: {err}");
        assert!(err.contains("bunctl-ipc serve --socket"), "{args:?}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn bunctl_socket_environment_variable_selects_the_server() {
    let server = Server::start();
    let output = finish(
        bin()
            .env("BUNCTL_SOCKET", &server.socket)
            .args(["call", "list"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "no apps\n");
}

#[cfg(unix)]
#[test]
fn a_server_that_never_answers_times_out_with_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("silent.sock");
    // Connections queue in the backlog and are never answered.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let socket = socket.to_str().expect("UTF-8");
    let started = Instant::now();
    let output = run(&["--socket", socket, "--timeout", "300ms", "call", "list"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("receive timeout after 300ms"), "{}", stderr(&output));
    assert!(started.elapsed() < PATIENCE);
}

#[cfg(unix)]
#[test]
fn json_output_is_one_parseable_line_per_response() {
    let server = Server::start();
    let cases: [(&[&str], i32, &str); 5] = [
        (&["call", "--json", "list"], 0, "Data"),
        (&["call", "start", "s", "--command", "sleep", "--json", "--", "30"], 0, "Success"),
        (&["--json", "call", "status"], 0, "Data"),
        (&["call", "logs", "--json"], 0, "Data"),
        (&["call", "stop", "ghost", "--json"], 1, "Error"),
    ];
    for (args, code, tag) in cases {
        let output = server.run(args);
        assert_exit(&output, code);
        let text = stdout(&output);
        assert_eq!(text.lines().count(), 1, "{args:?}: {text}");
        let reply: Value = serde_json::from_str(&text).expect("JSON");
        assert!(reply.get(tag).is_some(), "{args:?}: {reply}");
    }
    let status = server.call_data(&["status"]);
    assert_eq!(status[0]["name"], "s");
    assert_eq!(status[0]["state"], "running");
}

#[cfg(unix)]
#[test]
fn watch_json_receives_the_events_of_an_app_started_by_call() {
    let server = Server::start();
    let (watch, lines, _) = start_watch(&server, &["--json", "--app", "hello"]);
    server.call_ok(&["start", "other", "--command", "sh", "--", "-c", "echo not for this watcher"]);
    server.call_ok(&["start", "hello", "--command", "sh", "--", "-c", "echo hi from hello"]);

    let mut events = Vec::new();
    loop {
        let line = lines.next("hello's events");
        let frame: Value = serde_json::from_str(&line).expect("an NDJSON line");
        let event = frame["Event"].clone();
        assert_eq!(event["data"]["app"], "hello", "only hello's events: {line}");
        let done = event["event_type"] == "status_change" && event["data"]["state"] == "exited";
        events.push(event);
        if done {
            break;
        }
    }
    let types: Vec<&str> = events.iter().filter_map(|e| e["event_type"].as_str()).collect();
    assert_eq!(
        types,
        ["process_started", "status_change", "log_line", "process_exited", "status_change"]
    );
    assert_eq!(
        events[2]["data"],
        json!({"app": "hello", "stream": "stdout", "line": "hi from hello"})
    );
    assert_eq!(events[3]["data"]["exit_code"], 0);

    signal(&watch, libc::SIGINT);
    let status = wait_status(watch);
    assert!(status.success(), "Ctrl-C ends watch with status 0: {status:?}");
}

#[cfg(unix)]
#[test]
fn watch_prints_readable_lines_and_waits_for_the_server_when_it_leaves() {
    let server = Server::start();
    let (watch, lines, errors) = start_watch(&server, &["--status"]);
    server.call_ok(&["start", "t", "--command", "sh", "--", "-c", "echo filtered out; exit 4"]);
    let started = lines.next("process_started");
    assert!(started.starts_with("t  process_started  pid "), "{started}");
    assert_eq!(lines.next("running"), "t  status_change    running");
    assert_eq!(
        lines.next("exit"),
        "t  process_exited   exit code 4",
        "log lines are not status events"
    );
    assert_eq!(lines.next("exited"), "t  status_change    exited");

    server.stop();
    assert_eq!(errors.next("the notice"), "the daemon went away; reconnecting (Ctrl-C to stop)");
    signal(&watch, libc::SIGINT);
    let status = wait_status(watch);
    assert!(status.success(), "{status:?}");
}

#[test]
fn encode_then_decode_round_trips_messages_and_responses() {
    let ndjson = concat!(
        "\"List\"\n",
        "{\"Start\":{\"name\":\"web\",\"config\":\"{\\\"command\\\":\\\"bun\\\"}\"}}\n",
        "{\"Logs\":{\"name\":null,\"lines\":5}}\n",
        "{\"Event\":{\"event_type\":\"log_line\",\"data\":{\"app\":\"web\",\"line\":\"é ✓\"}}}\n",
        "{\"Error\":{\"message\":\"unknown app: x\"}}\n",
    );
    let encoded = run_with_input(&["encode"], ndjson.as_bytes());
    assert_exit(&encoded, 0);
    assert_eq!(&encoded.stdout[..10], b"\x06\x00\x00\x00\"List\"");
    let decoded = run_with_input(&["decode"], &encoded.stdout);
    assert_exit(&decoded, 0);
    assert_eq!(stdout(&decoded), ndjson);
}

#[test]
fn decode_of_a_truncated_stream_fails_with_the_byte_offset() {
    let encoded = run_with_input(&["encode"], b"\"List\"\n{\"Stop\":{\"name\":\"web\"}}\n");
    assert_exit(&encoded, 0);
    let mut wire = encoded.stdout;
    assert_eq!(wire.len(), 10 + 27);
    wire.truncate(wire.len() - 5);
    let decoded = run_with_input(&["decode"], &wire);
    assert_exit(&decoded, 1);
    assert_eq!(stdout(&decoded), "\"List\"\n", "the whole frame before the cut is printed");
    assert_eq!(
        stderr(&decoded),
        "bunctl-ipc: frame 2 at byte offset 10: connection closed mid-frame: received 22 of 27 bytes\n"
    );
}

#[test]
fn encode_rejects_a_line_that_is_not_a_message_with_exit_1() {
    let output = run_with_input(&["encode"], b"\"List\"\n{\"Stop\":{\"nam\":\"web\"}}\n");
    assert_exit(&output, 1);
    assert_eq!(output.stdout.len(), 10, "the good line was encoded");
    assert!(stderr(&output).starts_with("bunctl-ipc: line 2: "), "{}", stderr(&output));
}

#[test]
fn bench_spawn_completes_with_throughput_and_latency_percentiles() {
    let output =
        run(&["bench", "--spawn", "--clients", "3", "--requests", "600", "--pipeline", "4"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("600 requests (List) from 3 clients, pipeline 4"), "{text}");
    assert!(text.contains(" requests/s"), "{text}");
    for label in ["p50 ", "p90 ", "p99 ", "p99.9 ", "max "] {
        assert!(text.contains(label), "{label}: {text}");
    }

    let output = run(&["bench", "--spawn", "--requests", "200", "--payload", "1000", "--json"]);
    assert_exit(&output, 0);
    let report: Value = serde_json::from_str(stdout(&output).trim()).expect("one JSON object");
    assert_eq!(report["requests"], 200);
    assert_eq!(report["payload"], 1000);
    assert!(report["requests_per_second"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    let latency = &report["latency_us"];
    let p = |k: &str| latency[k].as_f64().expect("a number");
    assert!(p("p50") <= p("p99") && p("p99") <= p("max"), "{report}");
}

#[cfg(unix)]
#[test]
fn bench_runs_against_a_running_server() {
    let server = Server::start();
    let output = server.run(&["bench", "--clients", "2", "--requests", "100", "--json"]);
    assert_exit(&output, 0);
    let report: Value = serde_json::from_str(stdout(&output).trim()).expect("JSON");
    assert_eq!(report["requests"], 100);
    assert_eq!(report["endpoint"], server.socket());
}

#[test]
fn demo_runs_the_quick_start_and_cleans_up() {
    let output = run(&["demo"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    for expected in [
        "$ bunctl-ipc call start demo",
        "Started demo (pid ",
        "| demo  process_started  pid ",
        "| demo  log_line         [stdout] hello from the demo app",
        "$ bunctl-ipc call status demo",
        "Deleted demo",
        "requests/s",
        "p99.9",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    if cfg!(unix) {
        assert!(text.contains("Stopped demo"), "{text}");
        let socket = text
            .split_once("serves ")
            .and_then(|(_, rest)| rest.split_once(" inside"))
            .map(|(socket, _)| PathBuf::from(socket))
            .expect("the demo names its socket");
        assert!(!socket.exists(), "{} left behind", socket.display());
        assert!(!socket.parent().is_some_and(Path::exists), "temporary directory left behind");
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error_with_exit_2() {
    let output = run(&["frobnicate"]);
    assert_exit(&output, 2);
    let err = stderr(&output);
    assert!(err.contains("unrecognized subcommand 'frobnicate'"), "{err}");
    assert!(err.contains("Usage: bunctl-ipc"), "{err}");
}

#[test]
fn version_and_completions_are_printed() {
    let output = run(&["--version"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), format!("bunctl-ipc {}\n", env!("CARGO_PKG_VERSION")));
    let output = run(&["completions", "bash"]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("bunctl-ipc"));
    assert!(stdout(&output).contains("watch"));
}

/// A newcomer with no `XDG_RUNTIME_DIR` and no `/tmp/bunctl-<uid>` yet: the default endpoint's
/// private directory is missing, which means no server is running, and says so.
#[cfg(unix)]
#[test]
fn missing_default_private_directory_is_no_server_running_naming_the_socket() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    // As root, run as a uid whose directory surely does not exist; otherwise as oneself, if
    // one's own directory does not exist yet.
    let uid = if me == 0 {
        (3_000_000_000u32..).find(|u| !Path::new(&format!("/tmp/bunctl-{u}")).exists())
    } else {
        Some(me).filter(|u| !Path::new(&format!("/tmp/bunctl-{u}")).exists())
    };
    let Some(uid) = uid else {
        eprintln!("skipped: /tmp/bunctl-{me} exists and only root can run as another uid");
        return;
    };
    let mut command = bin();
    command
        .env_remove("XDG_RUNTIME_DIR")
        .args(["call", "list"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if uid != me {
        command.uid(uid).gid(uid);
    }
    let output = finish(command.spawn().expect("spawn"));
    assert_exit(&output, 2);
    let err = stderr(&output);
    let socket = format!("/tmp/bunctl-{uid}/bunctl.sock");
    assert!(err.contains(&format!("no bunctl server is running at {socket}")), "{err}");
    assert!(!err.contains("I/O error"), "{err}");
    assert!(!Path::new(&format!("/tmp/bunctl-{uid}")).exists(), "a client creates nothing");
}

/// A `sh` script printing 0, 1, 2, ... one line every few milliseconds, forever.
#[cfg(unix)]
const COUNTER: &str = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.002; done";

/// Starts app `count`, which prints [`COUNTER`]'s numbered lines.
#[cfg(unix)]
fn start_counting(server: &Server) {
    server.call_ok(&["start", "count", "--command", "sh", "--", "-c", COUNTER]);
}

/// The number a `watch` line ends with: `count  log_line         [stdout] 17` -> `17`.
fn last_word(line: &str) -> String {
    line.rsplit(' ').next().unwrap_or_default().to_owned()
}

/// The number `line` holds, checked to be one more than `last` (when given).
#[track_caller]
fn continues(line: &str, last: Option<u64>) -> u64 {
    let number: u64 = line.trim().parse().unwrap_or_else(|_| panic!("not a number: {line}"));
    if let Some(last) = last {
        assert_eq!(number, last + 1, "a contiguous run: no line repeated, none missing");
    }
    number
}

/// Reads `n` lines of numbers and checks that each is one more than the one before it (and,
/// when given, than `after`). Returns the last.
#[cfg(unix)]
#[track_caller]
fn contiguous(lines: &Lines, n: usize, after: Option<u64>) -> u64 {
    let mut last = after;
    for _ in 0..n {
        last = Some(continues(&lines.next("a numbered line"), last));
    }
    last.expect("n > 0")
}

/// Waits until the app has printed at least `lines` lines (by asking for its logs).
#[cfg(unix)]
fn wait_for_lines(server: &Server, app: &str, lines: usize) {
    let deadline = Instant::now() + PATIENCE;
    let n = lines.to_string();
    while server.call_data(&["logs", app, "-n", &n]).as_array().map_or(0, Vec::len) < lines {
        assert!(Instant::now() < deadline, "{app} did not print {lines} lines");
    }
}

#[cfg(unix)]
#[test]
fn logs_follow_shows_the_last_lines_then_new_ones_with_no_repeat_and_no_gap() {
    let server = Server::start();
    start_counting(&server);
    wait_for_lines(&server, "count", 30);
    let (follower, lines, _errors) =
        start_follower(&server, &["logs", "count", "--follow", "-n", "5"]);
    contiguous(&lines, 200, None);
    signal(&follower, libc::SIGINT);
    assert!(wait_status(follower).success());
}

#[cfg(unix)]
#[test]
fn watch_with_a_cursor_file_stopped_and_started_again_misses_and_repeats_nothing() {
    let server = Server::start();
    let cursor_file = server.dir.path().join("cursor");
    let cursor = cursor_file.to_str().expect("UTF-8");
    start_counting(&server);
    wait_for_lines(&server, "count", 5);
    let args = ["--logs", "--app", "count", "--history", "3", "--cursor-file", cursor];

    let mut last = None;
    for run in 0..3 {
        let (watch, lines, _errors) = start_watch(&server, &args);
        let numbers = Lines::map(lines, last_word);
        last = Some(contiguous(&numbers, 40, last));
        signal(&watch, libc::SIGINT);
        // What it printed after the lines read here, up to its exit: its cursor is the last.
        let rest = numbers.rest();
        assert!(wait_status(watch).success(), "run {run}");
        for line in rest {
            last = Some(continues(&line, last));
        }
        let saved = std::fs::read_to_string(&cursor_file).expect("the cursor was written");
        assert!(saved.trim().contains(':'), "{saved}");
    }
}

#[cfg(unix)]
#[test]
fn logs_follow_and_watch_survive_a_daemon_restart_and_say_so() {
    let mut server = Server::start();
    start_counting(&server);
    wait_for_lines(&server, "count", 3);
    let (logs, log_lines, log_errors) =
        start_follower(&server, &["logs", "count", "--follow", "-n", "3"]);
    let (watch, watch_lines, watch_errors) = start_watch(&server, &["--logs", "--app", "count"]);
    contiguous(&log_lines, 10, None);
    watch_lines.next("a line before the restart");

    server.restart();
    for errors in [&log_errors, &watch_errors] {
        // Events still queued for it when the daemon shut down are announced lost first.
        assert_eq!(
            errors.next_but_losses("the went-away notice"),
            "the daemon went away; reconnecting (Ctrl-C to stop)"
        );
        let reconnected = errors.next_but_losses("the reconnect notice");
        assert!(reconnected.starts_with("reconnected to "), "{reconnected}");
        let reset = errors.next_but_losses("the reset notice");
        assert!(reset.starts_with("the daemon restarted (instance "), "{reset}");
    }
    // The new daemon's app, from its first line.
    start_counting(&server);
    drain_until(&log_lines, "0");
    contiguous(&log_lines, 20, Some(0));
    let line = watch_lines.next("a line after the restart");
    assert!(line.starts_with("count  log_line"), "{line}");
    for follower in [logs, watch] {
        signal(&follower, libc::SIGINT);
        assert!(wait_status(follower).success());
    }
}

/// Skips lines until one that is exactly `wanted`.
#[cfg(unix)]
#[track_caller]
fn drain_until(lines: &Lines, wanted: &str) {
    loop {
        if lines.next(wanted) == wanted {
            return;
        }
    }
}

#[cfg(unix)]
#[test]
fn info_prints_the_daemons_hello() {
    let server = Server::start();
    let table = stdout(&server.run(&["info"]));
    assert!(table.contains("bunctl-ipc-daemon"), "{table}");
    assert!(table.contains("protocol") && table.contains("follow"), "{table}");
    let json = stdout(&server.run(&["info", "--json"]));
    let reply: Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(reply["Data"]["data"]["protocol"], 1);
    assert_eq!(reply["Data"]["data"]["connections"], 1);
}

#[cfg(unix)]
#[test]
fn watch_resuming_after_more_lines_than_the_daemon_keeps_says_how_many_it_missed() {
    let server = Server::start();
    let cursor_file = server.dir.path().join("cursor");
    let cursor = cursor_file.to_str().expect("UTF-8");
    start_counting(&server);
    let args = ["--logs", "--app", "count", "--cursor-file", cursor];
    let (watch, lines, _) = start_watch(&server, &args);
    let numbers = Lines::map(lines, last_word);
    let mut seen = contiguous(&numbers, 3, None);
    signal(&watch, libc::SIGINT);
    // Up to its exit: the last line it printed is its cursor.
    if let Some(last) = numbers.rest().last() {
        seen = last.parse().expect("a number");
    }
    assert!(wait_status(watch).success());

    // The daemon keeps 1000 lines of an app: wait until more than that came after the cursor.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = server.call_data(&["logs", "count", "-n", "1"]);
        let newest: u64 = last[0]["line"].as_str().and_then(|l| l.parse().ok()).unwrap_or(0);
        if newest > seen + 1100 {
            break;
        }
        assert!(Instant::now() < deadline, "the app did not print 1100 more lines");
    }
    let (watch, lines, errors) = start_watch(&server, &args);
    let notice = errors.next("the loss notice");
    assert!(notice.starts_with("missed ") && notice.contains(" events (positions "), "{notice}");
    let missed: u64 = notice.split(' ').nth(1).and_then(|n| n.parse().ok()).expect("a count");
    assert!(missed >= 100, "{notice}");
    let numbers = Lines::map(lines, last_word);
    let first: u64 = numbers.next("the first kept line").parse().expect("a number");
    // The daemon remembers the positions of as many forgotten lines as it keeps: exact.
    assert_eq!(first, seen + 1 + missed, "the notice counts exactly the lines it skipped");
    signal(&watch, libc::SIGINT);
    assert!(wait_status(watch).success());
}

#[cfg(unix)]
#[test]
fn ctrl_c_right_after_the_first_line_of_a_replay_ends_watch_cleanly_with_its_cursor_written() {
    let server = Server::start();
    start_counting(&server);
    wait_for_lines(&server, "count", 500);
    let cursor_file = server.dir.path().join("cursor");
    let cursor = cursor_file.to_str().expect("UTF-8");
    // A replay of hundreds of events, then live ones: Ctrl-C lands while events keep coming.
    for attempt in 0..10 {
        let _ = std::fs::remove_file(&cursor_file);
        let args = ["--logs", "--app", "count", "--history", "500", "--cursor-file", cursor];
        let (watch, lines, _) = start_watch(&server, &args);
        lines.next("the first replayed line");
        signal(&watch, libc::SIGINT);
        let status = wait_status(watch);
        assert!(status.success(), "attempt {attempt}: {status:?}");
        assert!(cursor_file.exists(), "attempt {attempt}: the cursor was written");
    }
}
