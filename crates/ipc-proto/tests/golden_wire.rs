//! The golden wire vectors in `testdata/vectors.json` (of this crate), checked both ways.
//!
//! The same file is read by the TypeScript client's tests (`clients/typescript/test/`), so the
//! two implementations cannot drift apart. Each vector has hand-written sources (`value`,
//! `parts`) and derived fields (`json`, `frame`, `bytes`, `outcomes`, `end`) computed here from
//! this crate's codec. A difference fails the test with the entries that differ;
//! `BLESS=1 cargo test -p ipc-proto --test golden_wire` rewrites the derived fields instead
//! (review the diff before committing it).

use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::BytesMut;
use ipc_proto::{
    ClientCodec, FollowStart, FrameConfig, HEADER_LEN, IpcCodec, IpcError, IpcMessage, IpcResponse,
    Request, ServerCodec, ServerInfo,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio_util::codec::{Decoder, Encoder};

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/vectors.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn frame_of(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small payload");
    let mut frame = len.to_le_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

fn field<'a>(entry: &'a Value, key: &str) -> &'a Value {
    entry.get(key).unwrap_or_else(|| panic!("vector {} has no `{key}`", entry["name"]))
}

fn text(entry: &Value, key: &str) -> String {
    field(entry, key).as_str().unwrap_or_else(|| panic!("`{key}` is not a string")).to_owned()
}

/// Encodes `value` (as `T`) with `codec`, checks that the frame decodes back to it with
/// `decoder`, and returns the derived `json` and `frame`.
fn canonical<T, D, E>(
    entry: &Value,
    mut encoder: IpcCodec<D, T>,
    mut decoder: IpcCodec<T, E>,
) -> Value
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let name = &entry["name"];
    let value: T = serde_json::from_value(field(entry, "value").clone())
        .unwrap_or_else(|e| panic!("vector {name}: `value` is not a valid message: {e}"));
    let mut wire = BytesMut::new();
    encoder.encode(&value, &mut wire).expect("encode");
    let mut src = wire.clone();
    let back = decoder.decode(&mut src).expect("decode").expect("a whole frame");
    assert_eq!(back, value, "vector {name}: the frame does not decode to the value");
    assert!(src.is_empty(), "vector {name}: bytes left over");
    let payload = std::str::from_utf8(&wire[HEADER_LEN..]).expect("UTF-8 payload");
    let mut out = entry.clone();
    out["json"] = json!(payload);
    out["frame"] = json!(hex(&wire));
    out
}

/// Decodes an accepted non-canonical form and checks it against `value`; derives `frame`.
fn accepted<T>(entry: &Value, mut decoder: impl Decoder<Item = T, Error = IpcError>) -> Value
where
    T: DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let name = &entry["name"];
    let frame = frame_of(text(entry, "json").as_bytes());
    let expected: T = serde_json::from_value(field(entry, "value").clone()).expect("valid value");
    let got = decoder.decode(&mut BytesMut::from(&frame[..])).expect("decodes").expect("whole");
    assert_eq!(got, expected, "vector {name}");
    let mut out = entry.clone();
    out["frame"] = json!(hex(&frame));
    out
}

/// An event frame with its position (or a notice with its range), as bunctl-ipc's bus sends it:
/// a peer that knows no positions reads `response`; derives `frame`.
fn positioned(entry: &Value) -> Value {
    let name = &entry["name"];
    let frame = frame_of(text(entry, "json").as_bytes());
    let expected: IpcResponse =
        serde_json::from_value(field(entry, "response").clone()).expect("valid response");
    let got = ClientCodec::new().decode(&mut BytesMut::from(&frame[..])).expect("decodes");
    assert_eq!(got, Some(expected), "vector {name}: old peers ignore the position");
    let json: Value = serde_json::from_str(&text(entry, "json")).expect("json");
    let event = &json["Event"];
    assert_eq!(event.get("seq"), entry.get("seq"), "vector {name}: seq");
    for key in ["missed", "first_seq", "last_seq"] {
        assert_eq!(event["data"].get(key), entry.get(key), "vector {name}: {key}");
    }
    let mut out = entry.clone();
    out["frame"] = json!(hex(&frame));
    out
}

