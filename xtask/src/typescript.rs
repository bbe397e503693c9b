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
pub fn target_dir() -> PathBuf {
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

/// `cargo xtask bench-ts`: the TypeScript client's round trip (p50/p99) and requests/s with 16
/// in flight, beside the Rust client's, against one release-built `bunctl-ipc serve` in the same
/// run. Bun and the daemon come from here; `bench-report ts` measures and writes the section
/// between the bench-ts markers of `BENCHMARKS.md`.
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
    let mut report = host_cargo();
    report.args(["run", "--release", "-q", "-p", "bench-report", "--", "ts"]).arg(bun).arg(bin);
    runner::run(&mut report)
}
