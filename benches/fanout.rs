//! Event fan-out: one publisher, 1, 10 or 100 subscribed connections, every event parsed by
//! every subscriber. Throughput is in deliveries (events × subscribers).
//!
//! * `ours`: `EventBus::publish` + `serve_connection` on the server, `IpcClient::next_event`;
//! * `framed` / `interprocess`: a `tokio::sync::broadcast` of events serialized once, a task per
//!   connection framing and flushing them in batches, `FramedRead` + `serde_json` on the client;
//! * `floor`: the same frames through socketpairs on one thread.
//!
//! `cargo bench -p bunctl-ipc --bench fanout`

#[cfg(unix)]
mod common;

#[cfg(unix)]
mod imp {
    use criterion::{BenchmarkId, Criterion, Throughput};

    use crate::common::{Fanout, Imp};

    pub fn fanout(c: &mut Criterion) {
        for subscribers in [1usize, 10, 100] {
            let mut group = c.benchmark_group(format!("fanout/{subscribers}"));
            group.throughput(Throughput::Elements(subscribers as u64));
            for imp in [Imp::Floor, Imp::Framed, Imp::Interprocess, Imp::Ours] {
                group.bench_function(BenchmarkId::from_parameter(imp.label()), |b| {
                    let mut f = Fanout::new(imp, subscribers);
                    b.iter_custom(|iters| f.run(iters))
                });
            }
            group.finish();
        }
    }
}

#[cfg(unix)]
criterion::criterion_group!(benches, imp::fanout);
#[cfg(unix)]
criterion::criterion_main!(benches);

#[cfg(not(unix))]
fn main() {}
