//! Codec throughput without I/O: encoding and decoding one frame, for a small request, a 4 KiB
//! `Data` reply and a 1 MiB `Start`.
//!
//! * `ours`: `IpcCodec` (serializes straight into the output buffer; decodes from the buffer);
//! * `framed`: `serde_json::to_vec` + `LengthDelimitedCodec::encode` / `decode` +
//!   `serde_json::from_slice` (what a hand-written `Framed` loop does per message; the
//!   `interprocess` baseline uses the same codec);
//! * `floor`: copying the frame's bytes, i.e. what a codec that did nothing would cost.
//!
//! `cargo bench -p bunctl-ipc --bench codec`

#[cfg(unix)]
mod common;

#[cfg(unix)]
mod imp {
    use std::hint::black_box;

    use bunctl_ipc::{ClientCodec, IpcMessage, IpcResponse, ServerCodec};
    use bytes::BytesMut;
    use criterion::{BenchmarkId, Criterion, Throughput};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use tokio_util::codec::{Decoder, Encoder};

    use crate::common::{baseline, msgs};

    fn cases() -> Vec<(&'static str, Case)> {
        vec![
            ("small", Case::Request(msgs::small_request())),
            ("data-4KiB", Case::Reply(msgs::data_4k())),
            ("start-1MiB", Case::Request(msgs::start(1 << 20))),
        ]
    }

    pub enum Case {
        Request(IpcMessage),
        Reply(IpcResponse),
    }

    fn encode_group<T: Serialize>(
        c: &mut Criterion,
        name: &str,
        msg: &T,
        ours: impl Fn(&T, &mut BytesMut),
    ) {
        let frame = msgs::frame(msg);
        let mut group = c.benchmark_group(format!("codec-encode/{name}"));
        group.throughput(Throughput::Bytes(frame.len() as u64));
        let mut buf = BytesMut::with_capacity(frame.len());
        group.bench_function(BenchmarkId::from_parameter("floor"), |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(black_box(&frame));
            })
        });
        group.bench_function(BenchmarkId::from_parameter("framed"), |b| {
            let mut codec = baseline::codec();
            b.iter(|| {
                buf.clear();
                codec.encode(baseline::to_bytes(black_box(msg)), &mut buf).expect("encode");
            })
        });
        group.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            b.iter(|| {
                buf.clear();
                ours(black_box(msg), &mut buf);
            })
        });
        group.finish();
    }

    fn decode_group<T: DeserializeOwned>(
        c: &mut Criterion,
        name: &str,
        frame: &[u8],
        ours: impl Fn(&mut BytesMut) -> T,
    ) {
        let mut group = c.benchmark_group(format!("codec-decode/{name}"));
        group.throughput(Throughput::Bytes(frame.len() as u64));
        let mut buf = BytesMut::with_capacity(frame.len());
        group.bench_function(BenchmarkId::from_parameter("floor"), |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                black_box(&buf);
            })
        });
        group.bench_function(BenchmarkId::from_parameter("framed"), |b| {
            let mut codec = baseline::codec();
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                let payload = codec.decode(&mut buf).expect("decode").expect("frame");
                let msg: T = serde_json::from_slice(&payload).expect("json");
                black_box(msg);
            })
        });
        group.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(frame);
                black_box(ours(&mut buf));
            })
        });
        group.finish();
    }

    pub fn benches(c: &mut Criterion) {
        for (name, case) in cases() {
            match case {
                Case::Request(msg) => {
                    encode_group(c, name, &msg, |m, buf| {
                        ClientCodec::new().encode(m, buf).expect("encode")
                    });
                    decode_group(c, name, &msgs::frame(&msg), |buf| {
                        ServerCodec::new().decode(buf).expect("decode").expect("frame")
                    });
                }
                Case::Reply(msg) => {
                    encode_group(c, name, &msg, |m, buf| {
                        ServerCodec::new().encode(m, buf).expect("encode")
                    });
                    decode_group(c, name, &msgs::frame(&msg), |buf| {
                        ClientCodec::new().decode(buf).expect("decode").expect("frame")
                    });
                }
            }
        }
    }
}

#[cfg(unix)]
criterion::criterion_group!(benches, imp::benches);
#[cfg(unix)]
criterion::criterion_main!(benches);

#[cfg(not(unix))]
fn main() {}
