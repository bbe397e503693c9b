//! Writes `BENCHMARKS.md` and `BENCHMARKS.svg` from the figures `cargo xtask bench` collected,
//! and the TypeScript section of `BENCHMARKS.md` for `cargo xtask bench-ts` (see [`ts`]).
//!
//! `bench-report FIGURES CRITERION_DIR LOAD_BEFORE [--full]`: `FIGURES` holds the tab-separated
//! lines `group case implementation metric value` of the `report` and `connections` benches;
//! the codec figures are criterion's own estimates from `CRITERION_DIR` (bench `codec`).

mod chart;
mod ts;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use num_format::{Locale, ToFormattedString};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One figure: `group case implementation metric value`.
#[derive(Debug, Clone)]
struct Row {
    group: String,
    case: String,
    imp: String,
    metric: String,
    value: f64,
}

fn parse_row(line: &str) -> Option<Row> {
    let [group, case, imp, metric, value] = line.split('\t').collect::<Vec<_>>()[..] else {
        return None;
    };
    let (group, case, imp, metric) = (group.into(), case.into(), imp.into(), metric.into());
    Some(Row { group, case, imp, metric, value: value.trim().parse().ok()? })
}

/// All figures, looked up by their four keys.
struct Figures(Vec<Row>);

impl Figures {
    fn get(&self, group: &str, case: &str, imp: &str, metric: &str) -> Option<f64> {
        let hit =
            |r: &&Row| r.group == group && r.case == case && r.imp == imp && r.metric == metric;
        self.0.iter().rev().find(hit).map(|r| r.value)
    }

    fn rows(&self, group: &str) -> impl Iterator<Item = &Row> {
        self.0.iter().filter(move |r| r.group == group)
    }

    /// Adds the codec figures: criterion's estimate (the slope of its linear sampling, else the
    /// mean) of each `codec-{encode,decode}/<case>/<implementation>` benchmark, in ns.
    fn add_criterion(&mut self, dir: &Path) {
        for group in ["codec-encode", "codec-decode"] {
            for case in CODEC_CASES {
                for imp in ["floor", "framed", "ours"] {
                    let file = dir.join(format!("{group}_{case}/{imp}/new/estimates.json"));
                    let Some(json) = fs::read(&file)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    else {
                        eprintln!("no criterion estimates in {}", file.display());
                        continue;
                    };
                    let estimate =
                        ["slope", "mean"].iter().find_map(|k| json[k]["point_estimate"].as_f64());
                    if let Some(value) = estimate {
                        let (group, case, imp) = (group.into(), case.into(), imp.into());
                        self.0.push(Row { group, case, imp, metric: "ns".into(), value });
                    }
                }
            }
        }
    }
}

const CODEC_CASES: [&str; 3] = ["small", "data-4KiB", "start-1MiB"];

fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).unwrap_or(crate_dir).to_path_buf()
}

fn main() -> Result {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, bun, daemon] if cmd == "ts" => ts::bench(Path::new(bun), Path::new(daemon)),
        [figures, criterion, load_before, rest @ ..] => {
            let text = fs::read_to_string(figures)?;
            let mut f = Figures(text.lines().filter_map(parse_row).collect());
            f.add_criterion(Path::new(criterion));
            let machine = Machine::probe(load_before.clone());
            let root = workspace_root();
            let notes = fs::read_to_string(root.join("benches/NOTES.md")).unwrap_or_default();
            let full = rest.iter().any(|a| a == "--full");
            let md_path = root.join("BENCHMARKS.md");
            // Keep the TypeScript section `bench-ts` wrote, if any.
            let old = fs::read_to_string(&md_path).unwrap_or_default();
            let markdown = match ts::section(&old) {
                Some(section) => ts::splice(&render_markdown(&f, &machine, full, &notes), section),
                None => render_markdown(&f, &machine, full, &notes),
            };
            fs::write(&md_path, markdown)?;
            fs::write(root.join("BENCHMARKS.svg"), chart::render(&f, &machine)?)?;
            println!("wrote BENCHMARKS.md and BENCHMARKS.svg");
            Ok(())
        }
        _ => Err("usage: bench-report FIGURES CRITERION_DIR LOAD_BEFORE [--full] | \
                  bench-report ts BUN DAEMON"
            .into()),
    }
}

