//! `cargo xtask bench`: runs the short benchmark suite and writes `BENCHMARKS.md` and
//! `BENCHMARKS.svg` at the workspace root.
//!
//! The figures come from two bench binaries of `bunctl-ipc` (see `benches/`), which print
//! tab-separated lines `group case implementation metric value`:
//!
//! * `report`: codec, round trip (percentiles, syscalls via `strace -c -f`), pipelined
//!   throughput, large messages, event fan-out; every implementation interleaved in one process;
//! * `connections`: heap per connection (server and client in separate processes) and the
//!   10,000-connection load test.
//!
//! The chart is plain SVG written here, so that xtask keeps no dependencies. The analysis of
//! targets that are not met is hand-written in `benches/NOTES.md` and copied in verbatim.

use std::fmt::Write as _;
use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::runner::{self, Error, Result};
use crate::toolchain::{host_cargo, workspace_root};

/// Options of `cargo xtask bench`.
struct Options {
    /// Longer runs (the defaults of the bench binaries instead of `--quick`).
    full: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options { full: false };
        for arg in args {
            match arg.as_str() {
                "--full" => options.full = true,
                other => {
                    return Err(Error::new(format!(
                        "unknown argument {other:?}; usage: cargo xtask bench [--full]"
                    )));
                }
            }
        }
        Ok(options)
    }
}

/// One figure from a bench binary.
#[derive(Debug, Clone)]
struct Row {
    group: String,
    case: String,
    imp: String,
    metric: String,
    value: f64,
}

fn parse_row(line: &str) -> Option<Row> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 5 {
        return None;
    }
    Some(Row {
        group: f[0].into(),
        case: f[1].into(),
        imp: f[2].into(),
        metric: f[3].into(),
        value: f[4].trim().parse().ok()?,
    })
}

/// All figures, looked up by their four keys.
struct Figures(Vec<Row>);

impl Figures {
    fn get(&self, group: &str, case: &str, imp: &str, metric: &str) -> Option<f64> {
        self.0
            .iter()
            .rev()
            .find(|r| r.group == group && r.case == case && r.imp == imp && r.metric == metric)
            .map(|r| r.value)
    }

    fn rows(&self, group: &str) -> impl Iterator<Item = &Row> {
        self.0.iter().filter(move |r| r.group == group)
    }
}

/// `cargo xtask bench [--full]`.
pub fn bench(args: &[String]) -> Result {
    let options = Options::parse(args)?;
    let load_before = read_trimmed("/proc/loadavg");
    let mut rows = Vec::new();
    let mut collect = |line: &str| rows.extend(parse_row(line));

    let mut report = host_cargo();
    report.args(["bench", "-p", "bunctl-ipc", "--bench", "report", "--"]);
    if !options.full {
        report.arg("--quick");
    }
    runner::step("bench: report (codec, round trip, syscalls, throughput, fan-out)", || {
        runner::run_observing_stdout(&mut report, &mut collect)
    })?;

    let mut connections = host_cargo();
    connections.args(["bench", "-p", "bunctl-ipc", "--bench", "connections", "--"]);
    if !options.full {
        connections.arg("--quick");
    }
    runner::step("bench: connections (heap per connection, 10,000 connections)", || {
        runner::run_observing_stdout(&mut connections, &mut collect)
    })?;

    let figures = Figures(rows);
    let machine = Machine::probe(load_before);
    let root = workspace_root();
    let notes = fs::read_to_string(root.join("benches/NOTES.md")).unwrap_or_default();
    let markdown = render_markdown(&figures, &machine, options.full, &notes);
    let svg = render_svg(&figures, &machine);
    fs::write(root.join("BENCHMARKS.md"), markdown)?;
    fs::write(root.join("BENCHMARKS.svg"), svg)?;
    println!("\nwrote BENCHMARKS.md and BENCHMARKS.svg");
    // The TypeScript client's section (its own daemon run), where the machine can run Bun.
    match crate::typescript::unavailable_reason() {
        Some(reason) => println!("\nbench-ts skipped: {reason}"),
        None => runner::step("bench-ts: the TypeScript client", || crate::typescript::bench(&[]))?,
    }
    Ok(())
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}

