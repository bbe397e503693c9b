//! `cargo xtask ci`: everything CI runs, in order, failing fast.
//!
//! 1. `cargo fmt --all -- --check`
//! 2. `cargo clippy --workspace --all-targets -- -D warnings`
//! 3. `cargo test --workspace` (unit, integration and doc tests)
//! 4. `typescript`: the TypeScript client's type check, `bun test` (against the Rust daemon)
//!    and Node smoke test, see [`crate::typescript`]
//! 5. `cargo doc --no-deps --workspace` with `RUSTDOCFLAGS=-D warnings`
//! 6. `windows` (tests under wine) and `windows-clippy`
//! 7. `check-targets`
//! 8. fuzz smoke test: every `cargo fuzz` target for 30 s, if `fuzz/` exists
//!
//! Steps 4 and 6–8 are skipped (with the reason printed) only when the machine cannot do them;
//! under `CI=true` that is an error instead, and the `--skip-*` flags are refused.

use crate::runner::{self, Error, Result, Summary, in_ci};
use crate::toolchain::{self, host_cargo, rustup_cargo, scrubbed};
use crate::{targets, typescript, windows};

/// Seconds each fuzz target runs in the smoke test.
pub const FUZZ_SECONDS: u32 = 30;

/// Toolchain the fuzz step uses (cargo-fuzz needs nightly for sanitizers).
const FUZZ_TOOLCHAIN: &str = "nightly";

/// Local fast-iteration switches of `cargo xtask ci` (refused under `CI=true`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `--skip-windows`: skip the `windows` and `windows-clippy` steps.
    pub skip_windows: bool,
    /// `--skip-check-targets`: skip the `check-targets` step.
    pub skip_check_targets: bool,
    /// `--skip-fuzz`: skip the fuzz smoke step.
    pub skip_fuzz: bool,
    /// `--skip-typescript`: skip the TypeScript client step.
    pub skip_typescript: bool,
}

impl Options {
    /// Parses the arguments after `ci`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut opts = Self::default();
        for arg in args {
            match arg.as_str() {
                "--skip-windows" => opts.skip_windows = true,
                "--skip-check-targets" => opts.skip_check_targets = true,
                "--skip-fuzz" => opts.skip_fuzz = true,
                "--skip-typescript" => opts.skip_typescript = true,
                other => {
                    return Err(Error::new(format!(
                        "unknown argument to `ci`: {other} (see `cargo xtask --help`)"
                    )));
                }
            }
        }
        Ok(opts)
    }
}

/// Runs the whole pipeline and prints a summary (also when a step fails).
pub fn ci(opts: &Options) -> Result {
    if in_ci() && *opts != Options::default() {
        return Err(Error::new("--skip-* flags are refused under CI=true: CI must run every step"));
    }
    let mut summary = Summary::default();
    let result = run_steps(opts, &mut summary);
    summary.print();
    result
}

