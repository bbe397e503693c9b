//! `windows` (tests under Wine), `windows-clippy`, `check-targets`. rustup's toolchains here have
//! no `rust-src` and no foreign std and cannot download them, so Debian's `rustc-web` builds std
//! from `rust-web-src` (`RUSTC_BOOTSTRAP=1 cargo -Zbuild-std`). Known Wine limit: named-pipe
//! DACLs are stored and can be read back but are not enforced.

use std::env::{self, consts::ARCH};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::run::{self, Result, cmd, err, find_in_path, run, scrubbed, workspace_root};

const TEST_PACKAGES: &[&str] = &["gcc-mingw-w64-x86-64", "wine64", "wine"];
/// mingw too: the target's std build needs its dlltool (when run before `windows`).
const CLIPPY_PACKAGES: &[&str] = &["rust-web-clippy", "gcc-mingw-w64-x86-64"];
/// Must have exactly rustc-web's version: std source and clippy-driver must match the compiler.
const LOCKSTEP: &[&str] = &["cargo-web", "rust-web-src", "rust-web-clippy"];
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// Variables from `cargo run`, rustup or an outer cargo that would send a child cargo back to
/// the rustup toolchain or confuse it.
const TOOLCHAIN_VARS: &str = "CARGO RUSTUP_TOOLCHAIN RUSTUP_TOOLCHAIN_SOURCE \
    RUST_RECURSION_COUNT RUSTC RUSTDOC RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTC_BOOTSTRAP \
    RUSTFLAGS RUSTDOCFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_ENCODED_RUSTDOCFLAGS CARGO_MAKEFLAGS \
    CLIPPY_ARGS __CARGO_DEFAULT_LIB_METADATA CARGO_BUILD_* CARGO_TARGET_*";

/// Wine 8.0 has no `bcryptprimitives.dll`, whose `ProcessPrng` Rust std >= 1.78 imports: this
/// stand-in implements it with `RtlGenRandom`, in chunks below `ULONG`'s range.
const BCRYPTPRIMITIVES_STUB_C: &str = r#"#include <windows.h>
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

/// Why this machine cannot install Debian's toolchain, or `None`.
pub fn apt_missing() -> Option<String> {
    let checks = [
        (cfg!(target_os = "linux"), "not Linux"),
        (Path::new("/etc/debian_version").is_file(), "no /etc/debian_version"),
        (find_in_path("apt-get").is_some(), "no apt-get in PATH"),
    ];
    let (_, why) = checks.into_iter().find(|(ok, _)| !ok)?;
    Some(format!("needs a Debian 12 host with apt-get: {why}"))
}

/// Why this machine cannot run Windows tests under wine, or `None`.
pub fn wine_missing() -> Option<String> {
    let x86 = ARCH == "x86_64";
    apt_missing().or_else(|| (!x86).then(|| format!("wine64 needs an x86_64 host, not {ARCH}")))
}

fn installed_version(package: &str) -> Option<String> {
    let out = run::output(cmd("dpkg-query -W -f=${Status}|${Version}").arg(package)).ok()?;
    let (status, version) = out.split_once('|')?;
    (status == "install ok installed").then(|| version.to_owned())
}

