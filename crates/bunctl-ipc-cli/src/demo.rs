//! `demo`: a daemon's life in a few seconds, in one process.
//!
//! Starts the reference daemon on a temporary endpoint, subscribes to an app's events, starts
//! the app (a shell printing two lines, then sleeping), shows its events, the app list and
//! status, stops it, shows its logs, deletes it, measures round-trip latency, and shuts the
//! daemon down, removing the socket. Each step is printed with the `bunctl-ipc` command that does
//! the same against a daemon started by `bunctl-ipc serve`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bunctl_ipc::event_types::LOG_LINE;
use bunctl_ipc::{Event, IpcClient, IpcMessage, IpcResponse, ServerOptions, SubscriptionType};
use indicatif::ProgressBar;
use serde_json::json;
use tokio::time::Instant;

use crate::bench::{self, BenchConfig};
use crate::call::connect;
use crate::error::{CliError, Status};
use crate::local::LocalDaemon;
use crate::render;
use bunctl_ipc_daemon::DaemonOptions;

/// The app's name.
const APP: &str = "demo";
/// The longest any one step may take before the demo gives up.
const STEP_LIMIT: Duration = Duration::from_secs(10);
/// Round trips measured for the latency summary.
const ROUND_TRIPS: u64 = 2000;

/// The demo app: the command line as shown, its config, and how many output lines it prints.
struct DemoApp {
    shown: String,
    config: String,
    lines: usize,
}

#[cfg(unix)]
fn demo_app() -> DemoApp {
    let script = "echo 'hello from the demo app'; echo 'a line on stderr' >&2; exec sleep 30";
    DemoApp {
        shown: format!("sh -- -c \"{script}\""),
        config: json!({ "command": "sh", "args": ["-c", script] }).to_string(),
        lines: 2,
    }
}

/// `cmd /C echo` prints its line and exits on its own, so on Windows `stop` finds it gone.
#[cfg(not(unix))]
fn demo_app() -> DemoApp {
    let args = ["/C", "echo", "hello", "from", "the", "demo", "app"];
    DemoApp {
        shown: format!("cmd -- {}", args.join(" ")),
        config: json!({ "command": "cmd", "args": args }).to_string(),
        lines: 1,
    }
}

/// Runs the demo, writing its story to `out`.
pub async fn run(out: &mut dyn Write) -> Result<Status, CliError> {
    let began = Instant::now();
    let options = DaemonOptions::new().with_stop_grace(Duration::from_secs(2));
    let daemon = LocalDaemon::start("demo", options, ServerOptions::new()).await?;
    let socket = daemon.endpoint().to_owned();
    writeln!(out, "A bunctl daemon now serves {} inside this process.", socket.display())?;
    writeln!(
        out,
        "Each step shows the command that does the same against `bunctl-ipc serve`;\n\
         lines starting with | are what `watch` would print."
    )?;
    let mut client = connect(&socket, STEP_LIMIT).await?;

    step(out, &format!("bunctl-ipc watch --app {APP} &"))?;
    let subscription = SubscriptionType::AllEvents { app_name: Some(APP.into()) };
    client.subscribe(subscription).await.map_err(|e| CliError::talking(&socket, e))?;

    let app = demo_app();
    step(out, &format!("bunctl-ipc call start {APP} --command {}", app.shown))?;
    let start = IpcMessage::Start { name: APP.into(), config: app.config };
    let held = ask(&mut client, &start, &socket, out).await?;
    let mut lines = held.iter().filter(|e| e.event_type == LOG_LINE).count();
    let deadline = Instant::now() + STEP_LIMIT;
    while lines < app.lines {
        let event = tokio::time::timeout_at(deadline, client.next_event())
            .await
            .map_err(|_| {
                CliError::Other(format!("the demo app printed nothing in {STEP_LIMIT:?}"))
            })?
            .map_err(|e| CliError::talking(&socket, e))?;
        lines += usize::from(event.event_type == LOG_LINE);
        writeln!(out, "| {}", render::event_text(&event))?;
    }

    for (command, request) in [
        ("list".to_owned(), IpcMessage::List),
        (format!("status {APP}"), IpcMessage::Status { name: Some(APP.into()) }),
        (format!("stop {APP}"), IpcMessage::Stop { name: APP.into() }),
        (format!("logs {APP}"), IpcMessage::Logs { name: Some(APP.into()), lines: 10 }),
        (format!("delete {APP}"), IpcMessage::Delete { name: APP.into() }),
    ] {
        step(out, &format!("bunctl-ipc call {command}"))?;
        ask(&mut client, &request, &socket, out).await?;
    }
    drop(client);

    step(out, &format!("bunctl-ipc bench --clients 1 --requests {ROUND_TRIPS}"))?;
    let config = BenchConfig { clients: 1, requests: ROUND_TRIPS, payload: 0, pipeline: 1 };
    let report = bench::run(&socket, STEP_LIMIT, &config, &ProgressBar::hidden()).await?;
    write!(out, "{report}")?;

    daemon.stop().await?;
    if cfg!(unix) && socket.exists() {
        return Err(CliError::Other(format!("{} was left behind", socket.display())));
    }
    writeln!(
        out,
        "\nThe daemon has stopped and {} is gone. Demo done in {}.",
        socket.display(),
        bench::human_duration(began.elapsed())
    )?;
    out.flush()?;
    Ok(Status::Success)
}

fn step(out: &mut dyn Write, command: &str) -> std::io::Result<()> {
    writeln!(out, "\n$ {command}")?;
    out.flush()
}

/// Sends `request`, prints its reply, then the events that came before the reply (the server
/// writes every event published before a reply ahead of it), and returns those events. An
/// `Error` reply stops the demo.
async fn ask(
    client: &mut IpcClient,
    request: &IpcMessage,
    socket: &Path,
    out: &mut dyn Write,
) -> Result<Vec<Event>, CliError> {
    let talking = |e| CliError::talking(socket, e);
    let reply = client.request(request).await.map_err(talking)?;
    out.write_all(render::reply_text(request, &reply).as_bytes())?;
    if let IpcResponse::Error { message } = reply {
        return Err(CliError::Other(format!("the daemon refused {request:?}: {message}")));
    }
    let mut events = Vec::new();
    // Events held back by `request` are handed out at once: a zero timeout polls the future
    // before it looks at the clock, and only ends the wait for events still to come.
    while let Ok(event) = tokio::time::timeout(Duration::ZERO, client.next_event()).await {
        let event = event.map_err(talking)?;
        writeln!(out, "| {}", render::event_text(&event))?;
        events.push(event);
    }
    out.flush()?;
    Ok(events)
}
