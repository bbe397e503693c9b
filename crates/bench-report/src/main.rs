//! Writes `BENCHMARKS.md` and `BENCHMARKS.svg` from the figures `cargo xtask bench` collected,
//! and the TypeScript section of `BENCHMARKS.md` for `cargo xtask bench-ts` (see [`ts`]).
//!
//! `bench-report FIGURES CRITERION_DIR LOAD_BEFORE [--full]`: `FIGURES` holds the tab-separated
//! lines `group case implementation metric value` of the `report` and `connections` benches;
//! the codec figures are criterion's own estimates from `CRITERION_DIR` (bench `codec`).

mod chart;
mod ts;

use std::path::{Path, PathBuf};
use std::{env, fs};

use num_format::{Locale, ToFormattedString};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The figures, keyed `group<TAB>case<TAB>implementation<TAB>metric`, in order.
struct Figures(Vec<(String, f64)>);

impl Figures {
    fn parse(text: &str) -> Figures {
        let row = |line: &str| {
            let (key, value) =
                line.rsplit_once('\t').filter(|(k, _)| k.matches('\t').count() == 3)?;
            Some((key.to_string(), value.trim().parse().ok()?))
        };
        Figures(text.lines().filter_map(row).collect())
    }

    /// The last value of `key`.
    fn at(&self, key: &str) -> Option<f64> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|r| r.1)
    }

    fn get(&self, group: &str, case: &str, imp: &str, metric: &str) -> Option<f64> {
        self.at(&format!("{group}\t{case}\t{imp}\t{metric}"))
    }

    /// `[case, implementation, metric]` and the value of each figure of `group`, in order.
    fn rows<'a>(&'a self, group: &'a str) -> impl Iterator<Item = (Vec<&'a str>, f64)> {
        let rows = self.0.iter().filter_map(move |(k, v)| Some((k.strip_prefix(group)?, *v)));
        rows.map(|(k, v)| (k.split('\t').skip(1).collect(), v))
    }
}

/// The codec benchmarks: `encode small` and so on.
fn codec_ops() -> impl Iterator<Item = String> {
    let cases = ["small", "data-4KiB", "start-1MiB"];
    ["encode", "decode"].into_iter().flat_map(move |op| cases.map(|c| format!("{op} {c}")))
}

/// Adds the codec figures (ns): criterion's estimate, the slope of its linear sampling else the
/// mean, of each `codec-{encode,decode}/<case>/<implementation>` benchmark.
fn add_criterion(f: &mut Figures, dir: &Path) {
    for (op, imp) in codec_ops().flat_map(|op| ["floor", "framed", "ours"].map(|i| (op.clone(), i)))
    {
        let file = dir.join(format!("codec-{}/{imp}/new/estimates.json", op.replace(' ', "_")));
        let json = fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let estimate = |json: serde_json::Value| {
            ["slope", "mean"].iter().find_map(|k| json[k]["point_estimate"].as_f64())
        };
        match json.and_then(estimate) {
            Some(v) => f.0.push((format!("codec-{}\t{imp}\tns", op.replace(' ', "\t")), v)),
            None => eprintln!("no criterion estimates in {}", file.display()),
        }
    }
}

fn workspace_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).unwrap_or(crate_dir).to_path_buf()
}

fn main() -> Result {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, bun, daemon] if cmd == "ts" => ts::bench(Path::new(bun), Path::new(daemon)),
        [figures, criterion, load_before, rest @ ..] => {
            let mut f = Figures::parse(&fs::read_to_string(figures)?);
            add_criterion(&mut f, Path::new(criterion));
            let (machine, root) = (machine(load_before), workspace_root());
            let notes = fs::read_to_string(root.join("benches/NOTES.md")).unwrap_or_default();
            let md = render_markdown(&f, &machine, rest.iter().any(|a| a == "--full"), &notes);
            // Keep the TypeScript section `bench-ts` wrote, if any.
            let old = fs::read_to_string(root.join("BENCHMARKS.md")).unwrap_or_default();
            let md = ts::section(&old).map_or(md.clone(), |section| ts::splice(&md, section));
            fs::write(root.join("BENCHMARKS.md"), md)?;
            fs::write(root.join("BENCHMARKS.svg"), chart::render(&f, &machine)?)?;
            println!("wrote BENCHMARKS.md and BENCHMARKS.svg");
            Ok(())
        }
        _ => Err("usage: bench-report FIGURES CRITERION_DIR LOAD_BEFORE [--full] | \
                  bench-report ts BUN DAEMON"
            .into()),
    }
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::now_utc().format(format).unwrap_or_else(|_| "?".into())
}

