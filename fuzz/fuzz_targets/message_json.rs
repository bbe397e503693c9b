//! Arbitrary bytes as a frame payload: parsing never panics, and whatever parses re-encodes
//! into a frame that parses back to the same message. A `Request` (what `serve` reads: the
//! brief's messages or protocol 1's, read by a hand-written deserializer) agrees with
//! `IpcMessage` on every payload that either reads as one of the brief's messages.
#![no_main]

use bytes::BytesMut;
use ipc_proto::{ClientCodec, IpcCodec, IpcMessage, IpcResponse, Request, ServerCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|payload: &[u8]| {
    let brief = serde_json::from_slice::<IpcMessage>(payload).ok();
    let request = serde_json::from_slice::<Request>(payload).ok();
    match (&brief, &request) {
        (Some(m), r) => assert_eq!(r.as_ref(), Some(&Request::Message(m.clone()))),
        (None, Some(Request::Message(m))) => panic!("Request read {m:?} where IpcMessage fails"),
        _ => {}
    }
    if let Some(request) = request {
        let mut wire = BytesMut::new();
        IpcCodec::<(), Request>::new().encode(&request, &mut wire).expect("a request encodes");
        let back = IpcCodec::<Request, ()>::new().decode(&mut wire).expect("decodes");
        assert_eq!(back, Some(request));
    }
    if let Some(msg) = brief {
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
