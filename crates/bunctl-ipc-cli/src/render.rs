//! How replies and events look on a terminal, and as JSON lines.
//!
//! Human output is shaped by the request that was sent: `List` and `Status` become tables,
//! `Logs` aligned lines, anything else pretty-printed JSON. Data that does not have the shape the
//! reference daemon gives (another daemon may answer differently) falls back to pretty JSON, so
//! nothing is ever hidden. `--json` output is each response exactly as it travels on the wire,
//! one compact line each.

use bunctl_ipc::event_types::{LAGGED, LOG_LINE, PROCESS_EXITED, PROCESS_STARTED, STATUS_CHANGE};
use bunctl_ipc::{Event, IpcMessage, IpcResponse, ServerInfo};
use serde_json::Value;

use crate::table::Table;

/// A response as one compact JSON line (without the newline), as on the wire.
pub fn json_line(response: &IpcResponse) -> String {
    // Cannot fail: the enums derive `Serialize` and every map in a `Value` has string keys.
    serde_json::to_string(response).expect("an IpcResponse always serializes")
}

/// An event as one compact JSON line (without the newline), as on the wire: the `Event`
/// frame, with its position (`seq`) when the server gave one.
pub fn event_json_line(event: &Event) -> String {
    #[derive(serde::Serialize)]
    enum Wire<'a> {
        Event {
            event_type: &'a str,
            data: &'a Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            seq: Option<u64>,
        },
    }
    let wire = Wire::Event { event_type: &event.event_type, data: &event.data, seq: event.seq() };
    // Cannot fail, as above.
    serde_json::to_string(&wire).expect("an event always serializes")
}

/// A log line as `logs` prints it: the line alone, or after its app's name when `with_app`.
pub fn log_text(event: &Event, with_app: bool) -> String {
    let line = event.data.get("line").and_then(Value::as_str).unwrap_or_default();
    match event.app() {
        Some(app) if with_app => format!("{app} | {line}"),
        _ => line.to_owned(),
    }
}

/// `info`'s table: one row per thing the server said, ending in a newline.
pub fn info_text(info: &ServerInfo, endpoint: &std::path::Path) -> String {
    if info.protocol == 0 {
        return format!(
            "{}: an old daemon (protocol 0): it does not answer Hello, so it has no history, \
             no cursors and nothing to report\n",
            endpoint.display()
        );
    }
    let or_dash = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    let mut table = Table::headless();
    let uptime = std::time::Duration::from_millis(info.uptime_ms);
    let rows = [
        ("endpoint", endpoint.display().to_string()),
        ("server", info.server.clone()),
        ("protocol", info.protocol.to_string()),
        ("features", info.features.join(", ")),
        ("pid", or_dash(info.pid.map(u64::from))),
        ("uptime", human_duration(uptime)),
        ("instance", info.instance.clone()),
        ("last seq", info.seq.to_string()),
        ("connections", or_dash(info.connections)),
        ("subscribers", info.subscribers.to_string()),
        ("events published", info.published.to_string()),
        ("events lost", format!("{} (dropped for subscribers that fell behind)", info.lost)),
    ];
    for (key, value) in rows {
        table.push([key.to_owned(), value]);
    }
    table.to_string()
}

/// `3d 4h`, `2h 5m`, `4m 2s`, `12s`.
fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// The human form of `reply` to `request`, ending in a newline (empty for an empty reply).
///
/// `Error` replies are rendered as `error: MESSAGE`; the caller decides where they go.
pub fn reply_text(request: &IpcMessage, reply: &IpcResponse) -> String {
    match reply {
        IpcResponse::Success { message } => format!("{message}\n"),
        IpcResponse::Error { message } => format!("error: {message}\n"),
        IpcResponse::Event { event_type, data } => {
            format!("{}\n", event_text(&Event::new(event_type.clone(), data.clone())))
        }
        IpcResponse::Data { data } => {
            let shaped = match request {
                IpcMessage::List => list_text(data),
                IpcMessage::Status { .. } => status_text(data),
                IpcMessage::Logs { .. } => logs_text(data),
                _ => None,
            };
            shaped.unwrap_or_else(|| pretty(data))
        }
    }
}

