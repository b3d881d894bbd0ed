//! `cargo xtask migrate [--database-url URL]`: applies every migration, by
//! running `zt migrate` from this workspace.

use crate::shell::{cargo, run as run_step};

/// The README's embedded SQLite file.
pub(crate) const DEFAULT_URL: &str = "sqlite://zt-demo.db";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let url = match args {
        [] => DEFAULT_URL.to_owned(),
        [flag, url] if flag == "--database-url" => url.clone(),
        [flag] if flag.starts_with("--database-url=") => flag["--database-url=".len()..].to_owned(),
        _ => return Err("usage: cargo xtask migrate [--database-url URL]".into()),
    };
    run_step(
        "migrate",
        cargo().args([
            "run",
            "--quiet",
            "--package",
            "zt-cli",
            "--",
            "migrate",
            "--database-url",
            &url,
        ]),
    )
    .map_err(|_| "migration failed; the line above says why".to_owned())
}
