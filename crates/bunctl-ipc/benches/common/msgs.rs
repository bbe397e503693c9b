//! The messages of every workload, the replies, and the baselines' framing (portable: the codec
//! bench uses it alone).
#![allow(dead_code)]

use bunctl_ipc::{IpcMessage, IpcResponse, MAX_MESSAGE_SIZE};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::codec::LengthDelimitedCodec;

/// The framing a user would configure: `[u32 LE length][payload]`, 10 MiB limit.
pub fn codec() -> LengthDelimitedCodec {
    let mut codec = LengthDelimitedCodec::builder();
    codec.little_endian().length_field_length(4).max_frame_length(MAX_MESSAGE_SIZE).new_codec()
}

pub fn to_bytes<T: Serialize>(msg: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(msg).expect("json"))
}

/// A small request: `{"Status":{"name":"web"}}` (25 bytes of JSON).
pub fn small_request() -> IpcMessage {
    IpcMessage::Status { name: Some("web".into()) }
}

/// The reply to every request but [`echo`]: a small `Data` (about 60 bytes of JSON).
pub fn small_reply() -> IpcResponse {
    IpcResponse::Data { data: json!({"name": "web", "status": "running", "pid": 1234}) }
}

pub fn reply_to(request: &IpcMessage) -> IpcResponse {
    match request {
        IpcMessage::Start { name, config } if name == "echo" => {
            IpcResponse::Data { data: Value::String(config.clone()) }
        }
        _ => small_reply(),
    }
}

/// A `Data` reply of about 4 KiB: a status table of 16 apps.
pub fn data_4k() -> IpcResponse {
    let app = |i: u64| {
        json!({"name": format!("app-{i:03}"), "status": "running", "pid": 10_000 + i,
            "restarts": i % 3, "uptime_secs": 86_400 + i * 17, "memory_bytes": 52_428_800 + i * 4096,
            "cpu_percent": 1.5, "cwd": format!("/srv/apps/app-{i:03}"), "script": "dist/server.js",
            "env": {"NODE_ENV": "production", "PORT": (3000 + i).to_string()}})
    };
    IpcResponse::Data { data: json!({ "apps": (0..16).map(app).collect::<Vec<_>>() }) }
}

fn repeat_to(unit: &str, size: usize) -> String {
    unit.repeat(size / unit.len() + 1)[..size].to_string()
}

/// `Start` with `size` bytes of text that JSON carries without escapes (`key=value;` pairs).
pub fn start(size: usize) -> IpcMessage {
    const UNIT: &str = "name=web;script=dist/server.js;cwd=/srv/web;instances=4;env.NODE_ENV=production;env.PORT=3000;max_memory=512M;autorestart=true;";
    IpcMessage::Start { name: "web".into(), config: repeat_to(UNIT, size) }
}

/// `Start` with `size` bytes of JSON text, whose quotes serde_json escapes and unescapes.
pub fn start_json(size: usize) -> IpcMessage {
    const UNIT: &str = r#"{"name":"web","script":"dist/server.js","cwd":"/srv/web","instances":4,"env":{"NODE_ENV":"production","PORT":"3000"},"max_memory":"512M","autorestart":true}"#;
    IpcMessage::Start { name: "web".into(), config: repeat_to(&format!("{UNIT}\n"), size) }
}

/// A [`start`] answered with its `config`: `size` bytes each way.
pub fn echo(size: usize) -> IpcMessage {
    let IpcMessage::Start { config, .. } = start(size) else { unreachable!() };
    IpcMessage::Start { name: "echo".into(), config }
}

/// The `data` of the `i`-th published event: a log line.
pub fn event_data(i: u64) -> Value {
    json!({"app": "web", "stream": "stdout", "line": "GET /api/health 200 1.2ms", "seq": i})
}

pub const EVENT_TYPE: &str = "log_line";

pub fn event(i: u64) -> IpcResponse {
    IpcResponse::Event { event_type: EVENT_TYPE.into(), data: event_data(i) }
}

/// The complete frame of `msg`: the little-endian length, then the JSON.
pub fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let json = serde_json::to_vec(msg).expect("json");
    [&(json.len() as u32).to_le_bytes()[..], &json].concat()
}