fn pretty(data: &Value) -> String {
    let mut text = serde_json::to_string_pretty(data).unwrap_or_else(|_| data.to_string());
    text.push('\n');
    text
}

/// `List`: an array of names.
fn list_text(data: &Value) -> Option<String> {
    let names = data.as_array()?;
    if names.is_empty() {
        return Some("no apps\n".into());
    }
    let mut table = Table::new(["NAME"]);
    for name in names {
        table.push([name.as_str()?]);
    }
    Some(table.to_string())
}

/// `Status`: one status record, or an array of them.
fn status_text(data: &Value) -> Option<String> {
    let records = match data {
        Value::Array(records) => records.as_slice(),
        Value::Object(_) => std::slice::from_ref(data),
        _ => return None,
    };
    if records.is_empty() {
        return Some("no apps\n".into());
    }
    let mut table = Table::new(["NAME", "STATE", "PID", "RESTARTS", "EXIT"]);
    for record in records {
        let record = record.as_object()?;
        let name = record.get("name")?.as_str()?;
        let state = record.get("state")?.as_str()?;
        table.push([
            name.to_owned(),
            state.to_owned(),
            cell(record.get("pid")),
            cell(record.get("restarts")),
            exit_cell(record.get("exit_code"), record.get("signal")),
        ]);
    }
    Some(table.to_string())
}

/// `Logs`: an array of `{"app", "stream", "line"}`.
fn logs_text(data: &Value) -> Option<String> {
    let mut table = Table::headless();
    for record in data.as_array()? {
        let app = record.get("app")?.as_str()?;
        let stream = record.get("stream").and_then(Value::as_str).unwrap_or("");
        let line = record.get("line")?.as_str()?;
        table.push([app, stream, line]);
    }
    Some(table.to_string())
}

/// A scalar as a table cell: strings bare, null and absence as `-`.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn exit_cell(code: Option<&Value>, signal: Option<&Value>) -> String {
    match (code.and_then(Value::as_i64), signal.and_then(Value::as_i64)) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => signal_name(signal),
        (None, None) => "-".into(),
    }
}

