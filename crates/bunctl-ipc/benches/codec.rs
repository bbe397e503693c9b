//! Encoding and decoding one frame without I/O (a small request, a 4 KiB `Data`, a 1 MiB
//! `Start`): `ours`, `IpcCodec`; `framed`, `serde_json` + `LengthDelimitedCodec` as a
//! hand-written `Framed` loop does per message; `floor`, copying the frame's bytes.

#[path = "common/msgs.rs"]
mod msgs;

use bunctl_ipc::{ClientCodec, ServerCodec};
use bytes::BytesMut;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};

type Group<'a> = BenchmarkGroup<'a, WallTime>;
type Buf = BytesMut;

/// `op` on a buffer cleared before each run, and with `DECODE` refilled with `frame`.
fn bench<const DECODE: bool>(g: &mut Group, id: &str, frame: &[u8], mut op: impl FnMut(&mut Buf)) {
    let mut buf = BytesMut::with_capacity(frame.len());
    g.bench_function(id, |b| {
        b.iter(|| {
            buf.clear();
            if DECODE {
                buf.extend_from_slice(frame);
            }
            op(&mut buf);
        })
    });
}

/// The encode and decode groups of `msg`, with our codecs made afresh for every operation.
fn case<T, E, D>(c: &mut Criterion, name: &str, msg: T, ours: fn() -> E, decoder: fn() -> D)
where
    T: Serialize + DeserializeOwned,
    E: for<'a> Encoder<&'a T, Error: Debug>,
    D: Decoder<Item = T, Error: Debug>,
{
    let (frame, mut framed) = (msgs::frame(&msg), msgs::codec());
    let mut g = c.benchmark_group(format!("codec-encode/{name}"));
    g.throughput(Throughput::Bytes(frame.len() as u64));
    bench::<false>(&mut g, "floor", &frame, |buf| buf.extend_from_slice(black_box(&frame)));
    bench::<false>(&mut g, "framed", &frame, |buf| {
        framed.encode(msgs::to_bytes(black_box(&msg)), buf).expect("encode")
    });
    bench::<false>(&mut g, "ours", &frame, |b| ours().encode(black_box(&msg), b).expect("encode"));
    g.finish();
    let mut g = c.benchmark_group(format!("codec-decode/{name}"));
    g.throughput(Throughput::Bytes(frame.len() as u64));
    bench::<true>(&mut g, "floor", &frame, |buf| _ = black_box(buf));
    bench::<true>(&mut g, "framed", &frame, |buf| {
        let payload = framed.decode(buf).expect("decode").expect("frame");
        black_box(serde_json::from_slice::<T>(&payload).expect("json"));
    });
    bench::<true>(&mut g, "ours", &frame, |buf| {
        black_box(decoder().decode(buf).expect("decode").expect("frame"));
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    case(c, "small", msgs::small_request(), ClientCodec::new, ServerCodec::new);
    case(c, "data-4KiB", msgs::data_4k(), ServerCodec::new, ClientCodec::new);
    case(c, "start-1MiB", msgs::start(1 << 20), ClientCodec::new, ServerCodec::new);
}

criterion::criterion_group!(benches, all);
criterion::criterion_main!(benches);
