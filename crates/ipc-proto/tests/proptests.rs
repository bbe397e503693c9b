//! Property tests of the framer: round trips, chunking, and hostile bytes.

use bytes::BytesMut;
use ipc_proto::{
    ClientCodec, FrameConfig, HEADER_LEN, IpcCodec, IpcError, IpcMessage, IpcResponse, ServerCodec,
    SubscriptionType, blocking,
};
use proptest::prelude::*;
use serde_json::Value;
use tokio_util::codec::{Decoder, Encoder};

fn json_value() -> impl Strategy<Value = Value> + Clone {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn name() -> impl Strategy<Value = String> + Clone {
    ".{0,16}"
}

fn subscription() -> impl Strategy<Value = SubscriptionType> {
    let app = prop::option::of(name());
    prop_oneof![
        app.clone().prop_map(|app_name| SubscriptionType::StatusEvents { app_name }),
        app.clone().prop_map(|app_name| SubscriptionType::LogEvents { app_name }),
        app.prop_map(|app_name| SubscriptionType::AllEvents { app_name }),
    ]
}

fn message() -> impl Strategy<Value = IpcMessage> {
    prop_oneof![
        (name(), ".{0,64}").prop_map(|(name, config)| IpcMessage::Start { name, config }),
        name().prop_map(|name| IpcMessage::Stop { name }),
        name().prop_map(|name| IpcMessage::Restart { name }),
        name().prop_map(|name| IpcMessage::Delete { name }),
        prop::option::of(name()).prop_map(|name| IpcMessage::Status { name }),
        Just(IpcMessage::List),
        (prop::option::of(name()), any::<usize>())
            .prop_map(|(name, lines)| IpcMessage::Logs { name, lines }),
        subscription().prop_map(|subscription| IpcMessage::Subscribe { subscription }),
        Just(IpcMessage::Unsubscribe),
    ]
}

fn response() -> impl Strategy<Value = IpcResponse> {
    prop_oneof![
        name().prop_map(|message| IpcResponse::Success { message }),
        name().prop_map(|message| IpcResponse::Error { message }),
        json_value().prop_map(|data| IpcResponse::Data { data }),
        (name(), json_value())
            .prop_map(|(event_type, data)| IpcResponse::Event { event_type, data }),
    ]
}

/// Cuts `bytes` at the given (sorted, deduplicated) points.
fn chunks(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|c| *c %= bytes.len() + 1);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        out.push(&bytes[at..c]);
        at = c;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_message_round_trips(msg in message()) {
        let mut wire = BytesMut::new();
        ClientCodec::new().encode(&msg, &mut wire).expect("encode");
        prop_assert_eq!(ServerCodec::new().decode(&mut wire).expect("decode"), Some(msg));
        prop_assert!(wire.is_empty());
    }

    #[test]
    fn any_response_round_trips(resp in response()) {
        let mut wire = BytesMut::new();
        ServerCodec::new().encode(&resp, &mut wire).expect("encode");
        prop_assert_eq!(ClientCodec::new().decode(&mut wire).expect("decode"), Some(resp.clone()));
        // The blocking helpers agree with the codec byte for byte.
        let mut blocking_wire = Vec::new();
        blocking::write_message(&mut blocking_wire, &resp).expect("write");
        let mut again = BytesMut::new();
        ServerCodec::new().encode(&resp, &mut again).expect("encode");
        prop_assert_eq!(&blocking_wire[..], &again[..]);
        prop_assert_eq!(blocking::read_message::<IpcResponse, _>(&mut blocking_wire.as_slice()).expect("read"), resp);
    }

    #[test]
    fn chunked_stream_decodes_to_the_same_sequence(
        msgs in prop::collection::vec(message(), 1..12),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
    ) {
        let mut wire = BytesMut::new();
        let mut enc = ClientCodec::new();
        for m in &msgs {
            enc.encode(m, &mut wire).expect("encode");
        }
        let mut dec = ServerCodec::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks(&wire, cuts) {
            buf.extend_from_slice(chunk);
            while let Some(m) = dec.decode(&mut buf).expect("decode") {
                out.push(m);
            }
        }
        prop_assert!(dec.decode_eof(&mut buf).expect("clean eof").is_none());
        prop_assert_eq!(out, msgs);
    }

    /// A decoder that keeps its buffer between frames (released by the caller at random
    /// points, as a connection does when it waits) decodes exactly what one that releases it
    /// after every frame does, large frames among small ones, however the bytes are cut; and
    /// a released buffer holds nothing large. (Claims and limits in reuse mode are the same
    /// code as without it: `arbitrary_bytes_never_panic_nor_overreserve`.)
    #[test]
    fn a_kept_buffer_decodes_the_same_frames_and_is_released_when_asked(
        sizes in prop::collection::vec(prop_oneof![0usize..64, 70_000usize..300_000], 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..24),
        releases in prop::collection::vec(any::<bool>(), 24),
    ) {
        let msgs: Vec<IpcMessage> = sizes
            .iter()
            .map(|n| IpcMessage::Start { name: "x".repeat(*n), config: String::new() })
            .collect();
        let mut wire = BytesMut::new();
        let mut enc = ClientCodec::new();
        for m in &msgs {
            enc.encode(m, &mut wire).expect("encode");
        }
        let (mut plain, mut kept) = (ServerCodec::new(), ServerCodec::new().with_buffer_reuse(true));
        let (mut plain_buf, mut kept_buf) = (BytesMut::new(), BytesMut::new());
        let (mut from_plain, mut from_kept) = (Vec::new(), Vec::new());
        for (i, chunk) in chunks(&wire, cuts).into_iter().enumerate() {
            plain_buf.extend_from_slice(chunk);
            kept_buf.extend_from_slice(chunk);
            while let Some(m) = plain.decode(&mut plain_buf).expect("decode") {
                from_plain.push(m);
            }
            while let Some(m) = kept.decode(&mut kept_buf).expect("decode") {
                from_kept.push(m);
            }
            if releases[i % releases.len()] {
                kept.release_idle_buffer(&mut kept_buf);
                if kept_buf.is_empty() {
                    prop_assert!(!kept.holds_large_buffer());
                    prop_assert!(kept_buf.capacity() <= 64 * 1024);
                }
            }
        }
        prop_assert_eq!(&from_kept, &from_plain);
        prop_assert_eq!(from_kept, msgs);
        kept.release_idle_buffer(&mut kept_buf);
        prop_assert!(kept_buf.capacity() <= 64 * 1024, "{}", kept_buf.capacity());
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overreserve(
        data in prop::collection::vec(any::<u8>(), 0..4096),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max in 1usize..2048,
    ) {
        let mut dec = IpcCodec::<IpcMessage, ()>::with_config(FrameConfig::new().with_max_message_size(max));
        let mut buf = BytesMut::new();
        'feed: for chunk in chunks(&data, cuts) {
            buf.extend_from_slice(chunk);
            loop {
                let before = buf.capacity();
                let res = dec.decode(&mut buf);
                prop_assert!(buf.capacity() <= before.max(max + HEADER_LEN),
                    "capacity {} after decode (was {}, max {})", buf.capacity(), before, max);
                match res {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(IpcError::FrameTooLarge { .. }) => break 'feed,
                    Err(e) => prop_assert!(e.is_recoverable(), "unexpected {e}"),
                }
            }
        }
        let _ = dec.decode_eof(&mut buf);
    }

    #[test]
    fn headers_over_the_max_are_rejected_without_reading_the_body(
        max in 1usize..1_000_000,
        excess in 1usize..1_000_000,
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let claimed = max + excess;
        let mut wire = (claimed as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&body);
        let cfg = FrameConfig::new().with_max_message_size(max);

        // Codec: rejected from the header alone.
        let mut buf = BytesMut::from(&wire[..HEADER_LEN]);
        let e = IpcCodec::<IpcMessage, ()>::with_config(cfg).decode(&mut buf).expect_err("too large");
        prop_assert!(matches!(e, IpcError::FrameTooLarge { size, .. } if size == claimed), "{}", e);

        // Blocking reader: only the header is consumed.
        let mut reader = std::io::Cursor::new(&wire);
        let e = blocking::read_message_with::<IpcMessage, _>(&mut reader, cfg).expect_err("too large");
        prop_assert!(matches!(e, IpcError::FrameTooLarge { .. }), "{}", e);
        prop_assert_eq!(reader.position(), HEADER_LEN as u64);
    }
}
