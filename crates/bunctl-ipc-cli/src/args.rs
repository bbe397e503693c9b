//! The command line of `bunctl-ipc`, as clap types.
//!
//! Parsing is all this module does; [`crate::run`] carries the commands out. Keeping the types
//! in the library lets tests parse command lines without running the binary, and lets
//! `completions` generate scripts from the very same definition.

use std::path::PathBuf;
use std::time::Duration;

use bunctl_ipc::{IpcMessage, SubscriptionType};
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::error::CliError;

const AFTER_HELP: &str = "\
Exit status: 0 when the request succeeded, 1 when the server answered with an error (or the
input of encode/decode was bad), 2 when no server could be reached or the command line is wrong.

Examples:
  bunctl-ipc serve --socket /tmp/b.sock &
  bunctl-ipc -s /tmp/b.sock call start web --command sleep -- 30
  bunctl-ipc -s /tmp/b.sock call status
  bunctl-ipc -s /tmp/b.sock logs web --follow --lines 20
  bunctl-ipc -s /tmp/b.sock watch --logs --app web --json | jq .
  bunctl-ipc demo";

const SOCKET_HELP: &str = "\
The server's socket (a named pipe on Windows).

Default: the current user's daemon, at $XDG_RUNTIME_DIR/bunctl.sock, else
/tmp/bunctl-<uid>/bunctl.sock; on Windows \\\\.\\pipe\\bunctl_<SID>.";

/// Talk to a bunctl daemon: send requests, watch events, frame and unframe messages, load-test.
#[derive(Debug, Parser)]
#[command(name = "bunctl-ipc", version, propagate_version = true, after_help = AFTER_HELP)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after the command's name.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The server's socket (a named pipe on Windows) [default: the current user's daemon]
    #[arg(short, long, global = true, env = "BUNCTL_SOCKET", value_name = "PATH",
          long_help = SOCKET_HELP)]
    pub socket: Option<PathBuf>,

    /// Limit for connecting and for each send and receive (500ms, 5s, 2m, ...)
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Output JSON: one line per response or event, or a summary object for bench
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalArgs {
    /// The endpoint to use: `--socket`, else `BUNCTL_SOCKET`, else the library's default.
    pub fn endpoint(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(bunctl_ipc::default_socket_path)
    }
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the reference daemon in the foreground until Ctrl-C or SIGTERM (logs: RUST_LOG).
    Serve,
    /// Send one request and print the reply.
    Call(CallArgs),
    /// Print events as they happen (after some history, or from a cursor), until Ctrl-C;
    /// carries on across daemon restarts.
    Watch(WatchArgs),
    /// Print the last lines of output of one app (or of all), and with --follow keep printing
    /// new ones as they come, like `tail -f`.
    Logs(LogsArgs),
    /// Ask the daemon who it is (Hello) and print what it says: version, protocol, uptime,
    /// connections, events.
    Info,
    /// Turn NDJSON messages on stdin into frames on stdout (e.g. to pipe into socat).
    Encode,
    /// Turn frames on stdin into NDJSON on stdout, one line per frame, payload as received.
    Decode,
    /// Load-test a server and report requests/s and latency percentiles.
    Bench(BenchArgs),
    /// Walk through a daemon's life in a few seconds, on a temporary socket, then clean up.
    Demo,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// `call`: one request.
#[derive(Debug, Clone, Args)]
#[command(
    arg_required_else_help = true,
    subcommand_value_name = "REQUEST",
    subcommand_help_heading = "Requests"
)]
pub struct CallArgs {
    /// Send this JSON message instead of a REQUEST, e.g. '"List"'
    ///
    /// Any message of the protocol (see WIRE.md), e.g. '"List"' or
    /// '{"Logs":{"name":null,"lines":5}}'.
    #[arg(long, value_name = "JSON", value_parser = parse_message)]
    pub raw: Option<IpcMessage>,

    /// The request.
    #[command(subcommand)]
    pub request: Option<Request>,
}

impl CallArgs {
    /// The message to send: `--raw` or the request's, but not both and not neither.
    pub fn message(&self) -> Result<IpcMessage, CliError> {
        match (&self.raw, &self.request) {
            (Some(raw), None) => Ok(raw.clone()),
            (None, Some(request)) => Ok(request.message()),
            (Some(_), Some(_)) => {
                Err(CliError::Usage("call: give --raw or a request, not both".into()))
            }
            (None, None) => {
                Err(CliError::Usage("call: give a request (see --help) or --raw".into()))
            }
        }
    }
}

