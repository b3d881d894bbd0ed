//! `cargo xtask codegen [--check]`: writes every generated file, or checks
//! that the committed ones are current. `--check` also checks the diesel
//! schemas written by hand (each crate's `schema.rs`) against the tables
//! the migrations create: on SQLite, and on PostgreSQL when `DATABASE_URL`
//! names a server. `cargo xtask test` checks the generated files only: its
//! own run of every suite includes the schema check, on both backends.

use std::fs;

use crate::shell::{cargo, root, run as run_step};

/// Each generated file: its path from the root and its content.
fn generated() -> Vec<(&'static str, String)> {
    vec![("docs/error-codes.md", zt_error_codes::catalog_markdown())]
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => return Err("usage: cargo xtask codegen [--check]".into()),
    };
    write_or_check(check)?;
    if check {
        let mut schema = cargo();
        schema.args(["test", "--quiet", "-p", "zt-e2e", "--test", "schema"]);
        if std::env::var_os("DATABASE_URL").is_none_or(|url| url.is_empty()) {
            schema.env("ZT_SKIP_POSTGRES", "1");
        }
        run_step("schema check (each schema.rs against its migrations)", &mut schema)?;
    }
    Ok(())
}

/// Writes every generated file, or with `check` fails naming the stale ones.
pub(crate) fn write_or_check(check: bool) -> Result<(), String> {
    let mut stale = Vec::new();
    for (path, content) in generated() {
        let full = root().join(path);
        let current = fs::read_to_string(&full).unwrap_or_default();
        if current == content {
            continue;
        }
        if check {
            stale.push(path);
        } else {
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            fs::write(&full, content).map_err(|e| format!("cannot write {path}: {e}"))?;
            eprintln!("xtask: wrote {path}");
        }
    }
    if !stale.is_empty() {
        return Err(format!("{} stale: run `cargo xtask codegen`", stale.join(", ")));
    }
    Ok(())
}
