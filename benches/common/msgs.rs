//! The messages every workload sends, identical for every implementation.

use bunctl_ipc::{IpcMessage, IpcResponse};
use serde::Serialize;
use serde_json::{Value, json};

/// A small request: `{"Status":{"name":"web"}}` (25 bytes of JSON).
pub fn small_request() -> IpcMessage {
    IpcMessage::Status { name: Some("web".into()) }
}

/// The reply to every request: a small `Data` (about 60 bytes of JSON).
pub fn small_reply() -> IpcResponse {
    IpcResponse::Data { data: json!({"name": "web", "status": "running", "pid": 1234}) }
}

/// A `Data` reply of about 4 KiB: a status table of 16 apps.
pub fn data_4k() -> IpcResponse {
    let apps: Vec<Value> = (0..16u64)
        .map(|i| {
            json!({
                "name": format!("app-{i:03}"),
                "status": "running",
                "pid": 10_000 + i,
                "restarts": i % 3,
                "uptime_secs": 86_400 + i * 17,
                "memory_bytes": 52_428_800 + i * 4096,
                "cpu_percent": 1.5,
                "cwd": format!("/srv/apps/app-{i:03}"),
                "script": "dist/server.js",
                "env": {"NODE_ENV": "production", "PORT": (3000 + i).to_string()},
            })
        })
        .collect();
    IpcResponse::Data { data: json!({ "apps": apps }) }
}

/// `size` bytes of configuration text that JSON carries without escapes (`key=value;` pairs),
/// so that the large-message figures measure the transport rather than serde_json's escaping.
pub fn config_text(size: usize) -> String {
    const UNIT: &str = "name=web;script=dist/server.js;cwd=/srv/web;instances=4;env.NODE_ENV=production;env.PORT=3000;max_memory=512M;autorestart=true;";
    repeat_to(UNIT, size)
}

/// `size` bytes of JSON text (an app configuration repeated, one per line): quotes and newlines
/// that serde_json must escape on the way out and unescape on the way in.
pub fn config_json(size: usize) -> String {
    const UNIT: &str = r#"{"name":"web","script":"dist/server.js","cwd":"/srv/web","instances":4,"env":{"NODE_ENV":"production","PORT":"3000"},"max_memory":"512M","autorestart":true}"#;
    repeat_to(&format!("{UNIT}\n"), size)
}

fn repeat_to(unit: &str, size: usize) -> String {
    let mut text = unit.repeat(size / unit.len() + 1);
    text.truncate(size);
    text
}

/// `Start` whose `config` is `size` bytes of plain text ([`config_text`]).
pub fn start(size: usize) -> IpcMessage {
    IpcMessage::Start { name: "web".into(), config: config_text(size) }
}

/// `Start` whose `config` is `size` bytes of JSON text ([`config_json`]).
pub fn start_json(size: usize) -> IpcMessage {
    IpcMessage::Start { name: "web".into(), config: config_json(size) }
}

/// A reply carrying `size` bytes of text.
pub fn big_reply(size: usize) -> IpcResponse {
    IpcResponse::Data { data: Value::String(config_text(size)) }
}

/// The `data` of the `i`-th published event: a log line.
pub fn event_data(i: u64) -> Value {
    json!({"app": "web", "stream": "stdout", "line": "GET /api/health 200 1.2ms", "seq": i})
}

/// The event type of every published event.
pub const EVENT_TYPE: &str = "log_line";

/// The complete frame of `msg`: the little-endian length, then the JSON.
pub fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let json = serde_json::to_vec(msg).expect("json");
    let mut out = Vec::with_capacity(json.len() + 4);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// The wire size of `msg`'s frame, header included.
pub fn wire_len<T: Serialize>(msg: &T) -> usize {
    frame(msg).len()
}
