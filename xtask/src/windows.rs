//! `cargo xtask windows` / `windows-clippy`: test and lint the workspace for
//! `x86_64-pc-windows-gnu` on a Debian 12 x86_64 host, with no rustup target.
//!
//! A self-contained port of the project's former `windows-test.sh`:
//!
//! * Debian's `rustc-web`/`cargo-web` + `rust-web-src` build std for the target
//!   (`RUSTC_BOOTSTRAP=1 cargo -Zbuild-std`, see [`DebianToolchain`]);
//! * `gcc-mingw-w64-x86-64` links, `wine` runs the test `.exe`s as cargo's target runner;
//! * Wine 8.0 has no `bcryptprimitives.dll` (Rust std >= 1.78 imports `ProcessPrng` from it), so
//!   a tiny stand-in DLL ([`BCRYPTPRIMITIVES_STUB_C`]) is compiled with mingw into the wine
//!   prefix's `system32`;
//! * `windows-clippy` uses Debian's `rust-web-clippy` (same version as the compiler).
//!
//! Output goes to `<workspace>/target/windows` (override: `WINDOWS_TEST_TARGET_DIR`); the wine
//! prefix lives in `<target dir>/wineprefix` (override: `WINEPREFIX`). Idempotent: installs only
//! what is missing, creates the prefix and the DLL once. `wineserver -k` always runs at the end.
//!
//! Known Wine limit: named-pipe DACLs are stored and can be read back but are not enforced.

use std::env;
use std::fmt;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::runner::{self, Error, Result};
use crate::toolchain::{self, DebianToolchain, scrubbed, split_at_dashdash, workspace_flag};

/// The Windows target triple.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// Extra apt packages (beyond the toolchain) for building and running Windows tests.
pub const TEST_PACKAGES: &[&str] = &["gcc-mingw-w64-x86-64", "wine64", "wine"];

/// Extra apt packages (beyond the toolchain) for linting the Windows build: clippy, and mingw,
/// whose dlltool the target's std build needs (so `windows-clippy` also works run first).
pub const CLIPPY_PACKAGES: &[&str] = &["rust-web-clippy", "gcc-mingw-w64-x86-64"];

/// Source of the stand-in `bcryptprimitives.dll`: `ProcessPrng` implemented with
/// `RtlGenRandom` (`SystemFunction036` from advapi32), in chunks below `ULONG`'s range.
pub const BCRYPTPRIMITIVES_STUB_C: &str = r#"#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk; len -= chunk;
    }
    return TRUE;
}
"#;

/// The mingw C compiler, used as linker and to build the stub DLL.
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// Why this machine cannot run the Windows steps at all, or `None` if it can.
pub fn unavailable_reason() -> Option<String> {
    if let Some(reason) = toolchain::apt_unavailable_reason() {
        return Some(reason);
    }
    if !cfg!(target_arch = "x86_64") {
        return Some(format!(
            "wine64 needs an x86_64 host to run x86_64 .exe files, this is {}",
            env::consts::ARCH
        ));
    }
    None
}

/// `cargo xtask windows [cargo test args]`: `cargo test --workspace --target
/// x86_64-pc-windows-gnu -Zbuild-std [args]` with wine as the runner.
pub fn test(extra_args: &[String]) -> Result {
    if let Some(reason) = unavailable_reason() {
        return Err(Error::new(format!("cannot run Windows tests here: {reason}")));
    }
    let toolchain = DebianToolchain::prepare(TEST_PACKAGES)?;
    let target_dir = target_dir();
    fs::create_dir_all(&target_dir)?;
    let prefix = wine_prefix(&target_dir);
    // Declared before the guard so it is released after `wineserver -k` has run.
    let _lock = lock_prefix(&prefix, &target_dir)?;
    let _wineserver = WineServerGuard { prefix: prefix.clone() };
    ensure_wine_prefix(&prefix)?;
    ensure_bcryptprimitives_stub(&prefix, &target_dir)?;

    let (cargo_args, _) = split_at_dashdash(extra_args);
    let mut cmd = windows_cargo(&toolchain, &target_dir, &prefix);
    cmd.arg("test")
        .args(workspace_flag(cargo_args))
        .args(["--target", TARGET, "-Zbuild-std"])
        .args(extra_args);
    let mut tally = TestTally::default();
    let result = runner::run_observing_stdout(&mut cmd, |line| tally.observe(line));
    println!("    {tally}");
    result.and_then(|()| tally.check())
}

