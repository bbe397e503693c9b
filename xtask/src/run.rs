//! Steps, running commands (echoed, timed), and the environment children get.

use std::env;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(message.into().into())
}

/// `CI=true` (GitHub Actions & co.) or `CI=1`: nothing may be skipped.
pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The steps run so far: `ci` prints them at the end, also after a failure.
#[derive(Default)]
pub struct Summary(pub Vec<String>);

impl Summary {
    /// Runs `f` between a `==> name` header and a `<== name: ok|FAILED (time)` footer.
    pub fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        let took = format!("{:.1}s", start.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "FAILED" };
        println!("<== {name}: {outcome} ({took})");
        self.0.push(format!("{name:<14}  {outcome:<8} {took:>9}"));
        result
    }

    /// Skips step `name` for `reason`; under CI that is an error unless `ci_ok`.
    pub fn skip(&mut self, name: &str, reason: &str, ci_ok: bool) -> Result {
        if in_ci() && !ci_ok {
            return self
                .step(name, || err(format!("cannot run here ({reason}); CI=true forbids skips")));
        }
        println!("\n==> {name}\n<== {name}: SKIPPED: {reason}");
        self.0.push(format!("{name:<14}  skipped  ({reason})"));
        Ok(())
    }
}

/// A step outside `ci`.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    Summary::default().step(name, f)
}

pub fn run(cmd: &mut Command) -> Result {
    run_with(cmd, None)
}

/// Runs `cmd` after echoing it and prints its time; fails unless it exits successfully. With
/// `on_line`, stdout is passed through as it arrives (so partial lines such as `test x ... `
/// show live) and each complete line is also handed to `on_line`.
pub fn run_with(cmd: &mut Command, on_line: Option<&mut dyn FnMut(&str)>) -> Result {
    echo(cmd);
    let start = Instant::now();
    if on_line.is_some() {
        cmd.stdout(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| spawn_error(cmd, &e))?;
    let forwarded = match (child.stdout.take(), on_line) {
        (Some(pipe), Some(on_line)) => forward_lines(pipe, on_line),
        _ => Ok(()),
    };
    let status = child.wait()?;
    println!("    ({:.1}s)", start.elapsed().as_secs_f64());
    forwarded?;
    check(cmd, status)
}

fn forward_lines(mut pipe: impl Read, on_line: &mut dyn FnMut(&str)) -> io::Result<()> {
    let (mut chunk, mut line) = ([0u8; 8192], Vec::new());
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            n => n?,
        };
        io::stdout().write_all(&chunk[..n]).and_then(|()| io::stdout().flush())?;
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                on_line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
                line.clear();
            } else {
                line.push(byte);
            }
        }
    }
}

/// Runs `cmd` quietly and returns its trimmed stdout; the error carries its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| spawn_error(cmd, &e))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    check(cmd, out.status).or_else(|e| err(format!("{e}\n{stderr}").trim_end()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn check(cmd: &Command, status: ExitStatus) -> Result {
    let message = || format!("`{}` failed ({status})", program_and_args(cmd));
    if status.success() { Ok(()) } else { err(message()) }
}

fn spawn_error(cmd: &Command, e: &io::Error) -> String {
    format!("cannot start `{}`: {e}", cmd.get_program().to_string_lossy())
}

fn program_and_args(cmd: &Command) -> String {
    let words: Vec<_> = [cmd.get_program()].into_iter().chain(cmd.get_args()).map(quote).collect();
    words.join(" ")
}

/// Prints `$ [cd DIR &&] [VAR=value ...] program args...  (unset: VAR ...)`.
pub fn echo(cmd: &Command) {
    let mut line =
        cmd.get_current_dir().map_or(String::new(), |d| format!("cd {} && ", quote(d.as_os_str())));
    let mut unset = Vec::new();
    for (key, value) in cmd.get_envs() {
        let key = key.to_string_lossy();
        match value {
            Some(value) => line += &format!("{key}={} ", quote(value)),
            // The ~15 `CARGO_PKG_*` of `cargo run` as one (`get_envs` is sorted).
            None if key.starts_with("CARGO_PKG_") => unset.push("CARGO_PKG_*".into()),
            None => unset.push(key),
        }
    }
    unset.dedup();
    let unset =
        if unset.is_empty() { String::new() } else { format!("  (unset: {})", unset.join(" ")) };
    println!("    $ {line}{}{unset}", program_and_args(cmd));
}

