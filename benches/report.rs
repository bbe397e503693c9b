//! The transport figures of `cargo xtask bench` (round trip, syscalls, pipelined, large messages,
//! event fan-out): every implementation and baseline interleaved in one process, a fresh setup
//! per repetition, so that the ratios compare like with like (the codec figures come from the
//! criterion bench `codec`). Prints one tab-separated line per figure:
//!
//! ```text
//! group <TAB> case <TAB> implementation <TAB> metric <TAB> value
//! ```
//!
//! `cargo bench -p bunctl-ipc --bench report [-- --quick] [-- only <group>...]`
//!
//! Other modes (used by the xtask and for investigations):
//!
//! * `probe pipelined|round-trip|large-1MiB[-json|-ct]|large-8MiB <client> <server> [n]` — one
//!   figure, mixed client and server implementations;
//! * `syscalls <client> <n>` — `n` round trips on `mt2`, for `strace -c -f` (which the default
//!   mode runs on itself when `strace` is installed: the `syscalls` group).

#[cfg(unix)]
mod common;

#[cfg(unix)]
fn main() {
    imp::main();
}

#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod imp {
    use std::collections::BTreeMap;
    use std::process::Command;
    use std::time::Duration;

    use hdrhistogram::Histogram;

    use crate::common::sides::Flavor;
    use crate::common::{Fanout, Imp, Pipelined, RoundTrip, msgs};

    fn imp_named(name: &str) -> Imp {
        match name {
            "floor" => Imp::Floor,
            "framed" => Imp::Framed,
            "interprocess" => Imp::Interprocess,
            "ours" => Imp::Ours,
            "ours-serve" => Imp::OursServe,
            "ours-sink" => Imp::OursSink,
            "blocking" => Imp::Blocking,
            other => panic!("unknown implementation {other}"),
        }
    }

    /// How long each measurement runs.
    #[derive(Clone, Copy)]
    struct Budget {
        /// Interleaved repetitions per figure (the median is reported).
        reps: usize,
        /// Round trips per repetition.
        round_trips: u64,
        /// Time aimed at per throughput repetition.
        slice: Duration,
    }

    fn emit(group: &str, case: &str, imp: &str, metric: &str, value: f64) {
        println!("{group}\t{case}\t{imp}\t{metric}\t{value:.4}");
    }

    /// A histogram of values with 3 significant digits, growing as needed.
    fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = Histogram::new(3).expect("3 significant digits");
        values.into_iter().for_each(|v| h.record(v).expect("auto-resizing"));
        h
    }

    /// The `p` quantile of round-trip latencies in ns, in µs.
    fn percentile_us(h: &Histogram<u64>, p: f64) -> f64 {
        h.value_at_quantile(p) as f64 / 1000.0
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["probe", what, client, server, rest @ ..] => {
                let n = rest.first().map_or(0, |n| n.parse().expect("n"));
                probe(what, imp_named(client), imp_named(server), n);
            }
            ["syscalls", client, n] => {
                let mut rt = RoundTrip::new(imp_named(client), Flavor::Mt2);
                rt.run(n.parse().expect("n"), false);
            }
            _ => {
                if !std::env::args().any(|a| a == "--bench") {
                    // `cargo test --all-targets` runs bench binaries without `--bench`: stay quick.
                    return;
                }
                let quick = args.contains(&"--quick");
                let only: Vec<&str> = args
                    .iter()
                    .skip_while(|a| **a != "only")
                    .skip(1)
                    .copied()
                    .filter(|a| !a.starts_with("--"))
                    .collect();
                let budget = if quick {
                    Budget { reps: 7, round_trips: 4_000, slice: Duration::from_millis(120) }
                } else {
                    Budget { reps: 9, round_trips: 20_000, slice: Duration::from_millis(500) }
                };
                let wanted = |g: &str| only.is_empty() || only.contains(&g);
                if wanted("round-trip") {
                    round_trip(budget);
                }
                if wanted("syscalls") {
                    syscalls();
                }
                if wanted("pipelined") {
                    pipelined(budget);
                }
                if wanted("large") {
                    large(budget);
                }
                if wanted("fanout") {
                    fanout(budget);
                }
            }
        }
    }

    fn probe(what: &str, client: Imp, server: Imp, n: u64) {
        match what {
            "pipelined" => {
                let mut p = Pipelined::mixed(client, server, Flavor::Mt2, msgs::small_request());
                let n = if n == 0 { 200_000 } else { n };
                p.run(n / 10);
                let t = p.run(n);
                println!("{:.0} msg/s", n as f64 / t.as_secs_f64());
            }
            "round-trip" => {
                let mut r = RoundTrip::mixed(client, server, Flavor::Mt2);
                let n = if n == 0 { 50_000 } else { n };
                r.run(n / 10, false);
                let (_, lat) = r.run(n, true);
                let h = histogram(lat.into_iter().map(u64::from));
                println!(
                    "p50 {:.2} µs p99 {:.2} µs",
                    percentile_us(&h, 0.5),
                    percentile_us(&h, 0.99)
                );
            }
            "large-64KiB" | "large-1MiB" | "large-8MiB" | "large-1MiB-ct" | "large-1MiB-json" => {
                let size = match what {
                    "large-8MiB" => 8 << 20,
                    "large-64KiB" => 64 << 10,
                    _ => 1 << 20,
                };
                let req =
                    if what.ends_with("json") { msgs::start_json(size) } else { msgs::start(size) };
                let flavor = if what.ends_with("ct") { Flavor::CtPerSide } else { Flavor::Mt2 };
                let bytes = msgs::wire_len(&req) as f64;
                let mut p = Pipelined::mixed(client, server, flavor, req);
                let n = if n == 0 { 200 } else { n };
                p.run(n / 10);
                let t = p.run(n);
                println!("{:.0} MiB/s", bytes * n as f64 / t.as_secs_f64() / (1 << 20) as f64);
            }
            other => panic!("unknown probe {other}"),
        }
    }

    /// Runs `f(n)` with `n` grown until one call takes about `slice`; returns that `n`.
    fn calibrate(slice: Duration, mut f: impl FnMut(u64) -> Duration) -> u64 {
        let mut n = 1;
        loop {
            let t = f(n);
            if t >= slice / 4 || n >= 1 << 30 {
                let scale = slice.as_secs_f64() / t.as_secs_f64().max(1e-9);
                return ((n as f64 * scale) as u64).max(1);
            }
            n *= 4;
        }
    }

    const RT_IMPS: [Imp; 6] =
        [Imp::Floor, Imp::Framed, Imp::Interprocess, Imp::Ours, Imp::OursServe, Imp::OursSink];

    /// Task placement on the two workers is decided when a setup starts and tends to stick, and
    /// it can change a figure by a third. So every repetition gets a fresh setup (server,
    /// connection, runtime), and the median of the repetitions is reported.
    fn round_trip(budget: Budget) {
        for flavor in [Flavor::Mt2, Flavor::Mt2Bare, Flavor::CtPerSide] {
            let mut samples: BTreeMap<&str, Histogram<u64>> = BTreeMap::new();
            let n = if flavor == Flavor::CtPerSide {
                budget.round_trips / 4
            } else {
                budget.round_trips
            };
            for _ in 0..budget.reps {
                for imp in RT_IMPS {
                    let mut setup = RoundTrip::new(imp, flavor);
                    setup.run(n / 10, false);
                    let (_, lat) = setup.run(n, true);
                    let h = samples.entry(imp.label()).or_insert_with(|| histogram([]));
                    lat.into_iter().for_each(|ns| h.record(u64::from(ns)).expect("auto-resizing"));
                }
            }
            for (imp, h) in samples {
                for (metric, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
                    emit("round-trip", flavor.label(), imp, metric, percentile_us(&h, p));
                }
            }
        }
    }

    /// Operations per second of each implementation: the median over `budget.reps` fresh
    /// setups (see [`round_trip`]), interleaved, each run sized to take about `budget.slice`.
    fn throughput<S>(
        budget: Budget,
        imps: &[Imp],
        make: impl Fn(Imp) -> S,
        run: impl Fn(&mut S, u64) -> Duration,
    ) -> BTreeMap<&'static str, f64> {
        let ns: Vec<u64> = imps
            .iter()
            .map(|&imp| {
                let mut s = make(imp);
                calibrate(budget.slice, |n| run(&mut s, n))
            })
            .collect();
        let mut rates: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
        for _ in 0..budget.reps {
            for (&imp, &n) in imps.iter().zip(&ns) {
                let mut s = make(imp);
                run(&mut s, (n / 10).max(1));
                let t = run(&mut s, n);
                // In thousandths, so that slow ones (8 MiB: ~100/s) keep their precision.
                let milli = (n as f64 * 1e3 / t.as_secs_f64()) as u64;
                rates.entry(imp.label()).or_default().push(milli);
            }
        }
        let median = |v: Vec<u64>| histogram(v).value_at_quantile(0.5) as f64 / 1e3;
        rates.into_iter().map(|(k, v)| (k, median(v))).collect()
    }

    fn pipelined(budget: Budget) {
        let make = |imp| Pipelined::new(imp, Flavor::Mt2, msgs::small_request());
        for (imp, rate) in throughput(budget, &RT_IMPS, make, |s, n| s.run(n)) {
            emit("pipelined", "mt2", imp, "msg/s", rate);
        }
    }

    fn large(budget: Budget) {
        let cases = [
            ("64KiB", msgs::start(64 << 10)),
            ("1MiB", msgs::start(1 << 20)),
            ("8MiB", msgs::start(8 << 20)),
            ("1MiB-json", msgs::start_json(1 << 20)),
        ];
        for (case, request) in cases {
            let bytes = msgs::wire_len(&request) as f64;
            // A few messages per repetition would leave the figure to one scheduling accident.
            let budget =
                if bytes > 1e6 { Budget { slice: budget.slice * 3, ..budget } } else { budget };
            let imps = [Imp::Floor, Imp::Blocking, Imp::Framed, Imp::Interprocess, Imp::OursSink];
            let make = |imp| Pipelined::new(imp, Flavor::Mt2, request.clone());
            for (imp, rate) in throughput(budget, &imps, make, |s, n| s.run(n)) {
                // Both sides on the split connection's Sink/Stream, like the baselines.
                let imp = if imp == Imp::OursSink.label() { "ours" } else { imp };
                emit("large", case, imp, "MiB/s", rate * bytes / (1 << 20) as f64);
            }
        }
    }

    fn fanout(budget: Budget) {
        for subscribers in [1usize, 10, 100] {
            let imps = [Imp::Floor, Imp::Framed, Imp::Interprocess, Imp::Ours];
            let make = |imp| Fanout::new(imp, subscribers);
            for (imp, rate) in throughput(budget, &imps, make, |s, n| s.run(n)) {
                let deliveries = rate * subscribers as f64;
                emit("fanout", &subscribers.to_string(), imp, "deliveries/s", deliveries);
            }
        }
    }

    /// Counts the system calls of a round trip with `strace -c -f`: the difference between a
    /// run of `N` round trips and a run of none, divided by `N`.
    fn syscalls() {
        const N: u64 = 20_000;
        let exe = std::env::current_exe().expect("current exe");
        let count = |imp: Imp, n: u64| -> Option<BTreeMap<String, u64>> {
            let out =
                std::env::temp_dir().join(format!("bunctl-strace-{}.txt", std::process::id()));
            let status = Command::new("strace")
                .args(["-c", "-f", "-o"])
                .arg(&out)
                .arg(&exe)
                .args(["syscalls", imp.label(), &n.to_string()])
                .status()
                .ok()?;
            if !status.success() {
                return None;
            }
            let text = std::fs::read_to_string(&out).ok()?;
            let _ = std::fs::remove_file(&out);
            let mut calls = BTreeMap::new();
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() >= 5 && f[0].parse::<f64>().is_ok() {
                    let name = f[f.len() - 1].to_string();
                    if let Ok(c) = f[3].parse::<u64>() {
                        calls.insert(name, c);
                    }
                }
            }
            Some(calls)
        };
        for imp in [Imp::Framed, Imp::Interprocess, Imp::Ours, Imp::OursServe] {
            let (Some(base), Some(full)) = (count(imp, 0), count(imp, N)) else {
                eprintln!("strace unavailable: no syscall counts");
                return;
            };
            let per = |name: &str| {
                (full.get(name).copied().unwrap_or(0) as f64
                    - base.get(name).copied().unwrap_or(0) as f64)
                    / N as f64
            };
            emit("syscalls", "round-trip", imp.label(), "total", per("total"));
            for name in full.keys().filter(|k| *k != "total") {
                let v = per(name);
                if v >= 0.05 {
                    emit("syscalls", "round-trip", imp.label(), name, v);
                }
            }
        }
        emit("syscalls", "round-trip", "floor", "total", 4.0);
    }
}