/// A protocol 1 request or reply (WIRE.md, "Protocol 1"): canonical both ways like the brief's
/// messages; a request also shows what a protocol 0 server makes of it (`old_server`), and a
/// reply's data reads as the type `reads_as` names.
fn protocol(entry: &Value) -> Value {
    let name = entry["name"].clone();
    match text(entry, "direction").as_str() {
        "request" => {
            let mut out = canonical::<Request, _, _>(
                entry,
                IpcCodec::<(), Request>::new(),
                IpcCodec::<Request, ()>::new(),
            );
            let frame = unhex(&text(&out, "frame"));
            let old = ServerCodec::new().decode(&mut BytesMut::from(&frame[..]));
            let kind = match old {
                Ok(m) => panic!("vector {name}: a protocol 0 server read it as {m:?}"),
                Err(e) => error_kind(&e),
            };
            out["old_server"] = json!(kind);
            out
        }
        "reply" => {
            let out = canonical::<IpcResponse, _, _>(entry, ServerCodec::new(), ClientCodec::new());
            let response: IpcResponse =
                serde_json::from_value(field(entry, "value").clone()).expect("a response");
            match (text(entry, "reads_as").as_str(), response) {
                ("ServerInfo", IpcResponse::Data { data }) => {
                    let info: ServerInfo = serde_json::from_value(data).expect("ServerInfo");
                    assert_eq!(info.protocol, ipc_proto::PROTOCOL_VERSION, "vector {name}");
                }
                ("FollowStart", IpcResponse::Data { data }) => {
                    serde_json::from_value::<FollowStart>(data).expect("FollowStart");
                }
                ("reset", IpcResponse::Event { event_type, data }) => {
                    assert_eq!(event_type, ipc_proto::event::RESET, "vector {name}");
                    assert!(data["instance"].is_string(), "vector {name}: instance");
                }
                (other, response) => panic!("vector {name}: {other} vs {response:?}"),
            }
            out
        }
        other => panic!("unknown direction {other}"),
    }
}

fn error_kind(e: &IpcError) -> &'static str {
    match e {
        IpcError::EmptyFrame => "empty_frame",
        IpcError::InvalidMessage(_) => "invalid_message",
        IpcError::FrameTooLarge { .. } => "frame_too_large",
        IpcError::Truncated { .. } => "truncated",
        IpcError::Closed => "closed",
        other => panic!("unexpected error from the codec: {other:?}"),
    }
}

/// Feeds `bytes` to `decoder` at once, then ends the stream: what each frame gave, and how the
/// stream ended (`closed`, `truncated`, `frame_too_large`).
fn outcomes<T: Serialize>(
    bytes: &[u8],
    mut decoder: impl Decoder<Item = T, Error = IpcError>,
) -> (Vec<Value>, &'static str) {
    let mut buf = BytesMut::from(bytes);
    let mut seen = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(v)) => seen.push(json!({ "value": serde_json::to_value(v).expect("to json") })),
            Ok(None) => break,
            Err(e @ IpcError::FrameTooLarge { .. }) => return (seen, error_kind(&e)),
            Err(e) => seen.push(json!({ "error": error_kind(&e) })),
        }
    }
    let end = match decoder.decode_eof(&mut buf) {
        Ok(None) => "closed",
        Ok(Some(_)) => panic!("decode_eof produced a frame decode missed"),
        Err(e) => error_kind(&e),
    };
    (seen, end)
}

fn assemble(parts: &[Value]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for part in parts {
        let part = part.as_object().expect("a part is an object");
        let (kind, v) = part.iter().next().expect("a part has one key");
        match kind.as_str() {
            "header" => {
                let n = u32::try_from(v.as_u64().expect("header: a number")).expect("u32 header");
                bytes.extend_from_slice(&n.to_le_bytes());
            }
            "text" => bytes.extend_from_slice(v.as_str().expect("text").as_bytes()),
            "hex" => bytes.extend_from_slice(&unhex(v.as_str().expect("hex"))),
            "frame" => bytes.extend_from_slice(&frame_of(v.as_str().expect("frame").as_bytes())),
            other => panic!("unknown part kind {other}"),
        }
    }
    bytes
}

fn malformed(entry: &Value) -> Value {
    let parts = field(entry, "parts").as_array().expect("parts: an array");
    let bytes = assemble(parts);
    let config = match entry.get("max_message_size").and_then(Value::as_u64) {
        Some(max) => FrameConfig::new().with_max_message_size(usize::try_from(max).expect("usize")),
        None => FrameConfig::new(),
    };
    let (seen, end) = match text(entry, "direction").as_str() {
        "response" => outcomes(&bytes, ClientCodec::with_config(config)),
        "message" => outcomes(&bytes, ServerCodec::with_config(config)),
        other => panic!("unknown direction {other}"),
    };
    let mut out = entry.clone();
    out["bytes"] = json!(hex(&bytes));
    out["outcomes"] = Value::Array(seen);
    out["end"] = json!(end);
    out
}

