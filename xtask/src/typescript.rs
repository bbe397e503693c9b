//! `cargo xtask typescript`: the TypeScript client in `clients/typescript`, checked against the
//! Rust daemon.
//!
//! 1. Bun [`BUN_VERSION`], from the npm package [`BUN_PACKAGE`] into `target/tools/bun-<version>`
//!    (once; nothing is installed globally);
//! 2. `cargo build -p bunctl-ipc-cli`: the daemon the end-to-end tests run (`BUNCTL_IPC_BIN`);
//! 3. `npm ci` (TypeScript and the type declarations, pinned by `package-lock.json`);
//! 4. `tsc --noEmit` over the sources, tests, example and bench;
//! 5. `bun test`;
//! 6. `tsc -p tsconfig.build.json` (the ESM and `.d.ts` in `dist/`) and the Node smoke test of it.
//!
//! Needs Node ≥ 20 with npm, and Linux on x86_64 (the Bun package pinned here).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runner::{self, Error, Result};
use crate::toolchain::{find_in_path, host_cargo, scrubbed, workspace_root};

/// The Bun release the tests run on.
pub const BUN_VERSION: &str = "1.4.5";
/// The npm package carrying Bun's Linux x86_64 binary (it needs AVX2; `-baseline` does not).
pub const BUN_PACKAGE: &str = "@oven/bun-linux-x64";
/// The oldest Node the package supports (and the smoke test checks).
const MIN_NODE_MAJOR: u32 = 20;

const HOW_TO_GET_NPM: &str = "install Node.js >= 20 with npm, e.g. from https://nodejs.org/en/download \
     or NodeSource's Debian packages (Debian 12's own `nodejs` is 18, too old), then rerun";

/// Why this machine cannot run the step, or `None` if it can.
pub fn unavailable_reason() -> Option<String> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Some(format!(
            "Bun is pinned as {BUN_PACKAGE} (Linux x86_64), this is {} {}",
            env::consts::OS,
            env::consts::ARCH
        ));
    }
    if find_in_path("npm").is_none() || find_in_path("node").is_none() {
        return Some(format!("npm/node not found in PATH: {HOW_TO_GET_NPM}"));
    }
    None
}

/// The directory cargo builds into: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { workspace_root().join(dir) }
        }
        None => workspace_root().join("target"),
    }
}

fn client_dir() -> PathBuf {
    workspace_root().join("clients/typescript")
}

/// `npm` (or `node`) run in `dir`.
fn tool(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut cmd = scrubbed(program);
    cmd.current_dir(dir);
    cmd
}

fn check_node() -> Result {
    let version = runner::output(scrubbed("node").arg("--version"))?;
    let major =
        version.trim_start_matches('v').split('.').next().and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if major >= MIN_NODE_MAJOR => {
            println!("    node {version}");
            Ok(())
        }
        _ => Err(Error::new(format!(
            "node {version} is too old for the TypeScript client: {HOW_TO_GET_NPM}"
        ))),
    }
}

/// Installs the pinned Bun into `target/tools/bun-<version>` unless it is there; returns its path.
pub fn ensure_bun() -> Result<PathBuf> {
    let prefix = target_dir().join("tools").join(format!("bun-{BUN_VERSION}"));
    let bun = prefix.join("node_modules").join(BUN_PACKAGE).join("bin").join("bun");
    let installed =
        || runner::output(scrubbed(&bun).arg("--version")).is_ok_and(|v| v == BUN_VERSION);
    if installed() {
        println!("    bun {BUN_VERSION}: {}", bun.display());
        return Ok(bun);
    }
    std::fs::create_dir_all(&prefix)
        .map_err(|e| Error::new(format!("creating {}: {e}", prefix.display())))?;
    let mut install = tool("npm", &workspace_root());
    install
        .args(["install", "--prefix"])
        .arg(&prefix)
        .args(["--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--ignore-scripts"])
        .arg(format!("{BUN_PACKAGE}@{BUN_VERSION}"));
    runner::run(&mut install)?;
    if !installed() {
        return Err(Error::new(format!(
            "{} does not run as bun {BUN_VERSION} after installing {BUN_PACKAGE}@{BUN_VERSION}",
            bun.display()
        )));
    }
    Ok(bun)
}