/// What the figures were measured on: date, CPU, memory, kernel, rustc, load.
fn machine(load_before: &str) -> [(&'static str, String); 6] {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default().trim().to_string();
    let field = |path: &str, key: &str| {
        let text = read(path);
        let line = text.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_default();
        line.trim_start_matches([' ', '\t', ':']).trim_end_matches(" kB").to_string()
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let gib = field("/proc/meminfo", "MemTotal").parse::<f64>().map(|kib| kib / 1024.0 / 1024.0);
    // The toolchain that built this binary (`cargo run` sets `RUSTC` only sometimes).
    let rustc = env::var_os("RUSTC").unwrap_or("rustc".into());
    let rustc = std::process::Command::new(rustc).arg("-V").output();
    [
        ("date", utc_now()),
        ("CPU", format!("{cores} × {}", field("/proc/cpuinfo", "model name"))),
        ("memory", gib.map_or("?".into(), |g| format!("{g:.1} GiB"))),
        ("kernel", read("/proc/sys/kernel/osrelease")),
        ("rustc", rustc.map_or("?".into(), |o| String::from_utf8_lossy(&o.stdout).trim().into())),
        ("load average before / after", format!("{load_before} / {}", read("/proc/loadavg"))),
    ]
}

/// `v` in `unit`: `µs`; `ms` (of µs); `/s` (M/s or k/s); `×`; `s`; `.2` (2 decimals); ` B`
/// (with separators from 10,000 on); any other suffix after the rounded number.
fn fmt(unit: &str, v: f64) -> String {
    match unit {
        "µs" => format!("{v:.2} µs"),
        "ms" => format!("{:.2} ms", v / 1000.0),
        "/s" if v >= 1e6 => format!("{:.2} M/s", v / 1e6),
        "/s" if v >= 1e5 => format!("{:.0} k/s", v / 1e3),
        "/s" => format!("{:.1} k/s", v / 1e3),
        "×" => format!("{v:.2}×"),
        "s" => format!("{v:.1} s"),
        ".2" => format!("{v:.2}"),
        " B" if v >= 1e4 => format!("{} B", (v.round() as u64).to_formatted_string(&Locale::en)),
        _ => format!("{v:.0}{unit}"),
    }
}

/// `v` in `unit`, or `–` when it was not measured.
fn show(unit: &str, v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| fmt(unit, v))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

/// How [`grid`] shows a value of a row and column.
type Show<'a> = &'a dyn Fn(&str, &str, f64) -> String;

/// The `(label, key)` pairs of a spec `label=key | key | ...` (a key alone is its own label).
fn pairs(spec: &str) -> impl Iterator<Item = (&str, &str)> {
    spec.split(" | ").map(|s| s.split_once('=').unwrap_or((s, s)))
}

/// A Markdown table, followed by an empty line.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut builder = tabled::builder::Builder::default();
    builder.push_record(header.iter().copied());
    rows.into_iter().for_each(|row| builder.push_record(row));
    builder.build().with(tabled::settings::Style::markdown()).to_string() + "\n"
}

/// The figure keyed `pattern` with `{r}` replaced by `r` and `{c}` by `c` (either may hold
/// the other's placeholder; `c@row` takes `r` from there); for `c` = `a / b`, their ratio.
fn cell(f: &Figures, pattern: &str, r: &str, c: &str) -> Option<f64> {
    if let Some((a, b)) = c.split_once(" / ") {
        return ratio(cell(f, pattern, r, a), cell(f, pattern, r, b));
    }
    let (c, r) = c.split_once('@').unwrap_or((c, r));
    f.at(&pattern.replace("{r}", r).replace("{c}", c).replace("{r}", r))
}

/// A table of [`cell`]s, its `rows` and `cols` given as [`pairs`] (the first column holds the
/// row labels), shown by `show_as(row, column, value)`, ratios as `×`. Rows without any figure
/// are left out.
fn grid(f: &Figures, pattern: &str, (rows, cols): (&str, &str), show_as: Show) -> String {
    let header: Vec<&str> = pairs(cols).map(|c| c.0).collect();
    let cols: Vec<&str> = pairs(cols).skip(1).map(|c| c.1).collect();
    let show_cell = |r: &str, c: &str| match cell(f, pattern, r, c) {
        v if c.contains(" / ") => show("×", v),
        v => v.map_or("–".into(), |v| show_as(r, c, v)),
    };
    let rows = (pairs(rows).filter(|(_, r)| cols.iter().any(|c| cell(f, pattern, r, c).is_some())))
        .map(|(label, r)| {
            [label.to_string()].into_iter().chain(cols.iter().map(|c| show_cell(r, c))).collect()
        })
        .collect();
    table(&header, rows)
}

/// Implementations of the round-trip tables and chart.
const RT_IMPS: [&str; 5] = ["floor", "framed", "interprocess", "ours", "ours-serve"];

/// `BENCHMARKS.md`, its `{slot}`s filled by [`render_markdown`].
const TEMPLATE: &str = "# Benchmarks

Generated by `{command}` (do not edit by hand; the analysis at the end comes from `benches/NOTES.md`). Every figure of a table was measured in the same process run, implementations interleaved, so ratios compare like with like (the codec figures are criterion's estimates, one implementation after the other); absolute numbers move with the machine's load.

![benchmark chart](BENCHMARKS.svg)

## Machine

{machine}
Implementations (details in `benches/common/mod.rs`):

* **floor** — the same bytes through `socketpair(2)` on one thread, no runtime, no JSON;
* **framed** — hand-written tokio `Framed` + `LengthDelimitedCodec` (u32 LE) + serde_json, split into `FramedRead`/`FramedWrite`, server answering with `stream.map(..).forward(sink)`;
* **interprocess** — the same framing over the `interprocess` crate's tokio local socket;
* **ours** — bunctl-ipc: `IpcClient::request` against a task per connection looping on `recv`/`send` (with their timeouts); for pipelined and large messages, the split connection's `Sink` (fed, flushed at the end) and `Stream` on both sides, like the baselines;
* **ours-serve** — bunctl-ipc's daemon path: `serve()` (`serve_connection` per connection) with a handler;
* **ours-sink** — (two processes) the split connection's `Sink`/`Stream` on the server too, like **ours** in the pipelined and large-message tables;
* **blocking** — serde_json over blocking sockets, a writer and a reader thread.

Runtime: one tokio multi-thread runtime with 2 workers for both sides (**mt2**, the one judged), and a current-thread runtime per side on its own thread (**ct**: every message crosses threads, ~40 µs wake-ups on this VM). Each runtime has one unrelated timer pending, as any daemon does; **mt2-bare** shows the round trip without it (tokio's time driver then skips its work on every park, which favours baselines that have no timeouts). **Two processes** puts the server in a child process.

## Targets (issue 7)

{targets}
## Round trip (small request, small reply)

**mt2** — multi-thread runtime, 2 workers, one unrelated timer pending:

{mt2}
**mt2-bare** — the same runtime without any timer:

{mt2-bare}
**ct** — current-thread runtime per side:

{ct}
System calls per round trip (`strace -c -f`, both sides, mt2):

{syscalls}
## Pipelined small requests (one connection, mt2)

{pipelined}
## Large `Start` messages, one way (mt2)

{large}
The `config` text is escape-free (`key=value;` pairs); `1MiB-json` carries JSON text, whose quotes serde_json must escape and unescape.

## Codec alone (one frame, no I/O; criterion)

{codec}
## Event fan-out (deliveries per second, each parsed by its subscriber)

{fanout}
## Heap per connection

Counting global allocator; server and client in separate processes. *Total* is the heap growth divided by the number of connections, including the connection objects themselves (held in a `Vec`) and, for the task variants, each connection's task. *Allocated* leaves out the inline object (what the issue's 16,640 B / 256 B figures count).

{memory}
## 10,000 concurrent connections, 10 requests each

{load}
All connections are opened first; then all 10,000 start their 10 requests at once, so the latencies are queueing under a thundering herd, not per-request cost.

## Two processes (server in a child process)

The CLI and the daemon are two processes: here the server runs in a child process (the benchmark re-executed as `serve <implementation>`) and each implementation's client in the benchmark process, each process with a multi-thread runtime of 2 workers and one pending timer. *connect + request + close* is the CLI's pattern, per command: connect, one request and its reply, close (for bunctl-ipc `IpcClient::connect`, which also checks the server's identity).

{two-process}
";

fn render_markdown(f: &Figures, machine: &[(&str, String)], full: bool, notes: &str) -> String {
    let unit = |unit: &'static str| move |_: &str, _: &str, v| fmt(unit, v);
    let imps = format!("percentile | {} | ours / framed", RT_IMPS.join(" | "));
    let rt = |flavor| {
        grid(
            f,
            &format!("round-trip\t{flavor}\t{{c}}\t{{r}}"),
            ("p50 | p90 | p99 | p99.9", &imps),
            &unit("µs"),
        )
    };
    let syscalls = RT_IMPS.map(|imp| {
        let calls = f.rows("syscalls").filter(|(k, _)| k[1] == imp && k[2] != "total");
        let calls: Vec<String> = calls.map(|(k, v)| format!("{} {v:.2}", k[2])).collect();
        vec![
            imp.into(),
            show(".2", f.get("syscalls", "round-trip", imp, "total")),
            calls.join(", "),
        ]
    });
    let pipelined = (
        "floor | framed | interprocess | ours (Sink/Stream both sides)=ours | ours, server: recv/send loop=ours-loop | ours, server: serve_connection=ours-serve",
        "implementation | requests/s=msg/s | vs framed=msg/s / msg/s@framed",
    );
    let large = (
        "64KiB | 1MiB | 8MiB | 1MiB-json",
        "size | floor | blocking | framed | interprocess | ours | ours / framed | ours / blocking",
    );
    let codec: Vec<String> =
        codec_ops().map(|op| format!("{op}={}", op.replace(' ', "\t"))).collect();
    let codec = (
        &*codec.join(" | "),
        "operation | floor (memcpy)=floor | framed | ours | speed-up=framed / ours",
    );
    let fanout =
        ("1 | 10 | 100", "subscribers | floor | framed | interprocess | ours | ours / framed");
    let load = (
        "ours-serve | ours-task | framed",
        "server | requests ok=requests-ok | failed connections=connections-failed | p50=p50-us | p99=p99-us | max=max-us | wall time=seconds",
    );
    let load_unit = |_: &str, c: &str, v| match c {
        "requests-ok" => fmt(" / 100000", v),
        "connections-failed" => fmt("", v),
        "seconds" => fmt("s", v),
        _ => fmt("ms", v),
    };
    let procs = (
        "round trip p50=round-trip\t{c}\tp50 | round trip p99=round-trip\t{c}\tp99 | pipelined requests/s=pipelined\t{c}\tmsg/s | 1 MiB one way=1MiB\t{c}\tMiB/s | connect + request + close, per second=connects\t{c}\tper-s | connect + request + close p50=connects\t{c}\tp50 | connect + request + close p99=connects\t{c}\tp99",
        "measurement | framed | interprocess | ours | ours-serve | ours-sink | ours / framed | ours-serve / framed",
    );
    let procs_unit = |r: &str, _: &str, v| match r.split('\t').next_back() {
        Some("msg/s" | "per-s") => fmt("/s", v),
        Some("MiB/s") => fmt(" MiB/s", v),
        _ => fmt("µs", v),
    };
    let slots = [
        ("command", format!("cargo xtask bench{}", if full { " --full" } else { "" })),
        (
            "machine",
            table(&["", ""], machine.iter().map(|(k, v)| vec![k.to_string(), v.clone()]).collect()),
        ),
        ("targets", targets(f)),
        ("mt2", rt("mt2")),
        ("mt2-bare", rt("mt2-bare")),
        ("ct", rt("ct")),
        ("syscalls", table(&["implementation", "per round trip", "of which"], syscalls.to_vec())),
        ("pipelined", grid(f, "pipelined\tmt2\t{r}\t{c}", pipelined, &unit("/s"))),
        ("large", grid(f, "large\t{r}\t{c}\tMiB/s", large, &unit(" MiB/s"))),
        ("codec", grid(f, "codec-{r}\t{c}\tns", codec, &unit(" ns"))),
        ("fanout", grid(f, "fanout\t{r}\t{c}\tdeliveries/s", fanout, &unit("/s"))),
        ("memory", memory(f)),
        ("load", grid(f, "load\t10000x10\t{r}\t{c}", load, &load_unit)),
        ("two-process", grid(f, "two-process\t{r}", procs, &procs_unit)),
    ];
    let md = slots
        .iter()
        .fold(TEMPLATE.to_string(), |md, (slot, text)| md.replace(&format!("{{{slot}}}"), text));
    if notes.trim().is_empty() { md } else { md + notes.trim_end() + "\n" }
}

/// The memory rows (`label=figure key`), and the inline object their *allocated* leaves out.
const MEMORY: &str = "ours: `IpcConnection` (server)=ours/server | ours: connection in a `recv`/`send` task (server)=ours-task/server | ours: `serve()` (server, reference daemon)=ours-serve/server | ours: `IpcClient` (client)=ours/client | framed (server)=framed/server | framed (client)=framed/client | interprocess (server)=interprocess/server | interprocess (client)=interprocess/client";
const INLINE: [(&str, &str); 4] = [
    ("ours/server", "IpcConnection"),
    ("ours/client", "IpcClient"),
    ("framed/server", "Framed<UnixStream,LengthDelimitedCodec>"),
    ("framed/client", "Framed<UnixStream,LengthDelimitedCodec>"),
];

fn memory(f: &Figures) -> String {
    let cols = "total (allocated) | 1,000 idle=1000\t{r}\tidle | 1,000 after 1 MiB each way=1000\t{r}\tafter-1MiB | 10,000 idle=10000\t{r}\tidle | 10,000 after 1 MiB each way=10000\t{r}\tafter-1MiB";
    let inline = |r: &str| {
        INLINE.iter().find(|i| i.0 == r).and_then(|i| f.get("sizes", "inline", i.1, "bytes"))
    };
    let table = grid(f, "memory\t{c}", (MEMORY, cols), &|r, _, total| match inline(r) {
        Some(i) => format!("{} ({})", fmt(" B", total), fmt(" B", total - i)),
        None => fmt(" B", total),
    });
    let sizes: Vec<String> =
        f.rows("sizes").map(|(k, v)| format!("{} {}: {v:.0} B", k[0], k[1])).collect();
    match sizes.is_empty() {
        true => table,
        false => format!("{table}\nWhere it goes: {}.\n", sizes.join("; ")),
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

fn targets(f: &Figures) -> String {
    let mut rows = Vec::new();
    let mut row = |target: &str, measured: String, verdict: &str| {
        rows.push(vec![target.to_string(), measured, verdict.to_string()]);
    };
    // `a vs b = a/b`, and the ratio.
    let vs = |unit, a: Option<f64>, b| {
        (
            format!("{} vs {} = {}", show(unit, a), show(unit, b), show("×", ratio(a, b))),
            ratio(a, b),
        )
    };
    let rt = |flavor: &str, imp: &str| f.get("round-trip", flavor, imp, "p50");
    let (measured, r) = vs("µs", rt("mt2", "ours"), rt("mt2", "framed"));
    let bare = show("×", ratio(rt("mt2-bare", "ours"), rt("mt2-bare", "framed")));
    let measured = format!("{measured} (runtime without any timer: {bare})");
    row("1. round trip p50 ≤ 1.0× framed (mt2)", measured, verdict(r.map(|r| r <= 1.0)));
    let sys = f.get("syscalls", "round-trip", "ours", "total");
    row("1. ≤ 6 syscalls per round trip", show(".2", sys), verdict(sys.map(|v| v <= 6.05)));
    let pipe = |imp: &str| f.get("pipelined", "mt2", imp, "msg/s");
    let (measured, r) = vs("/s", pipe("ours"), pipe("framed"));
    let serve = show("×", ratio(pipe("ours-serve"), pipe("framed")));
    let measured = format!("{measured} (daemon path `serve_connection`: {serve})");
    row("2. pipelined ≥ 1.2× framed", measured, verdict(r.map(|r| r >= 1.2)));
    for case in ["1MiB", "8MiB"] {
        let large = |imp: &str| f.get("large", case, imp, "MiB/s");
        let (rf, rb) =
            (ratio(large("ours"), large("framed")), ratio(large("ours"), large("blocking")));
        let ours = show(" MiB/s", large("ours"));
        let measured = format!("{ours}: {} framed, {} blocking", show("×", rf), show("×", rb));
        let ok = verdict(rf.zip(rb).map(|(a, b)| a >= 1.3 && b >= 0.85));
        row(&format!("3. {case} one way ≥ 1.3× framed, ≥ 0.85× blocking"), measured, ok);
    }
    // Every `IpcConnection` and `IpcClient` measured: the worst total, the worst allocated.
    let (mut total, mut allocated) = (vec![], vec![]);
    for (key, object) in &INLINE[..2] {
        let inline = f.get("sizes", "inline", object, "bytes").unwrap_or(0.0);
        for (n, m) in
            [("1000", "idle"), ("1000", "after-1MiB"), ("10000", "idle"), ("10000", "after-1MiB")]
        {
            let t = f.get("memory", n, key, m);
            total.extend(t);
            allocated.extend(t.map(|t| t - inline));
        }
    }
    let worst = |v: Vec<f64>| v.into_iter().reduce(f64::max);
    let (total, allocated) = (worst(total), worst(allocated));
    let serve = worst(
        ["1000", "10000"]
            .iter()
            .filter_map(|n| f.get("memory", n, "ours-serve/server", "idle"))
            .collect(),
    );
    let (a, t, s) = (show(" B", allocated), show(" B", total), show(" B", serve));
    let measured = format!(
        "worst allocated {a}; with the object itself {t}; `serve()` daemon incl. its task {s}"
    );
    let ok = |v: Option<f64>| verdict(v.map(|v| v <= 512.0));
    let verdicts = format!("allocated: {}; total: {}", ok(allocated), ok(total));
    row("4. ≤ 512 B per idle connection, each side, also after 1 MiB", measured, &verdicts);
    let load = |m: &str| f.get("load", "10000x10", "ours-serve", m);
    let (ok, failed) = (load("requests-ok"), load("connections-failed"));
    let p99 = load("p99-us").map_or("–".into(), |v| format!("{:.1} ms", v / 1000.0));
    let measured = format!("{} ok, {} failed, p99 {p99}", show("", ok), show("", failed));
    let all = verdict(ok.zip(failed).map(|(ok, failed)| ok >= 100_000.0 && failed == 0.0));
    row("5. 10,000 connections × 10 requests all succeed", measured, all);
    let fan = f.get("fanout", "100", "ours", "deliveries/s");
    row(
        "6. fan-out to 100 subscribers ≥ 1M deliveries/s",
        show("/s", fan),
        verdict(fan.map(|v| v >= 1e6)),
    );
    table(&["target", "measured", "verdict"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_parse_and_render_from_partial_figures() {
        let f = Figures::parse(
            "round-trip\tmt2\tours\tp50\t4.0\nBenchmarking\na\tb\tc\td\tx\nround-trip\tmt2\tframed\tp50\t5",
        );
        assert_eq!(f.0.len(), 2);
        assert_eq!([fmt(" B", 1_057_240.0), fmt(" B", 512.0)], ["1,057,240 B", "512 B"]);
        assert_eq!([fmt("/s", 2_790_000.0), fmt("/s", 861_000.0)], ["2.79 M/s", "861 k/s"]);
        let machine = machine("0");
        let md = render_markdown(&f, &machine, false, "");
        let line = md.lines().find(|l| l.contains("1. round trip p50")).expect("target row");
        assert!(line.contains("4.00 µs vs 5.00 µs = 0.80× (runtime without any timer: –)"));
        assert!(line.contains("**met**"));
        let svg = chart::render(&f, &machine).expect("svg");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
