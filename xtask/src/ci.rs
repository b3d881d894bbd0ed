//! `cargo xtask ci`: everything `.ci/run` checks.

use crate::shell::{cargo, run as run_step};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: cargo xtask ci".into());
    }
    crate::test::run(&[])?;
    // Each backend alone, as a user who enables only one builds it.
    for backend in ["sqlite", "postgres"] {
        run_step(
            &format!("clippy with only the {backend} backend, tests included"),
            cargo().args([
                "clippy",
                "-p",
                "zt-db",
                "-p",
                "zt-audit",
                "-p",
                "zt-session",
                "-p",
                "zt-guard",
                "--no-default-features",
                "--features",
                backend,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    // Feature combinations as crates outside the workspace see them.
    crate::consumers::run(&[])?;
    run_step(
        "docs with warnings denied",
        cargo()
            .env("RUSTDOCFLAGS", "-D warnings")
            .args(["doc", "--workspace", "--no-deps", "--all-features"]),
    )?;
    // Verified: each crate builds from its own package, migrations included.
    forget_unpacked_workspace_packages()?;
    run_step("packaging", cargo().args(["package", "--workspace", "--allow-dirty"]))?;
    // The service under load through a PostgreSQL restart: no audit row lost.
    crate::soak::run(&["--minutes".to_owned(), "1".to_owned()])?;
    Ok(())
}

/// Removes the workspace's own packages that an earlier `cargo package`
/// unpacked under `$CARGO_HOME/registry/src`.
///
/// `cargo package --workspace` verifies each crate against its siblings
/// through a local registry, but it reuses a sibling already unpacked there
/// under the same version: a second run would then verify against the first
/// run's stale source, and fail on anything added since.
fn forget_unpacked_workspace_packages() -> Result<(), String> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(".cargo"),
            None => return Ok(()),
        },
    };
    let unpacked = cargo_home.join("registry").join("src");
    let Ok(registries) = std::fs::read_dir(&unpacked) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        // A local registry has no host, so its directory name starts with `-`.
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(packages) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for package in packages.flatten() {
            let name = package.file_name().to_string_lossy().into_owned();
            if name.starts_with("zt-") || name.starts_with("xtask-") {
                std::fs::remove_dir_all(package.path())
                    .map_err(|error| format!("removing {}: {error}", package.path().display()))?;
            }
        }
    }
    Ok(())
}
