//! Arbitrary bytes as a frame payload: parsing never panics, and whatever parses re-encodes
//! into a frame that parses back to the same message.
#![no_main]

use bytes::BytesMut;
use ipc_proto::{ClientCodec, IpcMessage, IpcResponse, ServerCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|payload: &[u8]| {
    if let Ok(msg) = serde_json::from_slice::<IpcMessage>(payload) {
        let mut wire = BytesMut::new();
        ClientCodec::new().encode(&msg, &mut wire).expect("a parsed message encodes");
        let back = ServerCodec::new().decode(&mut wire).expect("decodes").expect("whole frame");
        assert_eq!(back, msg);
    }
    if let Ok(resp) = serde_json::from_slice::<IpcResponse>(payload) {
        let mut wire = BytesMut::new();
        if ServerCodec::new().encode(&resp, &mut wire).is_ok() {
            // Floating-point values may not survive text round trips bit for bit, so only
            // decodability is required of responses.
            ClientCodec::new().decode(&mut wire).expect("re-encoded response decodes");
        }
    }
});
