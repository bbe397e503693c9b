//! `bunctl-ipc`: parses the command line, sets up logging, and hands over to
//! [`bunctl_ipc_cli::run`]. Everything else lives in the library.
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use bunctl_ipc_cli::Cli;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = cli.default_log_level();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // stdout and stderr stay unlocked: tracing and the progress bar write to stderr from other
    // threads while a command runs.
    let stdin = std::io::stdin();
    let result =
        bunctl_ipc_cli::run(cli, &mut stdin.lock(), &mut std::io::stdout(), &mut std::io::stderr());
    match result {
        Ok(status) => status.into(),
        Err(e) => {
            if !e.is_quiet() {
                let _ = writeln!(std::io::stderr(), "bunctl-ipc: {e}");
            }
            e.status().into()
        }
    }
}
