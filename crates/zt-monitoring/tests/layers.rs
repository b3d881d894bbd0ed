//! The crate's modules are layered by job, as `lib.rs` draws them: a module
//! imports only from the layers below its own, and inside a folder only from
//! the files listed before it. So no two modules import each other. This
//! reads every `crate::` and `super::` path in the sources and checks it.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The top-level modules, bottom layer first; modules of one layer may not
/// import each other.
const LAYERS: &[&[&str]] = &[
    &["error", "duration", "stripe", "scrub", "report"],
    &["window"],
    &["rules"],
    &["evaluate", "latency"],
    &["sinks"],
    &["prometheus"],
    &["monitor"],
    &["errors_hook"],
];

/// Inside a folder, the order of its files: each imports only from the ones
/// before it. A folder's `mod.rs` only declares them.
const FOLDERS: &[(&str, &[&str])] = &[
    ("rules", &["model", "config"]),
    ("evaluate", &["spike", "alerts", "snapshot"]),
    (
        "sinks",
        &[
            "queue",
            "http",
            "memory",
            "tracing_sink",
            "webhook",
            "sentry_transport",
            "sentry_sink",
        ],
    ),
    ("monitor", &["handle", "evaluator", "builder"]),
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is in no layer of tests/layers.rs"))
}

fn position(folder: &str, file: &str) -> usize {
    let (_, files) = FOLDERS
        .iter()
        .find(|(name, _)| *name == folder)
        .unwrap_or_else(|| panic!("folder {folder} is not listed in tests/layers.rs"));
    files
        .iter()
        .position(|name| *name == file)
        .unwrap_or_else(|| panic!("{folder}/{file}.rs is not listed in tests/layers.rs"))
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// The path segments after each `prefix` in `code`, such as
/// `["rules", "model", "Selector"]` for `crate::rules::model::Selector`.
fn paths<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // Not the tail of a longer identifier, such as `zt_errors::`.
            code[..*at]
                .chars()
                .next_back()
                .is_none_or(|before| !before.is_alphanumeric() && before != '_')
        })
        .map(|(at, _)| {
            let rest = &code[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            rest[..end].split("::").filter(|segment| !segment.is_empty()).collect()
        })
        .collect()
}

#[test]
fn modules_import_only_from_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut offences = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap().with_extension("");
        let parts: Vec<String> = relative
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts == ["lib"] {
            continue;
        }
        let top = parts[0].as_str();
        // A folder's file, such as `rules/config`, or a folder's `mod.rs`.
        let inner = parts.get(1).map(String::as_str).filter(|name| *name != "mod");
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let own_layer = layer(top);
        for path in paths(&code, "crate::") {
            let Some(&target) = path.first() else { continue };
            // Re-exports at the crate root, such as `crate::Monitor` in a
            // doc link outside a comment, are not imports of a module.
            if target.starts_with(char::is_uppercase) || target == "sentry_core" {
                continue;
            }
            let allowed = if target == top {
                match (inner, path.get(1)) {
                    (Some(inner), Some(file)) => position(top, file) < position(top, inner),
                    // A folder's `mod.rs` declares its files; a plain file may name itself.
                    (None, _) => true,
                    (Some(_), None) => false,
                }
            } else {
                layer(target) < own_layer
            };
            if !allowed {
                offences.push(format!("{}: crate::{}", relative.display(), path.join("::")));
            }
        }
        if let Some(inner) = inner {
            for path in paths(&code, "super::") {
                // `use super::*` in a file's own tests names the file itself.
                let Some(&sibling) = path.first() else { continue };
                if position(top, sibling) >= position(top, inner) {
                    offences.push(format!("{}: super::{}", relative.display(), path.join("::")));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "imports from the same layer or above (see the layering in lib.rs):\n{}",
        offences.join("\n")
    );
}
