//! Project automation for bunctl-ipc, run as `cargo xtask <command>` (an alias in
//! `.cargo/config.toml` for `cargo run --quiet --package xtask --`).
//!
//! Dependency-free on purpose, so it compiles in seconds. See [`HELP`] for the commands;
//! `.ci/run` calls `cargo xtask ci`.

mod bench;
mod ci;
mod runner;
mod targets;
mod toolchain;
mod typescript;
mod windows;

use std::env;
use std::process::ExitCode;

use runner::{Error, Result, step};

/// `cargo xtask --help`.
const HELP: &str = "\
cargo xtask <COMMAND> [ARGS...]

Commands:
  ci [--skip-windows] [--skip-check-targets] [--skip-fuzz] [--skip-typescript]
        Everything CI runs, in order, stopping at the first failure:
          cargo fmt --all -- --check
          cargo clippy --workspace --all-targets -- -D warnings
          cargo test --workspace                  (includes doc tests)
          typescript                              (see below)
          cargo doc --no-deps --workspace         (RUSTDOCFLAGS=-D warnings)
          windows, windows-clippy                 (see below)
          check-targets                           (see below)
          fuzz: if fuzz/ exists and nightly is installed, each `cargo +nightly fuzz list`
                target runs for 30 s (cargo-fuzz is installed if missing)
        windows/windows-clippy/check-targets are skipped, with the reason printed, only when
        the machine cannot run them (not Debian / no apt-get / not x86_64 for wine);
        typescript when npm/node are missing or the host is not Linux x86_64; fuzz is
        skipped when fuzz/ exists but no nightly toolchain is installed.
        The --skip-* flags are for fast local iteration.
        Under CI=true nothing is ever skipped: an impossible step fails, and --skip-* flags are
        refused with an error.

  windows [CARGO TEST ARGS...] [-- TEST BINARY ARGS...]
        cargo test --workspace --target x86_64-pc-windows-gnu -Zbuild-std [ARGS] under Wine,
        with Debian's rustc-web/cargo-web + rust-web-src (RUSTC_BOOTSTRAP=1), mingw-w64 as
        linker and wine as runner. Installs missing apt packages, creates the wine prefix and
        a stand-in bcryptprimitives.dll (missing in Wine 8). `--workspace` is left out when
        ARGS select packages with -p/--package.
        Target dir: target/windows ($WINDOWS_TEST_TARGET_DIR); prefix: <target dir>/wineprefix
        ($WINEPREFIX). $WINEDEBUG and $WINEDLLOVERRIDES are respected when set.

  windows-clippy [CARGO CLIPPY ARGS...] [-- CLIPPY ARGS...]
        cargo clippy --workspace --all-targets --target x86_64-pc-windows-gnu -Zbuild-std
        [ARGS] -- -D warnings, with Debian's rust-web-clippy (same version as rustc-web).

  check-targets [CARGO CHECK ARGS...]
        cargo check --workspace --target <T> -Zbuild-std [ARGS] with the Debian toolchain for
        T in aarch64-apple-darwin, x86_64-unknown-freebsd. Target dir: target/check-targets.

  typescript
        The TypeScript client (clients/typescript) against the Rust daemon: installs Bun
        (npm package @oven/bun-linux-x64, pinned) into target/tools/bun-<version>, builds
        bunctl-ipc-cli, then npm ci, tsc --noEmit, bun test (BUNCTL_IPC_BIN = the built
        daemon), tsc to dist/ and the Node smoke test of dist/. Needs Node >= 20 with npm.

  fuzz [--seconds N]
        Only the fuzz step of `ci`: each target for N seconds (default 30), nightly +
        cargo-fuzz, from the seeds in fuzz/seeds/<target>, growing fuzz/corpus/<target>.

  bench [--full]
        Runs the benchmarks of bunctl-ipc (criterion's `codec`, the bench binaries `report` and
        `connections`; each with --quick unless --full), then `cargo run --release -p
        bench-report`, which writes BENCHMARKS.md and BENCHMARKS.svg at the workspace root:
        machine, date, every figure for bunctl-ipc and the baselines, ratios, the issue-7
        targets, and benches/NOTES.md; then bench-ts. Not part of `ci`. Run it on a quiet
        machine (see the load average it records); `strace` adds the syscall counts when
        installed.

  bench-ts
        The TypeScript client's round trip (p50/p99) and requests/s with 16 in flight, beside
        the Rust client's, against one release-built `bunctl-ipc serve`, in the same run
        (`bench-report ts`); rewrites that section of BENCHMARKS.md (also run by `bench`).

  help, -h, --help
        This text.

The Debian-toolchain commands run with a cleaned environment: variables from rustup and
`cargo run` (RUSTUP_TOOLCHAIN, CARGO, RUSTC*, RUSTFLAGS, CARGO_BUILD_*, CARGO_TARGET_*,
CARGO_PKG_*, LD_LIBRARY_PATH entries into rustup/target) are removed, /usr/bin leads PATH.
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e}");
            ExitCode::from(e.code)
        }
    }
}

/// Runs the subcommand named by `args[0]` with the remaining arguments.
fn dispatch(args: &[String]) -> Result {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{HELP}");
        return Err(Error { message: "no command given".into(), code: 2 });
    };
    match command.as_str() {
        "ci" => ci::ci(&ci::Options::parse(rest)?),
        "windows" => step("windows: cargo test under wine", || windows::test(rest)),
        "windows-clippy" => step("windows-clippy", || windows::clippy(rest)),
        "check-targets" => step("check-targets", || targets::check(rest)),
        "typescript" => match rest {
            [] => step("typescript", typescript::run),
            _ => Err(Error::new("usage: cargo xtask typescript (no arguments)")),
        },
        "bench" => bench::bench(rest),
        "bench-ts" => typescript::bench(rest),
        "fuzz" => match rest {
            [] => ci::fuzz_only(ci::FUZZ_SECONDS),
            [flag, n] if flag == "--seconds" => match n.parse() {
                Ok(seconds) => ci::fuzz_only(seconds),
                Err(_) => Err(Error::new(format!("--seconds takes a whole number, not {n:?}"))),
            },
            _ => Err(Error::new("usage: cargo xtask fuzz [--seconds N]")),
        },
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(Error {
            message: format!("unknown command `{other}` (see `cargo xtask --help`)"),
            code: 2,
        }),
    }
}
