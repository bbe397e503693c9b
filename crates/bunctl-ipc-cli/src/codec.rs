//! `encode` and `decode`: NDJSON to frames and back, so that shell scripts can speak the
//! protocol through `socat`.
//!
//! ```text
//! "List"                          encode                      decode
//! {"Stop":{"name":"web"}}   ───────────────▶   frames   ───────────────▶   one JSON line per frame
//! ```
//!
//! Both directions accept client messages ([`IpcMessage`]) and server responses
//! ([`IpcResponse`]) alike, so either side of a conversation can be scripted. `encode` checks each
//! line against the protocol and writes it in the canonical form a Rust peer produces; `decode`
//! checks each frame the same way but prints the payload exactly as it arrived (only
//! whitespace between JSON tokens is dropped, so that every frame stays on one line).

use std::borrow::Cow;
use std::io::{self, BufRead, Read, Write};

use bunctl_ipc::{IpcError, IpcMessage, IpcResponse, proto::blocking};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::CliError;

/// The top-level keys of [`IpcResponse`]'s variants; anything else is read as an
/// [`IpcMessage`].
const RESPONSE_TAGS: [&str; 4] = ["Success", "Error", "Data", "Event"];

/// A message in either direction.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Client to server.
    Message(IpcMessage),
    /// Server to client.
    Response(IpcResponse),
}

impl Frame {
    /// Parses JSON text as a message or a response. The error names what was expected, based on
    /// the document's tag (`{"Success":...}` is checked as a response, anything else as a
    /// message).
    pub fn parse(json: &str) -> Result<Frame, serde_json::Error> {
        let value: Value = serde_json::from_str(json)?;
        let is_response = value
            .as_object()
            .and_then(|map| map.keys().next())
            .is_some_and(|tag| RESPONSE_TAGS.contains(&tag.as_str()));
        if is_response {
            serde_json::from_value(value).map(Frame::Response)
        } else {
            serde_json::from_value(value).map(Frame::Message)
        }
    }

    /// Writes this frame to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> bunctl_ipc::Result<()> {
        match self {
            Frame::Message(m) => blocking::write_message(w, m),
            Frame::Response(r) => blocking::write_message(w, r),
        }
    }
}

/// `encode`: each non-blank line of `input` is a JSON message or response; each is written to
/// `output` as one frame, flushed at once (for interactive use through a pipe). Returns the
/// number of frames written.
///
/// Stops at the first line that is not a valid message, with [`CliError::Line`].
pub fn encode(input: impl BufRead, mut output: impl Write) -> Result<u64, CliError> {
    let mut frames = 0;
    for (number, line) in (1..).zip(input.lines()) {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let frame = Frame::parse(&line).map_err(|e| CliError::Line {
            line: number,
            reason: format!("not a bunctl message or response: {e}"),
        })?;
        frame.write_to(&mut output).map_err(|e| match e {
            IpcError::Io(e) => CliError::Io(e),
            e => CliError::Line { line: number, reason: e.to_string() },
        })?;
        frames += 1;
    }
    Ok(frames)
}

/// `decode`: reads frames from `input` until its end, writing each payload to `output` as one
/// line. Returns the number of frames.
///
/// A frame that is cut short, oversize, empty, or not a message or response stops decoding
/// with [`CliError::Frame`], which gives the byte offset where that frame starts. Lines for the
/// frames before it have been written by then.
pub fn decode(input: impl Read, mut output: impl Write) -> Result<u64, CliError> {
    let mut input = Counting { inner: input, count: 0 };
    let mut frames = 0;
    loop {
        let offset = input.count;
        let failed = |error| CliError::Frame { frame: frames + 1, offset, error };
        let payload = match blocking::read_message::<Box<RawValue>, _>(&mut input) {
            Ok(payload) => payload,
            Err(IpcError::Closed) => return Ok(frames),
            Err(IpcError::Io(e)) => return Err(CliError::Io(e)),
            Err(e) => return Err(failed(e)),
        };
        Frame::parse(payload.get()).map_err(|e| failed(IpcError::InvalidMessage(e)))?;
        output.write_all(compact(payload.get()).as_bytes())?;
        output.write_all(b"\n")?;
        output.flush()?;
        frames += 1;
    }
}