/// The file as this crate's codec says it must be.
fn derive(file: &Value) -> Value {
    let list = |key: &str| file[key].as_array().cloned().unwrap_or_default();
    let mut out = file.as_object().cloned().unwrap_or_else(Map::new);
    let messages: Vec<Value> = list("messages")
        .iter()
        .map(|e| canonical::<IpcMessage, _, _>(e, ClientCodec::new(), ServerCodec::new()))
        .collect();
    let responses: Vec<Value> = list("responses")
        .iter()
        .map(|e| canonical::<IpcResponse, _, _>(e, ServerCodec::new(), ClientCodec::new()))
        .collect();
    let accepted: Vec<Value> = list("accepted")
        .iter()
        .map(|e| match text(e, "direction").as_str() {
            "message" => accepted::<IpcMessage>(e, ServerCodec::new()),
            "response" => accepted::<IpcResponse>(e, ClientCodec::new()),
            other => panic!("unknown direction {other}"),
        })
        .collect();
    let malformed: Vec<Value> = list("malformed").iter().map(malformed).collect();
    let positioned: Vec<Value> = list("positioned").iter().map(positioned).collect();
    out.insert("positioned".into(), Value::Array(positioned));
    let protocol: Vec<Value> = list("protocol").iter().map(protocol).collect();
    out.insert("protocol".into(), Value::Array(protocol));
    out.insert("messages".into(), Value::Array(messages));
    out.insert("responses".into(), Value::Array(responses));
    out.insert("accepted".into(), Value::Array(accepted));
    out.insert("malformed".into(), Value::Array(malformed));
    Value::Object(out)
}

fn differences(file: &Value, derived: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    for section in ["messages", "responses", "accepted", "malformed", "positioned", "protocol"] {
        let (a, b) = (&file[section], &derived[section]);
        let (a, b) = (a.as_array().cloned().unwrap_or_default(), b.as_array().expect("derived"));
        for (old, new) in a.iter().zip(b) {
            for (key, value) in new.as_object().expect("object") {
                if old.get(key) != Some(value) {
                    diffs.push(format!(
                        "{section}/{}: `{key}`\n    file:     {}\n    expected: {value}",
                        new["name"],
                        old.get(key).map_or("(missing)".into(), Value::to_string),
                    ));
                }
            }
        }
    }
    diffs
}

#[test]
fn golden_wire_vectors_match_the_codec_both_ways() {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let file: Value = serde_json::from_str(&text).expect("vectors.json is JSON");
    let derived = derive(&file);
    let diffs = differences(&file, &derived);
    if diffs.is_empty() {
        return;
    }
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        let pretty = serde_json::to_string_pretty(&derived).expect("serialize") + "\n";
        std::fs::write(&path, pretty).expect("write vectors.json");
        eprintln!("BLESS=1: rewrote {} ({} differences)", path.display(), diffs.len());
        return;
    }
    panic!(
        "{} differs from what the codec produces ({} entries); if the change is intended, run \
         `BLESS=1 cargo test -p ipc-proto --test golden_wire` and review the diff:\n{}",
        path.display(),
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn every_variant_has_a_vector() {
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_path()).expect("read vectors.json"))
            .expect("JSON");
    let variant = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let seen = |section: &str| -> Vec<String> {
        file[section].as_array().expect("array").iter().map(|e| variant(&e["value"])).collect()
    };
    let messages = seen("messages");
    for v in
        ["Start", "Stop", "Restart", "Delete", "Status", "List", "Logs", "Subscribe", "Unsubscribe"]
    {
        assert!(messages.iter().any(|m| m == v), "no message vector for {v}");
    }
    let protocol = seen("protocol");
    for v in ["Hello", "Follow"] {
        assert!(protocol.iter().any(|m| m == v), "no protocol vector for {v}");
    }
    let responses = seen("responses");
    for v in ["Success", "Error", "Data", "Event"] {
        assert!(responses.iter().any(|m| m == v), "no response vector for {v}");
    }
}