/// What the figures were measured on.
struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    rustc: String,
    date: String,
    load_before: String,
    load_after: String,
}

impl Machine {
    fn probe(load_before: String) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']))
            })
            .unwrap_or("?")
            .to_string();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kb: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
            })
            .unwrap_or_else(|| "?".into());
        let kernel = read_trimmed("/proc/sys/kernel/osrelease");
        let rustc = runner::output(host_rustc().arg("-V")).unwrap_or_else(|_| "?".into());
        Machine {
            cpu,
            cores,
            memory,
            kernel,
            rustc,
            date: utc_now(),
            load_before,
            load_after: read_trimmed("/proc/loadavg"),
        }
    }
}

/// `rustc` of the toolchain that runs xtask.
fn host_rustc() -> std::process::Command {
    let cargo = std::env::var_os("CARGO").map(std::path::PathBuf::from);
    let sibling = cargo.and_then(|c| Some(c.parent()?.join("rustc"))).filter(|p| p.is_file());
    std::process::Command::new(sibling.unwrap_or_else(|| "rustc".into()))
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`, from the civil-from-days algorithm (no
/// date library, no `date` binary).
pub fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

// ------------------------------------------------------------------------------------------
// Markdown

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".into(), f)
}

fn us(v: f64) -> String {
    format!("{v:.2} µs")
}

fn rate(v: f64) -> String {
    if v >= 1e6 { format!("{:.2} M/s", v / 1e6) } else { format!("{:.0} k/s", v / 1e3) }
}

fn mib_s(v: f64) -> String {
    format!("{v:.0} MiB/s")
}

fn bytes(v: f64) -> String {
    if v >= 10_000.0 { format!("{:.0} B", v).replace_thousands() } else { format!("{v:.0} B") }
}

/// `1057240 B` → `1,057,240 B`.
trait Thousands {
    fn replace_thousands(&self) -> String;
}

impl Thousands for String {
    fn replace_thousands(&self) -> String {
        let (digits, rest) =
            self.split_at(self.find(|c: char| !c.is_ascii_digit()).unwrap_or(self.len()));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out + rest
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn ratio_text(r: Option<f64>) -> String {
    fmt_opt(r, |r| format!("{r:.2}×"))
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// A Markdown table.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", header.iter().map(|_| "---|").collect::<String>());
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

const RT_IMPS: [&str; 5] = ["floor", "framed", "interprocess", "ours", "ours-serve"];

fn render_markdown(f: &Figures, m: &Machine, full: bool, notes: &str) -> String {
    let mut o = String::new();
    let command = if full { "cargo xtask bench --full" } else { "cargo xtask bench" };
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `{command}` (do not edit by hand; the analysis at the end comes from \
         `benches/NOTES.md`). Every figure of a table was measured in the same process run, \
         implementations interleaved, so ratios compare like with like; absolute numbers move \
         with the machine's load.\n"
    );
    let _ = writeln!(o, "![benchmark chart](BENCHMARKS.svg)\n");
    let _ = writeln!(o, "## Machine\n");
    table(
        &mut o,
        &["", ""],
        &[
            vec!["date".into(), m.date.clone()],
            vec!["CPU".into(), format!("{} × {}", m.cores, m.cpu)],
            vec!["memory".into(), m.memory.clone()],
            vec!["kernel".into(), m.kernel.clone()],
            vec!["rustc".into(), m.rustc.clone()],
            vec![
                "load average before / after".into(),
                format!("{} / {}", m.load_before, m.load_after),
            ],
        ],
    );
    let _ = writeln!(
        o,
        "Implementations (details in `benches/common/mod.rs`):\n\n\
         * **floor** — the same bytes through `socketpair(2)` on one thread, no runtime, no JSON;\n\
         * **framed** — hand-written tokio `Framed` + `LengthDelimitedCodec` (u32 LE) + serde_json, \
         split into `FramedRead`/`FramedWrite`, server answering with `stream.map(..).forward(sink)`;\n\
         * **interprocess** — the same framing over the `interprocess` crate's tokio local socket;\n\
         * **ours** — bunctl-ipc: `IpcClient::request` against a task per connection looping on \
         `recv`/`send` (with their timeouts); for pipelined and large messages, the split \
         connection's `Sink` (fed, flushed at the end) and `Stream` on both sides, like the baselines;\n\
         * **ours-serve** — bunctl-ipc's daemon path: `serve_connection` with a handler;\n\
         * **blocking** — serde_json over blocking sockets, a writer and a reader thread.\n\n\
         Runtime: one tokio multi-thread runtime with 2 workers for both sides (**mt2**, the one \
         judged), and a current-thread runtime per side on its own thread (**ct**: every message \
         crosses threads, ~40 µs wake-ups on this VM). Each runtime has one unrelated timer \
         pending, as any daemon does; **mt2-bare** shows the round trip without it (tokio's time \
         driver then skips its work on every park, which favours baselines that have no \
         timeouts).\n"
    );

    targets(&mut o, f);

    // Round trip.
    let _ = writeln!(o, "## Round trip (small request, small reply)\n");
    for (flavor, title) in [
        ("mt2", "multi-thread runtime, 2 workers, one unrelated timer pending"),
        ("mt2-bare", "the same runtime without any timer"),
        ("ct", "current-thread runtime per side"),
    ] {
        let _ = writeln!(o, "**{flavor}** — {title}:\n");
        let mut rows = Vec::new();
        for p in ["p50", "p90", "p99", "p99.9"] {
            let mut row = vec![p.to_string()];
            for imp in RT_IMPS {
                row.push(fmt_opt(f.get("round-trip", flavor, imp, p), us));
            }
            row.push(ratio_text(ratio(
                f.get("round-trip", flavor, "ours", p),
                f.get("round-trip", flavor, "framed", p),
            )));
            rows.push(row);
        }
        let mut header = vec!["percentile"];
        header.extend(RT_IMPS);
        header.push("ours / framed");
        table(&mut o, &header, &rows);
    }
    let _ = writeln!(o, "System calls per round trip (`strace -c -f`, both sides, mt2):\n");
    let mut rows = Vec::new();
    for imp in ["floor", "framed", "interprocess", "ours", "ours-serve"] {
        let detail: Vec<String> = f
            .rows("syscalls")
            .filter(|r| r.imp == imp && r.metric != "total")
            .map(|r| format!("{} {:.2}", r.metric, r.value))
            .collect();
        rows.push(vec![
            imp.to_string(),
            fmt_opt(f.get("syscalls", "round-trip", imp, "total"), |v| format!("{v:.2}")),
            detail.join(", "),
        ]);
    }
    table(&mut o, &["implementation", "per round trip", "of which"], &rows);

    // Pipelined.
    let _ = writeln!(o, "## Pipelined small requests (one connection, mt2)\n");
    let pipe_imps = ["floor", "framed", "interprocess", "ours-sink", "ours", "ours-serve"];
    let framed = f.get("pipelined", "mt2", "framed", "msg/s");
    let rows: Vec<Vec<String>> = pipe_imps
        .iter()
        .map(|imp| {
            let v = f.get("pipelined", "mt2", imp, "msg/s");
            let label = match *imp {
                "ours-sink" => "ours (Sink/Stream both sides)",
                "ours" => "ours, server: recv/send loop",
                "ours-serve" => "ours, server: serve_connection",
                other => other,
            };
            vec![label.to_string(), fmt_opt(v, rate), ratio_text(ratio(v, framed))]
        })
        .collect();
    table(&mut o, &["implementation", "requests/s", "vs framed"], &rows);

    // Large.
    let _ = writeln!(o, "## Large `Start` messages, one way (mt2)\n");
    let large_imps = ["floor", "blocking", "framed", "interprocess", "ours"];
    let mut rows = Vec::new();
    for case in ["64KiB", "1MiB", "8MiB", "1MiB-json"] {
        if f.get("large", case, "ours", "MiB/s").is_none() {
            continue;
        }
        let mut row = vec![case.to_string()];
        for imp in large_imps {
            row.push(fmt_opt(f.get("large", case, imp, "MiB/s"), mib_s));
        }
        let ours = f.get("large", case, "ours", "MiB/s");
        row.push(ratio_text(ratio(ours, f.get("large", case, "framed", "MiB/s"))));
        row.push(ratio_text(ratio(ours, f.get("large", case, "blocking", "MiB/s"))));
        rows.push(row);
    }
    let mut header = vec!["size"];
    header.extend(large_imps);
    header.extend(["ours / framed", "ours / blocking"]);
    table(&mut o, &header, &rows);
    let _ = writeln!(
        o,
        "The `config` text is escape-free (`key=value;` pairs); `1MiB-json` carries JSON text, \
         whose quotes serde_json must escape and unescape.\n"
    );

    // Codec.
    let _ = writeln!(o, "## Codec alone (one frame, no I/O)\n");
    let mut rows = Vec::new();
    for group in ["codec-encode", "codec-decode"] {
        for case in ["small", "data-4KiB", "start-1MiB"] {
            let framed = f.get(group, case, "framed", "ns");
            let ours = f.get(group, case, "ours", "ns");
            rows.push(vec![
                format!("{} {case}", group.trim_start_matches("codec-")),
                fmt_opt(f.get(group, case, "floor", "ns"), |v| format!("{v:.0} ns")),
                fmt_opt(framed, |v| format!("{v:.0} ns")),
                fmt_opt(ours, |v| format!("{v:.0} ns")),
                ratio_text(ratio(framed, ours)),
            ]);
        }
    }
    table(&mut o, &["operation", "floor (memcpy)", "framed", "ours", "speed-up"], &rows);

    // Fan-out.
    let _ =
        writeln!(o, "## Event fan-out (deliveries per second, each parsed by its subscriber)\n");
    let fan_imps = ["floor", "framed", "interprocess", "ours"];
    let mut rows = Vec::new();
    for case in ["1", "10", "100"] {
        let mut row = vec![case.to_string()];
        for imp in fan_imps {
            row.push(fmt_opt(f.get("fanout", case, imp, "deliveries/s"), rate));
        }
        row.push(ratio_text(ratio(
            f.get("fanout", case, "ours", "deliveries/s"),
            f.get("fanout", case, "framed", "deliveries/s"),
        )));
        rows.push(row);
    }
    let mut header = vec!["subscribers"];
    header.extend(fan_imps);
    header.push("ours / framed");
    table(&mut o, &header, &rows);

    // Memory.
    let _ = writeln!(o, "## Heap per connection\n");
    let _ = writeln!(
        o,
        "Counting global allocator; server and client in separate processes. *Total* is the heap \
         growth divided by the number of connections, including the connection objects \
         themselves (held in a `Vec`) and, for the task variants, each connection's task. \
         *Allocated* leaves out the inline object (what the issue's 16,640 B / 256 B figures \
         count).\n"
    );
    let mem_rows = [
        ("ours-conn/server", "ours: `IpcConnection` (server)", Some("IpcConnection")),
        ("ours-task/server", "ours: connection in a `recv`/`send` task (server)", None),
        ("ours-serve/server", "ours: `serve()` (server, reference daemon)", None),
        ("ours/client", "ours: `IpcClient` (client)", Some("IpcClient")),
        ("framed/server", "framed (server)", Some("Framed<UnixStream,LengthDelimitedCodec>")),
        ("framed/client", "framed (client)", Some("Framed<UnixStream,LengthDelimitedCodec>")),
        ("interprocess/server", "interprocess (server)", None),
        ("interprocess/client", "interprocess (client)", None),
    ];
    let mut rows = Vec::new();
    for (key, label, inline) in mem_rows {
        let inline = inline.and_then(|t| f.get("sizes", "inline", t, "bytes"));
        let mut row = vec![label.to_string()];
        for n in ["1000", "10000"] {
            for metric in ["idle", "after-1MiB"] {
                let total = f.get("memory", n, key, metric);
                let cell = match (total, inline) {
                    (Some(t), Some(i)) => format!("{} ({})", bytes(t), bytes(t - i)),
                    (Some(t), None) => bytes(t),
                    _ => "–".into(),
                };
                row.push(cell);
            }
        }
        rows.push(row);
    }
    table(
        &mut o,
        &[
            "total (allocated)",
            "1,000 idle",
            "1,000 after 1 MiB each way",
            "10,000 idle",
            "10,000 after 1 MiB each way",
        ],
        &rows,
    );
    let sizes: Vec<String> =
        f.rows("sizes").map(|r| format!("{} {}: {:.0} B", r.case, r.imp, r.value)).collect();
    if !sizes.is_empty() {
        let _ = writeln!(o, "Where it goes: {}.\n", sizes.join("; "));
    }

    // Load.
    let _ = writeln!(o, "## 10,000 concurrent connections, 10 requests each\n");
    let mut rows = Vec::new();
    for imp in ["ours-serve", "ours-task", "framed"] {
        let g = |m: &str| f.get("load", "10000x10", imp, m);
        if g("requests-ok").is_none() {
            continue;
        }
        rows.push(vec![
            imp.to_string(),
            fmt_opt(g("requests-ok"), |v| format!("{v:.0} / 100000")),
            fmt_opt(g("connections-failed"), |v| format!("{v:.0}")),
            fmt_opt(g("p50-us"), |v| format!("{:.2} ms", v / 1000.0)),
            fmt_opt(g("p99-us"), |v| format!("{:.2} ms", v / 1000.0)),
            fmt_opt(g("max-us"), |v| format!("{:.2} ms", v / 1000.0)),
            fmt_opt(g("seconds"), |v| format!("{v:.1} s")),
        ]);
    }
    table(
        &mut o,
        &["server", "requests ok", "failed connections", "p50", "p99", "max", "wall time"],
        &rows,
    );
    let _ = writeln!(
        o,
        "All connections are opened first; then all 10,000 start their 10 requests at once, so \
         the latencies are queueing under a thundering herd, not per-request cost.\n"
    );

    if !notes.trim().is_empty() {
        let _ = writeln!(o, "{}", notes.trim_end());
    }
    o
}

fn targets(o: &mut String, f: &Figures) {
    let _ = writeln!(o, "## Targets (issue 7)\n");
    let mut rows = Vec::new();

    let ours = f.get("round-trip", "mt2", "ours", "p50");
    let framed = f.get("round-trip", "mt2", "framed", "p50");
    let r = ratio(ours, framed);
    let bare = ratio(
        f.get("round-trip", "mt2-bare", "ours", "p50"),
        f.get("round-trip", "mt2-bare", "framed", "p50"),
    );
    rows.push(vec![
        "1. round trip p50 ≤ 1.0× framed (mt2)".into(),
        format!(
            "{} vs {} = {} (runtime without any timer: {})",
            fmt_opt(ours, us),
            fmt_opt(framed, us),
            ratio_text(r),
            ratio_text(bare)
        ),
        verdict(r.map(|r| r <= 1.0)).into(),
    ]);
    let sys = f.get("syscalls", "round-trip", "ours", "total");
    rows.push(vec![
        "1. ≤ 6 syscalls per round trip".into(),
        fmt_opt(sys, |v| format!("{v:.2}")),
        verdict(sys.map(|v| v <= 6.05)).into(),
    ]);

    let ours = f.get("pipelined", "mt2", "ours-sink", "msg/s");
    let framed = f.get("pipelined", "mt2", "framed", "msg/s");
    let serve = f.get("pipelined", "mt2", "ours-serve", "msg/s");
    let r = ratio(ours, framed);
    rows.push(vec![
        "2. pipelined ≥ 1.2× framed".into(),
        format!(
            "{} vs {} = {} (daemon path `serve_connection`: {})",
            fmt_opt(ours, rate),
            fmt_opt(framed, rate),
            ratio_text(r),
            ratio_text(ratio(serve, framed))
        ),
        verdict(r.map(|r| r >= 1.2)).into(),
    ]);

    for case in ["1MiB", "8MiB"] {
        let ours = f.get("large", case, "ours", "MiB/s");
        let rf = ratio(ours, f.get("large", case, "framed", "MiB/s"));
        let rb = ratio(ours, f.get("large", case, "blocking", "MiB/s"));
        rows.push(vec![
            format!("3. {case} one way ≥ 1.3× framed, ≥ 0.85× blocking"),
            format!(
                "{}: {} framed, {} blocking",
                fmt_opt(ours, mib_s),
                ratio_text(rf),
                ratio_text(rb)
            ),
            verdict(match (rf, rb) {
                (Some(a), Some(b)) => Some(a >= 1.3 && b >= 0.85),
                _ => None,
            })
            .into(),
        ]);
    }

    let mut worst_total: Option<f64> = None;
    let mut worst_alloc: Option<f64> = None;
    for (key, inline) in [("ours-conn/server", "IpcConnection"), ("ours/client", "IpcClient")] {
        let i = f.get("sizes", "inline", inline, "bytes").unwrap_or(0.0);
        for n in ["1000", "10000"] {
            for metric in ["idle", "after-1MiB"] {
                if let Some(t) = f.get("memory", n, key, metric) {
                    worst_total = Some(worst_total.map_or(t, |w: f64| w.max(t)));
                    worst_alloc = Some(worst_alloc.map_or(t - i, |w: f64| w.max(t - i)));
                }
            }
        }
    }
    let serve = ["1000", "10000"]
        .iter()
        .filter_map(|n| f.get("memory", n, "ours-serve/server", "idle"))
        .fold(None, |w: Option<f64>, v| Some(w.map_or(v, |w| w.max(v))));
    rows.push(vec![
        "4. ≤ 512 B per idle connection, each side, also after 1 MiB".into(),
        format!(
            "worst allocated {}; with the object itself {}; `serve()` daemon incl. its task {}",
            fmt_opt(worst_alloc, bytes),
            fmt_opt(worst_total, bytes),
            fmt_opt(serve, bytes)
        ),
        format!(
            "allocated: {}; total: {}",
            verdict(worst_alloc.map(|v| v <= 512.0)),
            verdict(worst_total.map(|v| v <= 512.0))
        ),
    ]);

    let ok = f.get("load", "10000x10", "ours-serve", "requests-ok");
    let failed = f.get("load", "10000x10", "ours-serve", "connections-failed");
    let p99 = f.get("load", "10000x10", "ours-serve", "p99-us");
    rows.push(vec![
        "5. 10,000 connections × 10 requests all succeed".into(),
        format!(
            "{} ok, {} failed, p99 {}",
            fmt_opt(ok, |v| format!("{v:.0}")),
            fmt_opt(failed, |v| format!("{v:.0}")),
            fmt_opt(p99, |v| format!("{:.1} ms", v / 1000.0))
        ),
        verdict(ok.zip(failed).map(|(ok, failed)| ok >= 100_000.0 && failed == 0.0)).into(),
    ]);

    let fan = f.get("fanout", "100", "ours", "deliveries/s");
    rows.push(vec![
        "6. fan-out to 100 subscribers ≥ 1M deliveries/s".into(),
        fmt_opt(fan, rate),
        verdict(fan.map(|v| v >= 1e6)).into(),
    ]);
    table(o, &["target", "measured", "verdict"], &rows);
}

// ------------------------------------------------------------------------------------------
// SVG

const COLORS: &[(&str, &str)] = &[
    ("floor", "#9e9e9e"),
    ("blocking", "#8c564b"),
    ("framed", "#1f77b4"),
    ("interprocess", "#ff7f0e"),
    ("ours", "#2ca02c"),
    ("ours-serve", "#98df8a"),
];

fn color(imp: &str) -> &'static str {
    COLORS.iter().find(|(n, _)| *n == imp).map_or("#555555", |(_, c)| c)
}

/// A grouped bar chart.
struct Chart {
    title: String,
    /// Axis label.
    unit: String,
    groups: Vec<String>,
    series: Vec<String>,
    /// `values[group][series]`.
    values: Vec<Vec<Option<f64>>>,
    log: bool,
    /// A dashed horizontal line (e.g. the baseline at 1.0).
    reference: Option<f64>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart {
    fn render(&self, out: &mut String, x0: f64, y0: f64, w: f64, h: f64) {
        let (left, right, top, bottom) = (60.0, 130.0, 28.0, 34.0);
        let (px, py, pw, ph) = (x0 + left, y0 + top, w - left - right, h - top - bottom);
        let all: Vec<f64> =
            self.values.iter().flatten().flatten().copied().filter(|v| *v > 0.0).collect();
        let max = all.iter().copied().fold(self.reference.unwrap_or(0.0), f64::max).max(1e-9);
        let min = all.iter().copied().fold(f64::INFINITY, f64::min);
        let (lo, hi) = if self.log {
            (10f64.powf(min.log10().floor()), 10f64.powf(max.log10().ceil()))
        } else {
            (0.0, nice_ceil(max * 1.08))
        };
        let y_of = |v: f64| -> f64 {
            let t = if self.log {
                (v.log10() - lo.log10()) / (hi.log10() - lo.log10())
            } else {
                (v - lo) / (hi - lo)
            };
            py + ph - t.clamp(0.0, 1.0) * ph
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
            x0 + 8.0,
            y0 + 18.0,
            esc(&self.title)
        );
        // Grid and ticks.
        let ticks: Vec<f64> = if self.log {
            let mut t = Vec::new();
            let mut v = lo;
            while v <= hi * 1.0001 {
                t.push(v);
                v *= 10.0;
            }
            t
        } else {
            let step = nice_ceil(hi / 5.0);
            (0..=((hi / step).round() as usize)).map(|i| i as f64 * step).collect()
        };
        for t in ticks {
            let y = y_of(t.max(lo));
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                px + pw,
                px - 4.0,
                y + 3.0,
                short(t)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" transform="rotate(-90 {:.1} {:.1})" text-anchor="middle">{}</text>"#,
            x0 + 14.0,
            py + ph / 2.0,
            x0 + 14.0,
            py + ph / 2.0,
            esc(&self.unit)
        );
        if let Some(r) = self.reference {
            let y = y_of(r);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#333" stroke-dasharray="4 3"/>"##,
                px + pw
            );
        }
        // Bars.
        let gw = pw / self.groups.len().max(1) as f64;
        let bw = (gw * 0.8) / self.series.len().max(1) as f64;
        for (gi, group) in self.groups.iter().enumerate() {
            let gx = px + gi as f64 * gw + gw * 0.1;
            for (si, series) in self.series.iter().enumerate() {
                let Some(v) = self.values[gi][si] else { continue };
                if v <= 0.0 {
                    continue;
                }
                let (x, y) = (gx + si as f64 * bw, y_of(v));
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                    (bw - 1.0).max(1.0),
                    (py + ph - y).max(0.0),
                    color(series),
                    esc(group),
                    esc(series),
                    short(v)
                );
                let _ = writeln!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle">{}</text>"#,
                    x + bw / 2.0,
                    y - 2.0,
                    short(v)
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
                gx + gw * 0.4,
                py + ph + 16.0,
                esc(group)
            );
        }
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
            py + ph,
            px + pw,
            py + ph
        );
        // Legend.
        for (si, series) in self.series.iter().enumerate() {
            let (lx, ly) = (px + pw + 12.0, py + 6.0 + si as f64 * 16.0);
            let _ = writeln!(
                out,
                r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                ly - 9.0,
                color(series),
                lx + 14.0,
                ly,
                esc(series)
            );
        }
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `v`.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|c| *c >= v * 0.9999).unwrap_or(10.0 * p)
}

fn render_svg(f: &Figures, m: &Machine) -> String {
    let series = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let latency = Chart {
        title: "Round-trip latency, mt2 (lower is better)".into(),
        unit: "µs".into(),
        groups: series(&["p50", "p90", "p99"]),
        series: series(&RT_IMPS),
        values: ["p50", "p90", "p99"]
            .iter()
            .map(|p| RT_IMPS.iter().map(|imp| f.get("round-trip", "mt2", imp, p)).collect())
            .collect(),
        log: false,
        reference: None,
    };
    let rel = |group: &str, case: &str, metric: &str, imp: &str| {
        let imp = if group == "pipelined" && imp == "ours" { "ours-sink" } else { imp };
        ratio(f.get(group, case, imp, metric), f.get(group, case, "framed", metric))
    };
    let thr_series = ["blocking", "framed", "interprocess", "ours", "ours-serve"];
    let thr_groups = [
        ("pipelined", "pipelined", "mt2", "msg/s"),
        ("64 KiB", "large", "64KiB", "MiB/s"),
        ("1 MiB", "large", "1MiB", "MiB/s"),
        ("8 MiB", "large", "8MiB", "MiB/s"),
        ("fan-out ×100", "fanout", "100", "deliveries/s"),
    ];
    let throughput = Chart {
        title: "Throughput relative to hand-written Framed (higher is better)".into(),
        unit: "× framed".into(),
        groups: thr_groups.iter().map(|g| g.0.to_string()).collect(),
        series: series(&thr_series),
        values: thr_groups
            .iter()
            .map(|(_, g, c, metric)| thr_series.iter().map(|imp| rel(g, c, metric, imp)).collect())
            .collect(),
        log: false,
        reference: Some(1.0),
    };
    let mem_series = ["framed", "interprocess", "ours", "ours-serve"];
    let mem_key = |imp: &str, side: &str| match (imp, side) {
        ("ours", "server") => "ours-conn/server".to_string(),
        ("ours-serve", "client") => String::new(),
        ("ours-serve", _) => "ours-serve/server".to_string(),
        (imp, side) => format!("{imp}/{side}"),
    };
    let mem_groups = [
        ("server idle", "server", "idle"),
        ("server after 1 MiB", "server", "after-1MiB"),
        ("client idle", "client", "idle"),
        ("client after 1 MiB", "client", "after-1MiB"),
    ];
    let memory = Chart {
        title:
            "Heap per connection, 1,000 connections, incl. the object (log scale; dashed: 512 B)"
                .into(),
        unit: "bytes".into(),
        groups: mem_groups.iter().map(|g| g.0.to_string()).collect(),
        series: series(&mem_series),
        values: mem_groups
            .iter()
            .map(|(_, side, metric)| {
                mem_series
                    .iter()
                    .map(|imp| f.get("memory", "1000", &mem_key(imp, side), metric))
                    .collect()
            })
            .collect(),
        log: true,
        reference: Some(512.0),
    };
    let (w, h) = (900.0, 300.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" viewBox="0 0 {w} {}" font-family="sans-serif">"#,
        3.0 * h + 30.0,
        3.0 * h + 30.0
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    latency.render(&mut out, 0.0, 0.0, w, h);
    throughput.render(&mut out, 0.0, h, w, h);
    memory.render(&mut out, 0.0, 2.0 * h, w, h);
    let _ = writeln!(
        out,
        r##"<text x="8" y="{:.1}" font-size="10" fill="#555">{} · {} × {} · cargo xtask bench</text>"##,
        3.0 * h + 20.0,
        esc(&m.date),
        m.cores,
        esc(&m.cpu)
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!("1057240 B".to_string().replace_thousands(), "1,057,240 B");
        assert_eq!("16640 B".to_string().replace_thousands(), "16,640 B");
        assert_eq!("512 B".to_string().replace_thousands(), "512 B");
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceil(7.3), 10.0);
        assert_eq!(nice_ceil(1.5), 2.0);
        assert_eq!(nice_ceil(0.42), 0.5);
    }

    #[test]
    fn rows_parse_and_bad_lines_are_skipped() {
        let r = parse_row("round-trip\tmt2\tours\tp50\t4.2000").expect("row");
        assert_eq!((r.group.as_str(), r.value), ("round-trip", 4.2));
        assert!(parse_row("Benchmarking round-trip").is_none());
        assert!(parse_row("a\tb\tc\td\tnot-a-number").is_none());
    }

    #[test]
    fn markdown_and_svg_render_from_partial_figures() {
        let f = Figures(vec![
            parse_row("round-trip\tmt2\tours\tp50\t4.0").expect("row"),
            parse_row("round-trip\tmt2\tframed\tp50\t5.0").expect("row"),
        ]);
        let m = Machine {
            cpu: "cpu".into(),
            cores: 2,
            memory: "1 GiB".into(),
            kernel: "k".into(),
            rustc: "rustc".into(),
            date: "2026-01-01 00:00 UTC".into(),
            load_before: "0".into(),
            load_after: "0".into(),
        };
        let md = render_markdown(&f, &m, false, "");
        assert!(md.contains(
            "| 1. round trip p50 ≤ 1.0× framed (mt2) | 4.00 µs vs 5.00 µs = 0.80× \
             (runtime without any timer: –) | **met** |"
        ));
        let svg = render_svg(&f, &m);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn utc_date_has_the_expected_shape() {
        let d = utc_now();
        assert_eq!(d.len(), "2026-01-01 00:00 UTC".len());
        assert!(d.starts_with("20"));
    }
}
