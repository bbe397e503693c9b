//! Over real Unix sockets, with the server and the client in one process:
//!
//! * `round-trip/{mt2,mt2-bare,ct}`: one small request and its reply, on a multi-thread runtime
//!   with 2 workers (both sides; `-bare`: without any pending timer, see `common/sides.rs`) and
//!   on a current-thread runtime per side;
//! * `pipelined`: small requests on one connection, written by one task (fed into the `Sink`,
//!   flushed at the end) while another reads the replies; `ours-sink` serves them with the split
//!   connection's `Stream`/`Sink` like the baselines' `forward`, `ours` with a `recv`/`send`
//!   loop, `ours-serve` with `serve_connection`;
//! * `large/{64KiB,1MiB,8MiB}`: `Start` messages of that size, pipelined the same way (the
//!   small replies are noise), plus serde_json over blocking sockets for reference.
//!
//! Implementations and baselines are described in `benches/common/mod.rs`.
//! `cargo bench -p bunctl-ipc --bench transport [-- round-trip]`

#[cfg(unix)]
mod common;

#[cfg(unix)]
mod imp {
    use std::time::Duration;

    use criterion::{BenchmarkId, Criterion, Throughput};

    use crate::common::sides::Flavor;
    use crate::common::{Imp, Pipelined, RoundTrip, msgs};

    const ROUND_TRIP: [Imp; 5] =
        [Imp::Floor, Imp::Framed, Imp::Interprocess, Imp::Ours, Imp::OursServe];
    const PIPELINED: [Imp; 6] =
        [Imp::Floor, Imp::Framed, Imp::Interprocess, Imp::OursSink, Imp::Ours, Imp::OursServe];

    pub fn round_trip(c: &mut Criterion) {
        for flavor in [Flavor::Mt2, Flavor::Mt2Bare, Flavor::CtPerSide] {
            let mut group = c.benchmark_group(format!("round-trip/{}", flavor.label()));
            for imp in ROUND_TRIP {
                group.bench_function(BenchmarkId::from_parameter(imp.label()), |b| {
                    let mut rt = RoundTrip::new(imp, flavor);
                    b.iter_custom(|iters| rt.run(iters, false).0)
                });
            }
            group.finish();
        }
    }

    pub fn pipelined(c: &mut Criterion) {
        let mut group = c.benchmark_group("pipelined/mt2");
        group.throughput(Throughput::Elements(1));
        for imp in PIPELINED {
            group.bench_function(BenchmarkId::from_parameter(imp.label()), |b| {
                let mut p = Pipelined::new(imp, Flavor::Mt2, msgs::small_request());
                b.iter_custom(|iters| p.run(iters))
            });
        }
        group.finish();
    }

    pub fn large(c: &mut Criterion) {
        for (name, size) in [("64KiB", 64 << 10), ("1MiB", 1 << 20), ("8MiB", 8 << 20)] {
            let request = msgs::start(size);
            let mut group = c.benchmark_group(format!("large/{name}"));
            group.throughput(Throughput::Bytes(msgs::wire_len(&request) as u64));
            if size >= 1 << 20 {
                group.sample_size(10).measurement_time(Duration::from_secs(8));
            }
            for imp in [Imp::Floor, Imp::Blocking, Imp::Framed, Imp::Interprocess, Imp::OursSink] {
                group.bench_function(BenchmarkId::from_parameter(imp.label()), |b| {
                    let mut p = Pipelined::new(imp, Flavor::Mt2, request.clone());
                    b.iter_custom(|iters| p.run(iters))
                });
            }
            group.finish();
        }
    }
}

#[cfg(unix)]
criterion::criterion_group!(benches, imp::round_trip, imp::pipelined, imp::large);
#[cfg(unix)]
criterion::criterion_main!(benches);

#[cfg(not(unix))]
fn main() {}
