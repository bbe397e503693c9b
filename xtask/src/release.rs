//! What a release needs checked: `package` (the crates as crates.io would get them, built and
//! tested from their `.crate` files), `msrv` (the declared `rust-version` against every
//! dependency's) and `deny` (licenses, bans and sources of the dependency tree).

use std::env;
use std::fs;
use std::path::PathBuf;

use crate::run::{self, Result, cargo, cmd, err, in_ci, run, scrubbed, target_dir, workspace_root};

/// `cargo package --workspace` for every crate without `publish = false`, which is what
/// `cargo publish --workspace` packages and how it verifies them: each is built from its
/// `.crate` file, its sibling dependencies from theirs. Then the packaged crates' own tests:
/// the `.crate` files unpacked into one scratch workspace whose `[patch.crates-io]` points each
/// crate at the unpacked siblings, with the repository's `Cargo.lock` and target directory (so
/// only the packaged crates themselves are compiled again).
pub fn package() -> Result {
    let packages = target_dir().join("package");
    // Only the `.crate` files this run writes are tested.
    for entry in fs::read_dir(&packages).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "crate") {
            fs::remove_file(entry.path())?;
        }
    }
    let (published, unpublished) = members()?;
    forget_unpacked(&published)?;
    let mut package = cargo("package --workspace --locked");
    for name in unpublished {
        package.args(["--exclude", &name]);
    }
    // A developer may check before committing; CI packages exactly what was committed.
    run(package.args((!in_ci()).then_some("--allow-dirty")))?;

    let scratch = target_dir().join("package-test");
    if scratch.exists() {
        fs::remove_dir_all(&scratch)?;
    }
    fs::create_dir_all(&scratch)?;
    let mut members = Vec::new();
    for entry in fs::read_dir(&packages)? {
        let path = entry?.path();
        let Some(stem) = path.file_name().and_then(|n| n.to_str()?.strip_suffix(".crate")) else {
            continue;
        };
        run(cmd("tar -xzf").arg(&path).arg("-C").arg(&scratch))?;
        members.push(stem.to_owned());
    }
    members.sort();
    if members.is_empty() {
        return err(format!("cargo package left no .crate file in {}", packages.display()));
    }
    fs::write(scratch.join("Cargo.toml"), scratch_manifest(&members))?;
    fs::copy(workspace_root().join("Cargo.lock"), scratch.join("Cargo.lock"))?;
    println!("    testing the packaged crates in {}: {}", scratch.display(), members.join(" "));
    let mut test = cargo("test --workspace");
    run(test.current_dir(&scratch).env("CARGO_TARGET_DIR", target_dir()))
}

/// The names of the workspace members: those to publish, and those with `publish = false`
/// (`"publish":[]` in cargo metadata).
fn members() -> Result<(Vec<String>, Vec<String>)> {
    let metadata = run::output(&mut cargo("metadata --format-version 1 --no-deps --locked"))?;
    let packages = json_field(&metadata, "packages").ok_or("no packages in cargo metadata")?;
    let (mut published, mut unpublished) = (Vec::new(), Vec::new());
    for package in json_elements(packages) {
        let Some(name) = json_field(package, "name") else { continue };
        let list = if json_field(package, "publish") == Some("[]") {
            &mut unpublished
        } else {
            &mut published
        };
        list.push(name.trim_matches('"').to_owned());
    }
    Ok((published, unpublished))
}

/// Removes the copies of `names` that cargo unpacked from local registries. `cargo package`
/// verifies each crate against its siblings' `.crate` files through a local registry in
/// target/package/tmp-registry, and cargo unpacks a registry's crate once per name and version
/// into `$CARGO_HOME/registry/src/-<hash>/`: a later run with the same version would build the
/// copy of an earlier run (on a machine that packaged before) instead of its own.
fn forget_unpacked(names: &[String]) -> Result {
    let home = env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| {
        let home = env::var_os("HOME").or_else(|| env::var_os("USERPROFILE"))?;
        Some(PathBuf::from(home).join(".cargo"))
    });
    match home {
        Some(home) => forget_unpacked_in(&home.join("registry").join("src"), names),
        None => Ok(()),
    }
}

