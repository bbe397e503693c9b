//! Writes `BENCHMARKS.md` and `BENCHMARKS.svg` from the figures `cargo xtask bench` collected,
//! and the TypeScript section of `BENCHMARKS.md` for `cargo xtask bench-ts` (see [`ts`]).
//!
//! `bench-report FIGURES CRITERION_DIR LOAD_BEFORE [--full]`: `FIGURES` holds the tab-separated
//! lines `group case implementation metric value` of the `report` and `connections` benches;
//! the codec figures are criterion's own estimates from `CRITERION_DIR` (bench `codec`).
#![forbid(unsafe_code)]

mod chart;
mod ts;

use num_format::{Locale, ToFormattedString};
use std::path::{Path, PathBuf};
use std::{env, fs};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The figures, keyed `group<TAB>case<TAB>implementation<TAB>metric`, in order.
struct Figures(Vec<(String, f64)>);

impl Figures {
    fn parse(text: &str) -> Figures {
        let row = |line: &str| {
            let (key, value) =
                line.rsplit_once('\t').filter(|kv| kv.0.matches('\t').count() == 3)?;
            Some((key.to_string(), value.trim().parse().ok()?))
        };
        Figures(text.lines().filter_map(row).collect())
    }
    /// The figure at `key`, its fields separated by spaces.
    fn at(&self, key: &str) -> Option<f64> {
        self.0.iter().rev().find(|(k, _)| *k == key.replace(' ', "\t")).map(|r| r.1)
    }
    fn get(&self, group: &str, case: &str, imp: &str, metric: &str) -> Option<f64> {
        self.at(&format!("{group} {case} {imp} {metric}"))
    }
    /// `[case, implementation, metric]` and the value of each figure of `group`, in order.
    fn rows<'a>(&'a self, group: &'a str) -> impl Iterator<Item = (Vec<&'a str>, f64)> {
        let rows = self.0.iter().filter_map(move |(k, v)| Some((k.strip_prefix(group)?, *v)));
        rows.map(|(k, v)| (k.split('\t').skip(1).collect(), v))
    }
}

