//! `cargo xtask consumers`: checks the consumer matrix, small packages outside
//! the workspace under `tests/consumers/` that each depend on the zt crates with
//! one combination of features, as a user's crate would.
//!
//! Inside the workspace, cargo unifies every member's features, so a crate
//! that only builds with a feature some other member happens to enable goes
//! unnoticed. Each consumer is its own workspace and resolves only its own
//! features. Each gets a copy of the root `Cargo.lock`, so it builds the same
//! dependency versions as the workspace; all share one target directory,
//! `<target>/consumers`, so dependencies compile once.

use std::path::{Path, PathBuf};

use crate::shell::{cargo, root, run as run_step};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask consumers".into());
    }
    let consumers = consumers(&root().join("tests/consumers"))?;
    if consumers.is_empty() {
        return Err("no consumer packages found under tests/consumers".into());
    }
    let target_dir = target_dir()?.join("consumers");
    let lock = root().join("Cargo.lock");
    let mut failed = Vec::new();
    for dir in &consumers {
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        // The same versions as the workspace; cargo drops what this consumer does not use.
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .map_err(|e| format!("consumer `{name}`: cannot copy Cargo.lock: {e}"))?;
        let step = run_step(
            &format!("consumer `{name}`: cargo check"),
            cargo()
                .arg("check")
                .arg("--manifest-path")
                .arg(dir.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target_dir),
        );
        if let Err(message) = step {
            eprintln!("xtask: {message}");
            failed.push(name);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} consumers failed to build: {} (see tests/consumers/<name>/Cargo.toml for each combination)",
            failed.len(),
            consumers.len(),
            failed.join(", ")
        ))
    }
}

/// The directories under `dir` that hold a `Cargo.toml`, sorted by name.
fn consumers(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    found.sort();
    Ok(found)
}

/// The workspace's target directory: `CARGO_TARGET_DIR` when set, as cargo
/// reads it, else `target` in the workspace root.
fn target_dir() -> Result<PathBuf, String> {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                Ok(dir)
            } else {
                // Relative to where cargo was run, which is this process's directory.
                let here = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
                Ok(here.join(dir))
            }
        }
        _ => Ok(root().join("target")),
    }
}
