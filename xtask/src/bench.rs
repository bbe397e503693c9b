//! `cargo xtask bench`: runs the benchmarks of `bunctl-ipc` (see `benches/`), then the
//! `bench-report` crate, which writes `BENCHMARKS.md` and `BENCHMARKS.svg` at the workspace root
//! (it depends on plotters & co., which xtask, built by every CI run, keeps out of its build):
//!
//! * `codec` (criterion): the codec figures, criterion's own estimates in `target/criterion`;
//! * `report`: round trip (percentiles, syscalls via `strace -c -f`), pipelined throughput,
//!   large messages, event fan-out; every implementation interleaved in one process;
//! * `connections`: heap per connection (server and client in separate processes) and the
//!   10,000-connection load test.
//!
//! `report` and `connections` print tab-separated lines `group case implementation metric
//! value`, collected into `target/bench/figures.tsv`.

use std::fs;

use crate::runner::{self, Error, Result};
use crate::toolchain::host_cargo;
use crate::typescript;

/// `cargo xtask bench [--full]`.
pub fn bench(args: &[String]) -> Result {
    let full = match args {
        [] => false,
        [flag] if flag == "--full" => true,
        _ => return Err(Error::new("usage: cargo xtask bench [--full]")),
    };
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned();
    let target = typescript::target_dir();
    let criterion = target.join("criterion");
    // Quick: the bench binaries' short runs, criterion's quick mode with a short warm-up.
    let quick: &[&str] = if full { &[] } else { &["--quick"] };
    let mut codec = host_cargo();
    codec.env("CRITERION_HOME", &criterion);
    codec.args(["bench", "-p", "bunctl-ipc", "--bench", "codec", "--"]).args(quick);
    if !full {
        codec.args(["--warm-up-time", "1"]);
    }
    runner::step("bench: codec (criterion)", || runner::run(&mut codec))?;

    let mut figures = String::new();
    for (bench, what) in [
        ("report", "round trip, syscalls, throughput, fan-out"),
        ("connections", "heap per connection, 10,000 connections"),
    ] {
        let mut cmd = host_cargo();
        cmd.args(["bench", "-p", "bunctl-ipc", "--bench", bench, "--"]).args(quick);
        runner::step(&format!("bench: {bench} ({what})"), || {
            runner::run_observing_stdout(&mut cmd, |line| {
                if line.split('\t').count() == 5 {
                    figures.push_str(line);
                    figures.push('\n');
                }
            })
        })?;
    }
    let file = target.join("bench/figures.tsv");
    fs::create_dir_all(target.join("bench"))?;
    fs::write(&file, figures)?;

    let mut report = host_cargo();
    report.args(["run", "--release", "-q", "-p", "bench-report", "--"]);
    report.arg(&file).arg(&criterion).arg(load_before);
    if full {
        report.arg("--full");
    }
    runner::step("bench: write BENCHMARKS.md and BENCHMARKS.svg", || runner::run(&mut report))?;
    // The TypeScript client's section (its own daemon run), where the machine can run Bun.
    match typescript::unavailable_reason() {
        Some(reason) => println!("\nbench-ts skipped: {reason}"),
        None => runner::step("bench-ts: the TypeScript client", || typescript::bench(&[]))?,
    }
    Ok(())
}