/// Installs Debian's toolchain and `extra` packages where missing (apt-get, through sudo
/// unless root), then checks the lockstep versions.
pub fn prepare(extra: &[&str]) -> Result {
    let unable = if extra.contains(&"wine") { wine_missing() } else { apt_missing() };
    if let Some(reason) = unable {
        return err(format!("cannot run this here: {reason}"));
    }
    let packages = [&["rustc-web", "cargo-web", "rust-web-src"], extra].concat();
    let missing: Vec<&str> =
        packages.iter().copied().filter(|p| installed_version(p).is_none()).collect();
    if !missing.is_empty() {
        println!("    installing missing apt packages: {}", missing.join(" "));
        let root = run::output(&mut cmd("id -u")).is_ok_and(|uid| uid == "0");
        let apt = if root { "apt-get" } else { "sudo apt-get" };
        run(&mut cmd(&format!("{apt} update -qq")))?;
        let mut install = cmd(&format!("{apt} install -y -qq --no-install-recommends"));
        run(install.args(&packages).env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let version = installed_version("rustc-web").unwrap_or_default();
    for package in LOCKSTEP.iter().filter(|p| packages.contains(p)) {
        let theirs = installed_version(package).unwrap_or_else(|| "(none)".into());
        if theirs != version {
            return err(format!(
                "version mismatch: rustc-web {version} vs {package} {theirs} (they must match \
                 exactly; apt-get install both)"
            ));
        }
    }
    println!("    debian toolchain: rustc-web {version} ({})", packages.join(" "));
    Ok(())
}

/// Debian's `cargo <sub> [--workspace] --target <target> -Zbuild-std` writing to `target_dir`.
/// Without [`TOOLCHAIN_VARS`], with Debian's `RUSTC`/`RUSTDOC`, and with `/usr/bin` first in
/// `PATH`: else `cargo clippy` would run rustup's proxy from `~/.cargo/bin` and pair rustup's
/// clippy-driver with a std built by Debian's rustc.
fn debian_cargo(sub: &str, target: &str, args: &[String], target_dir: &Path) -> Command {
    let mut cmd = scrubbed("/usr/bin/cargo");
    run::unset(&mut cmd, TOOLCHAIN_VARS);
    // The one `CARGO_BUILD_*` that is safe to keep, and wanted on a shared machine.
    cmd.envs(env::var_os("CARGO_BUILD_JOBS").map(|jobs| ("CARGO_BUILD_JOBS", jobs)));
    let path = env::var_os("PATH").unwrap_or_default();
    let rest = env::split_paths(&path).filter(|p| p != Path::new("/usr/bin"));
    if let Ok(path) = env::join_paths([PathBuf::from("/usr/bin")].into_iter().chain(rest)) {
        cmd.env("PATH", path);
    }
    cmd.env("RUSTC", "/usr/bin/rustc").env("RUSTDOC", "/usr/bin/rustdoc");
    cmd.env("RUSTC_BOOTSTRAP", "1").env("CARGO_TARGET_DIR", target_dir).arg(sub);
    cmd.args(workspace_flag(split_at_dashdash(args).0)).args(["--target", target, "-Zbuild-std"]);
    cmd
}

/// `--workspace` unless the args select packages: cargo would ignore `-p` next to it.
fn workspace_flag(cargo_args: &[String]) -> Option<&str> {
    let selects = cargo_args.iter().any(|a| a.starts_with("-p") || a.starts_with("--package"));
    (!selects).then_some("--workspace")
}

/// Splits arguments at the first `--` into (cargo args, tool args).
fn split_at_dashdash(args: &[String]) -> (&[String], &[String]) {
    args.iter().position(|a| a == "--").map_or((args, &[]), |i| (&args[..i], &args[i + 1..]))
}

pub fn check_targets(args: &[String]) -> Result {
    prepare(&[])?;
    let target_dir = workspace_root().join("target/check-targets");
    for target in ["aarch64-apple-darwin", "x86_64-unknown-freebsd"] {
        println!("    -- {target}");
        run(debian_cargo("check", target, args, &target_dir).args(args))?;
    }
    Ok(())
}

/// Debian cargo for Windows, with mingw as linker and wine as runner, in `target/windows`
/// (`$WINDOWS_TEST_TARGET_DIR`); `windows` and `windows-clippy` share it, so they see the same
/// environment and share build artifacts. Also returns the target dir and the wine prefix.
fn windows_cargo(sub: &str, args: &[String]) -> (Command, PathBuf, PathBuf) {
    let dir = run::env_dir("WINDOWS_TEST_TARGET_DIR", || workspace_root().join("target/windows"));
    let prefix = run::env_dir("WINEPREFIX", || dir.join("wineprefix"));
    let mut cmd = debian_cargo(sub, "x86_64-pc-windows-gnu", args, &dir);
    cmd.env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER", MINGW_GCC)
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine");
    wine_env(&mut cmd, &prefix);
    (cmd, dir, prefix)
}

/// The 64-bit prefix, quiet logging that still reports missing DLLs, no Mono/Gecko install
/// prompts (both unless set), and no display, so console programs never open windows.
fn wine_env<'a>(cmd: &'a mut Command, prefix: &Path) -> &'a mut Command {
    let defaults = [("WINEDEBUG", "-all,err+module"), ("WINEDLLOVERRIDES", "mscoree,mshtml=")];
    cmd.envs(defaults.into_iter().filter(|(var, _)| env::var_os(var).is_none()));
    cmd.env("WINEPREFIX", prefix).env("WINEARCH", "win64").env_remove("DISPLAY");
    cmd.env_remove("WAYLAND_DISPLAY")
}

