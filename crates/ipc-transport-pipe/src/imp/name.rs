//! From an endpoint (a path, as on Unix) to a pipe name.

use std::ffi::OsString;
use std::path::Path;

use super::error::{EndpointError, Result};

/// The namespace of local named pipes. Names are compared case-insensitively by Windows.
pub const PIPE_PREFIX: &str = r"\\.\pipe\";

/// What [`pipe_name`] puts before an endpoint's file name.
const BUNCTL_PREFIX: &str = r"\\.\pipe\bunctl_";

/// Whether `endpoint` already is a local pipe name (`\\.\pipe\...`, any case).
pub fn is_pipe_name(endpoint: &Path) -> bool {
    let s = endpoint.as_os_str().to_string_lossy();
    s.get(..PIPE_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PIPE_PREFIX))
}

/// The pipe an endpoint stands for.
///
/// A pipe name (`\\.\pipe\...`) is used verbatim. Anything else is read as a path, as on
/// Unix, and only its file name is kept: `"app"`, `"C:\run\app"` and `"/tmp/app"` all become
/// `\\.\pipe\bunctl_app`, so a server and a client given the same path meet whatever their
/// working directories. Pipes have no directories: two paths with the same file name name the
/// same pipe. A path without a file name (`""`, `".."`, `"C:\"`) is an
/// [`InvalidInput`](std::io::ErrorKind::InvalidInput) error.
pub fn pipe_name(endpoint: &Path) -> Result<OsString> {
    if is_pipe_name(endpoint) {
        return Ok(endpoint.as_os_str().to_owned());
    }
    let file = endpoint
        .file_name()
        .ok_or_else(|| EndpointError::InvalidName { path: endpoint.to_owned() })?;
    let mut name = OsString::from(BUNCTL_PREFIX);
    name.push(file);
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        pipe_name(Path::new(s)).expect("names a pipe").to_string_lossy().into_owned()
    }

    #[test]
    fn pipe_names_are_used_verbatim_in_any_case() {
        assert_eq!(name(r"\\.\pipe\bunctl-daemon"), r"\\.\pipe\bunctl-daemon");
        assert_eq!(name(r"\\.\PIPE\Other"), r"\\.\PIPE\Other");
        assert!(is_pipe_name(Path::new(r"\\.\Pipe\x")));
        assert!(!is_pipe_name(Path::new(r"\\server\pipe\x")));
    }

    #[test]
    fn paths_become_bunctl_pipes_named_after_their_file_name() {
        assert_eq!(name("app"), r"\\.\pipe\bunctl_app");
        assert_eq!(name(r"C:\run\bunctl\app"), r"\\.\pipe\bunctl_app");
        assert_eq!(name("/tmp/app"), r"\\.\pipe\bunctl_app");
        assert_eq!(name("bunctl.sock"), r"\\.\pipe\bunctl_bunctl.sock");
    }

    #[test]
    fn path_without_a_file_name_is_rejected() {
        for bad in ["", "..", r"C:\"] {
            let e = pipe_name(Path::new(bad)).expect_err(bad);
            assert!(matches!(&e, EndpointError::InvalidName { .. }), "{bad:?}: {e}");
        }
    }
}