fn read_trimmed(path: &str) -> String {
    fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::now_utc().format(format).unwrap_or_else(|_| "?".into())
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
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kb: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
                Some(format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
            })
            .unwrap_or_else(|| "?".into());
        // The toolchain that built this binary (`cargo run` sets `RUSTC` only sometimes).
        let rustc = std::process::Command::new(env::var_os("RUSTC").unwrap_or("rustc".into()))
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "?".into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory,
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            rustc,
            date: utc_now(),
            load_before,
            load_after: read_trimmed("/proc/loadavg"),
        }
    }
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

fn ms(v_us: f64) -> String {
    format!("{:.2} ms", v_us / 1000.0)
}

/// `1057240` → `1,057,240 B`; below 10,000 without separator (`4096 B`).
fn bytes(v: f64) -> String {
    let v = v.round().max(0.0) as u64;
    if v >= 10_000 { format!("{} B", v.to_formatted_string(&Locale::en)) } else { format!("{v} B") }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
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

/// A Markdown table, followed by an empty line.
pub fn table(out: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    let mut builder = tabled::builder::Builder::default();
    builder.push_record(header.iter().copied());
    for row in rows {
        builder.push_record(row);
    }
    let table = builder.build().with(tabled::settings::Style::markdown()).to_string();
    let _ = writeln!(out, "{table}\n");
}

/// Implementations of the round-trip tables and chart.
const RT_IMPS: [&str; 5] = ["floor", "framed", "interprocess", "ours", "ours-serve"];

const IMPLEMENTATIONS: &str = "Implementations (details in `benches/common/mod.rs`):

* **floor** — the same bytes through `socketpair(2)` on one thread, no runtime, no JSON;
* **framed** — hand-written tokio `Framed` + `LengthDelimitedCodec` (u32 LE) + serde_json, split into `FramedRead`/`FramedWrite`, server answering with `stream.map(..).forward(sink)`;
* **interprocess** — the same framing over the `interprocess` crate's tokio local socket;
* **ours** — bunctl-ipc: `IpcClient::request` against a task per connection looping on `recv`/`send` (with their timeouts); for pipelined and large messages, the split connection's `Sink` (fed, flushed at the end) and `Stream` on both sides, like the baselines;
* **ours-serve** — bunctl-ipc's daemon path: `serve_connection` with a handler;
* **blocking** — serde_json over blocking sockets, a writer and a reader thread.

Runtime: one tokio multi-thread runtime with 2 workers for both sides (**mt2**, the one judged), and a current-thread runtime per side on its own thread (**ct**: every message crosses threads, ~40 µs wake-ups on this VM). Each runtime has one unrelated timer pending, as any daemon does; **mt2-bare** shows the round trip without it (tokio's time driver then skips its work on every park, which favours baselines that have no timeouts).
";

fn render_markdown(f: &Figures, m: &Machine, full: bool, notes: &str) -> String {
    let mut o = String::new();
    let command = if full { "cargo xtask bench --full" } else { "cargo xtask bench" };
    let _ = writeln!(
        o,
        "# Benchmarks\n\nGenerated by `{command}` (do not edit by hand; the analysis at the end \
         comes from `benches/NOTES.md`). Every figure of a table was measured in the same process \
         run, implementations interleaved, so ratios compare like with like (the codec figures \
         are criterion's estimates, one implementation after the other); absolute numbers move \
         with the machine's load.\n\n![benchmark chart](BENCHMARKS.svg)\n\n## Machine\n"
    );
    let machine = [
        ("date", m.date.clone()),
        ("CPU", format!("{} × {}", m.cores, m.cpu)),
        ("memory", m.memory.clone()),
        ("kernel", m.kernel.clone()),
        ("rustc", m.rustc.clone()),
        ("load average before / after", format!("{} / {}", m.load_before, m.load_after)),
    ];
    table(&mut o, &["", ""], machine.into_iter().map(|(k, v)| vec![k.into(), v]).collect());
    let _ = writeln!(o, "{IMPLEMENTATIONS}");
    targets(&mut o, f);

    let _ = writeln!(o, "## Round trip (small request, small reply)\n");
    for (flavor, title) in [
        ("mt2", "multi-thread runtime, 2 workers, one unrelated timer pending"),
        ("mt2-bare", "the same runtime without any timer"),
        ("ct", "current-thread runtime per side"),
    ] {
        let _ = writeln!(o, "**{flavor}** — {title}:\n");
        let rt = |imp: &str, p: &str| f.get("round-trip", flavor, imp, p);
        let rows = ["p50", "p90", "p99", "p99.9"].map(|p| {
            let mut row = vec![p.to_string()];
            row.extend(RT_IMPS.map(|imp| fmt_opt(rt(imp, p), us)));
            row.push(ratio_text(ratio(rt("ours", p), rt("framed", p))));
            row
        });
        let mut header = vec!["percentile"];
        header.extend(RT_IMPS);
        header.push("ours / framed");
        table(&mut o, &header, rows.to_vec());
    }
    let _ = writeln!(o, "System calls per round trip (`strace -c -f`, both sides, mt2):\n");
    let rows = RT_IMPS.map(|imp| {
        let detail: Vec<String> = f
            .rows("syscalls")
            .filter(|r| r.imp == imp && r.metric != "total")
            .map(|r| format!("{} {:.2}", r.metric, r.value))
            .collect();
        let total = f.get("syscalls", "round-trip", imp, "total");
        vec![imp.to_string(), fmt_opt(total, |v| format!("{v:.2}")), detail.join(", ")]
    });
    table(&mut o, &["implementation", "per round trip", "of which"], rows.to_vec());

    let _ = writeln!(o, "## Pipelined small requests (one connection, mt2)\n");
    let framed = f.get("pipelined", "mt2", "framed", "msg/s");
    let rows = [
        ("floor", "floor"),
        ("framed", "framed"),
        ("interprocess", "interprocess"),
        ("ours-sink", "ours (Sink/Stream both sides)"),
        ("ours", "ours, server: recv/send loop"),
        ("ours-serve", "ours, server: serve_connection"),
    ]
    .map(|(imp, label)| {
        let v = f.get("pipelined", "mt2", imp, "msg/s");
        vec![label.to_string(), fmt_opt(v, rate), ratio_text(ratio(v, framed))]
    });
    table(&mut o, &["implementation", "requests/s", "vs framed"], rows.to_vec());

    let _ = writeln!(o, "## Large `Start` messages, one way (mt2)\n");
    let large_imps = ["floor", "blocking", "framed", "interprocess", "ours"];
    let mut rows = Vec::new();
    for case in ["64KiB", "1MiB", "8MiB", "1MiB-json"] {
        let large = |imp: &str| f.get("large", case, imp, "MiB/s");
        if large("ours").is_none() {
            continue;
        }
        let mut row = vec![case.to_string()];
        row.extend(large_imps.map(|imp| fmt_opt(large(imp), mib_s)));
        row.push(ratio_text(ratio(large("ours"), large("framed"))));
        row.push(ratio_text(ratio(large("ours"), large("blocking"))));
        rows.push(row);
    }
    let mut header = vec!["size"];
    header.extend(large_imps);
    header.extend(["ours / framed", "ours / blocking"]);
    table(&mut o, &header, rows);
    let _ = writeln!(
        o,
        "The `config` text is escape-free (`key=value;` pairs); `1MiB-json` carries JSON text, \
         whose quotes serde_json must escape and unescape.\n"
    );

    let _ = writeln!(o, "## Codec alone (one frame, no I/O; criterion)\n");
    let mut rows = Vec::new();
    for group in ["codec-encode", "codec-decode"] {
        for case in CODEC_CASES {
            let codec = |imp: &str| f.get(group, case, imp, "ns");
            let ns = |v| format!("{v:.0} ns");
            rows.push(vec![
                format!("{} {case}", group.trim_start_matches("codec-")),
                fmt_opt(codec("floor"), ns),
                fmt_opt(codec("framed"), ns),
                fmt_opt(codec("ours"), ns),
                ratio_text(ratio(codec("framed"), codec("ours"))),
            ]);
        }
    }
    table(&mut o, &["operation", "floor (memcpy)", "framed", "ours", "speed-up"], rows);

    let _ =
        writeln!(o, "## Event fan-out (deliveries per second, each parsed by its subscriber)\n");
    let fan_imps = ["floor", "framed", "interprocess", "ours"];
    let rows = ["1", "10", "100"].map(|case| {
        let fan = |imp: &str| f.get("fanout", case, imp, "deliveries/s");
        let mut row = vec![case.to_string()];
        row.extend(fan_imps.map(|imp| fmt_opt(fan(imp), rate)));
        row.push(ratio_text(ratio(fan("ours"), fan("framed"))));
        row
    });
    let mut header = vec!["subscribers"];
    header.extend(fan_imps);
    header.push("ours / framed");
    table(&mut o, &header, rows.to_vec());

    memory(&mut o, f);

    let _ = writeln!(o, "## 10,000 concurrent connections, 10 requests each\n");
    let mut rows = Vec::new();
    for imp in ["ours-serve", "ours-task", "framed"] {
        let g = |m: &str| f.get("load", "10000x10", imp, m);
        if g("requests-ok").is_some() {
            rows.push(vec![
                imp.to_string(),
                fmt_opt(g("requests-ok"), |v| format!("{v:.0} / 100000")),
                fmt_opt(g("connections-failed"), |v| format!("{v:.0}")),
                fmt_opt(g("p50-us"), ms),
                fmt_opt(g("p99-us"), ms),
                fmt_opt(g("max-us"), ms),
                fmt_opt(g("seconds"), |v| format!("{v:.1} s")),
            ]);
        }
    }
    let header = ["server", "requests ok", "failed connections", "p50", "p99", "max", "wall time"];
    table(&mut o, &header, rows);
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

fn memory(o: &mut String, f: &Figures) {
    let _ = writeln!(
        o,
        "## Heap per connection\n\nCounting global allocator; server and client in separate \
         processes. *Total* is the heap growth divided by the number of connections, including \
         the connection objects themselves (held in a `Vec`) and, for the task variants, each \
         connection's task. *Allocated* leaves out the inline object (what the issue's 16,640 B \
         / 256 B figures count).\n"
    );
    let framed = Some("Framed<UnixStream,LengthDelimitedCodec>");
    let mem_rows = [
        ("ours-conn/server", "ours: `IpcConnection` (server)", Some("IpcConnection")),
        ("ours-task/server", "ours: connection in a `recv`/`send` task (server)", None),
        ("ours-serve/server", "ours: `serve()` (server, reference daemon)", None),
        ("ours/client", "ours: `IpcClient` (client)", Some("IpcClient")),
        ("framed/server", "framed (server)", framed),
        ("framed/client", "framed (client)", framed),
        ("interprocess/server", "interprocess (server)", None),
        ("interprocess/client", "interprocess (client)", None),
    ];
    let mut rows = Vec::new();
    for (key, label, inline) in mem_rows {
        let inline = inline.and_then(|t| f.get("sizes", "inline", t, "bytes"));
        let mut row = vec![label.to_string()];
        for n in ["1000", "10000"] {
            for metric in ["idle", "after-1MiB"] {
                row.push(match (f.get("memory", n, key, metric), inline) {
                    (Some(t), Some(i)) => format!("{} ({})", bytes(t), bytes(t - i)),
                    (Some(t), None) => bytes(t),
                    _ => "–".into(),
                });
            }
        }
        rows.push(row);
    }
    let header = [
        "total (allocated)",
        "1,000 idle",
        "1,000 after 1 MiB each way",
        "10,000 idle",
        "10,000 after 1 MiB each way",
    ];
    table(o, &header, rows);
    let sizes: Vec<String> =
        f.rows("sizes").map(|r| format!("{} {}: {:.0} B", r.case, r.imp, r.value)).collect();
    if !sizes.is_empty() {
        let _ = writeln!(o, "Where it goes: {}.\n", sizes.join("; "));
    }
}

fn max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.reduce(f64::max)
}

fn targets(o: &mut String, f: &Figures) {
    let _ = writeln!(o, "## Targets (issue 7)\n");
    let mut rows = Vec::new();
    let mut row = |target: &str, measured: String, verdict: String| {
        rows.push(vec![target.to_string(), measured, verdict]);
    };

    let rt = |flavor: &str, imp: &str| f.get("round-trip", flavor, imp, "p50");
    let r = ratio(rt("mt2", "ours"), rt("mt2", "framed"));
    let bare = ratio(rt("mt2-bare", "ours"), rt("mt2-bare", "framed"));
    row(
        "1. round trip p50 ≤ 1.0× framed (mt2)",
        format!(
            "{} vs {} = {} (runtime without any timer: {})",
            fmt_opt(rt("mt2", "ours"), us),
            fmt_opt(rt("mt2", "framed"), us),
            ratio_text(r),
            ratio_text(bare)
        ),
        verdict(r.map(|r| r <= 1.0)).into(),
    );
    let sys = f.get("syscalls", "round-trip", "ours", "total");
    row(
        "1. ≤ 6 syscalls per round trip",
        fmt_opt(sys, |v| format!("{v:.2}")),
        verdict(sys.map(|v| v <= 6.05)).into(),
    );

    let pipe = |imp: &str| f.get("pipelined", "mt2", imp, "msg/s");
    let r = ratio(pipe("ours-sink"), pipe("framed"));
    row(
        "2. pipelined ≥ 1.2× framed",
        format!(
            "{} vs {} = {} (daemon path `serve_connection`: {})",
            fmt_opt(pipe("ours-sink"), rate),
            fmt_opt(pipe("framed"), rate),
            ratio_text(r),
            ratio_text(ratio(pipe("ours-serve"), pipe("framed")))
        ),
        verdict(r.map(|r| r >= 1.2)).into(),
    );

    for case in ["1MiB", "8MiB"] {
        let large = |imp: &str| f.get("large", case, imp, "MiB/s");
        let rf = ratio(large("ours"), large("framed"));
        let rb = ratio(large("ours"), large("blocking"));
        row(
            &format!("3. {case} one way ≥ 1.3× framed, ≥ 0.85× blocking"),
            format!(
                "{}: {} framed, {} blocking",
                fmt_opt(large("ours"), mib_s),
                ratio_text(rf),
                ratio_text(rb)
            ),
            verdict(rf.zip(rb).map(|(a, b)| a >= 1.3 && b >= 0.85)).into(),
        );
    }

    // (total, allocated = total minus the inline object) of every measured IpcConnection and
    // IpcClient, idle and after 1 MiB, at both connection counts.
    let mut totals = Vec::new();
    for (key, inline) in [("ours-conn/server", "IpcConnection"), ("ours/client", "IpcClient")] {
        let i = f.get("sizes", "inline", inline, "bytes").unwrap_or(0.0);
        for n in ["1000", "10000"] {
            for metric in ["idle", "after-1MiB"] {
                totals.extend(f.get("memory", n, key, metric).map(|t| (t, t - i)));
            }
        }
    }
    let worst_total = max(totals.iter().map(|t| t.0));
    let worst_alloc = max(totals.iter().map(|t| t.1));
    let serve = max(["1000", "10000"]
        .iter()
        .filter_map(|n| f.get("memory", n, "ours-serve/server", "idle")));
    row(
        "4. ≤ 512 B per idle connection, each side, also after 1 MiB",
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
    );

    let load = |m: &str| f.get("load", "10000x10", "ours-serve", m);
    let (ok, failed) = (load("requests-ok"), load("connections-failed"));
    row(
        "5. 10,000 connections × 10 requests all succeed",
        format!(
            "{} ok, {} failed, p99 {}",
            fmt_opt(ok, |v| format!("{v:.0}")),
            fmt_opt(failed, |v| format!("{v:.0}")),
            fmt_opt(load("p99-us"), |v| format!("{:.1} ms", v / 1000.0))
        ),
        verdict(ok.zip(failed).map(|(ok, failed)| ok >= 100_000.0 && failed == 0.0)).into(),
    );

    let fan = f.get("fanout", "100", "ours", "deliveries/s");
    row(
        "6. fan-out to 100 subscribers ≥ 1M deliveries/s",
        fmt_opt(fan, rate),
        verdict(fan.map(|v| v >= 1e6)).into(),
    );
    table(o, &["target", "measured", "verdict"], rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpu: "cpu".into(),
            cores: 2,
            memory: "1 GiB".into(),
            kernel: "k".into(),
            rustc: "rustc".into(),
            date: utc_now(),
            load_before: "0".into(),
            load_after: "0".into(),
        }
    }

    #[test]
    fn rows_parse_and_bad_lines_are_skipped() {
        let r = parse_row("round-trip\tmt2\tours\tp50\t4.2000").expect("row");
        assert_eq!((r.group.as_str(), r.value), ("round-trip", 4.2));
        assert!(parse_row("Benchmarking round-trip").is_none());
        assert!(parse_row("a\tb\tc\td\tnot-a-number").is_none());
    }

    #[test]
    fn numbers_are_formatted_as_before() {
        assert_eq!(bytes(1_057_240.0), "1,057,240 B");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(rate(2_790_000.0), "2.79 M/s");
        assert_eq!(rate(861_000.0), "861 k/s");
        assert_eq!(utc_now().len(), "2026-01-01 00:00 UTC".len());
    }

    #[test]
    fn markdown_and_svg_render_from_partial_figures() {
        let f = Figures(vec![
            parse_row("round-trip\tmt2\tours\tp50\t4.0").expect("row"),
            parse_row("round-trip\tmt2\tframed\tp50\t5.0").expect("row"),
        ]);
        let md = render_markdown(&f, &machine(), false, "");
        let line = md.lines().find(|l| l.contains("1. round trip p50")).expect("target row");
        assert!(line.contains("4.00 µs vs 5.00 µs = 0.80× (runtime without any timer: –)"));
        assert!(line.contains("**met**"));
        let svg = chart::render(&f, &machine()).expect("svg");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