/// The name of a signal whose number is the same on every Unix, else `signal N`.
fn signal_name(signal: i64) -> String {
    match signal {
        1 => "SIGHUP".into(),
        2 => "SIGINT".into(),
        9 => "SIGKILL".into(),
        15 => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// One event as one human-readable line (without the newline): the app, the event type, then
/// what happened.
pub fn event_text(event: &Event) -> String {
    if let Some(missed) = event.missed() {
        return format!("lagged: {missed} events were dropped because this watcher fell behind");
    }
    let data = &event.data;
    let field = |key: &str| data.get(key).and_then(Value::as_str);
    let detail = match event.event_type.as_str() {
        PROCESS_STARTED => format!("pid {}", cell(data.get("pid"))),
        PROCESS_EXITED => match exit_cell(data.get("exit_code"), data.get("signal")) {
            s if s.starts_with("SIG") || s.starts_with("signal") => format!("killed by {s}"),
            s if s == "-" => "exited".into(),
            code => format!("exit code {code}"),
        },
        STATUS_CHANGE if field("state").is_some() => field("state").unwrap_or_default().into(),
        LOG_LINE if field("line").is_some() => {
            format!("[{}] {}", field("stream").unwrap_or("?"), field("line").unwrap_or_default())
        }
        LAGGED => format!("missed {}", cell(data.get("missed"))),
        _ => without_app(data),
    };
    let app = event.app().unwrap_or("-");
    format!("{app}  {:<15}  {detail}", event.event_type)
}

/// The event's data minus its `app` (already shown), as compact JSON.
fn without_app(data: &Value) -> String {
    match data {
        Value::Object(map) => {
            let mut rest = map.clone();
            rest.remove("app");
            if rest.is_empty() { String::new() } else { Value::Object(rest).to_string() }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(data: Value) -> IpcResponse {
        IpcResponse::Data { data }
    }

    #[test]
    fn status_records_become_a_table_with_signals_by_name() {
        let reply = data(json!([
            {"name": "api", "state": "running", "pid": 42, "restarts": 1, "exit_code": null, "signal": null},
            {"name": "web", "state": "stopped", "pid": null, "restarts": 0, "exit_code": null, "signal": 15},
        ]));
        assert_eq!(
            reply_text(&IpcMessage::Status { name: None }, &reply),
            "NAME  STATE    PID  RESTARTS  EXIT\n\
             api   running  42   1         -\n\
             web   stopped  -    0         SIGTERM\n"
        );
    }

    #[test]
    fn a_single_status_record_is_a_one_row_table() {
        let reply = data(
            json!({"name": "web", "state": "exited", "pid": null, "restarts": 0, "exit_code": 3}),
        );
        let text = reply_text(&IpcMessage::Status { name: Some("web".into()) }, &reply);
        assert_eq!(text.lines().nth(1), Some("web   exited  -    0         3"));
    }

    #[test]
    fn data_of_an_unexpected_shape_is_shown_as_pretty_json() {
        let reply = data(json!({"uptime": 5}));
        assert_eq!(reply_text(&IpcMessage::List, &reply), "{\n  \"uptime\": 5\n}\n");
        assert_eq!(
            reply_text(&IpcMessage::Status { name: None }, &data(json!([{"x": 1}]))),
            "[\n  {\n    \"x\": 1\n  }\n]\n"
        );
    }

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(reply_text(&IpcMessage::List, &data(json!([]))), "no apps\n");
        assert_eq!(reply_text(&IpcMessage::Status { name: None }, &data(json!([]))), "no apps\n");
        assert_eq!(reply_text(&IpcMessage::Logs { name: None, lines: 5 }, &data(json!([]))), "");
    }

    #[test]
    fn log_records_are_aligned_by_app_and_stream() {
        let reply = data(json!([
            {"app": "web", "stream": "stdout", "line": "up"},
            {"app": "worker", "stream": "stderr", "line": "oops"},
        ]));
        assert_eq!(
            reply_text(&IpcMessage::Logs { name: None, lines: 10 }, &reply),
            "web     stdout  up\nworker  stderr  oops\n"
        );
    }

    #[test]
    fn exits_by_code_and_by_signal_read_differently() {
        let exited = |data| event_text(&Event::new(PROCESS_EXITED, data));
        assert_eq!(exited(json!({"app": "a", "exit_code": 0})), "a  process_exited   exit code 0");
        assert_eq!(
            exited(json!({"app": "a", "exit_code": null, "signal": 9})),
            "a  process_exited   killed by SIGKILL"
        );
        assert_eq!(
            event_text(&Event::new("custom", json!({"app": "a", "n": 1}))),
            "a  custom           {\"n\":1}"
        );
    }

    #[test]
    fn json_lines_are_the_wire_form() {
        assert_eq!(
            json_line(&IpcResponse::Success { message: "ok".into() }),
            r#"{"Success":{"message":"ok"}}"#
        );
    }

    #[test]
    fn event_text_is_one_aligned_line_per_event() {
        use bunctl_ipc::Event;
        use serde_json::json;

        let started = Event::new("process_started", json!({"app": "web", "pid": 42}));
        assert_eq!(event_text(&started), "web  process_started  pid 42");
        let line = Event::new("log_line", json!({"app": "web", "stream": "stdout", "line": "hi"}));
        assert_eq!(event_text(&line), "web  log_line         [stdout] hi");
        assert_eq!(
            event_text(&Event::lagged(3)),
            "lagged: 3 events were dropped because this watcher fell behind"
        );
    }
}
