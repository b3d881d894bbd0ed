//! Tidy checks over the whole repository: every Rust file opens with a `//!`
//! doc, and no stub or silenced test is left in.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "corpus" | "artifacts") {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in ["crates", "xtask", "examples", "tests", "bench", "fuzz"] {
        rust_files(&root().join(dir), &mut found);
    }
    assert!(found.len() > 50, "the walk found only {} files", found.len());
    found
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let undocumented: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a leading `//!` doc: {undocumented:#?}"
    );
}

#[test]
fn no_stubs_or_silenced_tests() {
    // Built from pieces so that this file does not match itself.
    let forbidden = [
        ["todo", "!("].concat(),
        ["unimplemented", "!("].concat(),
        ["#[", "ignore"].concat(),
    ];
    let mut offenders = Vec::new();
    for path in all_rust_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for word in &forbidden {
            if text.contains(word.as_str()) {
                offenders.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
