//! The library behind the `bunctl-ipc` command: the reference daemon, runnable in-process.
//!
//! [`daemon`] is a small but real process manager built only on `bunctl-ipc`'s public API: it
//! starts, stops and restarts apps, keeps their recent output, and publishes their lifecycle
//! and output as events. `bunctl-ipc serve` runs it; tests and tools embed it directly.
//!
//! ```no_run
//! # async fn run() -> Result<(), bunctl_ipc::IpcError> {
//! // Serve on a socket until Ctrl-C or SIGTERM; apps are stopped and the socket removed after.
//! bunctl_ipc_cli::run_daemon("/tmp/bunctl-demo.sock", bunctl_ipc_cli::shutdown_signal()).await
//! # }
//! ```

pub mod daemon;

pub use daemon::{Daemon, DaemonOptions, run_daemon, shutdown_signal};
