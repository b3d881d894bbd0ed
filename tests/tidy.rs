//! Tidy checks over the whole repository: every Rust file opens with a `//!`
//! doc, no stub or silenced test is left in, and the library crates'
//! dependencies build with the `rust-version` the workspace declares.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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

/// The crates users depend on; their `rust-version` must hold for everything
/// they pull in.
const LIBRARY_CRATES: [&str; 8] = [
    "zt-types",
    "zt-error-codes",
    "zt-errors",
    "zt-db",
    "zt-audit",
    "zt-session",
    "zt-monitoring",
    "zt-guard",
];

/// `1.88`, `1.88.0`: the numbers between the dots, missing ones as 0.
fn rust_version(text: &str) -> Vec<u64> {
    let mut numbers: Vec<u64> = text
        .split('.')
        .map(|part| {
            part.parse()
                .unwrap_or_else(|_| panic!("rust-version `{text}` is not dotted numbers"))
        })
        .collect();
    numbers.resize(3, 0);
    numbers
}

#[test]
fn dependencies_build_with_the_declared_rust_version() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--locked", "--all-features"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| (package["id"].as_str().unwrap(), package))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| (node["id"].as_str().unwrap(), node))
        .collect();
    let roots: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .filter(|id| LIBRARY_CRATES.contains(&packages[id]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roots.len(),
        LIBRARY_CRATES.len(),
        "library crates missing from the workspace"
    );
    let declared = packages[roots[0]]["rust_version"]
        .as_str()
        .expect("the library crates declare a rust-version");

    // Every package reachable through normal dependencies, for any feature.
    let mut seen: BTreeSet<&str> = roots.iter().copied().collect();
    let mut pending = roots;
    while let Some(id) = pending.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|kind| kind["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(dep_id) {
                pending.push(dep_id);
            }
        }
    }

    // A package with no rust-version declared makes no claim, and passes.
    let mut offenders = Vec::new();
    for package in seen.iter().map(|id| packages[id]) {
        if let Some(needs) = package["rust_version"].as_str()
            && rust_version(needs) > rust_version(declared)
        {
            let (name, version) = (&package["name"], &package["version"]);
            offenders.push(format!(
                "{} {} needs {needs}",
                name.as_str().unwrap(),
                version.as_str().unwrap()
            ));
        }
    }
    assert!(
        offenders.is_empty(),
        "the workspace declares rust-version {declared}, but these dependencies of the library crates \
         need a newer Rust; pin an older version in Cargo.lock (`cargo update -p NAME --precise VERSION`, \
         or the same on the dependent that requires it) or raise the rust-version: {offenders:#?}"
    );
}

/// zt-db is the one backend layer. In the other library crates a backend
/// `cfg` may only declare a per-backend module or an arm of the crate's one
/// dispatch on `zt_db::AnyConnection`, or allow dead code when no backend is
/// enabled; nothing else may change shape with a backend feature.
#[test]
fn backend_cfgs_only_declare_modules_or_dispatch_arms() {
    let crates = root().join("crates");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "zt-db" | "zt-testkit") {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&entry.path().join("src"), &mut files);
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (index, line) in lines.iter().enumerate() {
                let backend_cfg = line.contains("cfg(")
                    && (line.contains(r#"feature = "sqlite""#) || line.contains(r#"feature = "postgres""#));
                if !backend_cfg || line.contains("not(any(") {
                    continue;
                }
                let item = lines[index + 1..]
                    .iter()
                    .map(|next| next.trim())
                    .find(|next| !next.starts_with("#[") && !next.starts_with("//"))
                    .unwrap_or_default();
                let allowed = item.starts_with("mod ")
                    || item.starts_with("pub(crate) mod ")
                    || item.starts_with("AnyConnection::");
                if !allowed {
                    offenders.push(format!("{}:{}: {item}", path.display(), index + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "backend cfgs outside zt-db that do more than declare a module or a dispatch arm: {offenders:#?}"
    );
}