/// Quotes `s` for a POSIX shell unless it consists of safe characters only.
pub fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Free bytes on the file system holding `dir` (or its nearest existing parent), as `df` reads
/// it; `None` where `df` is missing or says something else.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let dir = dir.ancestors().find(|d| d.exists())?;
    let out = Command::new("df").arg("-Pk").arg(dir).stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `Filesystem 1024-blocks Used Available Capacity Mounted-on`, then one row.
    let available = text.lines().nth(1)?.split_whitespace().nth(3)?;
    available.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// The workspace root, from `CARGO_MANIFEST_DIR` as `cargo run` sets it (so a moved checkout
/// with a stale binary still works), else as compiled in.
pub fn workspace_root() -> PathBuf {
    let dir = env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    Path::new(&dir).parent().unwrap_or(Path::new(&dir)).to_path_buf()
}

/// `$var` (relative to the workspace root) if set and not empty, else `default`.
pub fn env_dir(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    env::var_os(var).filter(|d| !d.is_empty()).map_or_else(default, |d| workspace_root().join(d))
}

/// Where the host cargo builds: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    env_dir("CARGO_TARGET_DIR", || workspace_root().join("target"))
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Removes the inherited variables named in `vars` (space-separated; `X_*` is a prefix).
pub fn unset(cmd: &mut Command, vars: &str) {
    for (key, _) in env::vars_os() {
        let k = key.to_string_lossy();
        if vars.split(' ').any(|v| v.strip_suffix('*').map_or(v == k, |p| k.starts_with(p))) {
            cmd.env_remove(&key);
        }
    }
}

/// `program` in the workspace root, without what `cargo run` sets to describe xtask itself and
/// without the `LD_LIBRARY_PATH` entries it added (rustup sysroot, target dir). The toolchain
/// selection (`RUSTUP_TOOLCHAIN`, `CARGO`) is kept.
pub fn scrubbed(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    let package =
        "CARGO_MANIFEST_* CARGO_PKG_* CARGO_CRATE_NAME CARGO_BIN_NAME CARGO_PRIMARY_PACKAGE";
    unset(&mut cmd, package);
    // CI builds once: incremental state would only take disk (a third of the debug build).
    if in_ci() && env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    if let Some(old) = env::var_os("LD_LIBRARY_PATH") {
        let home = env::var_os("HOME").map(|home| Path::new(&home).join(".rustup"));
        let rustup = env::var_os("RUSTUP_HOME").map(PathBuf::from).or(home);
        let mut drop = vec![workspace_root().join("target"), target_dir()];
        drop.extend(rustup.map(|rustup| rustup.join("toolchains")));
        match env::join_paths(filter_library_path(env::split_paths(&old), &drop)) {
            Ok(new) if new.is_empty() => cmd.env_remove("LD_LIBRARY_PATH"),
            Ok(new) if new != old => cmd.env("LD_LIBRARY_PATH", new),
            _ => &mut cmd,
        };
    }
    cmd
}

fn filter_library_path(entries: impl Iterator<Item = PathBuf>, drop: &[PathBuf]) -> Vec<PathBuf> {
    entries
        .filter(|p| !p.as_os_str().is_empty() && !drop.iter().any(|d| p.starts_with(d)))
        .collect()
}

/// `program args...` from whitespace-separated words, see [`scrubbed`].
pub fn cmd(line: &str) -> Command {
    let mut words = line.split_whitespace();
    let mut cmd = scrubbed(words.next().unwrap_or_default());
    cmd.args(words);
    cmd
}

/// `cargo <args>` of the toolchain running xtask (`$CARGO`).
pub fn cargo(args: &str) -> Command {
    let mut cmd = scrubbed(env::var_os("CARGO").unwrap_or("cargo".into()));
    cmd.args(args.split_whitespace());
    cmd
}

/// `cargo +nightly <args>` through rustup's proxy, without the outer toolchain selection.
pub fn nightly_cargo(args: &str) -> Command {
    let mut cmd = scrubbed("cargo");
    unset(&mut cmd, "CARGO RUSTUP_TOOLCHAIN RUST_RECURSION_COUNT RUSTC");
    cmd.arg("+nightly").args(args.split_whitespace());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_only_what_needs_it() {
        for plain in ["-Zbuild-std", "/usr/bin/cargo", "-max_total_time=30", "-all,err+module"] {
            assert_eq!(quote(OsStr::new(plain)), plain);
        }
        assert_eq!(quote(OsStr::new("")), "''");
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(quote(OsStr::new("${Status}")), "'${Status}'");
    }

    #[test]
    fn library_path_drops_cargo_run_entries() {
        let entries =
            ["/w/target/debug", "/r/toolchains/stable/lib", "", "/opt"].map(PathBuf::from);
        let kept =
            filter_library_path(entries.into_iter(), &["/w/target".into(), "/r/toolchains".into()]);
        assert_eq!(kept, [PathBuf::from("/opt")]);
    }
}