/// [`forget_unpacked`] in the registry sources directory `src`.
fn forget_unpacked_in(src: &std::path::Path, names: &[String]) -> Result {
    for registry in fs::read_dir(src).into_iter().flatten().flatten() {
        // Local registries have no name before the hash; crates.io's is `index.crates.io-<hash>`.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for unpacked in fs::read_dir(registry.path())?.flatten() {
            let dir = unpacked.file_name().to_string_lossy().into_owned();
            if names.iter().any(|name| crate_name(&dir) == name) {
                fs::remove_dir_all(unpacked.path())?;
            }
        }
    }
    Ok(())
}

/// The name in a `<name>-<version>` directory: up to the first `-` followed by a digit
/// (`bunctl-ipc-cli-0.2.0-rc.1` is `bunctl-ipc-cli`).
fn crate_name(dir: &str) -> &str {
    let at = dir
        .char_indices()
        .find(|&(i, c)| c == '-' && dir[i + 1..].starts_with(|d: char| d.is_ascii_digit()));
    at.map_or(dir, |(i, _)| &dir[..i])
}

/// A workspace of the unpacked `<name>-<version>` directories, each also the patch for its
/// name on crates.io, so that the packaged crates depend on each other's packaged copies.
fn scratch_manifest(members: &[String]) -> String {
    let quoted: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    let patches: String =
        members.iter().map(|m| format!("{} = {{ path = {m:?} }}\n", crate_name(m))).collect();
    format!(
        "# Written by `cargo xtask package`: the packaged crates, tested as published.\n\
         [workspace]\nresolver = \"3\"\nmembers = [{}]\n\n[patch.crates-io]\n{patches}",
        quoted.join(", ")
    )
}

/// The declared `rust-version` (`[workspace.package]`), and every package of the resolved
/// dependency graph (all targets, dev and build dependencies too) declaring no newer one. With
/// clippy's `incompatible_msrv` at deny level (workspace lints), which checks the workspace's
/// own use of the standard library against it, this is as far as a machine without a toolchain
/// of that version can check it.
pub fn msrv() -> Result {
    let manifest = fs::read_to_string(workspace_root().join("Cargo.toml"))?;
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = ").map(|v| v.trim_matches('"').to_owned()))
        .ok_or("no `rust-version = \"...\"` in the workspace's Cargo.toml")?;
    let limit = version(&declared).ok_or_else(|| format!("rust-version {declared:?}?"))?;
    let metadata = run::output(&mut cargo("metadata --format-version 1 --locked"))?;
    let packages = json_field(&metadata, "packages").ok_or("no packages in cargo metadata")?;
    let (mut checked, mut newer) = (0, Vec::new());
    for package in json_elements(packages) {
        let field = |key| json_field(package, key).map(|v| v.trim_matches('"'));
        let (name, v) = (field("name").unwrap_or("?"), field("version").unwrap_or("?"));
        checked += 1;
        match field("rust_version").filter(|r| *r != "null") {
            Some(needs) if version(needs).is_none_or(|n| n > limit) => {
                newer.push(format!("{name} {v} (rust-version {needs})"));
            }
            _ => {}
        }
    }
    if !newer.is_empty() {
        return err(format!(
            "declared rust-version {declared}, but these need a newer Rust: {}",
            newer.join(", ")
        ));
    }
    println!("    rust-version {declared}: none of the {checked} packages asks for a newer Rust");
    Ok(())
}

/// `1.89` or `1.89.0` as (major, minor, patch).
fn version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.split('.').map(str::parse::<u32>);
    let (major, minor) = (parts.next()?.ok()?, parts.next().unwrap_or(Ok(0)).ok()?);
    Some((major, minor, parts.next().unwrap_or(Ok(0)).ok()?))
}

/// The raw text of `key`'s value in the JSON object `object` (its own keys only, not those of
/// nested objects).
pub fn json_field<'a>(object: &'a str, key: &str) -> Option<&'a str> {
    let inner = object.trim().strip_prefix('{')?.strip_suffix('}')?;
    json_elements(inner).find_map(|member| {
        let (k, value) = member.split_at(json_value_len(member, ':'));
        (k.trim().trim_matches('"') == key).then(|| value.trim_start_matches(':').trim())
    })
}

/// The comma-separated elements of a JSON array (`[...]`) or of an object's members, split at
/// the top level only.
pub fn json_elements(text: &str) -> impl Iterator<Item = &str> {
    let text = text.trim();
    let text = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.trim().is_empty() {
            return None;
        }
        let (element, tail) = rest.split_at(json_value_len(rest, ','));
        rest = tail.strip_prefix(',').unwrap_or(tail);
        Some(element.trim())
    })
}

