//! The transport figures of `cargo xtask bench`: round trip (percentiles; system calls with
//! `strace -c -f`), pipelined, large messages and event fan-out with both sides in this process,
//! and round trip, pipelined, 1 MiB and connect-per-request with the server in a child process
//! (`two-process`). Implementations are interleaved, on a fresh setup per repetition, so that
//! the ratios compare like with like (the codec figures come from the criterion bench `codec`).
//! Prints one tab-separated line per figure:
//!
//! ```text
//! group <TAB> case <TAB> implementation <TAB> metric <TAB> value
//! ```
//!
//! `cargo bench -p bunctl-ipc --bench report [-- --quick] [-- only <group>...]`
//!
//! `syscalls <implementation> <n>` runs `n` round trips on `mt2` for `strace -c -f`, which the
//! `syscalls` group runs on this binary when `strace` is installed.

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

    use bunctl_ipc::IpcMessage;
    use hdrhistogram::Histogram;

    use crate::common::{Run, Work, emit, histogram, msgs, setup};

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

    const MIB: f64 = (1 << 20) as f64;
    const PERCENTILES: [(&str, f64); 4] =
        [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

    pub fn main() {
        let args = crate::common::args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["syscalls", imp, n] => {
                let imp = imp.to_string().leak();
                setup(imp, imp, "mt2", Work::RoundTrip)(n.parse().expect("n"), false);
            }
            _ if !crate::common::benchmarking() => {}
            _ => {
                let budget = if args.contains(&"--quick") {
                    Budget { reps: 7, round_trips: 4_000, slice: Duration::from_millis(120) }
                } else {
                    Budget { reps: 9, round_trips: 20_000, slice: Duration::from_millis(500) }
                };
                let only: Vec<&&str> = args.iter().skip_while(|a| **a != "only").skip(1).collect();
                let groups = [
                    ("round-trip", round_trip as fn(Budget)),
                    ("syscalls", syscalls),
                    ("pipelined", pipelined),
                    ("large", large),
                    ("fanout", fanout),
                    ("two-process", two_process),
                ];
                for (group, run) in groups {
                    if only.iter().all(|g| g.starts_with("--")) || only.contains(&&group) {
                        run(budget);
                    }
                }
            }
        }
    }

    /// The `p` quantile of latencies recorded in ns, in µs.
    fn us(h: &Histogram<u64>, p: f64) -> f64 {
        h.value_at_quantile(p) as f64 / 1000.0
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

    /// Task placement on the two workers is decided when a setup starts and tends to stick, and
    /// it can change a figure by a third. So each of `budget.reps` interleaved repetitions runs
    /// `n[i]` operations of `imps[i]` (after a tenth of them to warm up) on a fresh setup
    /// (server, connection, runtime). Per implementation: the latencies recorded (ns) and the
    /// median of the repetitions' rates (per second).
    fn measure(
        budget: Budget,
        imps: &[&'static str],
        n: &[u64],
        record: bool,
        make: impl Fn(&'static str) -> Run,
    ) -> Vec<(&'static str, Histogram<u64>, f64)> {
        let mut out: Vec<_> = imps.iter().map(|&imp| (imp, histogram([]), vec![])).collect();
        for _ in 0..budget.reps {
            for ((&imp, &n), (_, h, rates)) in imps.iter().zip(n).zip(&mut out) {
                let mut run = make(imp);
                run((n / 10).max(1), false);
                let (t, lat) = run(n, record);
                lat.into_iter().for_each(|ns| h.record(u64::from(ns)).expect("auto-resizing"));
                // In thousandths, so that slow ones (8 MiB: ~100/s) keep their precision.
                rates.push((n as f64 * 1e3 / t.as_secs_f64()) as u64);
            }
        }
        let median = |v: Vec<u64>| histogram(v).value_at_quantile(0.5) as f64 / 1e3;
        out.into_iter().map(|(imp, h, rates)| (imp, h, median(rates))).collect()
    }

    /// [`measure`] with each implementation's `n` sized to take about `budget.slice`.
    fn throughput(
        budget: Budget,
        imps: &[&'static str],
        make: impl Fn(&'static str) -> Run,
    ) -> Vec<(&'static str, f64)> {
        let n: Vec<u64> = (imps.iter())
            .map(|&imp| {
                let mut run = make(imp);
                calibrate(budget.slice, |n| run(n, false).0)
            })
            .collect();
        measure(budget, imps, &n, false, make).into_iter().map(|(i, _, rate)| (i, rate)).collect()
    }

    fn round_trip(budget: Budget) {
        for flavor in ["mt2", "mt2-bare", "ct"] {
            let n = if flavor == "ct" { budget.round_trips / 4 } else { budget.round_trips };
            let imps = ["floor", "framed", "interprocess", "ours", "ours-serve"];
            let make = |imp| setup(imp, imp, flavor, Work::RoundTrip);
            for (imp, h, _) in measure(budget, &imps, &[n; 5], true, make) {
                for (metric, p) in PERCENTILES {
                    emit("round-trip", flavor, imp, metric, us(&h, p));
                }
            }
        }
    }

    fn pipelined(budget: Budget) {
        let imps = ["floor", "framed", "interprocess", "ours", "ours-serve", "ours-sink"];
        let make = |imp| setup(imp, imp, "mt2", Work::Pipelined(msgs::small_request()));
        for (imp, rate) in throughput(budget, &imps, make) {
            emit("pipelined", "mt2", imp, "msg/s", rate);
        }
    }

    /// The MiB of one `request`, and the budget for it: a longer slice over 1 MB (a few
    /// messages per repetition would leave the figure to one scheduling accident).
    fn mib(budget: Budget, request: &IpcMessage) -> (Budget, f64) {
        let bytes = msgs::frame(request).len() as f64;
        let slice = if bytes > 1e6 { budget.slice * 3 } else { budget.slice };
        (Budget { slice, ..budget }, bytes / MIB)
    }

    fn large(budget: Budget) {
        let cases = [
            ("64KiB", msgs::start(64 << 10)),
            ("1MiB", msgs::start(1 << 20)),
            ("8MiB", msgs::start(8 << 20)),
            ("1MiB-json", msgs::start_json(1 << 20)),
        ];
        for (case, request) in cases {
            let (budget, mib) = mib(budget, &request);
            let imps = ["floor", "blocking", "framed", "interprocess", "ours-sink"];
            let make = |imp| setup(imp, imp, "mt2", Work::Pipelined(request.clone()));
            for (imp, rate) in throughput(budget, &imps, make) {
                // Both sides on the split connection's Sink/Stream, like the baselines.
                let imp = if imp == "ours-sink" { "ours" } else { imp };
                emit("large", case, imp, "MiB/s", rate * mib);
            }
        }
    }

    fn fanout(budget: Budget) {
        for k in [1usize, 10, 100] {
            let imps = ["floor", "framed", "interprocess", "ours"];
            for (imp, rate) in throughput(budget, &imps, |imp| crate::common::fanout(imp, k)) {
                emit("fanout", &k.to_string(), imp, "deliveries/s", rate * k as f64);
            }
        }
    }

    /// The server in a child process, each implementation's client in this one.
    fn two_process(budget: Budget) {
        let imps = ["framed", "interprocess", "ours", "ours-serve", "ours-sink"];
        let make = |work: Work| move |imp| setup(imp, imp, "procs", work.clone());
        let put =
            |case: &str, imp: &str, metric: &str, v: f64| emit("two-process", case, imp, metric, v);
        let n = [budget.round_trips; 5];
        for (imp, h, _) in measure(budget, &imps, &n, true, make(Work::RoundTrip)) {
            put("round-trip", imp, "p50", us(&h, 0.5));
            put("round-trip", imp, "p99", us(&h, 0.99));
        }
        let n = n.map(|n| n / 4);
        for (imp, h, rate) in measure(budget, &imps, &n, true, make(Work::Connects)) {
            put("connects", imp, "per-s", rate);
            put("connects", imp, "p50", us(&h, 0.5));
            put("connects", imp, "p99", us(&h, 0.99));
        }
        for (imp, rate) in throughput(budget, &imps, make(Work::Pipelined(msgs::small_request()))) {
            put("pipelined", imp, "msg/s", rate);
        }
        let request = msgs::start(1 << 20);
        let (budget, mib) = mib(budget, &request);
        for (imp, rate) in throughput(budget, &imps, make(Work::Pipelined(request))) {
            put("1MiB", imp, "MiB/s", rate * mib);
        }
    }

    /// Counts the system calls of a round trip with `strace -c -f`: the difference between a
    /// run of `N` round trips and a run of none, divided by `N`.
    fn syscalls(_: Budget) {
        const N: u64 = 20_000;
        let count = |imp: &str, n: u64| -> Option<BTreeMap<String, f64>> {
            let out = std::env::temp_dir().join(format!("bunctl-strace-{}", std::process::id()));
            let status = Command::new("strace")
                .args(["-c", "-f", "-U", "calls,name", "-o"])
                .arg(&out)
                .arg(std::env::current_exe().ok()?)
                .args(["syscalls", imp, &n.to_string()])
                .status()
                .ok()?;
            let text = std::fs::read_to_string(&out).ok().filter(|_| status.success())?;
            let _ = std::fs::remove_file(&out);
            let row = |line: &str| {
                let (calls, name) = line.trim().split_once(' ')?;
                Some((name.trim().to_string(), calls.parse().ok()?))
            };
            Some(text.lines().filter_map(row).collect())
        };
        for imp in ["framed", "interprocess", "ours", "ours-serve"] {
            let (Some(base), Some(full)) = (count(imp, 0), count(imp, N)) else {
                eprintln!("strace unavailable: no syscall counts");
                return;
            };
            for (name, calls) in &full {
                let per = (calls - base.get(name).unwrap_or(&0.0)) / N as f64;
                if name == "total" || per >= 0.05 {
                    emit("syscalls", "round-trip", imp, name, per);
                }
            }
        }
        emit("syscalls", "round-trip", "floor", "total", 4.0);
    }
}
