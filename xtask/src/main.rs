//! Project automation for bunctl-ipc: `cargo xtask <command>` (an alias in `.cargo/config.toml`);
//! `.ci/run` calls `cargo xtask ci`. Dependency-free on purpose: CI builds it every run.
#![forbid(unsafe_code)]

mod release;
mod run;
mod windows;

use std::env::consts::{ARCH, EXE_SUFFIX, OS};
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use run::{Result, Summary, cargo, cmd, err, find_in_path, in_ci, nightly_cargo, run};
use run::{scrubbed, step, target_dir};

const HELP: &str = "\
cargo xtask <COMMAND> [ARGS...]

ci [--skip-windows] [--skip-check-targets] [--skip-fuzz] [--skip-typescript]
    In order, stopping at the first failure, then a summary with each step's time: cargo fmt
    --check; cargo clippy --workspace --all-targets -D warnings; cargo test --workspace;
    proto-minimal; typescript; typescript-pack; cargo doc --no-deps --workspace
    (RUSTDOCFLAGS=-D warnings); docsrs; package; msrv; deny; windows; windows-clippy;
    windows-doc; check-targets; fuzz (30 s per target). Steps the machine cannot run are
    skipped with the reason; under CI=true (or CI=1) that fails, and --skip-* flags are
    refused. --skip-windows covers windows-clippy and windows-doc, --skip-typescript
    typescript-pack.
proto-minimal
    ipc-proto with --no-default-features (no codec): cargo tree shows no tokio, clippy, tests.
typescript
    clients/typescript against the Rust daemon: pinned Bun into target/tools, npm ci, tsc, bun
    test, Node smoke test. Needs Linux x86_64, Node >= 20 with npm.
typescript-pack
    npm pack --dry-run lists exactly what users need; the tarball installs into a fresh
    project (target/npm-pack) and imports under Node and Bun, and tsc checks its types.
docsrs
    cargo +nightly doc with --cfg docsrs (as docs.rs builds, badges included), -D warnings.