fn run_steps(opts: &Options, summary: &mut Summary) -> Result {
    summary.step("fmt", || runner::run(host_cargo().args(["fmt", "--all", "--", "--check"])))?;
    summary.step("clippy", || {
        runner::run(host_cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    summary.step("test", || runner::run(host_cargo().args(["test", "--workspace"])))?;
    // npm missing is a skip locally and an error under CI=true (the reason says how to get it).
    let ts_flag = opts.skip_typescript.then(|| "--skip-typescript".to_owned());
    match ts_flag.or_else(typescript::unavailable_reason) {
        Some(reason) => summary.skip("typescript", &reason)?,
        None => summary.step("typescript", typescript::run)?,
    }
    summary.step("doc", || {
        runner::run(host_cargo().env("RUSTDOCFLAGS", "-D warnings").args([
            "doc",
            "--no-deps",
            "--workspace",
        ]))
    })?;

    // Wine needs Debian + x86_64; Windows clippy only needs Debian's toolchain.
    let flag = || opts.skip_windows.then(|| "--skip-windows".to_owned());
    match flag().or_else(windows::unavailable_reason) {
        Some(reason) => summary.skip("windows", &reason)?,
        None => summary.step("windows", || {
            // One apt round for everything the Windows steps and check-targets need.
            let mut all = toolchain::TOOLCHAIN_PACKAGES.to_vec();
            all.extend(windows::TEST_PACKAGES);
            all.extend(windows::CLIPPY_PACKAGES);
            toolchain::ensure_packages(&all)?;
            windows::test(&[])
        })?,
    }
    match flag().or_else(toolchain::apt_unavailable_reason) {
        Some(reason) => summary.skip("windows-clippy", &reason)?,
        None => summary.step("windows-clippy", || windows::clippy(&[]))?,
    }

    if opts.skip_check_targets {
        summary.skip("check-targets", "--skip-check-targets")?;
    } else if let Some(reason) = targets::unavailable_reason() {
        summary.skip("check-targets", &reason)?;
    } else {
        summary.step("check-targets", || targets::check(&[]))?;
    }

    if opts.skip_fuzz {
        summary.skip("fuzz", "--skip-fuzz")?;
    } else {
        fuzz(summary, FUZZ_SECONDS)?;
    }
    Ok(())
}

/// `cargo xtask fuzz [--seconds N]`: only the fuzz step of `ci`, each target for `seconds`.
pub fn fuzz_only(seconds: u32) -> Result {
    fuzz(&mut Summary::default(), seconds)
}

/// The fuzz step: runs each `cargo fuzz` target for `seconds`, starting from the committed
/// seeds (`fuzz/seeds/<target>`) and growing the git-ignored corpus (`fuzz/corpus/<target>`).
/// No nightly toolchain is a plain skip, also under CI: the smoke test runs where nightly is.
fn fuzz(summary: &mut Summary, seconds: u32) -> Result {
    if !toolchain::workspace_root().join("fuzz").is_dir() {
        println!("\n==> fuzz\n    no fuzz targets yet, skipping (no fuzz/ directory)");
        summary.note_skipped("fuzz", "no fuzz targets yet");
        return Ok(());
    }
    let nightly =
        runner::probe(scrubbed("rustup").args(["run", FUZZ_TOOLCHAIN, "rustc", "--version"]));
    if !nightly {
        let reason = "no nightly toolchain (`rustup run nightly rustc --version` fails)";
        println!("\n==> fuzz\n<== fuzz: SKIPPED: {reason}");
        summary.note_skipped("fuzz", reason);
        return Ok(());
    }
    summary.step("fuzz", || {
        if !runner::probe(rustup_cargo(FUZZ_TOOLCHAIN).args(["fuzz", "--version"])) {
            println!("    cargo-fuzz not found, installing it");
            runner::run(host_cargo().args(["install", "cargo-fuzz", "--locked"]))?;
        }
        let list = runner::output(rustup_cargo(FUZZ_TOOLCHAIN).args(["fuzz", "list"]))?;
        let fuzz_targets: Vec<&str> =
            list.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if fuzz_targets.is_empty() {
            println!("    fuzz/ lists no targets, nothing to run");
        }
        let fuzz_dir = toolchain::workspace_root().join("fuzz");
        for target in fuzz_targets {
            let corpus = fuzz_dir.join("corpus").join(target);
            std::fs::create_dir_all(&corpus)
                .map_err(|e| Error::new(format!("creating {}: {e}", corpus.display())))?;
            let mut cmd = rustup_cargo(FUZZ_TOOLCHAIN);
            cmd.args(["fuzz", "run", target]).arg(&corpus);
            let seeds = fuzz_dir.join("seeds").join(target);
            if seeds.is_dir() {
                cmd.arg(seeds);
            }
            cmd.args(["--", &format!("-max_total_time={seconds}")]);
            runner::run(&mut cmd)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_skip_flags() {
        let args = ["--skip-fuzz".to_string(), "--skip-windows".to_string()];
        let opts = Options::parse(&args);
        assert!(matches!(
            opts,
            Ok(Options {
                skip_windows: true,
                skip_check_targets: false,
                skip_fuzz: true,
                skip_typescript: false
            })
        ));
        assert!(Options::parse(&["--bogus".to_string()]).is_err());
    }
}
