//! Fuzzes the CSV cells of `zt audit export --format csv`: whatever a client
//! wrote into an audited field, the cell is one field that reads back as
//! written, opens as text in a spreadsheet (no leading `=`, `+`, `-`, `@`,
//! tab or carriage return), and holds no control or reordering character.
//!
//! Run with `cargo fuzz run csv_cells` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zt_cli::spreadsheet_safe;

fuzz_target!(|data: &[u8]| {
    let cell = String::from_utf8_lossy(data);
    let safe = spreadsheet_safe(&cell);
    assert!(!safe.starts_with(['=', '+', '-', '@', '\t', '\r']), "{safe:?}");
    assert!(
        !safe.chars().any(|c| c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
        "{safe:?}"
    );
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([safe.as_str(), "next"]).expect("a write to memory");
    let bytes = writer.into_inner().expect("a flush to memory");
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("CSV it wrote")).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0][0], safe.as_str());
});
