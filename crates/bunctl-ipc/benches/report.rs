//! Round trip (and its system calls), pipelined, large messages, fan-out, CPU per event with
//! subscribers it does not match, and the same with the server in a child process, as lines `group case implementation metric value`.

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
    use crate::common::{Peer, Run, Work, emit, histogram, msgs, setup};
    use bunctl_ipc::IpcMessage;
    use hdrhistogram::Histogram;
    use std::collections::BTreeMap;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// Repetitions (the median is reported), round trips each, time aimed at for throughput.
    #[derive(Clone, Copy)]
    struct Budget {
        reps: usize,
        round_trips: u64,
        slice: Duration,
    }

    type Imp = &'static str;
    type Make<'a> = &'a dyn Fn(Imp) -> Run;
    type Measured = (Imp, Histogram<u64>, f64);
    const MIB: f64 = (1 << 20) as f64;

    pub fn main() {
        let (args, benchmarking) = crate::common::args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let ["syscalls", imp, n] = args[..] {
            let imp = imp.to_string().leak();
            return drop(setup(imp, "mt2", Work::RoundTrip)(n.parse().expect("n"), false));
        }
        let budget = match args.contains(&"--quick") {
            true => Budget { reps: 7, round_trips: 4_000, slice: Duration::from_millis(120) },
            false => Budget { reps: 9, round_trips: 20_000, slice: Duration::from_millis(500) },
        };
        let only: Vec<&&str> = args.iter().skip_while(|a| **a != "only").skip(1).collect();
        let groups = [
            ("round-trip", round_trip as fn(Budget)),
            ("syscalls", syscalls),
            ("pipelined", pipelined),
            ("large", large),
            ("fanout", fanout),
            ("filtered", filtered),
            ("two-process", two_process),
            ("cli", cli),
        ];
        for (group, run) in groups.into_iter().filter(|_| benchmarking) {
            if only.iter().all(|g| g.starts_with("--")) || only.contains(&&group) {
                run(budget);
            }
        }
    }

    /// Whether `imp` is among the implementations `BUNCTL_BENCH_IMPS` (comma-separated) names,
    /// as when profiling one of them; all are, without it.
    fn chosen(imp: &str) -> bool {
        std::env::var("BUNCTL_BENCH_IMPS").map_or(true, |imps| imps.split(',').any(|i| i == imp))
    }

    fn us(h: &Histogram<u64>, p: f64) -> f64 {
        h.value_at_quantile(p) as f64 / 1000.0
    }

    impl Budget {
        /// Task placement on the two workers is decided when a setup starts and tends to stick,
        /// and it can change a figure by a third. So each of `reps` interleaved repetitions runs
        /// `n[i]` operations of `imps[i]` (after a tenth of them to warm up) on a fresh setup
        /// (server, connection, runtime). Per implementation: the latencies recorded (ns) and
        /// the median of the repetitions' rates (per second).
        fn measure(self, imps: &[Imp], n: &[u64], rec: bool, make: Make) -> Vec<Measured> {
            let (imps, n): (Vec<Imp>, Vec<u64>) =
                imps.iter().zip(n).filter(|(imp, _)| chosen(imp)).unzip();
            let mut out: Vec<_> = imps.iter().map(|&imp| (imp, histogram([]), vec![])).collect();
            for _ in 0..self.reps {
                for ((&imp, &n), (_, h, rates)) in imps.iter().zip(&n).zip(&mut out) {
                    let mut run = make(imp);
                    run((n / 10).max(1), false);
                    let (t, lat) = run(n, rec);
                    lat.into_iter().for_each(|ns| h.record(u64::from(ns)).expect("auto-resizing"));
                    // In thousandths, so that slow ones (8 MiB: ~100/s) keep their precision.
                    rates.push((n as f64 * 1e3 / t.as_secs_f64()) as u64);
                }
            }
            let median = |v: Vec<u64>| histogram(v).value_at_quantile(0.5) as f64 / 1e3;
            out.into_iter().map(|(imp, h, rates)| (imp, h, median(rates))).collect()
        }
        fn throughput(self, imps: &[Imp], make: Make) -> Vec<(Imp, f64)> {
            let imps: Vec<Imp> = imps.iter().copied().filter(|imp| chosen(imp)).collect();
            let calibrate = |imp| {
                let (mut run, mut n) = (make(imp), 1);
                loop {
                    let t = run(n, false).0;
                    if t >= self.slice / 4 || n >= 1 << 30 {
                        let scale = self.slice.as_secs_f64() / t.as_secs_f64().max(1e-9);
                        return ((n as f64 * scale) as u64).max(1);
                    }
                    n *= 4;
                }
            };
            let n: Vec<u64> = imps.iter().map(|&imp| calibrate(imp)).collect();
            self.measure(&imps, &n, false, make).into_iter().map(|(i, _, rate)| (i, rate)).collect()
        }
        /// The MiB of one `request`, and a longer slice over 1 MB (not one scheduling accident).
        fn mib(self, request: &IpcMessage) -> (Budget, f64) {
            let bytes = msgs::frame(request).len() as f64;
            let slice = if bytes > 1e6 { self.slice * 3 } else { self.slice };
            (Budget { slice, ..self }, bytes / MIB)
        }
    }

    fn round_trip(budget: Budget) {
        for flavor in ["mt2", "mt2-bare", "ct"] {
            let n = if flavor == "ct" { budget.round_trips / 4 } else { budget.round_trips };
            let imps = ["floor", "framed", "interprocess", "ours", "ours-serve"];
            let make = |imp| setup(imp, flavor, Work::RoundTrip);
            for (imp, h, _) in budget.measure(&imps, &[n; 5], true, &make) {
                for (metric, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
                    emit("round-trip", flavor, imp, metric, us(&h, p));
                }
            }
        }
    }

    /// Requests one way, pipelined on `mt2`: `ours` has the split connection's `Sink`/`Stream`
    /// on both sides like the baselines (`ours-loop`: its `recv`/`send` loop server).
    fn one_way(budget: Budget, group: &str, case: &str, imps: &[Imp], request: IpcMessage) {
        let (budget, size) = budget.mib(&request);
        let make = |imp| setup(imp, "mt2", Work::Pipelined(request.clone()));
        for (imp, rate) in budget.throughput(imps, &make) {
            let label = [("ours", "ours-loop"), ("ours-sink", "ours")].iter().find(|r| r.0 == imp);
            let (m, v) = if group == "large" { ("MiB/s", rate * size) } else { ("msg/s", rate) };
            emit(group, case, label.map_or(imp, |r| r.1), m, v);
        }
    }

    fn pipelined(budget: Budget) {
        let imps = ["floor", "framed", "interprocess", "ours-sink", "ours", "ours-serve"];
        one_way(budget, "pipelined", "mt2", &imps, msgs::small_request());
    }

    fn large(budget: Budget) {
        for (case, request) in [
            ("64KiB", msgs::start(64 << 10)),
            ("1MiB", msgs::start(1 << 20)),
            ("8MiB", msgs::start(8 << 20)),
            ("1MiB-json", msgs::start_json(1 << 20)),
        ] {
            let imps = ["floor", "blocking", "framed", "interprocess", "ours-sink"];
            one_way(budget, "large", case, &imps, request);
        }
    }

    fn fanout(budget: Budget) {
        for k in [1usize, 10, 100] {
            let imps = ["floor", "framed", "interprocess", "ours"];
            for (imp, rate) in budget.throughput(&imps, &|imp| crate::common::fanout(imp, k)) {
                emit("fanout", &k.to_string(), imp, "deliveries/s", rate * k as f64);
            }
        }
    }

    /// CPU per published event (ns) delivered to its one matching subscriber, alone and with
    /// 1,000 more subscribers filtered to other apps: those should cost nothing.
    fn filtered(budget: Budget) {
        for (case, others) in [("alone", 0usize), ("1000-others", 1000)] {
            let n = budget.round_trips * 10;
            let make = |_| crate::common::filtered(others);
            for (imp, _, per_cpu_second) in budget.measure(&["ours"], &[n], false, &make) {
                emit("filtered", case, imp, "ns", 1e9 / per_cpu_second);
            }
        }
    }

    fn two_process(budget: Budget) {
        let imps = ["framed", "interprocess", "ours", "ours-serve", "ours-sink"];
        let make = |work: Work| move |imp| setup(imp, "procs", work.clone());
        let put = |case: &str, imp, metric: &str, v| emit("two-process", case, imp, metric, v);
        let n = [budget.round_trips; 5];
        for (imp, h, _) in budget.measure(&imps, &n, true, &make(Work::RoundTrip)) {
            put("round-trip", imp, "p50", us(&h, 0.5));
            put("round-trip", imp, "p99", us(&h, 0.99));
        }
        for (imp, h, rate) in budget.measure(&imps, &n.map(|n| n / 4), true, &make(Work::Connects))
        {
            put("connects", imp, "per-s", rate);
            put("connects", imp, "p50", us(&h, 0.5));
            put("connects", imp, "p99", us(&h, 0.99));
        }
        for (imp, rate) in budget.throughput(&imps, &make(Work::Pipelined(msgs::small_request()))) {
            put("pipelined", imp, "msg/s", rate);
        }
        for (case, mib) in [("1MiB", 1), ("8MiB", 8)] {
            let request = msgs::start(mib << 20);
            let (budget, size) = budget.mib(&request);
            for (imp, rate) in budget.throughput(&imps, &make(Work::Pipelined(request))) {
                put(case, imp, "MiB/s", rate * size);
            }
        }
    }

    /// A CLI command's whole life, as the user waits for it: a fresh process connects to the
    /// reference daemon (`bunctl-ipc serve`, the release build `BUNCTL_IPC_BIN` names, started
    /// once), asks `List`, prints the reply and exits. Wall time from spawn to exit (stdout read
    /// to its end), the commands interleaved, `round_trips / 20` runs of each.
    fn cli(budget: Budget) {
        let Some(cli) = std::env::var_os("BUNCTL_IPC_BIN") else {
            return eprintln!("cli: BUNCTL_IPC_BIN is not set (`cargo xtask bench` sets it)");
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("daemon.sock");
        let mut daemon = Command::new(&cli);
        let daemon = daemon.arg("serve").arg("--socket").arg(&socket).stderr(Stdio::null());
        let daemon = Peer::start(daemon);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let exe = std::env::current_exe().expect("exe");
        let oneshot = |imp| {
            let mut cmd = Command::new(&exe);
            cmd.arg("oneshot").arg(imp).arg(&socket);
            cmd
        };
        let mut socat = Command::new("socat");
        socat.args(["-t", "5", "-"]).arg(format!("UNIX-CONNECT:{}", socket.display()));
        let mut call = Command::new(&cli);
        call.arg("--socket").arg(&socket).args(["call", "list"]);
        let mut commands = vec![("floor", Command::new("true"), None)];
        match Command::new("socat").arg("-V").output() {
            Ok(_) => commands.push(("socat", socat, Some(msgs::frame(&IpcMessage::List)))),
            Err(_) => eprintln!("cli: no socat here: no socat figures"),
        }
        commands.extend([("framed", oneshot("framed"), None), ("ours", oneshot("ours"), None)]);
        commands.push(("bunctl-ipc", call, None));
        let mut times: Vec<Vec<u64>> = vec![vec![]; commands.len()];
        for _ in 0..budget.round_trips / 20 {
            for ((imp, cmd, stdin), times) in commands.iter_mut().zip(&mut times) {
                let start = std::time::Instant::now();
                let piped = |yes| if yes { Stdio::piped() } else { Stdio::null() };
                let child = cmd.stdin(piped(stdin.is_some())).stdout(Stdio::piped()).spawn();
                let mut child = child.unwrap_or_else(|e| panic!("cli: cannot run {imp}: {e}"));
                if let (Some(bytes), Some(mut pipe)) = (stdin.as_ref(), child.stdin.take()) {
                    std::io::Write::write_all(&mut pipe, bytes).expect("write the request");
                }
                let out = child.wait_with_output().expect("wait");
                times.push(start.elapsed().as_nanos() as u64);
                let said = out.status.success() && (*imp == "floor" || !out.stdout.is_empty());
                assert!(said, "cli: {imp} failed: {:?}", out.status);
            }
        }
        for ((imp, ..), times) in commands.iter().zip(times) {
            let h = histogram(times);
            emit("cli", "list", imp, "p50-us", us(&h, 0.5));
            emit("cli", "list", imp, "p90-us", us(&h, 0.9));
        }
        drop(daemon);
    }

    /// System calls per round trip (`strace -c -f`): `N` round trips less none, divided by `N`.
    fn syscalls(_: Budget) {
        const N: u64 = 20_000;
        let count = |imp: &str, n: u64| -> Option<BTreeMap<String, f64>> {
            let mut strace = Command::new("strace");
            strace.args(["-c", "-f", "-U", "calls,name", "-o", "/dev/stdout"]);
            strace.arg(std::env::current_exe().ok()?).args(["syscalls", imp, &n.to_string()]);
            let out = strace.output().ok().filter(|out| out.status.success())?;
            let text = String::from_utf8(out.stdout).ok()?;
            let row = |line: &str| {
                let (calls, name) = line.trim().split_once(' ')?;
                Some((name.trim().to_string(), calls.parse().ok()?))
            };
            Some(text.lines().filter_map(row).collect())
        };
        for imp in ["framed", "interprocess", "ours", "ours-serve"] {
            let (Some(base), Some(full)) = (count(imp, 0), count(imp, N)) else {
                return eprintln!("strace unavailable: no syscall counts");
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