/// Counts libtest's `running N tests` / `test result: ...` lines of a `cargo test` run.
///
/// This proves that wine really ran test executables, and catches a test process that dies
/// without a summary but with exit status 0 — which is what a wine process does when its
/// wineserver is killed under it (e.g. by another run's `wineserver -k` on the same prefix):
/// cargo would report such a run as passed.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestTally {
    /// `running N tests` lines seen (one per test executable / doctest batch).
    started: u32,
    /// Sum of the N of those lines.
    announced: u64,
    /// `test result:` lines seen.
    finished: u32,
    /// Tests passed, summed over the `test result:` lines.
    passed: u64,
    /// Tests failed, summed over the `test result:` lines.
    failed: u64,
    /// Tests ignored, summed over the `test result:` lines.
    ignored: u64,
}

impl TestTally {
    /// Feeds one line of `cargo test` stdout.
    fn observe(&mut self, line: &str) {
        if let Some(n) = line
            .strip_prefix("running ")
            .and_then(|rest| rest.strip_suffix(" tests").or_else(|| rest.strip_suffix(" test")))
            .and_then(|n| n.parse::<u64>().ok())
        {
            self.started += 1;
            self.announced += n;
        } else if let Some(result) = line.strip_prefix("test result: ") {
            self.finished += 1;
            // e.g. `ok. 32 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.2s`
            for part in result.split([';', '.']) {
                let mut words = part.split_whitespace();
                let (Some(n), Some(what)) = (words.next(), words.next()) else { continue };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" => self.ignored += n,
                    _ => {}
                }
            }
        }
    }

    /// Fails if some test executable started but never printed its result.
    fn check(&self) -> Result {
        if self.started == self.finished {
            return Ok(());
        }
        Err(Error::new(format!(
            "{} test executable(s) under wine printed `running N tests` but no `test result:` \
             line: a test process died silently (wine reports exit status 0 when its \
             wineserver is killed, e.g. by a concurrent `wineserver -k` on the same prefix), \
             so this run proves nothing",
            self.started.abs_diff(self.finished)
        )))
    }
}

impl fmt::Display for TestTally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "under wine: {} test executables announced {} tests: {} passed, {} failed, \
             {} ignored ({} of {} printed a result)",
            self.started,
            self.announced,
            self.passed,
            self.failed,
            self.ignored,
            self.finished,
            self.started
        )
    }
}

/// Takes an exclusive lock for the wine prefix for the rest of the run (released on drop), so
/// that two `cargo xtask windows` runs never share a wineserver: the first one to finish would
/// kill the other's test processes. Waits, saying so, if another run holds it.
fn lock_prefix(prefix: &Path, target_dir: &Path) -> Result<File> {
    let path = target_dir.join(".xtask-windows.lock");
    let file = File::options().create(true).truncate(false).write(true).open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            println!(
                "    waiting for another `cargo xtask windows` using {} (lock {})",
                prefix.display(),
                path.display()
            );
            file.lock()?;
            Ok(file)
        }
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

/// `cargo xtask windows-clippy [cargo clippy args]`: `cargo clippy --workspace --all-targets
/// --target x86_64-pc-windows-gnu -Zbuild-std [args] -- -D warnings [clippy args]` with Debian's
/// clippy (std itself is built by plain rustc; clippy only lints workspace members).
pub fn clippy(extra_args: &[String]) -> Result {
    if let Some(reason) = toolchain::apt_unavailable_reason() {
        return Err(Error::new(format!("cannot run Windows clippy here: {reason}")));
    }
    let toolchain = DebianToolchain::prepare(CLIPPY_PACKAGES)?;
    let target_dir = target_dir();
    let (cargo_args, clippy_args) = split_at_dashdash(extra_args);
    let mut cmd = windows_cargo(&toolchain, &target_dir, &wine_prefix(&target_dir));
    cmd.arg("clippy")
        .args(workspace_flag(cargo_args))
        .args(["--all-targets", "--target", TARGET, "-Zbuild-std"])
        .args(cargo_args)
        .args(["--", "-D", "warnings"])
        .args(clippy_args);
    runner::run(&mut cmd)
}

/// Debian cargo plus the Windows linker/runner and wine settings. Shared by `test` and `clippy`
/// so both see the same environment (and share build artifacts in the same target dir).
fn windows_cargo(toolchain: &DebianToolchain, target_dir: &Path, prefix: &Path) -> Command {
    let mut cmd = toolchain.cargo(target_dir);
    cmd.env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER", MINGW_GCC)
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine");
    wine_env(&mut cmd, prefix);
    cmd
}

/// `<workspace>/target/windows`, or `$WINDOWS_TEST_TARGET_DIR`.
fn target_dir() -> PathBuf {
    env::var_os("WINDOWS_TEST_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| toolchain::workspace_root().join("target/windows"))
}

/// `<target dir>/wineprefix`, or `$WINEPREFIX`.
fn wine_prefix(target_dir: &Path) -> PathBuf {
    env::var_os("WINEPREFIX")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir.join("wineprefix"))
}

