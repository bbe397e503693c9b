//! The `bunctl-ipc` tool: argument parsing and printing over [`bunctl_ipc`] (the API) and
//! [`bunctl_ipc_daemon`] (the reference daemon `serve` runs).
//!
//! The binary parses its arguments ([`Cli`]), sets up logging and hands over to [`run`], which
//! prints to the writers it is given and returns a [`Status`] or a [`CliError`]. That is the
//! whole surface; the commands live in private modules:
//!
//! | command | module |
//! |---|---|
//! | `serve` | `lib.rs`: [`bunctl_ipc_daemon::run_daemon`] |
//! | `call` | `call`, printing through `render` and `table` |
//! | `watch`, `logs --follow` | `watch` |
//! | `logs`, `info` | `call` |
//! | `encode`, `decode` | `codec` |
//! | `bench` | `bench`, with `local` for `--spawn` |
//! | `demo` | `demo` |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod args;
mod bench;
mod call;
mod codec;
mod demo;
mod error;
mod local;
mod render;
mod table;
mod watch;

use std::io::{BufRead, Write};

use bunctl_ipc::{ServerOptions, default_max_connections};
use bunctl_ipc_daemon::{DaemonOptions, run_daemon, shutdown_signal};
use clap::CommandFactory;

pub use args::Cli;
pub use error::{CliError, Status};

use args::Command;

impl Cli {
    /// The `tracing` level to log at when `RUST_LOG` does not say: the daemon reports what it
    /// does at `info`; the other commands only complain.
    pub fn default_log_level(&self) -> &'static str {
        if matches!(self.command, Command::Serve) { "info" } else { "warn" }
    }
}

/// Carries out a parsed command line: reads `stdin` (`encode`, `decode`), prints results to
/// `out` and diagnostics to `err`, and returns the exit status.
///
/// Builds the tokio runtime a command needs: none for `encode`, `decode` and `completions`, a
/// single thread for `call` and `watch`, all cores for `serve`, `bench` and `demo`. `watch`
/// and `serve` run until Ctrl-C or SIGTERM ([`shutdown_signal`]). Logging (`tracing`) is the
/// caller's to set up.
pub fn run(
    cli: Cli,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Status, CliError> {
    let global = cli.global;
    let endpoint = global.endpoint();
    match cli.command {
        Command::Encode => codec::encode(stdin, out).map(|_| Status::Success),
        Command::Decode => codec::decode(stdin, out).map(|_| Status::Success),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "bunctl-ipc", out);
            Ok(Status::Success)
        }
        Command::Call(call) => {
            let message = call.message()?;
            current_thread()?.block_on(call::run(
                &endpoint,
                global.timeout,
                &message,
                global.json,
                out,
                err,
            ))
        }
        Command::Watch(watch) => follow(
            &endpoint,
            global.timeout,
            watch::Following {
                subscription: watch.subscription(),
                history: watch.history,
                cursor_file: watch.cursor_file.as_deref(),
                json: global.json,
                text: render::event_text,
            },
            out,
            err,
        ),
        Command::Logs(logs) if logs.follow => follow(
            &endpoint,
            global.timeout,
            watch::Following {
                subscription: logs.subscription(),
                history: Some(logs.lines),
                cursor_file: None,
                json: global.json,
                text: if logs.app.is_none() {
                    |e| render::log_text(e, true)
                } else {
                    |e| render::log_text(e, false)
                },
            },
            out,
            err,
        ),
        Command::Logs(logs) => current_thread()?.block_on(call::logs(
            &endpoint,
            global.timeout,
            logs.app.as_deref(),
            logs.lines,
            global.json,
            out,
            err,
        )),
        Command::Info => {
            current_thread()?.block_on(call::info(&endpoint, global.timeout, global.json, out))
        }
        Command::Serve => multi_thread()?.block_on(async {
            run_daemon(&endpoint, shutdown_signal()).await.map_err(|e| {
                CliError::Other(format!("cannot serve at {}: {e}", endpoint.display()))
            })?;
            Ok(Status::Success)
        }),
        Command::Bench(bench) => {
            let config = bench::BenchConfig {
                clients: bench.clients,
                requests: bench.requests,
                payload: bench.payload,
                pipeline: bench.pipeline,
            };
            multi_thread()?.block_on(async {
                let spawned = if bench.spawn {
                    let clients = usize::try_from(config.clients).unwrap_or(usize::MAX);
                    let options = ServerOptions::new().with_max_connections(
                        default_max_connections().max(clients.saturating_add(16)),
                    );
                    Some(local::LocalDaemon::start("bench", DaemonOptions::new(), options).await?)
                } else {
                    None
                };
                let target = spawned.as_ref().map_or(endpoint.as_path(), |d| d.endpoint());
                if !global.json {
                    let whose = if spawned.is_some() { " (a daemon in this process)" } else { "" };
                    writeln!(out, "bench: {}{whose}", target.display())?;
                    out.flush()?;
                }
                let progress = bench::progress_bar(config.requests);
                let report = bench::run(target, global.timeout, &config, &progress).await;
                if let Some(daemon) = spawned {
                    daemon.stop().await?;
                }
                let report = report?;
                if global.json {
                    writeln!(out, "{}", report.to_json())?;
                } else {
                    write!(out, "{report}")?;
                }
                Ok(Status::Success)
            })
        }
        Command::Demo => multi_thread()?.block_on(demo::run(out)),
    }
}

/// `watch` and `logs --follow`: follows until Ctrl-C or SIGTERM, on one thread.
fn follow(
    endpoint: &std::path::Path,
    timeout: std::time::Duration,
    how: watch::Following<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Status, CliError> {
    current_thread()?.block_on(watch::run(endpoint, timeout, how, out, err, shutdown_signal()))
}

fn current_thread() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn multi_thread() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