pub fn clippy(args: &[String]) -> Result {
    prepare(CLIPPY_PACKAGES)?;
    let (cargo_args, clippy_args) = split_at_dashdash(args);
    let (mut cmd, ..) = windows_cargo("clippy", args);
    run(cmd.arg("--all-targets").args(cargo_args).args(["--", "-D", "warnings"]).args(clippy_args))
}

/// The Windows docs as docs.rs builds them (`--cfg docsrs`, all features, `-D warnings`), in
/// the target dir `windows-clippy` leaves (its std and dependencies are reused).
pub fn doc(args: &[String]) -> Result {
    prepare(CLIPPY_PACKAGES)?;
    let (mut cmd, ..) = windows_cargo("doc", args);
    cmd.args(["--no-deps", "--all-features"]).args(args);
    run(cmd.env("RUSTDOCFLAGS", "--cfg docsrs -D warnings"))
}

/// `ci`'s step: one apt round for the Windows steps and check-targets, then the tests.
pub fn test_in_ci() -> Result {
    prepare(&[TEST_PACKAGES, CLIPPY_PACKAGES].concat())?;
    test(&[])
}

pub fn test(args: &[String]) -> Result {
    prepare(TEST_PACKAGES)?;
    let (mut cmd, dir, prefix) = windows_cargo("test", args);
    fs::create_dir_all(&dir)?;
    // An exclusive lock on the prefix: two runs must never share a wineserver, as the first to
    // finish would kill the other's tests. Declared before the guard, so it is released after
    // `wineserver -k` has run.
    let lock_file = dir.join(".xtask-windows.lock");
    let lock = File::options().create(true).truncate(false).write(true).open(lock_file)?;
    if lock.try_lock().is_err() {
        println!("    waiting for another run using {}", prefix.display());
        lock.lock()?;
    }
    let _wineserver = KillWineserver(prefix.clone());
    ensure_prefix(&prefix)?;
    ensure_bcryptprimitives(&prefix, &dir)?;
    let mut t = TestTally::default();
    let result = run::run_with(cmd.args(args), Some(&mut |line| t.observe(line)));
    result.and(t.check())
}

/// Runs `wineserver -k` on drop, so no wine process outlives the step, failed or not.
struct KillWineserver(PathBuf);

impl Drop for KillWineserver {
    fn drop(&mut self) {
        let _ = run(wine_env(&mut cmd("wineserver -k"), &self.0));
    }
}

fn ensure_prefix(prefix: &Path) -> Result {
    let registry = prefix.join("system.reg");
    if !registry.is_file() {
        let mut boot = cmd("wine wineboot --init");
        // Its exit status is unreliable: whether system.reg appears decides.
        wine_env(&mut boot, prefix).env("WINEDEBUG", "-all").stdout(Stdio::null());
        let _ = run(boot.stderr(Stdio::null()));
        run(wine_env(&mut cmd("wineserver -w"), prefix))?;
    }
    if !registry.is_file() {
        return err(format!("wineboot failed to create {}", prefix.display()));
    }
    Ok(())
}