/// The requests `call` knows by name.
#[derive(Debug, Clone, Subcommand)]
pub enum Request {
    /// The names of the apps.
    List,
    /// The status of one app, or of all.
    Status {
        /// The app; all apps when left out.
        app: Option<String>,
    },
    /// Start an app, from a JSON config or a command line.
    Start(StartArgs),
    /// Stop an app.
    Stop {
        /// The app.
        app: String,
    },
    /// Stop an app if it runs, and start it again.
    Restart {
        /// The app.
        app: String,
    },
    /// Stop an app if it runs, and forget it.
    Delete {
        /// The app.
        app: String,
    },
    /// The last lines of output of one app, or of all apps merged.
    Logs {
        /// The app; all apps when left out.
        app: Option<String>,
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
}

impl Request {
    /// The message this request sends.
    pub fn message(&self) -> IpcMessage {
        match self {
            Request::List => IpcMessage::List,
            Request::Status { app } => IpcMessage::Status { name: app.clone() },
            Request::Start(start) => {
                IpcMessage::Start { name: start.app.clone(), config: start.config() }
            }
            Request::Stop { app } => IpcMessage::Stop { name: app.clone() },
            Request::Restart { app } => IpcMessage::Restart { name: app.clone() },
            Request::Delete { app } => IpcMessage::Delete { name: app.clone() },
            Request::Logs { app, lines } => IpcMessage::Logs { name: app.clone(), lines: *lines },
        }
    }
}

/// `call start`.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// The app's name.
    pub app: String,

    /// The app's configuration, passed on as is, e.g. '{"command":"bun","args":["server.ts"]}'.
    #[arg(long, value_name = "JSON", value_parser = parse_json_text,
          required_unless_present = "command", conflicts_with_all = ["command", "cwd", "env"])]
    pub config: Option<String>,

    /// The program to run; its arguments follow `--`.
    #[arg(long, value_name = "CMD")]
    pub command: Option<String>,

    /// The program's working directory.
    #[arg(long, value_name = "DIR", requires = "command")]
    pub cwd: Option<PathBuf>,

    /// An environment variable for the program (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env, requires = "command")]
    pub env: Vec<(String, String)>,

    /// The program's arguments.
    #[arg(last = true, value_name = "ARGS", requires = "command")]
    pub args: Vec<String>,
}

impl StartArgs {
    /// The `config` text of the `Start` message.
    pub fn config(&self) -> String {
        if let Some(config) = &self.config {
            return config.clone();
        }
        let mut config = Map::new();
        config.insert("command".into(), json!(self.command.clone().unwrap_or_default()));
        config.insert("args".into(), json!(self.args));
        if let Some(cwd) = &self.cwd {
            config.insert("cwd".into(), json!(cwd));
        }
        if !self.env.is_empty() {
            let env: Map<String, Value> =
                self.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            config.insert("env".into(), Value::Object(env));
        }
        Value::Object(config).to_string()
    }
}

/// `watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Lifecycle events only (started, exited, state changes).
    #[arg(long, group = "events")]
    pub status: bool,
    /// Output lines only.
    #[arg(long, group = "events")]
    pub logs: bool,
    /// Every event (the default).
    #[arg(long, group = "events")]
    pub all: bool,
    /// Only events about this app.
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Show the last N kept events first, then live ones
    #[arg(long, value_name = "N")]
    pub history: Option<usize>,
    /// Start after the cursor in FILE, if there is one; write the cursor of the last event
    /// shown to FILE on exit (journalctl's --cursor-file)
    #[arg(long, value_name = "FILE")]
    pub cursor_file: Option<PathBuf>,
}

/// `logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The app; all apps (each line after its app's name) when left out.
    pub app: Option<String>,
    /// How many of the last lines to show.
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: usize,
    /// Keep printing new lines as they come, until Ctrl-C (across daemon restarts).
    #[arg(short, long)]
    pub follow: bool,
}

impl LogsArgs {
    /// The subscription `--follow` makes.
    pub fn subscription(&self) -> SubscriptionType {
        SubscriptionType::LogEvents { app_name: self.app.clone() }
    }
}

impl WatchArgs {
    /// The subscription these options ask for.
    pub fn subscription(&self) -> SubscriptionType {
        let app_name = self.app.clone();
        if self.status {
            SubscriptionType::StatusEvents { app_name }
        } else if self.logs {
            SubscriptionType::LogEvents { app_name }
        } else {
            SubscriptionType::AllEvents { app_name }
        }
    }
}

