//! `cargo xtask check-targets`: type-check the workspace for the other Unix platforms the
//! library supports, using Debian's toolchain to build std from source (checking needs neither a
//! linker nor a prebuilt std for the target).

use std::path::PathBuf;

use crate::runner::{self, Error, Result};
use crate::toolchain::{self, DebianToolchain, split_at_dashdash, workspace_flag};

/// Targets type-checked by `check-targets`, in order.
pub const TARGETS: &[&str] = &["aarch64-apple-darwin", "x86_64-unknown-freebsd"];

/// Why this machine cannot run `check-targets`, or `None` if it can.
pub fn unavailable_reason() -> Option<String> {
    toolchain::apt_unavailable_reason()
}

/// `cargo check --workspace --target <T> -Zbuild-std [args]` for each of [`TARGETS`], with
/// `CARGO_TARGET_DIR=<workspace>/target/check-targets`.
pub fn check(extra_args: &[String]) -> Result {
    if let Some(reason) = unavailable_reason() {
        return Err(Error::new(format!("cannot run check-targets here: {reason}")));
    }
    let toolchain = DebianToolchain::prepare(&[])?;
    let target_dir = target_dir();
    let (cargo_args, _) = split_at_dashdash(extra_args);
    for target in TARGETS {
        println!("    -- {target}");
        runner::run(
            toolchain
                .cargo(&target_dir)
                .arg("check")
                .args(workspace_flag(cargo_args))
                .args(["--target", target, "-Zbuild-std"])
                .args(extra_args),
        )?;
    }
    Ok(())
}

/// `<workspace>/target/check-targets`.
fn target_dir() -> PathBuf {
    toolchain::workspace_root().join("target/check-targets")
}
