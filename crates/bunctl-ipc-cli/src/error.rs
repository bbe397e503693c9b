//! What can make a command fail, and the exit status each failure maps to.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bunctl_ipc::IpcError;

/// The exit status of `bunctl-ipc`.
///
/// | status | meaning |
/// |---|---|
/// | 0 | done: a `Success` or `Data` reply, a clean end of a watch, ... |
/// | 1 | the server answered with `Error`, or the input (frames, NDJSON) was bad |
/// | 2 | no server could be reached or the conversation broke off, or the command line was wrong |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Success,
    /// Exit 1: the request failed, or the input did.
    Failure,
    /// Exit 2: no server to talk to, or a usage error.
    Trouble,
}

impl Status {
    /// The numeric exit status.
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Failure => 1,
            Status::Trouble => 2,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// A command's failure. [`CliError::status`] gives its exit status; `Display` the message for
/// stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Connecting failed: nothing listens at the endpoint, or it may not be used. When nothing
    /// listens, the message says how to start a server there.
    #[error("{error}{}", start_hint(error, socket))]
    NoServer {
        /// The endpoint that was tried.
        socket: PathBuf,
        /// Why connecting failed.
        #[source]
        error: IpcError,
    },

    /// The connection was made but the conversation failed: the server left, a reply did not
    /// come in time, or it was not a valid frame.
    #[error("talking to the server at {}: {error}", socket.display())]
    Connection {
        /// The endpoint of the server.
        socket: PathBuf,
        /// What went wrong.
        #[source]
        error: IpcError,
    },

    /// The server refused a request that the command needs (e.g. `Subscribe`).
    #[error("the server refused: {message}")]
    Refused {
        /// The server's explanation.
        message: String,
    },

    /// The command line makes no sense (beyond what argument parsing catches).
    #[error("{0}")]
    Usage(String),

    /// A frame read by `decode` is bad: cut short, too large, empty or not a bunctl message.
    #[error("frame {frame} at byte offset {offset}: {error}")]
    Frame {
        /// The frame's number in the input, from 1.
        frame: u64,
        /// Where the frame starts in the input.
        offset: u64,
        /// What is wrong with it.
        #[source]
        error: IpcError,
    },

    /// A line read by `encode` is not a message, or cannot be framed.
    #[error("line {line}: {reason}")]
    Line {
        /// The line number in the input, from 1.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },

    /// Reading stdin or writing stdout failed.
    #[error("{0}")]
    Io(#[from] io::Error),

    /// Anything else that stopped the command, e.g. the demo's app not behaving.
    #[error("{0}")]
    Other(String),
}

/// How to start a server, for an error that means none is running (and only then: starting one
/// does not help with a server of the wrong user or an insecure directory).
fn start_hint(error: &IpcError, socket: &std::path::Path) -> String {
    if error.is_not_running() {
        format!("\nstart a server with: bunctl-ipc serve --socket {}", shell_quote(socket))
    } else {
        String::new()
    }
}

impl CliError {
    /// The exit status this failure maps to.
    pub fn status(&self) -> Status {
        match self {
            CliError::NoServer { .. } | CliError::Connection { .. } | CliError::Usage(_) => {
                Status::Trouble
            }
            // A reader that went away (`bunctl-ipc watch | head`) is not a failure.
            CliError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe => Status::Success,
            CliError::Refused { .. }
            | CliError::Frame { .. }
            | CliError::Line { .. }
            | CliError::Io(_)
            | CliError::Other(_) => Status::Failure,
        }
    }

    /// True when nothing should be printed: stdout was closed by its reader.
    pub fn is_quiet(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// Classifies an error of a connected client: `Refused` stays a refusal, anything else is a
    /// broken conversation with the server at `socket`.
    pub fn talking(socket: &Path, error: IpcError) -> CliError {
        match error {
            IpcError::Refused { message } => CliError::Refused { message },
            error => CliError::Connection { socket: socket.to_owned(), error },
        }
    }
}

/// `path` as a shell word: as is when it is made of safe characters, else in single quotes.
pub fn shell_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:=,@%\\".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_server_message_names_the_socket_and_how_to_start_one() {
        let socket = PathBuf::from("/tmp/my dir/x.sock");
        let error = IpcError::NotRunning {
            endpoint: socket.clone(),
            source: io::ErrorKind::NotFound.into(),
        };
        let e = CliError::NoServer { socket, error };
        let text = e.to_string();
        assert!(text.starts_with("no bunctl server is running at /tmp/my dir/x.sock"), "{text}");
        assert!(text.ends_with("bunctl-ipc serve --socket '/tmp/my dir/x.sock'"), "{text}");
        assert_eq!(e.status(), Status::Trouble);
    }

    #[test]
    fn a_server_of_the_wrong_user_gets_no_advice_to_start_one() {
        let socket = PathBuf::from("/tmp/x.sock");
        let error = IpcError::ServerIdentity {
            endpoint: socket.clone(),
            found: "uid 65534".into(),
            expected: "uid 1000 or root".into(),
        };
        let text = CliError::NoServer { socket, error }.to_string();
        assert!(!text.contains("start a server"), "{text}");
        assert!(text.contains("uid 65534"), "{text}");
    }

    #[test]
    fn a_closed_stdout_exits_quietly_with_success() {
        let e = CliError::Io(io::ErrorKind::BrokenPipe.into());
        assert!(e.is_quiet());
        assert_eq!(e.status(), Status::Success);
        assert_eq!(CliError::Io(io::ErrorKind::Other.into()).status(), Status::Failure);
    }

    #[test]
    fn shell_quote_leaves_plain_paths_alone() {
        assert_eq!(
            shell_quote(Path::new("/run/user/1000/bunctl.sock")),
            "/run/user/1000/bunctl.sock"
        );
        assert_eq!(shell_quote(Path::new("it's")), r"'it'\''s'");
    }
}
