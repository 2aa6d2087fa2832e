//! The project's Python venv (`make venv`), which provides the AWS emulator and the
//! SAM tooling.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Environment variable naming the venv directory; overrides `<workspace>/.venv`.
pub const VENV_ENV: &str = "SPIGOT_VENV";

/// The venv directory: `$SPIGOT_VENV`, else `.venv` at the workspace root.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os(VENV_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".venv"),
    }
}

/// Path of the executable `name` in the venv's `bin` directory, or an error saying how
/// to get it.
pub fn try_venv_bin(name: &str) -> anyhow::Result<PathBuf> {
    let venv = venv_dir();
    let bin = venv.join("bin").join(name);
    if !bin.is_file() {
        bail!(
            "{} not found: run `make venv` first (or point {VENV_ENV} at a venv that has it)",
            bin.display()
        );
    }
    // Absolute, so that it still works for a child started in another directory; not
    // canonicalized: a venv's `python` is a symlink whose target would run outside it.
    std::path::absolute(&bin).with_context(|| format!("resolving {}", bin.display()))
}

/// Like [`try_venv_bin`], for tests and tools where a missing venv is a setup error:
/// panics with the instruction to run `make venv`.
pub fn venv_bin(name: &str) -> PathBuf {
    try_venv_bin(name).unwrap_or_else(|error| panic!("{error:#}"))
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The cargo workspace root: this crate lives in `<root>/infra/local`.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn a_missing_tool_says_how_to_get_it() {
        let error = try_venv_bin("no-such-tool").unwrap_err().to_string();
        assert!(
            error.contains("no-such-tool") && error.contains("make venv"),
            "{error}"
        );
    }
}
