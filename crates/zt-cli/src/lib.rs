//! The `zt` command's output formats: terminal tables and spreadsheet-safe
//! CSV cells. A library of its own so that the fuzz targets drive exactly
//! what the command prints.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod table;

/// A CSV cell that a spreadsheet opens as text, whoever wrote it:
/// - control characters and bidirectional overrides are written as `\u{…}`
///   escapes, so no cell moves the cursor, rings, or reorders what an
///   investigator reads;
/// - a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
///   gets a leading `'` (OWASP's rule against CSV formula injection), so
///   `=HYPERLINK(...)` in a user agent is shown, not run. A negative number
///   such as `-5` is prefixed too, and reads `'-5`.
///
/// JSON output stays exact; only CSV is made safe this way.
pub fn spreadsheet_safe(cell: &str) -> String {
    let mut safe = String::with_capacity(cell.len() + 1);
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        safe.push('\'');
    }
    for character in cell.chars() {
        if character.is_control() || is_bidi_control(character) {
            safe.push_str(&format!("\\u{{{:04x}}}", u32::from(character)));
        } else {
            safe.push(character);
        }
    }
    safe
}

/// The characters that reorder text around them: embeddings, overrides and
/// isolates (U+202A–U+202E, U+2066–U+2069), and the directional marks.
pub(crate) fn is_bidi_control(character: char) -> bool {
    matches!(character, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_spreadsheet_safe() {
        assert_eq!(
            spreadsheet_safe("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        for start in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(spreadsheet_safe(start).starts_with('\''), "{start:?}");
        }
        assert_eq!(spreadsheet_safe("alice"), "alice");
        assert_eq!(spreadsheet_safe("a\u{1b}[31mb\u{7}"), "a\\u{001b}[31mb\\u{0007}");
        assert_eq!(spreadsheet_safe("x\r\ny"), "x\\u{000d}\\u{000a}y");
        assert_eq!(spreadsheet_safe("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(spreadsheet_safe("\tx"), "'\\u{0009}x");
    }

    proptest::proptest! {
        /// Whatever a hostile client wrote, a CSV cell is one field that
        /// reads back as written, opens as text in a spreadsheet, and holds
        /// no control or reordering character.
        #[test]
        fn any_cell_is_one_inert_field(
            cell in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[=+@\t\r-][\\PC\\p{Cc}\u{202a}-\u{202e}\u{2066}-\u{2069}\",\n]{0,40}",
            ]
        ) {
            let safe = spreadsheet_safe(&cell);
            proptest::prop_assert!(!safe.starts_with(['=', '+', '-', '@', '\t', '\r']), "{safe:?}");
            proptest::prop_assert!(!safe.chars().any(|c| c.is_control() || is_bidi_control(c)), "{safe:?}");
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record([safe.as_str(), "next"]).unwrap();
            let bytes = writer.into_inner().unwrap();
            let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
            let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            proptest::prop_assert_eq!(records.len(), 1);
            proptest::prop_assert_eq!(&records[0][0], safe.as_str());
            proptest::prop_assert_eq!(&records[0][1], "next");
        }
    }
}