/// Wine settings: the 64-bit prefix, quiet logging that still reports missing DLLs
/// (`WINEDEBUG`, unless set), no Mono/Gecko install prompts (`WINEDLLOVERRIDES`, unless set),
/// and no display, so console programs never open windows.
fn wine_env(cmd: &mut Command, prefix: &Path) {
    cmd.env("WINEPREFIX", prefix).env("WINEARCH", "win64");
    if env::var_os("WINEDEBUG").is_none() {
        cmd.env("WINEDEBUG", "-all,err+module");
    }
    if env::var_os("WINEDLLOVERRIDES").is_none() {
        cmd.env("WINEDLLOVERRIDES", "mscoree,mshtml=");
    }
    cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
}

/// A wine tool (`wine`, `wineserver`) with the wine environment for `prefix`.
fn wine_cmd(program: &str, prefix: &Path) -> Command {
    let mut cmd = scrubbed(program);
    wine_env(&mut cmd, prefix);
    cmd
}

/// Creates the wine prefix (`wine wineboot --init`, then `wineserver -w`) unless it exists.
fn ensure_wine_prefix(prefix: &Path) -> Result {
    let registry = prefix.join("system.reg");
    if registry.is_file() {
        println!("    wine prefix present: {}", prefix.display());
        return Ok(());
    }
    println!("    creating wine prefix {}", prefix.display());
    let mut boot = wine_cmd("wine", prefix);
    boot.env("WINEDEBUG", "-all")
        .args(["wineboot", "--init"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Like the shell original (`|| true`): wineboot's exit status is unreliable; the check for
    // system.reg below decides.
    if let Err(e) = runner::run(&mut boot) {
        println!("    (wineboot: {e}; checking the prefix anyway)");
    }
    runner::run(wine_cmd("wineserver", prefix).arg("-w"))?;
    if !registry.is_file() {
        return Err(Error::new(format!("wineboot failed to create {}", prefix.display())));
    }
    Ok(())
}

/// Builds the stand-in `bcryptprimitives.dll` and copies it into the prefix's `system32`,
/// unless a `bcryptprimitives.dll` is already there (newer Wine ships its own).
fn ensure_bcryptprimitives_stub(prefix: &Path, target_dir: &Path) -> Result {
    let system32 = prefix.join("drive_c/windows/system32");
    let installed = system32.join("bcryptprimitives.dll");
    if installed.is_file() {
        println!("    bcryptprimitives.dll present: {}", installed.display());
        return Ok(());
    }
    println!(
        "    installing stand-in bcryptprimitives.dll (ProcessPrng via RtlGenRandom) into {}",
        system32.display()
    );
    let stub_dir = target_dir.join("bcryptprimitives-stub");
    fs::create_dir_all(&stub_dir)?;
    let source = stub_dir.join("bcryptprimitives.c");
    let dll = stub_dir.join("bcryptprimitives.dll");
    fs::write(&source, BCRYPTPRIMITIVES_STUB_C)?;
    runner::run(
        scrubbed(MINGW_GCC).args(["-O2", "-shared", "-o"]).arg(&dll).arg(&source).arg("-ladvapi32"),
    )?;
    fs::copy(&dll, &installed).map_err(|e| {
        Error::new(format!("cannot copy {} to {}: {e}", dll.display(), installed.display()))
    })?;
    Ok(())
}

/// Runs `wineserver -k` for the prefix when dropped, so no wine processes outlive the step —
/// whether it succeeded or failed.
struct WineServerGuard {
    prefix: PathBuf,
}

impl Drop for WineServerGuard {
    fn drop(&mut self) {
        let mut kill = wine_cmd("wineserver", &self.prefix);
        kill.arg("-k").stdout(Stdio::null()).stderr(Stdio::null());
        runner::echo(&kill);
        let _ = kill.status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(lines: &[&str]) -> TestTally {
        let mut tally = TestTally::default();
        for line in lines {
            tally.observe(line);
        }
        tally
    }

    #[test]
    fn tally_counts_complete_runs() {
        let t = tally(&[
            "running 32 tests",
            "test codec::tests::x ... ok",
            "test result: ok. 31 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; \
             finished in 1.22s",
            "running 1 test",
            "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; \
             finished in 0.01s",
        ]);
        assert_eq!((t.started, t.announced, t.finished), (2, 33, 2));
        assert_eq!((t.passed, t.failed, t.ignored), (31, 1, 1));
        assert!(t.check().is_ok());
    }

    #[test]
    fn tally_rejects_a_silently_dead_test_process() {
        let t = tally(&["running 22 tests", "test a ... ok", "running 0 tests"]);
        assert_eq!((t.started, t.finished), (2, 0));
        assert!(t.check().is_err());
    }

    #[test]
    fn stub_exports_process_prng() {
        assert!(BCRYPTPRIMITIVES_STUB_C.contains("__declspec(dllexport) BOOL WINAPI ProcessPrng"));
        assert!(BCRYPTPRIMITIVES_STUB_C.ends_with("}\n"));
    }
}
