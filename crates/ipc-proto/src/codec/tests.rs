use super::*;
use crate::{IpcMessage, MAX_MESSAGE_SIZE};
use serde_json::json;

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn encode<T: Serialize>(codec: &mut IpcCodec<(), T>, item: &T) -> BytesMut {
    let mut buf = BytesMut::new();
    codec.encode(item, &mut buf).expect("encode");
    buf
}

/// A `Start` whose JSON payload is exactly `size` bytes.
fn start_of_payload_size(size: usize) -> IpcMessage {
    let overhead = br#"{"Start":{"name":"a","config":""}}"#.len();
    IpcMessage::Start { name: "a".into(), config: "x".repeat(size - overhead) }
}

#[test]
fn frame_is_le_length_then_json() {
    let buf = encode(&mut IpcCodec::new(), &IpcMessage::Stop { name: "web".into() });
    assert_eq!(&buf[..], &frame(br#"{"Stop":{"name":"web"}}"#)[..]);
}

#[test]
fn payload_of_exactly_max_is_accepted_and_max_plus_one_rejected_on_encode() {
    let mut codec = IpcCodec::<(), IpcMessage>::new();
    let exact = encode(&mut codec, &start_of_payload_size(MAX_MESSAGE_SIZE));
    assert_eq!(exact.len(), MAX_MESSAGE_SIZE + HEADER_LEN);
    let back = ServerCodec::new().decode(&mut exact.clone()).expect("decode").expect("frame");
    assert_eq!(back, start_of_payload_size(MAX_MESSAGE_SIZE));

    let mut dst = BytesMut::from(&b"earlier frame bytes"[..]);
    let e = codec.encode(&start_of_payload_size(MAX_MESSAGE_SIZE + 1), &mut dst).expect_err("over");
    assert!(matches!(e, IpcError::FrameTooLarge { max: MAX_MESSAGE_SIZE, .. }), "{e}");
    assert!(e.to_string().contains("exceeds maximum allowed size"));
    assert_eq!(&dst[..], b"earlier frame bytes", "failed encode must leave dst untouched");
}

#[test]
fn oversize_encode_stops_serializing_soon_after_the_limit() {
    let mut codec =
        IpcCodec::<(), IpcMessage>::with_config(FrameConfig::new().with_max_message_size(1000));
    let mut dst = BytesMut::new();
    let huge = IpcMessage::Start { name: "a".into(), config: "y".repeat(5_000_000) };
    let e = codec.encode(&huge, &mut dst).expect_err("too large");
    // Aborted at the first write that crossed the limit, not after building 5 MB.
    assert!(dst.capacity() < 100_000, "capacity grew to {}", dst.capacity());
    assert!(
        matches!(e, IpcError::FrameTooLarge { size, max: 1000, operation: Operation::Send } if size > 1000)
    );
}

#[test]
fn header_of_max_plus_one_is_rejected_before_the_body_arrives() {
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::from(&((MAX_MESSAGE_SIZE + 1) as u32).to_le_bytes()[..]);
    let e = codec.decode(&mut src).expect_err("oversize header");
    assert!(
        matches!(e, IpcError::FrameTooLarge { size, max, operation: Operation::Receive } if size == MAX_MESSAGE_SIZE + 1 && max == MAX_MESSAGE_SIZE)
    );
}

#[test]
fn oversize_header_is_fatal_for_the_stream() {
    let mut codec = ServerCodec::with_config(FrameConfig::new().with_max_message_size(16));
    let mut src = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
    src.extend_from_slice(&frame(b"\"List\""));
    assert!(codec.decode(&mut src).is_err());
    // A following valid frame is not read: after a lying header nothing lines up any more.
    src.extend_from_slice(&frame(b"\"List\""));
    let e = codec.decode(&mut src).expect_err("still broken");
    assert!(matches!(e, IpcError::FrameTooLarge { size: 0xffff_ffff, max: 16, .. }));
    assert!(matches!(codec.decode_eof(&mut src), Err(IpcError::FrameTooLarge { .. })));
}

#[test]
fn four_gib_claim_reserves_nothing() {
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::with_capacity(16);
    src.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    assert!(codec.decode(&mut src).is_err());
    assert!(src.capacity() <= 16);
}

#[test]
fn zero_length_frame_is_rejected_and_does_not_desync() {
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::from(&[0u8, 0, 0, 0][..]);
    src.extend_from_slice(&frame(b"\"List\""));
    assert!(matches!(codec.decode(&mut src), Err(IpcError::EmptyFrame)));
    assert_eq!(codec.decode(&mut src).expect("next"), Some(IpcMessage::List));
}

#[test]
fn invalid_json_consumes_exactly_its_frame_and_does_not_desync() {
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::new();
    src.extend_from_slice(&frame(b"{not json"));
    src.extend_from_slice(&frame(b"\xff\xfe"));
    src.extend_from_slice(&frame(br#"{"Stop":{"nom":"web"}}"#));
    src.extend_from_slice(&frame(br#"{"Stop":{"name":"web"}}"#));
    for _ in 0..3 {
        assert!(matches!(codec.decode(&mut src), Err(IpcError::InvalidMessage(_))));
    }
    assert_eq!(codec.decode(&mut src).expect("ok"), Some(IpcMessage::Stop { name: "web".into() }));
    assert!(src.is_empty());
}

#[test]
fn trailing_bytes_after_json_inside_a_frame_are_invalid() {
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::from(&frame(b"\"List\" \"List\"")[..]);
    assert!(matches!(codec.decode(&mut src), Err(IpcError::InvalidMessage(_))));
    assert!(src.is_empty());
}

#[test]
fn byte_at_a_time_input_decodes_the_same() {
    let msgs = [IpcMessage::List, IpcMessage::Status { name: Some("web".into()) }];
    let mut wire = Vec::new();
    for m in &msgs {
        wire.extend_from_slice(&encode(&mut IpcCodec::new(), m));
    }
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    for b in wire {
        src.extend_from_slice(&[b]);
        if let Some(m) = codec.decode(&mut src).expect("decode") {
            out.push(m);
        }
    }
    assert_eq!(out, msgs);
}

#[test]
fn a_ten_mib_header_alone_reserves_only_the_first_chunk() {
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::from(&(MAX_MESSAGE_SIZE as u32).to_le_bytes()[..]);
    src.extend_from_slice(b"{\"Start\":");
    assert_eq!(codec.decode(&mut src).expect("partial"), None);
    assert!(codec.is_mid_frame());
    assert!(src.capacity() <= FIRST_BODY_RESERVE, "reserved {} for a mere claim", src.capacity());
    // A frame just over the first chunk gets all its room at once (no copy for a few bytes).
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::from(&(FIRST_BODY_RESERVE as u32 + 100).to_le_bytes()[..]);
    src.extend_from_slice(b"{");
    assert_eq!(codec.decode(&mut src).expect("partial"), None);
    assert_eq!(src.capacity(), FIRST_BODY_RESERVE + 100);
}

#[test]
fn body_room_grows_with_what_arrives_and_ends_at_exactly_the_frame() {
    let payload = start_of_payload_size(1 << 20);
    let wire = encode(&mut IpcCodec::new(), &payload);
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::new();
    let mut arrived = 0;
    for chunk in wire.chunks(7_000) {
        src.extend_from_slice(chunk);
        arrived += chunk.len();
        // Room the decoder made is bounded by what arrived (twice it, or the first chunk; half
        // a step more when that finishes the frame), never by the claim, never past the frame.
        let before = src.capacity();
        if let Some(msg) = codec.decode(&mut src).expect("decode") {
            assert_eq!(msg, payload);
            assert_eq!(arrived, wire.len());
            return;
        }
        let body_so_far = arrived - HEADER_LEN;
        let step = (2 * body_so_far).max(FIRST_BODY_RESERVE);
        assert!(
            src.capacity() <= before.max(step + step / 2),
            "capacity {} after {arrived} bytes",
            src.capacity()
        );
        assert!(src.capacity() <= 1 << 20, "past the frame: {}", src.capacity());
        assert!(src.capacity() - src.len() >= (wire.len() - arrived).min(1), "no room to read");
    }
    panic!("the frame never decoded");
}

#[test]
fn large_read_buffer_is_released_once_empty() {
    let wire = encode(&mut IpcCodec::new(), &start_of_payload_size(1 << 20));
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::from(&wire[..]);
    assert!(codec.decode(&mut src).expect("decode").is_some());
    // An emptied BytesMut reports ~0 capacity even while it owns the old allocation, and
    // `reserve` would then reuse it; a released buffer starts small instead.
    src.reserve(16);
    assert!(src.capacity() < 1024, "1 MiB allocation still held: {}", src.capacity());

    // Below the threshold the allocation is kept for reuse.
    let mut codec = ServerCodec::new();
    let mut src = BytesMut::with_capacity(4096);
    src.extend_from_slice(&frame(b"\"List\""));
    assert!(codec.decode(&mut src).expect("decode").is_some());
    src.reserve(16);
    assert!(src.capacity() >= 4000, "small buffer kept: {}", src.capacity());

    // With threshold 0, every emptied buffer is released.
    let mut codec = ServerCodec::with_config(FrameConfig::new().with_shrink_threshold(0));
    let mut src = BytesMut::with_capacity(4096);
    src.extend_from_slice(&frame(b"\"List\""));
    assert!(codec.decode(&mut src).expect("decode").is_some());
    src.reserve(16);
    assert!(src.capacity() < 1024, "released: {}", src.capacity());
}

#[test]
fn eof_between_frames_is_clean_and_inside_a_frame_is_truncated() {
    let mut codec = ClientCodec::new();
    assert!(codec.decode_eof(&mut BytesMut::new()).expect("clean").is_none());

    let mut cut_header = BytesMut::from(&[5u8, 0][..]);
    assert!(matches!(
        ClientCodec::new().decode_eof(&mut cut_header),
        Err(IpcError::Truncated { received: 2, expected: 4 })
    ));

    let mut cut_body = BytesMut::from(&frame(br#"{"Success":{"message":""}}"#)[..20]);
    let e = ClientCodec::new().decode_eof(&mut cut_body).expect_err("cut");
    assert!(matches!(e, IpcError::Truncated { received: 20, expected: 30 }), "{e}");
}

#[test]
fn failing_serialize_is_an_encode_error_and_writes_nothing() {
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("nope"))
        }
    }
    let mut dst = BytesMut::from(&b"kept"[..]);
    let e = IpcCodec::<(), Fails>::new().encode(&Fails, &mut dst).expect_err("fails");
    assert!(matches!(e, IpcError::Encode(_)));
    assert_eq!(&dst[..], b"kept");
}

#[test]
fn several_frames_can_be_encoded_into_one_buffer() {
    let mut codec = ServerCodec::new();
    let mut dst = BytesMut::new();
    codec.encode(&IpcResponse::Data { data: json!([1, 2]) }, &mut dst).expect("one");
    codec.encode(IpcResponse::Success { message: "ok".into() }, &mut dst).expect("two");
    let mut rx = ClientCodec::new();
    assert_eq!(rx.decode(&mut dst).expect("1"), Some(IpcResponse::Data { data: json!([1, 2]) }));
    assert_eq!(
        rx.decode(&mut dst).expect("2"),
        Some(IpcResponse::Success { message: "ok".into() })
    );
}

#[test]
fn max_message_size_is_clamped_to_what_the_header_can_express() {
    let cfg = FrameConfig::new().with_max_message_size(usize::MAX);
    assert_eq!(cfg.max_message_size(), u32::MAX as usize);
}

#[test]
fn a_body_behind_consumed_frames_gets_room_of_its_own_size_not_the_callers_buffer() {
    // The fuzzer's find: a large read buffer whose front held frames already consumed, then
    // the start of a body. Room for the body is at most the body, not the whole old buffer.
    let max = 4096;
    let mut codec = ServerCodec::with_config(FrameConfig::new().with_max_message_size(max));
    let mut src = BytesMut::with_capacity(8192);
    let small = frame(b"\"List\"");
    while src.len() + small.len() < 7000 {
        src.extend_from_slice(&small);
    }
    let body = start_of_payload_size(4000);
    let wire = encode(&mut IpcCodec::new(), &body);
    let room = src.capacity() - src.len();
    src.extend_from_slice(&wire[..room.min(600)]);
    loop {
        let before = src.capacity();
        match codec.decode(&mut src).expect("decode") {
            Some(IpcMessage::List) => {}
            Some(other) => panic!("unexpected {other:?}"),
            None => {
                assert!(src.capacity() <= before.max(max + HEADER_LEN), "{}", src.capacity());
                break;
            }
        }
    }
    src.extend_from_slice(&wire[room.min(600)..]);
    assert_eq!(codec.decode(&mut src).expect("decode"), Some(body));
}

#[test]
fn a_kept_buffer_carries_back_to_back_large_frames_in_one_allocation() {
    let big = |n: usize| IpcMessage::Start { name: "x".repeat(n), config: String::new() };
    let mut wire = BytesMut::new();
    let mut enc = ClientCodec::new();
    enc.encode(&big(200_000), &mut wire).expect("encode");
    let first = wire.split().freeze();
    enc.encode(&big(200_000), &mut wire).expect("encode");
    let second = wire.split().freeze();

    let mut dec = ServerCodec::new().with_buffer_reuse(true);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&first[..8192]);
    assert!(dec.decode(&mut buf).expect("decode").is_none());
    buf.extend_from_slice(&first[8192..]);
    assert_eq!(dec.decode(&mut buf).expect("decode"), Some(big(200_000)));
    assert!(dec.holds_large_buffer(), "kept after the frame");

    // The next frame, header included, fits the kept allocation: no new one.
    buf.reserve(second.len());
    let start = buf.as_ptr();
    buf.extend_from_slice(&second);
    assert_eq!(buf.as_ptr(), start, "read into the same allocation");
    assert_eq!(dec.decode(&mut buf).expect("decode"), Some(big(200_000)));

    dec.release_idle_buffer(&mut buf);
    assert_eq!(buf.capacity(), 0, "given back when asked");
    assert!(!dec.holds_large_buffer());
    // Without reuse the buffer goes as soon as the frame is through, as before.
    let mut plain = ServerCodec::new();
    let mut buf = BytesMut::from(&first[..]);
    assert_eq!(plain.decode(&mut buf).expect("decode"), Some(big(200_000)));
    assert_eq!(buf.capacity(), 0);
}
