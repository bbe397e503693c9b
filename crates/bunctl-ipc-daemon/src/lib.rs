//! The reference bunctl daemon as a library: a small process manager behind a bunctl IPC socket.
//!
//! It supervises apps (child processes and everything they spawn), captures their output, keeps
//! the app table and publishes its events; everything it does, a daemon of your own can do with
//! `bunctl-ipc`. Bring your own binary: this crate parses no command line and draws nothing.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use bunctl_ipc::{EventBus, IpcServer};
//! use bunctl_ipc_daemon::{Daemon, DaemonOptions, shutdown_signal};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), bunctl_ipc::IpcError> {
//!     // The current user's endpoint: a socket on Unix, a named pipe on Windows.
//!     let server = IpcServer::bind(bunctl_ipc::default_socket_path()).await?;
//!     let options = DaemonOptions::new().with_stop_grace(Duration::from_secs(10));
//!     let daemon = Daemon::with_options(EventBus::new(), options);
//!     // Until Ctrl-C or SIGTERM; then every app is stopped and the socket removed.
//!     daemon.serve(server, shutdown_signal()).await
//! }
//! ```
//!
//! [`run_daemon`] does the same with default options in one call.
//!
//! # Requests
//!
//! | request | reply |
//! |---|---|
//! | `Start { name, config }` | `Success` once spawned; `Error` for a duplicate name, bad config or a spawn failure |
//! | `Stop { name }` | `Success` once the app's whole process tree is gone (see [Process trees](#process-trees)) |
//! | `Restart { name }` | `Success` once stopped (if running) and spawned again; counts in `restarts` |
//! | `Delete { name }` | `Success` once stopped (if running) and forgotten |
//! | `Status { name }` | `Data`: one record, or an array of all records sorted by name |
//! | `List` | `Data`: the app names, sorted |
//! | `Logs { name, lines }` | `Data`: the last `lines` output lines of one app, or of all apps merged in output order, each `{"app", "stream", "line", "seq"}` |
//!
//! `config` is JSON text: `{"command": "bun", "args": ["run", "server.ts"], "cwd": "/srv/web",
//! "env": {"PORT": "3000"}}`; only `command` is required, `env` adds to the daemon's own
//! environment, and unknown keys are refused (they are most likely typos). A status record is
//! `{"name", "state", "pid", "restarts", "exit_code", "signal"}`, with `state` one of
//! `starting`, `running`, `stopping`, `stopped` (by request), `exited` (on its own) and
//! `errored` (a restart could not spawn). A log record is `{"app", "stream", "line", "seq"}`. Unknown
//! apps get `Error { message: "unknown app: NAME" }`.
//!
//! # Events
//!
//! `process_started {"app", "pid"}`, `process_exited {"app", "exit_code", "signal"}`,
//! `status_change {"app", "state"}` (the states above, and `deleted` when an app is deleted)
//! and `log_line {"app", "stream": "stdout"|"stderr", "line"}`.
//! Each is published while the daemon's state already shows it (a client that receives
//! `status_change` and asks for `Status` sees at least that state). An app's output read before
//! its exit is published before its `process_exited`; if a process that escaped the app's tree
//! keeps the output pipes open, lines that come later still arrive, after it (but none after
//! the app's `deleted`).
//!
//! # Process trees
//!
//! An app is its main process and everything that process starts: on Unix its own process
//! group (the group's id is the main process's pid), on Windows a Job Object created for it.
//! The daemon ends the whole tree:
//!
//! * on `Stop` (and `Restart`, `Delete`, and the daemon's [shutdown](Daemon::shutdown)):
//!   SIGTERM to the group, then, once the main process has exited or the
//!   [grace period](DaemonOptions::with_stop_grace) has passed, SIGKILL to whatever is left of the
//!   group. Windows has no polite signal: `TerminateJobObject` ends the job at once;
//! * when the main process exits on its own: what it left behind gets SIGTERM, and SIGKILL if
//!   it is still there after the grace period (on Windows, `TerminateJobObject`), before
//!   `process_exited` is published;
//! * when the tokio runtime the daemon runs on is shut down without [`Daemon::shutdown`] (a
//!   panic, an early return from `main`): SIGKILL to the group; on Windows the whole job is
//!   ended, as it is whenever the daemon's process dies.
//!
//! What escapes: a descendant that leaves the group (`setsid`, a shell's job control) on Unix;
//! on Windows, a process the main process starts in the instant between its spawn and its
//! assignment to the job. And on Unix, a daemon killed with SIGKILL stops nothing: its apps live
//! on.
//!
//! # Output capture
//!
//! stdout and stderr are read line by line; a line longer than
//! [`DaemonOptions::with_max_line_len`] is split, invalid UTF-8 is replaced, and each line is
//! published as a `log_line` event. The lines `Logs` returns are the ones the bus keeps for the
//! app (its retention, [`bunctl_ipc::BusOptions::with_retained_events`]: 1000 lines and 1 MiB
//! per app by default), the same store `Follow` replays, so the two always agree; each line has
//! its position (`seq`). Memory per app is therefore bounded. An app printing a flood of lines
//! holds up neither requests nor the capture of other apps' output.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod daemon;
mod output;
mod tree;

use std::future::Future;
use std::path::Path;

use bunctl_ipc::{EventBus, IpcError, IpcServer};
use tracing::{info, warn};

pub use daemon::{Daemon, DaemonOptions};

/// Binds `socket` and runs a [`Daemon`] with default options until `shutdown` completes; then
/// stops every app and removes the socket.
pub async fn run_daemon(
    socket: impl AsRef<Path>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), IpcError> {
    let server = IpcServer::bind(socket).await?;
    Daemon::new(EventBus::new()).serve(server, shutdown).await
}

/// Completes on Ctrl-C (SIGINT), or SIGTERM on Unix: the daemon's usual shutdown signal.
///
/// If a signal handler cannot be installed, that signal is logged and ignored.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received"),
        () = terminate => info!("SIGTERM received"),
    }
}
