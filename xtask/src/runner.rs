//! Step headers, command echo + timing, skipping rules and the error type shared by all
//! subcommands.
//!
//! Every command that does real work goes through [`run`], which prints the exact command line
//! (working directory, environment changes, program and arguments) before starting it and its
//! duration afterwards. Probes that only ask the machine a question ([`probe`], [`output`]) stay
//! quiet unless they fail.

use std::env;
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Why an xtask step failed, plus the process exit code to leave with.
#[derive(Debug)]
pub struct Error {
    /// Human-readable description, printed as `error: <message>`.
    pub message: String,
    /// Exit code for the xtask process (the failing child's code when there is one).
    pub code: u8,
}

impl Error {
    /// An error with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 1 }
    }

    /// A command ran but exited unsuccessfully.
    fn failed(cmd: &Command, status: ExitStatus) -> Self {
        let code =
            status.code().and_then(|c| u8::try_from(c).ok()).filter(|&c| c != 0).unwrap_or(1);
        Self { message: format!("`{}` failed ({status})", program_and_args(cmd)), code }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::new(e.to_string())
    }
}

/// `Result` with [`Error`]; the success type defaults to `()`.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// True when the environment says we run in CI (`CI=true`, as GitHub Actions & co. set it;
/// `CI=1` is accepted too). Under CI nothing may be skipped and `--skip-*` flags are refused.
pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Formats a duration as `4.2s` or `2m03.5s`.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let mins = (secs / 60.0).floor();
        format!("{mins:.0}m{:04.1}s", secs - mins * 60.0)
    }
}

/// Runs `f` as a named step: prints the `==> name` header, then `<== name: ok|FAILED (time)`.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("\n==> {name}");
    let start = Instant::now();
    let result = f();
    let took = fmt_duration(start.elapsed());
    match &result {
        Ok(_) => println!("<== {name}: ok ({took})"),
        Err(_) => println!("<== {name}: FAILED ({took})"),
    }
    result
}

/// Runs `cmd` with inherited stdio after echoing it; fails unless it exits successfully.
pub fn run(cmd: &mut Command) -> Result {
    echo(cmd);
    let start = Instant::now();
    let status = cmd.status().map_err(|e| spawn_error(cmd, &e))?;
    println!("    ({})", fmt_duration(start.elapsed()));
    if status.success() { Ok(()) } else { Err(Error::failed(cmd, status)) }
}

/// Like [`run`], but passes the child's stdout through this process (as it arrives) and hands
/// every complete stdout line to `on_line`. Stderr stays inherited.
pub fn run_observing_stdout(cmd: &mut Command, mut on_line: impl FnMut(&str)) -> Result {
    echo(cmd);
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn().map_err(|e| spawn_error(cmd, &e))?;
    let forwarded = match child.stdout.take() {
        Some(pipe) => forward_lines(pipe, &mut on_line),
        None => Ok(()),
    };
    let status = child.wait().map_err(|e| spawn_error(cmd, &e))?;
    println!("    ({})", fmt_duration(start.elapsed()));
    forwarded?;
    if status.success() { Ok(()) } else { Err(Error::failed(cmd, status)) }
}

/// Copies `pipe` to stdout chunk by chunk (so partial lines like `test x ... ` show up live)
/// while splitting it into lines for `on_line`.
fn forward_lines(mut pipe: impl Read, on_line: &mut impl FnMut(&str)) -> io::Result<()> {
    let mut stdout = io::stdout();
    let mut chunk = [0u8; 8192];
    let mut line = Vec::new();
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stdout.write_all(&chunk[..n])?;
        stdout.flush()?;
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                on_line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
                line.clear();
            } else {
                line.push(byte);
            }
        }
    }
    if !line.is_empty() {
        on_line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
    }
    Ok(())
}

