//! Toolchains and environment hygiene.
//!
//! Two kinds of `cargo` are used:
//!
//! * the **host** cargo (the rustup toolchain that runs xtask, from `$CARGO`) for fmt, clippy,
//!   test and `cargo install`, see [`host_cargo`];
//! * **Debian's** `rustc-web`/`cargo-web` (1.96) with the matching std source from
//!   `rust-web-src`, for everything that needs a foreign target: rustup's toolchains here have no
//!   `rust-src` and no Windows/macOS/FreeBSD std and cannot download them, so std is compiled from
//!   source with `RUSTC_BOOTSTRAP=1 cargo -Zbuild-std`. See [`DebianToolchain`] — the only place
//!   that builds such a command, shared by `windows`, `windows-clippy` and `check-targets`.
//!
//! `cargo run` (and rustup's proxy before it) put variables into xtask's environment that would
//! silently redirect a child `cargo` back to the rustup toolchain or confuse it (`RUSTUP_TOOLCHAIN`,
//! `CARGO`, `CARGO_MANIFEST_DIR`, `LD_LIBRARY_PATH` entries pointing into the rustup sysroot, ...);
//! [`scrubbed`] and [`DebianToolchain::cargo`] remove them from the child's environment.

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runner::{self, Error, Result};

/// Debian's cargo (package `cargo-web`), bypassing the rustup proxies in `~/.cargo/bin`.
pub const DEBIAN_CARGO: &str = "/usr/bin/cargo";
/// Debian's rustc (package `rustc-web`).
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// Debian's rustdoc (package `rustc-web`).
pub const DEBIAN_RUSTDOC: &str = "/usr/bin/rustdoc";
/// Debian's clippy (package `rust-web-clippy`), found by `cargo clippy` via `PATH`.
pub const DEBIAN_CARGO_CLIPPY: &str = "/usr/bin/cargo-clippy";

/// Packages that make up the Debian toolchain able to build std for any target.
pub const TOOLCHAIN_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src"];

/// Packages of the `rustc-web` source package that must all have exactly the same version
/// (std source vs. compiler, clippy-driver vs. the std it loads).
const LOCKSTEP_PACKAGES: &[&str] = &["cargo-web", "rust-web-src", "rust-web-clippy"];

/// Variables set by `cargo run` / rustup / an outer cargo that must not reach a child that is
/// supposed to use Debian's toolchain. (Prefixes in [`TOOLCHAIN_VAR_PREFIXES`].)
const TOOLCHAIN_VARS: &[&str] = &[
    "CARGO",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_TOOLCHAIN_SOURCE",
    "RUST_RECURSION_COUNT",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_BOOTSTRAP",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_MAKEFLAGS",
    "CLIPPY_ARGS",
    "__CARGO_DEFAULT_LIB_METADATA",
];

/// Prefixes of variables removed for the Debian toolchain: build overrides (`CARGO_BUILD_RUSTC`,
/// `CARGO_BUILD_TARGET`, ...) and per-target settings (`CARGO_TARGET_DIR`, runners, linkers).
const TOOLCHAIN_VAR_PREFIXES: &[&str] = &["CARGO_BUILD_", "CARGO_TARGET_"];

/// Variables `cargo run` sets to describe the xtask package itself; meaningless for children.
const PACKAGE_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

/// Prefix of the `CARGO_PKG_*` variables `cargo run` sets for the xtask package.
const PACKAGE_VAR_PREFIX: &str = "CARGO_PKG_";

/// The workspace root: the parent of the xtask package directory.
///
/// Taken from `CARGO_MANIFEST_DIR` as set by `cargo run` at run time (so a moved checkout with a
/// stale binary still works), falling back to the compile-time value.
pub fn workspace_root() -> PathBuf {
    let xtask_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    xtask_dir.parent().map(Path::to_path_buf).unwrap_or(xtask_dir)
}

/// A command for `program`, run in the workspace root, with the `cargo run` package variables
/// removed and `LD_LIBRARY_PATH` cleaned of the entries `cargo run` added (rustup sysroot, target
/// dir). The toolchain selection (`RUSTUP_TOOLCHAIN`, `CARGO`) is kept.
pub fn scrubbed(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    for (key, _) in env::vars_os() {
        let key_str = key.to_string_lossy();
        if PACKAGE_VARS.contains(&&*key_str) || key_str.starts_with(PACKAGE_VAR_PREFIX) {
            cmd.env_remove(&key);
        }
    }
    if let Some(old) = env::var_os("LD_LIBRARY_PATH") {
        let kept = filter_library_path(env::split_paths(&old), &cargo_run_library_dirs());
        match env::join_paths(kept) {
            Ok(new) if new.is_empty() => {
                cmd.env_remove("LD_LIBRARY_PATH");
            }
            Ok(new) if new != old => {
                cmd.env("LD_LIBRARY_PATH", new);
            }
            _ => {}
        }
    }
    cmd
}

