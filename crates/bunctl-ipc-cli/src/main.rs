//! `bunctl-ipc serve [--socket PATH]`: the reference daemon in the foreground.
//!
//! A thin shell over [`bunctl_ipc_cli::run_daemon`]; logs go to stderr through `tracing`
//! (`RUST_LOG`, default `info`). Ctrl-C or SIGTERM stops the apps, removes the socket and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: bunctl-ipc serve [--socket PATH]";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut socket: Option<PathBuf> = None;
    match args.next() {
        Some(cmd) if cmd == "serve" => {}
        Some(flag) if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    while let Some(arg) = args.next() {
        match (arg.to_str(), args.next()) {
            (Some("--socket"), Some(path)) => socket = Some(PathBuf::from(path)),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let socket = socket.unwrap_or_else(bunctl_ipc::default_socket_path);

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bunctl-ipc: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bunctl_ipc_cli::run_daemon(&socket, bunctl_ipc_cli::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bunctl-ipc: {e}");
            ExitCode::FAILURE
        }
    }
}
