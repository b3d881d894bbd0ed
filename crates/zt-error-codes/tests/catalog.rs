//! Pins the published catalog and checks the generated support document.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use zt_error_codes::{ErrorCode, catalog_markdown};

/// Published codes with their HTTP status. A code is never removed or renamed,
/// and its status never changes; new codes are appended here.
const PUBLISHED: &str = include_str!("published-codes.txt");

#[test]
fn published_codes_are_never_removed_or_renamed() {
    for line in PUBLISHED
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
    {
        let (reason, status) = line.split_once(' ').expect("each line is `REASON STATUS`");
        let code = ErrorCode::from_reason(reason)
            .unwrap_or_else(|| panic!("published code {reason} was removed or renamed; restore it"));
        assert_eq!(
            code.http_status().to_string(),
            status,
            "the HTTP status of {reason} changed"
        );
    }
}

#[test]
fn every_code_is_published() {
    for code in ErrorCode::ALL {
        let line = format!("{} {}", code.reason(), code.http_status());
        assert!(
            PUBLISHED.lines().any(|published| published == line),
            "new code {} is not pinned: append `{line}` to tests/published-codes.txt",
            code.reason()
        );
    }
}

#[test]
fn support_catalog_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/error-codes.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == catalog_markdown(),
        "docs/error-codes.md is stale: run `cargo xtask codegen`"
    );
}