/// JSON text without the whitespace between tokens (string contents are kept as they are).
pub fn compact(json: &str) -> Cow<'_, str> {
    let mut in_string = false;
    let mut escaped = false;
    let mut out: Option<String> = None;
    for (i, c) in json.char_indices() {
        let keep = if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            true
        } else {
            in_string = c == '"';
            !matches!(c, ' ' | '\t' | '\n' | '\r')
        };
        match (&mut out, keep) {
            (Some(out), true) => out.push(c),
            (None, false) => out = Some(json[..i].to_owned()),
            _ => {}
        }
    }
    out.map_or(Cow::Borrowed(json), Cow::Owned)
}

/// A reader that counts the bytes it has handed out.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(wire: &[u8]) -> (String, Result<u64, CliError>) {
        let mut out = Vec::new();
        let result = decode(wire, &mut out);
        (String::from_utf8(out).expect("utf-8"), result)
    }

    #[test]
    fn encode_then_decode_gives_the_lines_back() {
        let lines =
            "\"List\"\n\n{\"Stop\":{\"name\":\"web\"}}\n{\"Success\":{\"message\":\"ok\"}}\n";
        let mut wire = Vec::new();
        assert_eq!(encode(lines.as_bytes(), &mut wire).expect("encode"), 3);
        assert_eq!(&wire[..10], b"\x06\x00\x00\x00\"List\"");
        let (text, result) = decoded(&wire);
        assert_eq!(result.expect("decode"), 3);
        assert_eq!(text, lines.replace("\n\n", "\n"));
    }

    #[test]
    fn decode_prints_the_payload_as_it_arrived_on_one_line() {
        let payload = br#"{"Data": {"data": {"z": 1, "a": "x  y"}}}"#;
        let mut wire = (payload.len() as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(payload);
        let (text, result) = decoded(&wire);
        assert_eq!(result.expect("decode"), 1);
        assert_eq!(text, "{\"Data\":{\"data\":{\"z\":1,\"a\":\"x  y\"}}}\n", "key order kept");
    }

    #[test]
    fn a_truncated_frame_is_reported_with_its_offset_after_the_good_ones() {
        let mut wire = Vec::new();
        encode("\"List\"\n\"List\"\n".as_bytes(), &mut wire).expect("encode");
        wire.truncate(wire.len() - 2);
        let (text, result) = decoded(&wire);
        assert_eq!(text, "\"List\"\n");
        let e = result.expect_err("truncated");
        assert!(matches!(e, CliError::Frame { frame: 2, offset: 10, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "frame 2 at byte offset 10: connection closed mid-frame: received 8 of 10 bytes"
        );
    }

    #[test]
    fn frames_that_are_not_protocol_messages_stop_decoding() {
        let mut wire = b"\x07\x00\x00\x00\"Hello\"".to_vec();
        wire.extend_from_slice(b"\x06\x00\x00\x00\"List\"");
        let (text, result) = decoded(&wire);
        assert!(text.is_empty());
        let e = result.expect_err("not a message");
        assert!(matches!(e, CliError::Frame { frame: 1, offset: 0, .. }), "{e:?}");
        let (_, result) = decoded(&[0, 0, 0, 0]);
        assert!(result.expect_err("empty").to_string().contains("empty frame"));
        let (_, result) = decoded(&[0xff, 0xff, 0xff, 0xff]);
        assert!(result.expect_err("oversize").to_string().contains("exceeds maximum allowed size"));
    }

    #[test]
    fn encode_names_the_line_that_is_not_a_message() {
        let mut wire = Vec::new();
        let e = encode("\"List\"\n{\"Stop\":{}}\n".as_bytes(), &mut wire).expect_err("bad line");
        let text = e.to_string();
        assert!(text.starts_with("line 2: not a bunctl message or response:"), "{text}");
        assert!(text.contains("missing field `name`"), "{text}");
        assert_eq!(wire.len(), 10, "the good line before it was written");
        let e = encode("{\"Error\":{}}\n".as_bytes(), Vec::new()).expect_err("bad response");
        assert!(e.to_string().contains("missing field `message`"), "{e}");
    }

    #[test]
    fn compact_keeps_escaped_quotes_and_whitespace_inside_strings() {
        assert_eq!(compact(r#"[ "a \" b" , "\\" ]"#), r#"["a \" b","\\"]"#);
        assert_eq!(compact("\n\"x\"\n"), "\"x\"");
    }

    #[test]
    fn compact_removes_whitespace_between_tokens_only() {
        assert_eq!(compact("{ \"a b\" : [1, 2] }"), "{\"a b\":[1,2]}");
        assert_eq!(compact(r#"{"already":"compact"}"#), r#"{"already":"compact"}"#);
    }
}