/// Builds the `bunctl-ipc` binary and returns its path.
fn build_daemon() -> Result<PathBuf> {
    runner::run(host_cargo().args(["build", "-p", "bunctl-ipc-cli"]))?;
    let bin = target_dir().join("debug").join(format!("bunctl-ipc{}", env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        return Err(Error::new(format!("cargo built no {}", bin.display())));
    }
    Ok(bin)
}

/// The `typescript` step of `cargo xtask ci`, also `cargo xtask typescript`.
pub fn run() -> Result {
    if let Some(reason) = unavailable_reason() {
        return Err(Error::new(format!("cannot check the TypeScript client: {reason}")));
    }
    check_node()?;
    let bun = ensure_bun()?;
    let daemon = build_daemon()?;
    let dir = client_dir();
    runner::run(tool("npm", &dir).args(["ci", "--no-audit", "--no-fund"]))?;
    let tsc = Path::new("node_modules/typescript/bin/tsc");
    runner::run(tool("node", &dir).arg(tsc).args(["--noEmit", "-p", "tsconfig.json"]))?;
    runner::run(tool(&bun, &dir).arg("test").env("BUNCTL_IPC_BIN", &daemon))?;
    runner::run(tool("node", &dir).arg(tsc).args(["-p", "tsconfig.build.json"]))?;
    runner::run(tool("node", &dir).arg("test/node-smoke.mjs").env("BUNCTL_IPC_BIN", &daemon))
}

// ------------------------------------------------------------------------------------------
// `cargo xtask bench-ts`

/// Marks the section `bench-ts` owns in `BENCHMARKS.md`.
const SECTION_START: &str = "<!-- bench-ts: generated by `cargo xtask bench-ts` -->";
const SECTION_END: &str = "<!-- bench-ts: end -->";

/// Sequential requests for the round-trip percentiles, and pipelined ones for requests/s.
const ROUND_TRIPS: u32 = 20_000;
const PIPELINED: u32 = 200_000;
const IN_FLIGHT: u32 = 16;

/// A `bunctl-ipc serve` on a private temporary socket, stopped (and its directory removed) on drop.
struct Daemon {
    child: std::process::Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start(bin: &Path) -> Result<Daemon> {
        let dir = env::temp_dir().join(format!("bunctl-bench-ts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::new(format!("creating {}: {e}", dir.display())))?;
        let socket = dir.join("d.sock");
        let mut cmd = scrubbed(bin);
        cmd.arg("serve").arg("--socket").arg(&socket).env("RUST_LOG", "warn");
        runner::echo(&cmd);
        let child = cmd.spawn().map_err(|e| Error::new(format!("cannot start the daemon: {e}")))?;
        let daemon = Daemon { child, dir, socket };
        // Only Unix sockets are probed here (the TypeScript client's tests run on Linux).
        #[cfg(not(unix))]
        let _ = &daemon.socket;
        // Ready when it accepts a connection (no sleeping on a guess).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            #[cfg(unix)]
            if std::os::unix::net::UnixStream::connect(&daemon.socket).is_ok() {
                return Ok(daemon);
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::new("the daemon did not accept connections within 20 s"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first, so that it removes its socket; SIGKILL if that fails.
        let term = Command::new("kill").arg(self.child.id().to_string()).status();
        if !term.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The number after `"key":` in a line of JSON (xtask has no JSON parser, on purpose).
fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = text[at..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))?;
    rest[..end].parse().ok()
}

/// One row of the table.
struct Figures {
    p50_us: f64,
    p99_us: f64,
    rps: f64,
}

fn need(text: &str, key: &str) -> Result<f64> {
    json_number(text, key).ok_or_else(|| Error::new(format!("no `{key}` in: {text}")))
}

/// `cargo xtask bench-ts`: the TypeScript client's round trip (p50/p99) and requests/s with 16
/// in flight, beside the Rust client's, against one release-built `bunctl-ipc serve` in the same
/// run; writes the section between the bench-ts markers of `BENCHMARKS.md` (adding it before
/// the analysis if missing).
pub fn bench(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(Error::new("usage: cargo xtask bench-ts (no arguments)"));
    }
    if let Some(reason) = unavailable_reason() {
        return Err(Error::new(format!("cannot benchmark the TypeScript client: {reason}")));
    }
    let bun = ensure_bun()?;
    runner::run(host_cargo().args(["build", "--release", "-p", "bunctl-ipc-cli"]))?;
    let bin = target_dir().join("release").join(format!("bunctl-ipc{}", env::consts::EXE_SUFFIX));
    let daemon = Daemon::start(&bin)?;
    let sock = daemon.socket.clone();

    let rust_bench = |extra: &[&str]| -> Result<String> {
        let mut cmd = scrubbed(&bin);
        cmd.arg("--socket").arg(&sock).args(["bench", "--json", "--clients", "1"]).args(extra);
        runner::echo(&cmd);
        runner::output(&mut cmd)
    };
    let n = ROUND_TRIPS.to_string();
    let m = PIPELINED.to_string();
    let k = IN_FLIGHT.to_string();
    let rust_rt = rust_bench(&["--requests", &n])?;
    let mut ts_cmd = tool(&bun, &client_dir());
    ts_cmd.arg("bench/roundtrip.ts").arg(&sock).args([
        "--requests",
        &n,
        "--pipelined",
        &m,
        "--in-flight",
        &k,
    ]);
    runner::echo(&ts_cmd);
    let ts = runner::output(&mut ts_cmd)?;
    let rust_pipe = rust_bench(&["--requests", &m, "--pipeline", &k])?;
    drop(daemon);
    println!("    rust: {rust_rt}\n    rust: {rust_pipe}\n    ts:   {ts}");

    let rust = Figures {
        p50_us: need(&rust_rt, "p50")?,
        p99_us: need(&rust_rt, "p99")?,
        rps: need(&rust_pipe, "requests_per_second")?,
    };
    let ts = Figures {
        p50_us: need(&ts, "p50_us")?,
        p99_us: need(&ts, "p99_us")?,
        rps: need(&ts, &format!("rps_{IN_FLIGHT}_in_flight"))?,
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let when = format!("{}, load average {}", crate::bench::utc_now(), load.trim());
    let section = render(&rust, &ts, &when);
    print!("\n{section}");
    let path = workspace_root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, splice(&old, &section))?;
    println!("\nwrote the TypeScript section of {}", path.display());
    Ok(())
}

fn render(rust: &Figures, ts: &Figures, when: &str) -> String {
    let row = |name: &str, f: &Figures| {
        format!("| {name} | {:.1} µs | {:.1} µs | {:.0} k/s |\n", f.p50_us, f.p99_us, f.rps / 1e3)
    };
    let mut s = String::new();
    s.push_str(SECTION_START);
    s.push_str("\n## TypeScript client (Bun) against the reference daemon\n\n");
    s.push_str(&format!(
        "One release-built `bunctl-ipc serve` on a Unix socket, both clients measured in the same \
         run on one connection each, sending `List`: the round trip over {ROUND_TRIPS} sequential \
         requests, throughput over {PIPELINED} requests with {IN_FLIGHT} in flight. Rust: \
         `bunctl-ipc bench --clients 1` (`IpcClient`; `--pipeline {IN_FLIGHT}` for throughput). \
         TypeScript: `clients/typescript/bench/roundtrip.ts` under Bun {BUN_VERSION}. \
         Measured {when}; `cargo xtask bench-ts` regenerates this section.\n\n"
    ));
    s.push_str(&format!(
        "| client | round trip p50 | round trip p99 | requests/s, {IN_FLIGHT} in flight |\n"
    ));
    s.push_str("|---|---|---|---|\n");
    s.push_str(&row("Rust `IpcClient`", rust));
    s.push_str(&row(&format!("TypeScript `bunctl-ipc` on Bun {BUN_VERSION}"), ts));
    s.push('\n');
    s.push_str(SECTION_END);
    s.push('\n');
    s
}

/// `doc` with `section` replacing the one between the markers, or inserted before the
/// analysis (at the end when there is none).
fn splice(doc: &str, section: &str) -> String {
    if let (Some(start), Some(end)) = (doc.find(SECTION_START), doc.find(SECTION_END))
        && start < end
    {
        let after = &doc[end + SECTION_END.len()..];
        return format!("{}{section}{}", &doc[..start], after.strip_prefix('\n').unwrap_or(after));
    }
    match doc.find("\n## Analysis") {
        Some(at) => format!("{}{section}\n{}", &doc[..at + 1], &doc[at + 1..]),
        None if doc.is_empty() => section.to_owned(),
        None => format!("{}\n{section}", doc.trim_end_matches('\n').to_owned() + "\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_out_of_json_lines() {
        let line =
            r#"{"latency_us":{"max":6832.1,"p50":28.7,"p99":176.1},"requests_per_second":18068.0}"#;
        assert_eq!(json_number(line, "p50"), Some(28.7));
        assert_eq!(json_number(line, "requests_per_second"), Some(18068.0));
        assert_eq!(json_number(r#"{"rps_16_in_flight":37174}"#, "rps_16_in_flight"), Some(37174.0));
        assert_eq!(json_number(line, "p90"), None);
    }

    #[test]
    fn the_section_is_inserted_once_then_replaced() {
        let f = Figures { p50_us: 1.0, p99_us: 2.0, rps: 3000.0 };
        let doc = "# B\n\n## Round trip\n\nx\n\n## Analysis\n\ny\n";
        let once = splice(doc, &render(&f, &f, "now"));
        assert!(once.contains("| Rust `IpcClient` | 1.0 µs | 2.0 µs | 3 k/s |"));
        assert!(once.find(SECTION_START) < once.find("## Analysis"));
        let g = Figures { p50_us: 5.0, ..f };
        let twice = splice(&once, &render(&g, &g, "later"));
        assert_eq!(twice.matches(SECTION_START).count(), 1);
        assert!(twice.contains("| 5.0 µs |") && !twice.contains("| 1.0 µs |"));
        assert!(twice.ends_with("<!-- bench-ts: end -->\n\n## Analysis\n\ny\n"));
        assert!(once.contains("x\n\n<!-- bench-ts: generated"));
    }
}
