//! `cargo xtask codegen [--check]`: writes every generated file, or checks
//! that the committed ones are current.

use std::fs;

use crate::shell::root;

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
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!("{} stale: run `cargo xtask codegen`", stale.join(", ")))
    }
}
