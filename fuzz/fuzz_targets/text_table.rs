//! Fuzzes the plain text table writer that `zt audit query` and `zt codes
//! list` print with: no input may panic, and no cell may add a line or
//! smuggle a control character into the terminal.
//!
//! Run with `cargo fuzz run text_table` from the repository root
//! (cargo-fuzz needs a nightly toolchain, or `RUSTC_BOOTSTRAP=1`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zt_cli::table::TextTable;

fuzz_target!(|data: &[u8]| {
    let Some((&width, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    // Cells separated by US, rows by RS: anything else is cell content.
    let rows: Vec<Vec<String>> = text
        .split('\u{1e}')
        .map(|row| row.split('\u{1f}').map(str::to_owned).collect())
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0).clamp(1, 16);
    let headers: Vec<String> = (0..columns).map(|i| format!("C{i}")).collect();
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut table = TextTable::new(&header_refs, usize::from(width));
    for row in &rows {
        table.row(row);
    }
    let rendered = table.render();
    assert_eq!(
        rendered.lines().count(),
        rows.len() + 1,
        "a cell added or removed a line"
    );
    assert!(
        !rendered
            .chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{2028}' || c == '\u{2029}')),
        "a control character reached the output"
    );
});