/// Where `stop` first stands in `text` outside strings and nested values (else its length).
fn json_value_len(text: &str, stop: char) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            c if c == stop && depth == 0 => return i,
            _ => {}
        }
    }
    text.len()
}

const CARGO_DENY_VERSION: &str = "0.20.2";

/// `cargo deny check licenses bans sources` with `deny.toml`. Advisories are not checked: the
/// advisory database cannot be fetched here. Uses the pinned cargo-deny if it is on `PATH`,
/// else installs it into `target/tools` (`cargo install --locked --debug`: a debug build
/// installs in about half the time of a release one and checks this tree in about 2 s).
pub fn deny() -> Result {
    let pinned = format!("cargo-deny {CARGO_DENY_VERSION}");
    let mut deny = if run::output(&mut cargo("deny --version")).is_ok_and(|v| v == pinned) {
        cargo("deny")
    } else {
        let root = target_dir().join(format!("tools/cargo-deny-{CARGO_DENY_VERSION}"));
        let local = root.join("bin/cargo-deny");
        if !run::output(scrubbed(&local).arg("--version")).is_ok_and(|v| v == pinned) {
            let install =
                format!("install --locked --debug cargo-deny@{CARGO_DENY_VERSION} --root");
            run(cargo(&install).arg(&root))?;
        }
        scrubbed(local)
    };
    run(deny.args("--locked check --show-stats licenses bans sources".split(' ')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_crates_unpacked_from_local_registries_are_forgotten() {
        let src = env::temp_dir().join(format!("xtask-forget-{}", std::process::id()));
        let dirs = [
            "-3c952b8216f1a219/ipc-proto-0.1.0",
            "-3c952b8216f1a219/serde-1.0.0",
            "index.crates.io-1949cf8c6b5b557f/ipc-proto-0.1.0",
        ];
        for dir in dirs {
            fs::create_dir_all(src.join(dir).join("src")).expect("mkdir");
        }
        forget_unpacked_in(&src, &["ipc-proto".to_string()]).expect("forget");
        let left: Vec<bool> = dirs.iter().map(|dir| src.join(dir).exists()).collect();
        fs::remove_dir_all(&src).expect("clean up");
        assert_eq!(left, [false, true, true]);
    }

    #[test]
    fn scratch_manifest_patches_each_crate_with_its_unpacked_copy() {
        let members = ["bunctl-ipc-cli-0.2.0-rc.1".to_string(), "ipc-proto-0.1.0".to_string()];
        let manifest = scratch_manifest(&members);
        assert!(
            manifest.contains("members = [\"bunctl-ipc-cli-0.2.0-rc.1\", \"ipc-proto-0.1.0\"]")
        );
        assert!(manifest.contains("bunctl-ipc-cli = { path = \"bunctl-ipc-cli-0.2.0-rc.1\" }\n"));
        assert!(manifest.contains("ipc-proto = { path = \"ipc-proto-0.1.0\" }\n"));
    }

    #[test]
    fn versions_compare_with_or_without_patch() {
        assert_eq!(version("1.89"), Some((1, 89, 0)));
        assert!(version("1.88.0") < version("1.89"));
        assert!(version("1.90") > version("1.89.3"));
        assert_eq!(version("one"), None);
    }

    #[test]
    fn json_fields_are_read_at_the_top_level_only() {
        let metadata = r#"{"packages":[{"name":"a","dependencies":[{"name":"b","x":"{,"}],
            "rust_version":"1.70"},{"name":"c\"d","rust_version":null}],"version":1}"#;
        let packages: Vec<&str> =
            json_elements(json_field(metadata, "packages").expect("packages")).collect();
        assert_eq!(packages.len(), 2);
        assert_eq!(json_field(packages[0], "name"), Some("\"a\""));
        assert_eq!(json_field(packages[0], "rust_version"), Some("\"1.70\""));
        assert_eq!(json_field(packages[1], "name"), Some(r#""c\"d""#));
        assert_eq!(json_field(packages[1], "rust_version"), Some("null"));
        assert_eq!(json_field(metadata, "version"), Some("1"));
        assert_eq!(json_field(packages[0], "x"), None);
    }
}