/// The host cargo (the toolchain running xtask, i.e. `$CARGO`), see [`scrubbed`].
pub fn host_cargo() -> Command {
    scrubbed(env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")))
}

/// `cargo +<toolchain>` through rustup's proxy, with the outer toolchain selection removed.
pub fn rustup_cargo(toolchain: &str) -> Command {
    let mut cmd = scrubbed("cargo");
    for var in ["CARGO", "RUSTUP_TOOLCHAIN", "RUST_RECURSION_COUNT", "RUSTC"] {
        cmd.env_remove(var);
    }
    cmd.arg(format!("+{toolchain}"));
    cmd
}

/// Directories `cargo run` prepends to `LD_LIBRARY_PATH`: the workspace target dir and the rustup
/// toolchain sysroots.
fn cargo_run_library_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![workspace_root().join("target")];
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    let rustup_home = env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
    if let Some(home) = rustup_home {
        dirs.push(home.join("toolchains"));
    }
    dirs
}

/// Keeps the entries of a library search path that are not inside any of `drop_under`.
fn filter_library_path(
    entries: impl IntoIterator<Item = PathBuf>,
    drop_under: &[PathBuf],
) -> Vec<PathBuf> {
    entries
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty() && !drop_under.iter().any(|d| p.starts_with(d)))
        .collect()
}

/// Why this machine cannot provide Debian's toolchain packages, or `None` if it can
/// (a Debian system with `apt-get`).
pub fn apt_unavailable_reason() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some(format!("needs a Debian 12 host with apt-get, this is {}", env::consts::OS));
    }
    if !Path::new("/etc/debian_version").is_file() {
        return Some("needs a Debian 12 host with apt-get: no /etc/debian_version".into());
    }
    if find_in_path("apt-get").is_none() {
        return Some("needs a Debian 12 host with apt-get: apt-get not found in PATH".into());
    }
    None
}

/// Full path of `name` if it is an executable file in one of the `PATH` directories.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Installed version of a Debian package, or `None` if it is not (fully) installed.
fn installed_version(package: &str) -> Option<String> {
    let out =
        runner::output(scrubbed("dpkg-query").args(["-W", "-f=${Status}|${Version}", package]))
            .ok()?;
    let (status, version) = out.split_once('|')?;
    (status == "install ok installed").then(|| version.to_owned())
}

