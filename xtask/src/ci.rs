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
    run_step("packaging", cargo().args(["package", "--workspace", "--allow-dirty"]))?;
    // The service under load through a PostgreSQL restart: no audit row lost.
    crate::soak::run(&["--minutes".to_owned(), "1".to_owned()])?;
    Ok(())
}
