//! Arbitrary bytes, cut into arbitrary chunks, through the frame decoder — and the same bytes
//! through the blocking reader, which must agree with it frame by frame; and through a decoder
//! that keeps its buffer between frames (given back at chunks the input picks), which must
//! agree too.
#![no_main]

use bytes::BytesMut;
use ipc_proto::{FrameConfig, HEADER_LEN, IpcCodec, IpcError, IpcMessage, blocking};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// What one frame decoded to, comparable across the two readers.
#[derive(Debug, PartialEq)]
enum Outcome {
    Message(IpcMessage),
    Empty,
    Invalid,
    TooLarge(usize),
    Truncated(usize, usize),
}

fn outcome(r: Result<IpcMessage, IpcError>) -> Option<Outcome> {
    Some(match r {
        Ok(m) => Outcome::Message(m),
        Err(IpcError::EmptyFrame) => Outcome::Empty,
        Err(IpcError::InvalidMessage(_)) => Outcome::Invalid,
        Err(IpcError::FrameTooLarge { size, .. }) => Outcome::TooLarge(size),
        Err(IpcError::Truncated { received, expected }) => Outcome::Truncated(received, expected),
        Err(IpcError::Closed) => return None,
        Err(e) => panic!("unexpected error kind from a byte slice: {e}"),
    })
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    // First two bytes: the limit (small, so that both sides of it are reached); third: chunking.
    let max = 1 + usize::from(u16::from_le_bytes([input[0], input[1]]) % 4096);
    let step = 1 + usize::from(input[2]);
    let data = &input[3..];
    let config = FrameConfig::new().with_max_message_size(max);

    let from_codec = decode_all(data, step, config, max, None);
    let from_kept = decode_all(data, step, config, max, Some(input[2]));
    assert_eq!(from_kept, from_codec, "a kept buffer decodes the same frames");

    let mut reader = data;
    let mut from_blocking = Vec::new();
    loop {
        let r = blocking::read_message_with::<IpcMessage, _>(&mut reader, config);
        let stop = matches!(
            r,
            Err(IpcError::Closed | IpcError::Truncated { .. } | IpcError::FrameTooLarge { .. })
        );
        from_blocking.extend(outcome(r));
        if stop {
            break;
        }
    }
    assert_eq!(from_codec, from_blocking);
});

/// The frames `data`, cut every `step` bytes, decode to; `reuse` keeps the buffer between
/// frames, released at the chunks whose bit it sets.
fn decode_all(
    data: &[u8],
    step: usize,
    config: FrameConfig,
    max: usize,
    reuse: Option<u8>,
) -> Vec<Outcome> {
    let mut codec =
        IpcCodec::<IpcMessage, ()>::with_config(config).with_buffer_reuse(reuse.is_some());
    let mut buf = BytesMut::new();
    let mut from_codec = Vec::new();
    let mut broken = false;
    'feed: for (i, chunk) in data.chunks(step).enumerate() {
        // A connection gives a kept buffer back when it waits: here, at the chunks the input
        // picks.
        if reuse.is_some_and(|bits| bits >> (i % 8) & 1 == 1) {
            codec.release_idle_buffer(&mut buf);
        }
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.capacity();
            let r = codec.decode(&mut buf);
            // A kept buffer holds the next header too.
            let most = max + HEADER_LEN + if reuse.is_some() { HEADER_LEN } else { 0 };
            assert!(buf.capacity() <= before.max(most), "over-reserved");
            match r {
                Ok(None) => break,
                Ok(Some(m)) => from_codec.push(Outcome::Message(m)),
                Err(e) => {
                    let fatal = matches!(e, IpcError::FrameTooLarge { .. });
                    from_codec.extend(outcome(Err(e)));
                    if fatal {
                        broken = true;
                        break 'feed;
                    }
                }
            }
        }
    }
    if broken {
        // Once a header lied about its size, the decoder never reads on.
        assert!(matches!(codec.decode(&mut buf), Err(IpcError::FrameTooLarge { .. })));
    } else {
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(m)) => from_codec.push(Outcome::Message(m)),
                Ok(None) => break,
                Err(e) => {
                    let again = e.is_recoverable();
                    from_codec.extend(outcome(Err(e)));
                    if !again {
                        break;
                    }
                }
            }
        }
    }

    from_codec
}