package
    cargo package --workspace (the crates cargo publish would upload, each built from its
    .crate file), then their own tests from the .crate files unpacked into target/package-test
    (siblings patched to each other's packaged copies).
msrv
    No package in the dependency graph declares a rust-version above the workspace's.
deny
    cargo deny check licenses bans sources (deny.toml), with the pinned cargo-deny from PATH or
    installed into target/tools.
windows [CARGO TEST ARGS...] [-- TEST BINARY ARGS...]
    cargo test --target x86_64-pc-windows-gnu -Zbuild-std under Wine, with Debian's rustc-web
    (installs missing apt packages, creates the wine prefix). Target dir target/windows
    ($WINDOWS_TEST_TARGET_DIR), prefix <target dir>/wineprefix ($WINEPREFIX).
windows-clippy [CARGO CLIPPY ARGS...] [-- CLIPPY ARGS...]
    The same with cargo clippy --all-targets -- -D warnings (Debian's rust-web-clippy).
windows-doc [CARGO DOC ARGS...]
    The same with cargo doc --no-deps --all-features, --cfg docsrs -D warnings.
check-targets [CARGO CHECK ARGS...]
    cargo check -Zbuild-std for aarch64-apple-darwin, x86_64-unknown-freebsd (Debian toolchain).
fuzz [--seconds N]
    Each cargo +nightly fuzz target for N seconds (default 30).
bench [--full]
    The benchmarks (--quick unless --full); bench-report writes BENCHMARKS.md and .svg; bench-ts.
bench-ts
    The TypeScript client beside the Rust client; rewrites that section of BENCHMARKS.md.
help, -h, --help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Err(e) = dispatch(&args) else { return ExitCode::SUCCESS };
    eprintln!("\nerror: {e}");
    ExitCode::FAILURE
}

fn dispatch(args: &[String]) -> Result {
    let (command, rest) = args.split_first().map_or(("", &[][..]), |(c, r)| (c.as_str(), r));
    let usage = |args: &str| err(format!("usage: cargo xtask {command}{args}"));
    let no_args = |f: fn() -> Result| if rest.is_empty() { f() } else { usage(" (no arguments)") };
    match (command, rest) {
        ("ci", _) => ci(&parse_skips(rest)?),
        ("windows", _) => step("windows: cargo test under wine", || windows::test(rest)),
        ("windows-clippy", _) => step("windows-clippy", || windows::clippy(rest)),
        ("check-targets", _) => step("check-targets", || windows::check_targets(rest)),
        ("typescript", _) => no_args(|| step("typescript", typescript)),
        ("proto-minimal", _) => no_args(|| step("proto-minimal", proto_minimal)),
        ("typescript-pack", _) => no_args(|| step("typescript-pack", typescript_pack)),
        ("docsrs", _) => no_args(|| step("docsrs", docsrs)),
        ("windows-doc", _) => step("windows-doc", || windows::doc(rest)),
        ("package", _) => no_args(|| step("package", release::package)),
        ("msrv", _) => no_args(|| step("msrv", release::msrv)),
        ("deny", _) => no_args(|| step("deny", release::deny)),
        ("bench-ts", _) => no_args(|| step("bench-ts", bench_ts)),
        ("bench", []) => bench(false),
        ("bench", [full]) if full == "--full" => bench(true),
        ("bench", _) => usage(" [--full]"),
        ("fuzz", []) => fuzz_step(30),
        ("fuzz", [flag, n]) if flag == "--seconds" => match n.parse() {
            Ok(seconds) => fuzz_step(seconds),
            Err(_) => err(format!("--seconds takes a whole number, not {n:?}")),
        },
        ("fuzz", _) => usage(" [--seconds N]"),
        ("" | "help" | "-h" | "--help", _) => {
            print!("{HELP}");
            if command.is_empty() { err("no command given") } else { Ok(()) }
        }
        _ => err(format!("unknown command `{command}` (see `cargo xtask --help`)")),
    }
}

/// The `--skip-<step>` flags of `ci`, as step names.
fn parse_skips(args: &[String]) -> Result<Vec<&str>> {
    let steps = ["windows", "check-targets", "fuzz", "typescript"];
    let step = |arg: &str| steps.into_iter().find(|s| arg.strip_prefix("--skip-") == Some(s));
    let unknown = |a| format!("unknown argument to `ci`: {a} (see `cargo xtask --help`)").into();
    args.iter().map(|a| step(a).ok_or_else(|| unknown(a))).collect()
}

/// A step of `ci`: name, why this machine cannot run it (or `None`), what it does.
type Step = (&'static str, fn() -> Option<String>, fn() -> Result);
const CI_STEPS: [Step; 16] = [
    ("fmt", || None, || run(&mut cargo("fmt --all -- --check"))),
    ("clippy", || None, || run(&mut cargo("clippy --workspace --all-targets -- -D warnings"))),
    ("test", || None, || run(&mut cargo("test --workspace"))),
    ("proto-minimal", || None, proto_minimal),
    ("typescript", unavailable, typescript),
    ("typescript-pack", unavailable, typescript_pack),
    ("doc", || None, || run(cargo("doc --no-deps --workspace").env("RUSTDOCFLAGS", "-D warnings"))),
    ("docsrs", nightly_missing, docsrs),
    ("package", || None, release::package),
    ("msrv", || None, release::msrv),
    ("deny", || None, release::deny),
    ("windows", windows::wine_missing, windows::test_in_ci),
    ("windows-clippy", windows::apt_missing, || windows::clippy(&[])),
    ("windows-doc", windows::apt_missing, || windows::doc(&[])),
    ("check-targets", windows::apt_missing, || windows::check_targets(&[])),
    ("fuzz", fuzz_idle, || fuzz(30)),
];

fn ci(skips: &[&str]) -> Result {
    if in_ci() && !skips.is_empty() {
        return err("--skip-* flags are refused under CI=true: CI must run every step");
    }
    let free = run::free_bytes(&target_dir());
    if let Some(free) = free {
        println!("    {} free for {}", gib(free), target_dir().display());
    }
    let mut s = Summary::default();
    let result = CI_STEPS.into_iter().try_for_each(|(name, unavailable, f)| {
        // `--skip-windows` covers windows-clippy too.
        let flag = skips.iter().find(|skip| name.starts_with(*skip)).map(|f| format!("--skip-{f}"));
        match flag.or_else(unavailable) {
            // Under CI even the fuzz smoke test may not be skipped (the machine has nightly).
            Some(reason) => s.skip(name, &reason, false),
            None => s.step(name, f),
        }
    });
    println!("\n==> summary\n    {}", s.0.join("\n    "));
    // A full disk fails a build with an error that names neither the step nor the cure.
    match run::free_bytes(&target_dir()) {
        Some(now) if result.is_err() && now < CI_DISK_NEED / 8 => println!(
            "    the disk is nearly full ({} free, {} at the start): CI needs about {}",
            gib(now),
            free.map_or("?".into(), gib),
            gib(CI_DISK_NEED)
        ),
        _ => {}
    }
    result
}

/// Roughly what one run of `ci` writes, fresh: 7.5 GB measured (every step's build, the
/// Windows one with its Wine prefix 2.6 GB, the Linux debug one 3.2 GB).
const CI_DISK_NEED: u64 = 8 << 30;

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `ipc-proto` without default features: no tokio in its normal dependencies, then clippy and
/// the tests of what is left (messages, errors, limits, blocking helpers).
fn proto_minimal() -> Result {
    let tree = "tree -p ipc-proto -e normal --no-default-features --prefix none";
    let tree = run::output(&mut cargo(tree))?;
    if let Some(line) = tree.lines().find(|line| line.starts_with("tokio")) {
        return err(format!("ipc-proto without default features depends on {line}"));
    }
    println!("    no tokio in: {}", tree.lines().collect::<Vec<_>>().join(", "));
    let clippy = "clippy -p ipc-proto --no-default-features --all-targets -- -D warnings";
    run(&mut cargo(clippy))?;
    run(&mut cargo("test -p ipc-proto --no-default-features"))
}

fn fuzz_step(seconds: u32) -> Result {
    let mut summary = Summary::default();
    match fuzz_idle() {
        Some(reason) => summary.skip("fuzz", &reason, true),
        None => summary.step("fuzz", || fuzz(seconds)),
    }
}

/// Why the fuzz step has nothing to do here, or `None`.
fn fuzz_idle() -> Option<String> {
    if !run::workspace_root().join("fuzz").is_dir() {
        return Some("no fuzz targets yet (no fuzz/ directory)".into());
    }
    nightly_missing()
}

/// Why there is no nightly toolchain here, or `None`.
fn nightly_missing() -> Option<String> {
    let nightly = run::output(&mut nightly_cargo("--version")).is_ok();
    (!nightly).then(|| "no nightly toolchain (`cargo +nightly --version` fails)".into())
}

/// The docs as docs.rs builds them (Linux): nightly with `--cfg docsrs`, so the
/// `doc(cfg(...))` platform and feature badges are checked, in `target/docsrs`.
fn docsrs() -> Result {
    let mut doc = nightly_cargo("doc --no-deps --workspace --all-features");
    doc.env("RUSTDOCFLAGS", "--cfg docsrs -D warnings");
    run(doc.env("CARGO_TARGET_DIR", target_dir().join("docsrs")))
}

/// Each `cargo fuzz` target for `seconds`, from the committed seeds (`fuzz/seeds/<target>`),
/// growing the git-ignored `fuzz/corpus/<target>`.
fn fuzz(seconds: u32) -> Result {
    let dir = run::workspace_root().join("fuzz");
    if run::output(&mut nightly_cargo("fuzz --version")).is_err() {
        run(&mut cargo("install cargo-fuzz --locked"))?;
    }
    for target in run::output(&mut nightly_cargo("fuzz list"))?.split_whitespace() {
        let corpus = dir.join("corpus").join(target);
        fs::create_dir_all(&corpus)?;
        let mut cmd = nightly_cargo(&format!("fuzz run {target}"));
        cmd.arg(&corpus).args(Some(dir.join("seeds").join(target)).filter(|d| d.is_dir()));
        run(cmd.args(["--", &format!("-max_total_time={seconds}")]))?;
    }
    Ok(())
}

// The TypeScript client and the benchmarks (`bench-report` keeps plotters out of xtask's build).

const BUN_VERSION: &str = "1.4.5";
/// Bun's Linux x86_64 binary (it needs AVX2; `-baseline` does not).
const BUN_PACKAGE: &str = "@oven/bun-linux-x64";
const HOW_TO_GET_NPM: &str = "install Node.js >= 20 with npm (https://nodejs.org/en/download \
    or NodeSource; Debian 12's `nodejs` is 18, too old), then rerun";

/// Why this machine cannot run Bun and the client's tests, or `None`.
fn unavailable() -> Option<String> {
    if (OS, ARCH) != ("linux", "x86_64") {
        return Some(format!("Bun is pinned as {BUN_PACKAGE} (Linux x86_64), this is {OS} {ARCH}"));
    }
    let missing = find_in_path("npm").is_none() || find_in_path("node").is_none();
    missing.then(|| format!("npm/node not found in PATH: {HOW_TO_GET_NPM}"))
}

/// Checks for Node >= 20 with npm and installs the pinned Bun into `target/tools/bun-<version>`
/// unless it is there (nothing is installed globally); returns Bun's path.
fn ensure_bun() -> Result<PathBuf> {
    if let Some(reason) = unavailable() {
        return err(format!("cannot run the TypeScript client here: {reason}"));
    }
    let node = run::output(&mut cmd("node --version"))?;
    match node.trim_start_matches('v').split('.').next().and_then(|m| m.parse::<u32>().ok()) {
        Some(major) if major >= 20 => println!("    node {node}"),
        _ => return err(format!("node {node} is too old: {HOW_TO_GET_NPM}")),
    }
    let prefix = target_dir().join(format!("tools/bun-{BUN_VERSION}"));
    let bun = prefix.join(format!("node_modules/{BUN_PACKAGE}/bin/bun"));
    if run::output(scrubbed(&bun).arg("--version")).is_ok_and(|v| v == BUN_VERSION) {
        println!("    bun {BUN_VERSION}: {}", bun.display());
        return Ok(bun);
    }
    fs::create_dir_all(&prefix)?;
    let mut npm =
        cmd("npm install --no-save --no-package-lock --no-audit --no-fund --ignore-scripts");
    run(npm.arg("--prefix").arg(&prefix).arg(format!("{BUN_PACKAGE}@{BUN_VERSION}")))?;
    Ok(bun)
}

/// `cargo build [--release] -p bunctl-ipc-cli`; returns the `bunctl-ipc` binary.
fn build_daemon(profile: &str) -> Result<PathBuf> {
    let release = if profile == "release" { "--release" } else { "" };
    run(&mut cargo(&format!("build {release} -p bunctl-ipc-cli")))?;
    Ok(target_dir().join(format!("{profile}/bunctl-ipc{EXE_SUFFIX}")))
}

/// Bun, the daemon (`BUNCTL_IPC_BIN`), `npm ci`, `tsc --noEmit`, `bun test`, then `tsc` to
/// `dist/` and the Node smoke test of it.
fn typescript() -> Result {
    let bun = ensure_bun()?;
    let daemon = build_daemon("debug")?;
    let mut bun_test = scrubbed(bun);
    bun_test.arg("test");
    let tsc = "node node_modules/typescript/bin/tsc";
    let steps = [
        cmd("npm ci --no-audit --no-fund"),
        cmd(&format!("{tsc} --noEmit -p tsconfig.json")),
        bun_test,
        cmd(&format!("{tsc} -p tsconfig.build.json")),
        cmd("node test/node-smoke.mjs"),
    ];
    let dir = run::workspace_root().join("clients/typescript");
    for mut step in steps {
        run(step.current_dir(&dir).env("BUNCTL_IPC_BIN", &daemon))?;
    }
    Ok(())
}

/// The npm package as its users get it. `npm pack --dry-run --json` must list exactly
/// `package.json`, the README, the license texts, `src/*.ts` and for each of them its
/// `dist/*.js` and `.d.ts` (and their maps). Then the packed tarball is installed into a fresh
/// project in `target/npm-pack` and `clients/typescript/pack-check` is run there: the imports
/// under Node (dist/) and Bun (src/), and tsc against the package's types.
fn typescript_pack() -> Result {
    let bun = ensure_bun()?;
    let dir = run::workspace_root().join("clients/typescript");
    if !dir.join("node_modules/typescript").is_dir() {
        run(cmd("npm ci --no-audit --no-fund").current_dir(&dir))?;
    }
    let mut dry_run = cmd("npm pack --dry-run --json");
    run::echo(dry_run.current_dir(&dir));
    let listing = run::output(&mut dry_run)?;
    let packs: Vec<&str> = release::json_elements(&listing).collect();
    let files = packs.first().and_then(|pack| release::json_field(pack, "files"));
    let paths: Vec<String> = release::json_elements(files.unwrap_or("[]"))
        .filter_map(|file| release::json_field(file, "path"))
        .map(|path| path.trim_matches('"').to_owned())
        .collect();
    check_npm_files(&paths)?;
    println!("    npm pack lists {} files: {}", paths.len(), paths.join(" "));

    let out = target_dir().join("npm-pack");
    let project = out.join("project");
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    fs::create_dir_all(&project)?;
    let mut pack = cmd("npm pack --pack-destination");
    run::echo(pack.arg(&out).current_dir(&dir));
    let packed = run::output(&mut pack)?;
    let tarball = out.join(packed.lines().last().unwrap_or_default().trim());
    if !tarball.is_file() {
        return err(format!("npm pack wrote no tarball into {}", out.display()));
    }
    let manifest = r#"{ "name": "pack-check", "private": true, "type": "module" }"#;
    fs::write(project.join("package.json"), manifest)?;
    for file in ["imports.mjs", "types.ts"] {
        fs::copy(dir.join("pack-check").join(file), project.join(file))?;
    }
    let install = "npm install --no-audit --no-fund --no-package-lock --ignore-scripts";
    run(cmd(install).arg(&tarball).current_dir(&project))?;
    run(cmd("node imports.mjs").current_dir(&project))?;
    run(scrubbed(bun).arg("imports.mjs").current_dir(&project))?;
    let mut tsc = cmd("node");
    tsc.arg(dir.join("node_modules/typescript/bin/tsc"));
    tsc.args(
        "--noEmit --strict --target es2022 --module nodenext --types node --typeRoots".split(' '),
    );
    run(tsc.arg(dir.join("node_modules/@types")).arg("types.ts").current_dir(&project))
}

/// Checks the files `npm pack` lists (see [`typescript_pack`]).
fn check_npm_files(paths: &[String]) -> Result {
    let fixed = ["package.json", "README.md", "LICENSE-MIT", "LICENSE-APACHE"];
    let modules: Vec<&str> = paths
        .iter()
        .filter_map(|p| p.strip_prefix("src/")?.strip_suffix(".ts"))
        .filter(|m| !m.contains('/') && !m.ends_with(".d"))
        .collect();
    let built = |m: &str| ["js", "js.map", "d.ts", "d.ts.map"].map(|ext| format!("dist/{m}.{ext}"));
    let mut expected: Vec<String> = fixed.iter().map(|f| f.to_string()).collect();
    for m in &modules {
        expected.push(format!("src/{m}.ts"));
        expected.extend(built(m));
    }
    let missing: Vec<&String> = expected.iter().filter(|e| !paths.contains(e)).collect();
    let extra: Vec<&String> = paths.iter().filter(|p| !expected.contains(p)).collect();
    if !modules.contains(&"index") || !missing.is_empty() || !extra.is_empty() {
        return err(format!(
            "npm pack lists the wrong files: missing {missing:?}, not for users {extra:?} (check \
             `files` in clients/typescript/package.json and its prepack script)"
        ));
    }
    Ok(())
}

/// The TypeScript client's round trip and requests/s beside the Rust client's, against one
/// release daemon: `bench-report ts <bun> <daemon>` measures and rewrites that section of
/// `BENCHMARKS.md`.
fn bench_ts() -> Result {
    let bun = ensure_bun()?;
    let daemon = build_daemon("release")?;
    run(cargo("run --release -q -p bench-report -- ts").arg(bun).arg(daemon))
}

/// The benchmarks of `bunctl-ipc`, then `bench-report <figures.tsv> <criterion dir> <load>
/// [--full]` writes `BENCHMARKS.md` and `BENCHMARKS.svg`, then `bench-ts` where Bun can run.
fn bench(full: bool) -> Result {
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned();
    let (target, quick) = (target_dir(), if full { "" } else { "--quick" });
    let (criterion, mut figures) = (target.join("criterion"), String::new());
    // `report`'s whole-process rows run the CLI against its own daemon.
    let cli = build_daemon("release")?;
    for name in ["codec", "report", "connections"] {
        let warm_up = if name == "codec" && !full { "--warm-up-time 1" } else { "" };
        let mut cmd = cargo(&format!("bench -p bunctl-ipc --bench {name} -- {quick} {warm_up}"));
        // `report` and `connections` print figures as `group case impl metric value` lines.
        let mut collect = |line: &str| {
            figures.extend((line.split('\t').count() == 5).then(|| format!("{line}\n")))
        };
        let cmd = cmd.env("CRITERION_HOME", &criterion).env("BUNCTL_IPC_BIN", &cli);
        step(&format!("bench: {name}"), || run::run_with(cmd, Some(&mut collect)))?;
    }
    let file = target.join("bench/figures.tsv");
    fs::create_dir_all(target.join("bench"))?;
    fs::write(&file, figures)?;
    let mut report = cargo("run --release -q -p bench-report --");
    report.arg(&file).arg(&criterion).arg(load_before).args(full.then_some("--full"));
    step("bench: write BENCHMARKS.md and BENCHMARKS.svg", || run(&mut report))?;
    match unavailable() {
        Some(reason) => println!("\nbench-ts skipped: {reason}"),
        None => step("bench-ts: the TypeScript client", bench_ts)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_files_are_exactly_what_users_need() {
        let mut files: Vec<String> = ["package.json", "README.md", "LICENSE-MIT", "LICENSE-APACHE"]
            .into_iter()
            .chain(["src/index.ts", "dist/index.js", "dist/index.js.map"])
            .chain(["dist/index.d.ts", "dist/index.d.ts.map"])
            .map(String::from)
            .collect();
        assert!(check_npm_files(&files).is_ok());
        files.push("test/golden.test.ts".into());
        assert!(check_npm_files(&files).is_err());
        files.pop();
        files.retain(|f| f != "LICENSE-MIT");
        assert!(check_npm_files(&files).is_err());
        files.retain(|f| f != "dist/index.d.ts");
        assert!(check_npm_files(&files).is_err());
    }

    #[test]
    fn parses_skip_flags() {
        let args = ["--skip-fuzz".to_string(), "--skip-windows".to_string()];
        assert_eq!(parse_skips(&args).ok(), Some(vec!["fuzz", "windows"]));
        assert!(parse_skips(&["--skip-doc".to_string()]).is_err());
        assert!(parse_skips(&["--bogus".to_string()]).is_err());
    }
}