/// `bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent connections.
    #[arg(short, long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    /// Requests in all, shared among the clients.
    #[arg(short = 'n', long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: u64,
    /// Bytes of padding per request: 0 sends `List`; N sends `Status` for an app with an
    /// N-byte name (the server answers `unknown app`, echoing it).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    pub payload: usize,
    /// Requests each client keeps in flight.
    #[arg(short = 'k', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub pipeline: u32,
    /// Run the reference daemon in this process, on a temporary socket, instead of using a
    /// running server.
    #[arg(long)]
    pub spawn: bool,
}

/// Parses `500ms`, `5s`, `2m`, `1.5s` or plain seconds (`10`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("not a duration: {text:?}"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn parse_message(text: &str) -> Result<IpcMessage, String> {
    serde_json::from_str(text).map_err(|e| format!("not a bunctl message: {e}"))
}

fn parse_json_text(text: &str) -> Result<String, String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not JSON: {e}"))
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bunctl-ipc").chain(args.iter().copied()))
    }

    fn call_message(args: &[&str]) -> IpcMessage {
        match parse(args).expect("parses").command {
            Command::Call(call) => call.message().expect("a message"),
            other => panic!("not a call: {other:?}"),
        }
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn start_with_a_command_line_builds_the_reference_daemons_config() {
        let message = call_message(&[
            "call",
            "start",
            "web",
            "--command",
            "bun",
            "--env",
            "PORT=3000",
            "--",
            "run",
            "-x",
        ]);
        let IpcMessage::Start { name, config } = message else { panic!("{message:?}") };
        assert_eq!(name, "web");
        let config: Value = serde_json::from_str(&config).expect("json");
        assert_eq!(
            config,
            json!({"command": "bun", "args": ["run", "-x"], "env": {"PORT": "3000"}})
        );
    }

    #[test]
    fn start_with_config_passes_it_on_verbatim_and_refuses_invalid_json() {
        let text = r#"{"command":"sleep", "args":["30"]}"#;
        assert_eq!(
            call_message(&["call", "start", "w", "--config", text]),
            IpcMessage::Start { name: "w".into(), config: text.into() }
        );
        assert!(parse(&["call", "start", "w", "--config", "{nope"]).is_err());
        assert!(parse(&["call", "start", "w"]).is_err(), "needs --config or --command");
        assert!(
            parse(&["call", "start", "w", "--config", "{}", "--command", "x"]).is_err(),
            "not both"
        );
    }

    #[test]
    fn raw_messages_are_checked_and_exclusive_with_a_request() {
        assert_eq!(call_message(&["call", "--raw", r#""List""#]), IpcMessage::List);
        assert!(parse(&["call", "--raw", r#"{"Frobnicate":{}}"#]).is_err());
        let both = parse(&["call", "--raw", r#""List""#, "list"]).expect("parses");
        let Command::Call(call) = both.command else { panic!() };
        assert!(matches!(call.message(), Err(CliError::Usage(_))));
    }

    #[test]
    fn logs_default_to_a_hundred_lines_and_status_to_every_app() {
        assert_eq!(call_message(&["call", "logs"]), IpcMessage::Logs { name: None, lines: 100 });
        assert_eq!(
            call_message(&["call", "logs", "web", "-n", "5"]),
            IpcMessage::Logs { name: Some("web".into()), lines: 5 }
        );
        assert_eq!(call_message(&["call", "status"]), IpcMessage::Status { name: None });
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let cli = parse(&["call", "list", "--json", "--socket", "/x", "--timeout", "2s"])
            .expect("parses");
        assert!(cli.global.json);
        assert_eq!(cli.global.endpoint(), PathBuf::from("/x"));
        assert_eq!(cli.global.timeout, Duration::from_secs(2));
        let cli = parse(&["-s", "/y", "watch"]).expect("parses");
        assert_eq!(cli.global.endpoint(), PathBuf::from("/y"));
    }

    #[test]
    fn watch_subscribes_to_everything_unless_told_otherwise() {
        let sub = |args: &[&str]| match parse(args).expect("parses").command {
            Command::Watch(w) => w.subscription(),
            other => panic!("{other:?}"),
        };
        assert_eq!(sub(&["watch"]), SubscriptionType::AllEvents { app_name: None });
        assert_eq!(
            sub(&["watch", "--logs", "--app", "web"]),
            SubscriptionType::LogEvents { app_name: Some("web".into()) }
        );
        assert_eq!(sub(&["watch", "--status"]), SubscriptionType::StatusEvents { app_name: None });
        assert!(parse(&["watch", "--status", "--logs"]).is_err());
    }

    #[test]
    fn parse_duration_accepts_units_fractions_and_plain_seconds() {
        use std::time::Duration;

        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("soon").is_err());
    }
}