/// Installs those of `packages` that are missing (`apt-get update -qq` + `apt-get install`),
/// through `sudo` when not running as root. Installs nothing — and runs no apt — when all are there.
pub fn ensure_packages(packages: &[&str]) -> Result {
    let missing: Vec<&str> =
        packages.iter().copied().filter(|p| installed_version(p).is_none()).collect();
    if missing.is_empty() {
        println!("    apt packages present: {}", packages.join(" "));
        return Ok(());
    }
    if let Some(reason) = apt_unavailable_reason() {
        return Err(Error::new(format!("missing packages {}: {reason}", missing.join(" "))));
    }
    println!("    installing missing apt packages: {}", missing.join(" "));
    let as_root = runner::output(Command::new("id").arg("-u")).is_ok_and(|uid| uid == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if as_root {
            scrubbed("apt-get")
        } else {
            let mut sudo = scrubbed("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args);
        cmd
    };
    runner::run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(packages).env("DEBIAN_FRONTEND", "noninteractive");
    runner::run(&mut install)
}

/// Debian's `rustc-web` toolchain, verified to be installed and consistent. Obtained from
/// [`DebianToolchain::prepare`]; the only way to get a Debian `cargo` command is [`Self::cargo`].
pub struct DebianToolchain {
    _verified: (),
}

impl DebianToolchain {
    /// Installs what is missing of [`TOOLCHAIN_PACKAGES`] + `extra_packages`, then checks that all
    /// `rustc-web` sibling packages have the compiler's exact version (std source and clippy must
    /// match the compiler) and that the std source is where `-Zbuild-std` looks for it.
    pub fn prepare(extra_packages: &[&str]) -> Result<Self> {
        let mut packages = TOOLCHAIN_PACKAGES.to_vec();
        for package in extra_packages {
            if !packages.contains(package) {
                packages.push(package);
            }
        }
        ensure_packages(&packages)?;

        let version = installed_version("rustc-web")
            .ok_or_else(|| Error::new("rustc-web is not installed"))?;
        for package in LOCKSTEP_PACKAGES.iter().filter(|p| packages.contains(p)) {
            let theirs = installed_version(package).unwrap_or_else(|| "(none)".into());
            if theirs != version {
                return Err(Error::new(format!(
                    "version mismatch: rustc-web {version} vs {package} {theirs} \
                     (they must match exactly; run apt-get install for both)"
                )));
            }
        }

        let sysroot = runner::output(scrubbed(DEBIAN_RUSTC).args(["--print", "sysroot"]))?;
        let std_src = Path::new(&sysroot).join("lib/rustlib/src/rust/library");
        if !std_src.join("Cargo.lock").is_file() {
            return Err(Error::new(format!(
                "std source not found at {} (package rust-web-src)",
                std_src.display()
            )));
        }
        if packages.contains(&"rust-web-clippy") && !Path::new(DEBIAN_CARGO_CLIPPY).is_file() {
            return Err(Error::new(format!(
                "{DEBIAN_CARGO_CLIPPY} missing although rust-web-clippy is installed"
            )));
        }
        println!("    debian toolchain: rustc-web {version}, std source {}", std_src.display());
        Ok(Self { _verified: () })
    }

    /// A `cargo` command of this toolchain writing to `target_dir`, run in the workspace root.
    ///
    /// Environment: everything from [`scrubbed`], minus every variable that selects or wraps a
    /// toolchain (see `TOOLCHAIN_VARS`), plus `RUSTC`/`RUSTDOC` pointing at Debian's binaries,
    /// `RUSTC_BOOTSTRAP=1` (for `-Zbuild-std` on a stable compiler), `CARGO_TARGET_DIR`, and
    /// `/usr/bin` first in `PATH` so that cargo subcommands (`cargo clippy`) resolve to Debian's
    /// `cargo-clippy` instead of rustup's proxy in `~/.cargo/bin`, which cargo would otherwise
    /// prefer and which would pair rustup's clippy-driver with a std built by Debian's rustc.
    pub fn cargo(&self, target_dir: &Path) -> Command {
        let mut cmd = scrubbed(DEBIAN_CARGO);
        for (key, _) in env::vars_os() {
            let key_str = key.to_string_lossy();
            if TOOLCHAIN_VARS.contains(&&*key_str)
                || TOOLCHAIN_VAR_PREFIXES.iter().any(|p| key_str.starts_with(p))
            {
                cmd.env_remove(&key);
            }
        }
        let mut path = vec![PathBuf::from("/usr/bin")];
        if let Some(old) = env::var_os("PATH") {
            path.extend(env::split_paths(&old).filter(|p| p != Path::new("/usr/bin")));
        }
        if let Ok(path) = env::join_paths(path) {
            cmd.env("PATH", path);
        }
        cmd.env("RUSTC", DEBIAN_RUSTC)
            .env("RUSTDOC", DEBIAN_RUSTDOC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", target_dir);
        cmd
    }
}

/// Splits user-supplied cargo arguments at the first `--` into (cargo args, tool args).
pub fn split_at_dashdash(args: &[String]) -> (&[String], &[String]) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[]),
    }
}

/// `["--workspace"]` unless the user's cargo args already select packages (`-p`/`--package`,
/// which cargo would silently ignore next to `--workspace`).
pub fn workspace_flag(cargo_args: &[String]) -> &'static [&'static str] {
    let selects = cargo_args.iter().any(|a| {
        a == "-p" || a == "--package" || a.starts_with("--package=") || a.starts_with("-p")
    });
    if selects { &[] } else { &["--workspace"] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn library_path_drops_cargo_run_entries() {
        let root = PathBuf::from("/work/main");
        let rustup = PathBuf::from("/root/.rustup/toolchains");
        let entries = vec![
            root.join("target/debug"),
            root.join("target/debug/deps"),
            rustup.join("stable/lib"),
            PathBuf::new(),
            PathBuf::from("/opt/lib"),
        ];
        let kept = filter_library_path(entries, &[root.join("target"), rustup]);
        assert_eq!(kept, vec![PathBuf::from("/opt/lib")]);
    }

    #[test]
    fn dashdash_splits_cargo_and_tool_args() {
        let args = strings(&["-p", "x", "--", "--nocapture"]);
        let (cargo, tool) = split_at_dashdash(&args);
        assert_eq!(cargo, &args[..2]);
        assert_eq!(tool, &args[3..]);
        let none: Vec<String> = Vec::new();
        assert_eq!(split_at_dashdash(&none), (&none[..], &none[..]));
    }

    #[test]
    fn workspace_flag_yields_to_package_selection() {
        assert_eq!(workspace_flag(&[]), ["--workspace"]);
        assert_eq!(workspace_flag(&strings(&["--lib"])), ["--workspace"]);
        assert!(workspace_flag(&strings(&["-p", "ipc-proto"])).is_empty());
        assert!(workspace_flag(&strings(&["--package=ipc-proto"])).is_empty());
        assert!(workspace_flag(&strings(&["-pipc-proto"])).is_empty());
    }
}