/// Builds the stand-in DLL into the prefix's `system32` unless one is there (newer Wine has it).
fn ensure_bcryptprimitives(prefix: &Path, target_dir: &Path) -> Result {
    let installed = prefix.join("drive_c/windows/system32/bcryptprimitives.dll");
    if installed.is_file() {
        return Ok(());
    }
    let dir = target_dir.join("bcryptprimitives-stub");
    fs::create_dir_all(&dir)?;
    let (source, dll) = (dir.join("bcryptprimitives.c"), dir.join("bcryptprimitives.dll"));
    fs::write(&source, BCRYPTPRIMITIVES_STUB_C)?;
    run(cmd(&format!("{MINGW_GCC} -O2 -shared -o")).arg(&dll).arg(&source).arg("-ladvapi32"))?;
    fs::copy(&dll, &installed)?;
    Ok(())
}

/// Counts libtest's `running N tests` and `test result:` lines. A test process under wine that
/// dies without its summary line exits with status 0 (what happens when its wineserver is
/// killed, e.g. by another run's `wineserver -k`), so cargo would call such a run passed.
#[derive(Default)]
struct TestTally {
    started: u64,
    finished: u64,
    /// Tests announced, passed, failed, ignored.
    counts: [u64; 4],
}

impl TestTally {
    fn observe(&mut self, line: &str) {
        let words: Vec<&str> = line.split([' ', ';', '.']).filter(|w| !w.is_empty()).collect();
        match words[..] {
            ["running", n, "test" | "tests"] => {
                self.started += 1;
                self.counts[0] += n.parse::<u64>().unwrap_or(0);
            }
            // `test result: ok. 32 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`
            ["test", "result:", ..] => {
                self.finished += 1;
                let kinds = ["passed", "failed", "ignored"];
                for w in words.windows(2) {
                    if let Some(i) = kinds.iter().position(|kind| *kind == w[1]) {
                        self.counts[i + 1] += w[0].parse::<u64>().unwrap_or(0);
                    }
                }
            }
            _ => {}
        }
    }

    /// Prints the tally; fails if a test executable printed no result.
    fn check(&self) -> Result {
        let ([announced, passed, failed, ignored], started, finished) =
            (self.counts, self.started, self.finished);
        println!(
            "    under wine: {started} test executables announced {announced} tests: {passed} \
             passed, {failed} failed, {ignored} ignored ({finished} of {started} printed a result)"
        );
        if started == finished {
            return Ok(());
        }
        let n = started.abs_diff(finished);
        err(format!(
            "{n} test executable(s) under wine printed `running N tests` but no `test result:` \
             line: a test process died silently (exit status 0, as when its wineserver is killed), \
             so this run proves nothing"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_complete_runs_and_rejects_silent_deaths() {
        let mut t = TestTally::default();
        let result =
            "test result: ok. 31 passed; 1 failed; 1 ignored; 0 measured; finished in 1.2s";
        for line in ["running 32 tests", "test codec::x ... ok", result, "running 1 test", result] {
            t.observe(line);
        }
        assert_eq!((t.started, t.finished, t.counts), (2, 2, [33, 62, 2, 2]));
        assert!(t.check().is_ok());
        t.observe("running 22 tests");
        assert!(t.check().is_err());
    }

    #[test]
    fn cargo_args_and_package_selection() {
        let args = ["-p", "x", "--", "--nocapture", "--lib", "--package=x"].map(String::from);
        assert_eq!(split_at_dashdash(&args), (&args[..2], &args[3..]));
        assert_eq!(split_at_dashdash(&args[..2]), (&args[..2], &[][..]));
        assert_eq!(workspace_flag(&args[4..5]), Some("--workspace"));
        assert!(workspace_flag(&args[..2]).is_none() && workspace_flag(&args[5..]).is_none());
    }
}