/// Runs `cmd` silently and reports whether it could be started and exited successfully.
pub fn probe(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` silently and returns its trimmed stdout; on failure the error carries its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| spawn_error(cmd, &e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let mut err = Error::failed(cmd, out.status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            err.message = format!("{}:\n{}", err.message, stderr.trim_end());
        }
        Err(err)
    }
}

/// Prints how `cmd` is about to be run: `$ [cd DIR &&] [VAR=value ...] program args...`,
/// followed by the list of inherited variables removed from its environment, if any.
pub fn echo(cmd: &Command) {
    let mut line = String::from("    $ ");
    if let Some(dir) = cmd.get_current_dir() {
        line.push_str("cd ");
        line.push_str(&quote(dir.as_os_str()));
        line.push_str(" && ");
    }
    let mut removed = Vec::new();
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => {
                line.push_str(&key.to_string_lossy());
                line.push('=');
                line.push_str(&quote(value));
                line.push(' ');
            }
            None => {
                // Collapse the ~15 `CARGO_PKG_*` variables of `cargo run` into one entry.
                let key = key.to_string_lossy();
                let key = if key.starts_with("CARGO_PKG_") {
                    "CARGO_PKG_*".into()
                } else {
                    key.into_owned()
                };
                if !removed.contains(&key) {
                    removed.push(key);
                }
            }
        }
    }
    line.push_str(&program_and_args(cmd));
    println!("{line}");
    if !removed.is_empty() {
        println!("      (unset: {})", removed.join(" "));
    }
}

/// `program arg...`, shell-quoted.
fn program_and_args(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn spawn_error(cmd: &Command, e: &io::Error) -> Error {
    Error::new(format!("cannot start `{}`: {e}", cmd.get_program().to_string_lossy()))
}

/// Quotes `s` for a POSIX shell when it contains anything beyond a conservative safe set.
pub fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How a step of `cargo xtask ci` ended.
enum Outcome {
    Ok,
    Skipped(String),
    Failed,
}

/// Records the steps of `cargo xtask ci` so a summary table can be printed at the end.
#[derive(Default)]
pub struct Summary {
    rows: Vec<(String, Outcome, Duration)>,
}

impl Summary {
    /// Runs `f` as a [`step`] and records its outcome and duration.
    pub fn step(&mut self, name: &str, f: impl FnOnce() -> Result) -> Result {
        let start = Instant::now();
        let result = step(name, f);
        let outcome = if result.is_ok() { Outcome::Ok } else { Outcome::Failed };
        self.rows.push((name.to_owned(), outcome, start.elapsed()));
        result
    }

    /// Records step `name` as skipped because the machine cannot do it (or the user asked to).
    /// Under CI (`CI=true`) this is an error instead: CI must never silently skip a step.
    pub fn skip(&mut self, name: &str, reason: &str) -> Result {
        println!("\n==> {name}");
        if in_ci() {
            println!("<== {name}: FAILED (cannot run here: {reason})");
            self.rows.push((name.to_owned(), Outcome::Failed, Duration::ZERO));
            return Err(Error::new(format!(
                "step `{name}` cannot run on this machine ({reason}), and CI=true forbids skipping it"
            )));
        }
        println!("<== {name}: SKIPPED: {reason}");
        self.note_skipped(name, reason);
        Ok(())
    }

    /// Records step `name` as skipped for a reason that is fine even under CI (nothing to do).
    pub fn note_skipped(&mut self, name: &str, reason: &str) {
        self.rows.push((name.to_owned(), Outcome::Skipped(reason.to_owned()), Duration::ZERO));
    }

    /// Prints one line per recorded step.
    pub fn print(&self) {
        println!("\n==> summary");
        let width = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (name, outcome, took) in &self.rows {
            let took = fmt_duration(*took);
            match outcome {
                Outcome::Ok => println!("    {name:<width$}  ok       {took:>9}"),
                Outcome::Failed => println!("    {name:<width$}  FAILED   {took:>9}"),
                Outcome::Skipped(why) => println!("    {name:<width$}  skipped  ({why})"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_alone() {
        assert_eq!(quote(OsStr::new("-Zbuild-std")), "-Zbuild-std");
        assert_eq!(quote(OsStr::new("/usr/bin/cargo")), "/usr/bin/cargo");
        assert_eq!(quote(OsStr::new("-max_total_time=30")), "-max_total_time=30");
    }

    #[test]
    fn quote_wraps_special_characters() {
        assert_eq!(quote(OsStr::new("")), "''");
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("-all,err+module")), "-all,err+module");
        assert_eq!(quote(OsStr::new("mscoree,mshtml=")), "mscoree,mshtml=");
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(quote(OsStr::new("${Status}")), "'${Status}'");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(fmt_duration(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(fmt_duration(Duration::from_millis(123_450)), "2m03.5s");
    }
}
