//! `call`: one request, one reply, printed for a human or as a JSON line.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bunctl_ipc::{ClientOptions, Event, IpcClient, IpcMessage, IpcResponse};
use serde_json::Value;

use crate::error::{CliError, Status};
use crate::render;

/// Connects to `endpoint`; a failure is [`CliError::NoServer`], which names the endpoint and
/// says how to start a server there.
pub async fn connect(endpoint: &Path, timeout: Duration) -> Result<IpcClient, CliError> {
    IpcClient::connect_with(endpoint, ClientOptions::new().with_timeout(timeout))
        .await
        .map_err(|error| CliError::NoServer { socket: endpoint.to_owned(), error })
}

/// Sends `message` to the server at `endpoint` and returns its reply.
pub async fn request(
    endpoint: &Path,
    timeout: Duration,
    message: &IpcMessage,
) -> Result<IpcResponse, CliError> {
    let mut client = connect(endpoint, timeout).await?;
    client.request(message).await.map_err(|e| CliError::talking(endpoint, e))
}

/// Prints `reply` to `request`: to `out`, except an `Error` reply in human form, which goes to
/// `err`. Returns the exit status the reply stands for: [`Status::Failure`] for `Error`,
/// [`Status::Success`] for anything else.
pub fn print_reply(
    request: &IpcMessage,
    reply: &IpcResponse,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Status, CliError> {
    let failed = matches!(reply, IpcResponse::Error { .. });
    if json {
        writeln!(out, "{}", render::json_line(reply))?;
    } else if failed {
        err.write_all(render::reply_text(request, reply).as_bytes())?;
    } else {
        out.write_all(render::reply_text(request, reply).as_bytes())?;
    }
    out.flush()?;
    Ok(if failed { Status::Failure } else { Status::Success })
}

/// `call`: sends `message`, prints the reply, returns the exit status.
pub async fn run(
    endpoint: &Path,
    timeout: Duration,
    message: &IpcMessage,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Status, CliError> {
    let reply = request(endpoint, timeout, message).await?;
    print_reply(message, &reply, json, out, err)
}

/// `logs` without `--follow`: the last `lines` lines of `app` (or of all apps, each after its
/// app's name), one per line; with `json`, each line's record as a JSON line.
pub async fn logs(
    endpoint: &Path,
    timeout: Duration,
    app: Option<&str>,
    lines: usize,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Status, CliError> {
    let message = IpcMessage::Logs { name: app.map(str::to_owned), lines };
    let reply = request(endpoint, timeout, &message).await?;
    let IpcResponse::Data { data: Value::Array(records) } = &reply else {
        return print_reply(&message, &reply, json, out, err);
    };
    for record in records {
        if json {
            writeln!(out, "{record}")?;
        } else {
            let line = Event::new(bunctl_ipc::event_types::LOG_LINE, record.clone());
            writeln!(out, "{}", render::log_text(&line, app.is_none()))?;
        }
    }
    out.flush()?;
    Ok(Status::Success)
}

/// `info`: the server's answer to `Hello`, as a table, or with `json` as a JSON line.
pub async fn info(
    endpoint: &Path,
    timeout: Duration,
    json: bool,
    out: &mut dyn Write,
) -> Result<Status, CliError> {
    let mut client = connect(endpoint, timeout).await?;
    let info = client.hello().await.map_err(|e| CliError::talking(endpoint, e))?;
    if json {
        let reply = IpcResponse::Data { data: serde_json::to_value(&info).unwrap_or_default() };
        writeln!(out, "{}", render::json_line(&reply))?;
    } else {
        out.write_all(render::info_text(&info, endpoint).as_bytes())?;
    }
    out.flush()?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_replies_go_to_stderr_and_fail() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let reply = IpcResponse::Error { message: "unknown app: x".into() };
        let request = IpcMessage::Stop { name: "x".into() };
        let status = print_reply(&request, &reply, false, &mut out, &mut err).expect("print");
        assert_eq!(status, Status::Failure);
        assert!(out.is_empty());
        assert_eq!(err, b"error: unknown app: x\n");
    }

    #[test]
    fn json_mode_prints_every_reply_on_stdout_as_one_line() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let reply = IpcResponse::Data { data: json!(["a", "b"]) };
        let status =
            print_reply(&IpcMessage::List, &reply, true, &mut out, &mut err).expect("print");
        assert_eq!(status, Status::Success);
        assert_eq!(out, b"{\"Data\":{\"data\":[\"a\",\"b\"]}}\n");
        let reply = IpcResponse::Error { message: "no".into() };
        let status =
            print_reply(&IpcMessage::List, &reply, true, &mut out, &mut err).expect("print");
        assert_eq!(status, Status::Failure);
        assert!(err.is_empty());
    }
}