/// Adds the codec figures (ns): criterion's estimate (the slope, else the mean) of each
/// `<group>_<case>/<implementation>` benchmark in `dir`.
fn add_criterion(f: &mut Figures, dir: &Path) {
    let entries = |dir: &Path| fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
    let name = |path: &Path| {
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    };
    for group in entries(dir) {
        for imp in entries(&group) {
            let json = fs::read(imp.join("new/estimates.json")).ok();
            let json = json.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            let v = json.and_then(|j| {
                ["slope", "mean"].iter().find_map(|k| j[k]["point_estimate"].as_f64())
            });
            if let (Some(v), Some((group, case))) = (v, name(&group).split_once('_')) {
                f.0.push((format!("{group}\t{case}\t{}\tns", name(&imp)), v));
            }
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
            let notes = fs::read_to_string(root.join("crates/bunctl-ipc/benches/NOTES.md"))
                .unwrap_or_default();
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

fn utc_now() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::now_utc().format(format).unwrap_or_else(|_| "?".into())
}

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

fn show(unit: &str, v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| fmt(unit, v))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

/// The inline size of the connection object of a heap figure's implementation, if known.
fn inline(f: &Figures, imp: &str) -> Option<f64> {
    let framed = "Framed<UnixStream,LengthDelimitedCodec>";
    let objects = [("ours/server", "IpcConnection"), ("ours/client", "IpcClient")];
    let objects = [objects[0], objects[1], ("framed/server", framed), ("framed/client", framed)];
    objects.iter().find(|o| o.0 == imp).and_then(|o| f.get("sizes", "inline", o.1, "bytes"))
}

/// The figure at `key`, in the unit of its metric; a heap figure with the connection object's
/// inline size known also shows what is allocated besides it.
fn shown(f: &Figures, key: &str) -> String {
    let Some(v) = f.at(key) else { return "–".into() };
    let [.., imp, metric] = key.split(' ').collect::<Vec<_>>()[..] else { return "?".into() };
    let unit = match metric {
        "msg/s" | "deliveries/s" | "per-s" => "/s",
        "MiB/s" => " MiB/s",
        "ns" => " ns",
        "requests-ok" => " / 100000",
        "connections-failed" => "",
        "seconds" => "s",
        "idle" | "after-1MiB" if inline(f, imp).is_some() => {
            return format!("{} ({})", fmt(" B", v), fmt(" B", v - inline(f, imp).unwrap_or(0.0)));
        }
        "idle" | "after-1MiB" => " B",
        m if m.ends_with("-us") => "ms",
        _ => "µs",
    };
    fmt(unit, v)
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut builder = tabled::builder::Builder::default();
    builder.push_record(header.iter().copied());
    rows.into_iter().for_each(|row| builder.push_record(row));
    builder.build().with(tabled::settings::Style::markdown()).to_string()
}

/// The `(label, key)` pairs of `label=key | key | ...` (a key alone is its own label).
fn pairs(spec: &str) -> impl Iterator<Item = (&str, &str)> {
    spec.split(" | ").map(|s| s.split_once('=').unwrap_or((s, s)))
}

/// `pattern` with `{r}` and `{c}` replaced (either may hold the other's placeholder); a column
/// `c@row` takes the row from there.
fn key(pattern: &str, r: &str, c: &str) -> String {
    let (c, r) = c.split_once('@').unwrap_or((c, r));
    pattern.replace("{r}", r).replace("{c}", c).replace("{r}", r)
}

/// The figure at row `r` and column `c`, or for `c` = `a / b` the ratio of columns `a` and `b`.
fn cell(f: &Figures, pattern: &str, r: &str, c: &str) -> Option<f64> {
    match c.split_once(" / ") {
        Some((a, b)) => ratio(cell(f, pattern, r, a), cell(f, pattern, r, b)),
        None => f.at(&key(pattern, r, c)),
    }
}

/// The table of `spec`: `pattern; rows; columns`, rows and columns as [`pairs`], the first
/// column over the row labels. Rows without any figure are left out.
fn grid(f: &Figures, spec: &str) -> String {
    let [pattern, rows, cols] = spec.split("; ").collect::<Vec<_>>()[..] else {
        return spec.into();
    };
    let header: Vec<&str> = pairs(cols).map(|c| c.0).collect();
    let cols: Vec<&str> = pairs(cols).skip(1).map(|c| c.1).collect();
    let show_cell = |r: &str, c: &str| match c.contains(" / ") {
        true => show("×", cell(f, pattern, r, c)),
        false => shown(f, &key(pattern, r, c)),
    };
    let rows = (pairs(rows).filter(|(_, r)| cols.iter().any(|c| cell(f, pattern, r, c).is_some())))
        .map(|(label, r)| {
            [label.into()].into_iter().chain(cols.iter().map(|c| show_cell(r, c))).collect()
        })
        .collect();
    table(&header, rows)
}

const RT_IMPS: [&str; 5] = ["floor", "framed", "interprocess", "ours", "ours-serve"];

/// `BENCHMARKS.md`, one block (paragraph, heading, table, list item) per line. A line
/// `{pattern; rows; columns}` is a [`grid`]; `{machine}`, `{targets}`,
/// `{syscalls}` and `{sizes}` are tables of their own; `{command}` is the command that ran.
const TEMPLATE: &str = "# Benchmarks
Generated by `{command}` (do not edit by hand; the analysis at the end comes from `crates/bunctl-ipc/benches/NOTES.md`). Every figure of a table was measured in the same process run, implementations interleaved, so ratios compare like with like (the codec figures are criterion's estimates, one implementation after the other); absolute numbers move with the machine's load.
![benchmark chart](BENCHMARKS.svg)
## Machine
{machine}
Implementations (code in `crates/bunctl-ipc/benches/common/`):
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
## Targets (issue 14: the daemon path, `serve`)
{targets-serve}
## Targets (issue 19: the bus)
{targets-bus}
## Targets (issue 21: two processes, large messages, pipelined `serve`)
{targets-procs}
## Round trip (small request, small reply)
**mt2** — multi-thread runtime, 2 workers, one unrelated timer pending:
{round-trip mt2 {c} {r}; p50 | p90 | p99 | p99.9; percentile | floor | framed | interprocess | ours | ours-serve | ours / framed}
**mt2-bare** — the same runtime without any timer:
{round-trip mt2-bare {c} {r}; p50 | p90 | p99 | p99.9; percentile | floor | framed | interprocess | ours | ours-serve | ours / framed}
**ct** — current-thread runtime per side:
{round-trip ct {c} {r}; p50 | p90 | p99 | p99.9; percentile | floor | framed | interprocess | ours | ours-serve | ours / framed}
System calls per round trip (`strace -c -f`, both sides, mt2):
{syscalls}
## Pipelined small requests (one connection, mt2)
{pipelined mt2 {r} {c}; floor | framed | interprocess | ours (Sink/Stream both sides)=ours | ours, server: recv/send loop=ours-loop | ours, server: serve_connection=ours-serve; implementation | requests/s=msg/s | vs framed=msg/s / msg/s@framed}
## Large `Start` messages, one way (mt2)
{large {r} {c} MiB/s; 64KiB | 1MiB | 8MiB | 1MiB-json; size | floor | blocking | framed | interprocess | ours | ours / framed | ours / blocking}
The `config` text is escape-free (`key=value;` pairs); `1MiB-json` carries JSON text, whose quotes serde_json must escape and unescape.
## Codec alone (one frame, no I/O; criterion)
{codec-{r} {c} ns; encode small | encode data-4KiB | encode start-1MiB | decode small | decode data-4KiB | decode start-1MiB; operation | floor (memcpy)=floor | framed | ours | speed-up=framed / ours}
## Event fan-out (deliveries per second, each parsed by its subscriber)
{fanout {r} {c} deliveries/s; 1 | 10 | 100; subscribers | floor | framed | interprocess | ours | ours / framed}
## Events filtered by app (CPU per published event, mt2)
One publisher and one subscriber filtered to the app every event is about, with and without 1,000 more subscribers each filtered to another app; the CPU time of the whole process (publisher, `serve()` connections, clients: `getrusage`) per event delivered and parsed.
{filtered {r} ours ns; only the matching subscriber=alone | and 1,000 filtered to other apps=1000-others; subscribers | CPU per event=c | vs alone=c / c@alone}
## Heap per connection
Counting global allocator; server and client in separate processes. *Total* is the heap growth divided by the number of connections, including the connection objects themselves (held in a `Vec`) and, for the task variants, each connection's task. *Allocated* leaves out the inline object (what the issue's 16,640 B / 256 B figures count).
{memory {c}; ours: `IpcConnection` (server)=ours/server | ours: connection in a `recv`/`send` task (server)=ours-task/server | ours: `serve()` (server, reference daemon)=ours-serve/server | ours: `IpcClient` (client)=ours/client | framed (server)=framed/server | framed (client)=framed/client | interprocess (server)=interprocess/server | interprocess (client)=interprocess/client; total (allocated) | 1,000 idle=1000 {r} idle | 1,000 after 1 MiB each way=1000 {r} after-1MiB | 10,000 idle=10000 {r} idle | 10,000 after 1 MiB each way=10000 {r} after-1MiB}
{sizes}
## 10,000 concurrent connections, 10 requests each
{load 10000x10 {r} {c}; ours-serve | ours-task=ours | framed; server | requests ok=requests-ok | failed connections=connections-failed | p50=p50-us | p99=p99-us | max=max-us | wall time=seconds}
All connections are opened first; then all 10,000 start their 10 requests at once, so the latencies are queueing under a thundering herd, not per-request cost.
## Two processes (server in a child process)
The CLI and the daemon are two processes: here the server runs in a child process (the benchmark re-executed as `serve <implementation>`) and each implementation's client in the benchmark process, each process with a multi-thread runtime of 2 workers and one pending timer. *connect + request + close* is the CLI's pattern, per command: connect, one request and its reply, close (for bunctl-ipc `IpcClient::connect`, which also checks the server's identity).
{two-process {r}; round trip p50=round-trip {c} p50 | round trip p99=round-trip {c} p99 | pipelined requests/s=pipelined {c} msg/s | 1 MiB one way=1MiB {c} MiB/s | 8 MiB one way=8MiB {c} MiB/s | connect + request + close, per second=connects {c} per-s | connect + request + close p50=connects {c} p50 | connect + request + close p99=connects {c} p99; measurement | framed | interprocess | ours | ours-serve | ours-sink | ours / framed | ours-serve / framed}
## A CLI command, whole process
What a user waits for: a fresh process that connects to the reference daemon (`bunctl-ipc serve`, release build, one process for the whole table), asks `List`, prints the reply and exits; wall time from spawn to exit, the commands interleaved. **floor** is `true` (a process that does nothing); **socat** sends the frame from stdin (`socat -t 5 - UNIX-CONNECT:…`); **framed** and **ours** are the benchmark binary re-executed as `oneshot framed|ours` (a current-thread runtime, connect, one request, the reply printed as JSON), **bunctl-ipc** is the CLI itself, `bunctl-ipc call list` (argument parsing, logging set up, the reply as a table).
{cli list {c} {r}; p50=p50-us | p90=p90-us; percentile | floor (`true`)=floor | socat | framed | ours | bunctl-ipc | ours / framed | bunctl-ipc / framed | bunctl-ipc / socat}";

fn render_markdown(f: &Figures, machine: &[(&str, String)], full: bool, notes: &str) -> String {
    let syscalls = RT_IMPS.map(|imp| {
        let calls = f.rows("syscalls").filter(|(k, _)| k[1] == imp && k[2] != "total");
        let calls: Vec<String> = calls.map(|(k, v)| format!("{} {v:.2}", k[2])).collect();
        vec![
            imp.into(),
            show(".2", f.get("syscalls", "round-trip", imp, "total")),
            calls.join(", "),
        ]
    });
    let sizes: Vec<String> =
        f.rows("sizes").map(|(k, v)| format!("{} {}: {v:.0} B", k[0], k[1])).collect();
    let command = if full { "cargo xtask bench --full" } else { "cargo xtask bench" };
    let blocks: Vec<String> = (TEMPLATE.lines())
        .map(|line| match line.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
            Some("machine") => table(
                &["", ""],
                machine.iter().map(|(k, v)| vec![k.to_string(), v.clone()]).collect(),
            ),
            Some("targets") => targets(f),
            Some("targets-serve") => targets_serve(f),
            Some("targets-bus") => targets_bus(f),
            Some("targets-procs") => targets_procs(f),
            Some("syscalls") => {
                table(&["implementation", "per round trip", "of which"], syscalls.to_vec())
            }
            Some("sizes") => format!("Where it goes: {}.", sizes.join("; ")),
            Some(spec) => grid(f, spec),
            None => line.replace("{command}", command),
        })
        .chain([notes.trim_end().to_string()])
        .collect();
    // Blocks apart, but list items together.
    let list = |i: usize| blocks.get(i).is_some_and(|b| b.starts_with("* "));
    let apart = |i| if list(i) && list(i + 1) { "\n" } else { "\n\n" };
    let md: String = blocks.iter().enumerate().map(|(i, b)| b.clone() + apart(i)).collect();
    md.trim_end().to_string() + "\n"
}

fn verdict(ok: Option<bool>) -> &'static str {
    ["not measured", "**not met**", "**met**"][ok.map_or(0, |ok| 1 + ok as usize)]
}

fn targets(f: &Figures) -> String {
    let mut rows = Vec::new();
    let mut row = |target: &str, measured: String, verdict: &str| {
        rows.push(vec![target.to_string(), measured, verdict.to_string()]);
    };
    // `a vs b = a/b`, and the ratio.
    let vs = |unit, a: Option<f64>, b| {
        let r = ratio(a, b);
        (format!("{} vs {} = {}", show(unit, a), show(unit, b), show("×", r)), r)
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
        let vs = |imp| ratio(large("ours"), large(imp));
        let (rf, rb) = (vs("framed"), vs("blocking"));
        let ours = show(" MiB/s", large("ours"));
        let measured = format!("{ours}: {} framed, {} blocking", show("×", rf), show("×", rb));
        let ok = verdict(rf.zip(rb).map(|(a, b)| a >= 1.3 && b >= 0.85));
        row(&format!("3. {case} one way ≥ 1.3× framed, ≥ 0.85× blocking"), measured, ok);
    }
    // Every `IpcConnection` and `IpcClient` measured: the worst total, the worst allocated.
    let memory = |imp: &str, metric| ["1000", "10000"].map(|n| f.get("memory", n, imp, metric));
    let (mut total, mut allocated) = (vec![], vec![]);
    for imp in ["ours/server", "ours/client"] {
        for t in [memory(imp, "idle"), memory(imp, "after-1MiB")].into_iter().flatten().flatten() {
            total.push(t);
            allocated.push(t - inline(f, imp).unwrap_or(0.0));
        }
    }
    let worst = |v: Vec<f64>| v.into_iter().reduce(f64::max);
    let serve = worst(memory("ours-serve/server", "idle").into_iter().flatten().collect());
    let (total, allocated) = (worst(total), worst(allocated));
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
    let ok = verdict(fan.map(|v| v >= 1e6));
    row("6. fan-out to 100 subscribers ≥ 1M deliveries/s", show("/s", fan), ok);
    table(&["target", "measured", "verdict"], rows)
}

/// Issue 14's targets: `serve` against the hand-written server, per figure a ratio and a bound.
fn targets_serve(f: &Figures) -> String {
    let r = |g, c, imp, m| ratio(f.get(g, c, imp, m), f.get(g, c, "framed", m));
    let (pipe, rt) =
        (r("pipelined", "mt2", "ours-serve", "msg/s"), r("round-trip", "mt2", "ours-serve", "p50"));
    let fan = ["1", "10", "100"].map(|n| r("fanout", n, "ours", "deliveries/s"));
    let heap = ["1000", "10000"].map(|n| f.get("memory", n, "ours-serve/server", "idle"));
    let all = |v: &[Option<f64>], ok: fn(f64) -> bool| {
        v.iter().try_fold(true, |acc, x| x.map(|x| acc && ok(x)))
    };
    let list =
        |v: &[Option<f64>], unit| v.iter().map(|x| show(unit, *x)).collect::<Vec<_>>().join(" / ");
    let rows = [
        ("1. pipelined ≥ 1.0× framed (mt2)", show("×", pipe), verdict(pipe.map(|r| r >= 1.0))),
        ("2. round trip p50 ≤ 1.05× framed (mt2)", show("×", rt), verdict(rt.map(|r| r <= 1.05))),
        (
            "3. fan-out ≥ 1.0× framed at 1 / 10 / 100 subscribers",
            list(&fan, "×"),
            verdict(all(&fan, |r| r >= 1.0)),
        ),
        (
            "4. `serve()` ≤ 1 KiB per idle connection at 1,000 / 10,000",
            list(&heap, " B"),
            verdict(all(&heap, |b| b <= 1024.0)),
        ),
    ];
    table(
        &["target", "measured", "verdict"],
        rows.map(|(t, m, v)| vec![t.into(), m, v.into()]).to_vec(),
    )
}

/// Issue 19's targets: the bus against `broadcast`, and subscribers an event does not match.
fn targets_bus(f: &Figures) -> String {
    let fan = ["1", "10", "100"].map(|n| {
        ratio(
            f.get("fanout", n, "ours", "deliveries/s"),
            f.get("fanout", n, "framed", "deliveries/s"),
        )
    });
    let cpu = |case| f.get("filtered", case, "ours", "ns");
    let others = ratio(cpu("1000-others"), cpu("alone"));
    let list = fan.iter().map(|x| show("×", *x)).collect::<Vec<_>>().join(" / ");
    let fan_ok = fan.iter().try_fold(true, |acc, x| x.map(|x| acc && x >= 1.0));
    let cpu_measured = format!(
        "{} vs {} = {}",
        show(" ns", cpu("1000-others")),
        show(" ns", cpu("alone")),
        show("×", others)
    );
    let rows = [
        (
            "1. fan-out ≥ 1.0× framed + `broadcast` at 1 / 10 / 100 subscribers",
            list,
            verdict(fan_ok),
        ),
        (
            "2. CPU per event with 1,000 subscribers filtered to other apps ≤ 2× alone",
            cpu_measured,
            verdict(others.map(|r| r <= 2.0)),
        ),
    ];
    table(
        &["target", "measured", "verdict"],
        rows.map(|(t, m, v)| vec![t.into(), m, v.into()]).to_vec(),
    )
}

/// Issue 21's targets: the server in a child process, large messages against framed and
/// blocking serde_json, `serve` pipelined against framed's `forward`, the idle heap kept.
fn targets_procs(f: &Figures) -> String {
    let vs = |g, c, imp, base, m| ratio(f.get(g, c, imp, m), f.get(g, c, base, m));
    let procs = |c, imp| vs("two-process", c, imp, "framed", "MiB/s");
    let pair = |a: Option<f64>, b: Option<f64>| {
        (format!("{} / {}", show("×", a), show("×", b)), a.zip(b).map(|(a, b)| a.min(b)))
    };
    let mut rows = vec![];
    for (case, label) in [("1MiB", "1 MiB"), ("8MiB", "8 MiB")] {
        let (measured, worst) = pair(procs(case, "ours-serve"), procs(case, "ours-sink"));
        let target = format!("{label} one way, two processes, `serve` / `Sink` ≥ 1.0× framed");
        rows.push((target, measured, verdict(worst.map(|r| r >= 1.0))));
    }
    let blocking = vs("large", "1MiB", "ours", "blocking", "MiB/s");
    rows.push((
        "1 MiB one way, one process, ≥ 1.0× blocking serde_json".into(),
        show("×", blocking),
        verdict(blocking.map(|r| r >= 1.0)),
    ));
    let (measured, worst) = pair(
        vs("pipelined", "mt2", "ours-serve", "framed", "msg/s"),
        vs("two-process", "pipelined", "ours-serve", "framed", "msg/s"),
    );
    let target = "`serve` pipelined ≥ 1.0× framed `forward`, mt2 / two processes";
    rows.push((target.into(), measured, verdict(worst.map(|r| r >= 1.0))));
    let heap = ["ours/server", "ours/client"].map(|imp| {
        let after = f.get("memory", "10000", imp, "after-1MiB");
        after.zip(inline(f, imp)).map(|(total, object)| total - object)
    });
    let worst = heap.iter().try_fold(0.0, |w: f64, x| x.map(|x| w.max(x)));
    let target = "idle after a 1 MiB message, allocated, server / client ≤ 512 B";
    let measured = heap.map(|x| show(" B", x)).join(" / ");
    rows.push((target.into(), measured, verdict(worst.map(|b| b <= 512.0))));
    let serve = f.get("memory", "10000", "ours-serve/server", "idle");
    let target = "`serve()` per idle connection at 10,000 ≤ 1 KiB";
    rows.push((target.into(), show(" B", serve), verdict(serve.map(|b| b <= 1024.0))));
    table(
        &["target", "measured", "verdict"],
        rows.into_iter().map(|(t, m, v)| vec![t, m, v.into()]).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_svg_render_from_partial_figures() {
        let f = Figures::parse("round-trip\tmt2\tours\tp50\t4\nx\nround-trip\tmt2\tframed\tp50\t5");
        assert_eq!([fmt(" B", 1_057_240.0), fmt("/s", 2_790_000.0)], ["1,057,240 B", "2.79 M/s"]);
        let (machine, md) = (machine("0"), render_markdown(&f, &machine("0"), false, ""));
        let line = md.lines().find(|l| l.contains("1. round trip p50")).expect("target row");
        assert!(line.contains("4.00 µs vs 5.00 µs = 0.80× (runtime without any timer: –)"));
        assert!(line.contains("**met**"));
        assert!(chart::render(&f, &machine).expect("svg").trim_end().ends_with("</svg>"));
    }
}
