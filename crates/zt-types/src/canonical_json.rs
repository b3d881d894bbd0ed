//! The canonical JSON text of audit metadata.
//!
//! The hash chain covers metadata as text, but PostgreSQL's `jsonb` does not
//! keep text: it reorders keys and drops whitespace. So metadata is always
//! written, and re-written when read back, in one canonical form:
//!
//! - no whitespace outside strings;
//! - object members sorted by the UTF-8 bytes of their keys;
//! - strings escaped as `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//!   characters below U+0020 as `\u00xx` in lowercase hex, everything else
//!   as literal UTF-8;
//! - numbers as serde_json 1.x prints them: integers in decimal, other numbers
//!   as the shortest text that reads back as the same `f64` (ryu), with `.0` on
//!   integral values, an `e` exponent without `+`, and `-0.0` written `0.0`.

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// Writes `value` in canonical form.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Sorted here, whatever order the map keeps (serde_json's
            // `preserve_order` feature may be on elsewhere in the build).
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, member)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, member);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, number: &Number) {
    match number.as_f64() {
        Some(float) if !number.is_i64() && !number.is_u64() && float == 0.0 => out.push_str("0.0"),
        _ => {
            let _ = write!(out, "{number}");
        }
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        let value = json!({"b": 1, "a": [true, null, "x"], "aa": {"z": 1.5, "y": -0.0}});
        assert_eq!(
            to_canonical_string(&value),
            r#"{"a":[true,null,"x"],"aa":{"y":0.0,"z":1.5},"b":1}"#
        );
    }

    #[test]
    fn strings_escape_controls() {
        let value = json!("q\"\\\n\u{1}é");
        assert_eq!(to_canonical_string(&value), "\"q\\\"\\\\\\n\\u0001é\"");
    }

    #[test]
    fn canonical_text_reparses_to_the_same_text() {
        let value = json!({"n": [1e300, 0.1, 18446744073709551615u64, -9223372036854775808i64, 1.0, 1e-7]});
        let text = to_canonical_string(&value);
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(to_canonical_string(&reparsed), text);
    }
}
