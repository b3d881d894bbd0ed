//! The canonical JSON text of audit metadata.
//!
//! The hash chain covers metadata as text, but PostgreSQL's `jsonb` does not
//! keep the text it was given: it reorders keys and changes whitespace. So zt
//! writes metadata in exactly the form that PostgreSQL prints a `jsonb` value
//! in, and stores the same text in SQLite. Reading `metadata::text` back then
//! gives the bytes that were covered, with nothing to re-encode. The form:
//!
//! - object members sorted by key length in bytes, then by the bytes of the
//!   key (jsonb's order), written `{"k": v, "k2": v2}` with `": "` and `", "`;
//! - arrays written `[a, b]`; empty ones `{}` and `[]`;
//! - strings escaped as `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other
//!   characters below U+0020 as `\u00xx` in lowercase hex, everything else as
//!   literal UTF-8 (NUL never occurs: jsonb cannot hold it);
//! - integers in decimal; other numbers as the shortest decimal that reads
//!   back as the same `f64`, in plain notation without an exponent, keeping
//!   `.0` on integral values, with `-0.0` written `0.0`.

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// Writes `value` in canonical form.
///
/// ```
/// use zt_types::canonical_json::to_canonical_string;
/// let value = serde_json::json!({"role": "admin", "id": 7, "tags": ["a", "b"]});
/// assert_eq!(to_canonical_string(&value), r#"{"id": 7, "role": "admin", "tags": ["a", "b"]}"#);
/// ```
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
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Sorted here, whatever order the map keeps (serde_json's
            // `preserve_order` feature may be on elsewhere in the build).
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| {
                a.0.len()
                    .cmp(&b.0.len())
                    .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
            });
            out.push('{');
            for (index, (key, member)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, member);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, number: &Number) {
    if number.is_i64() || number.is_u64() {
        let _ = write!(out, "{number}");
        return;
    }
    match number.as_f64() {
        Some(0.0) => out.push_str("0.0"),
        Some(_) => write_plain_decimal(out, &number.to_string()),
        None => {
            let _ = write!(out, "{number}");
        }
    }
}

/// Rewrites serde_json's shortest float text, such as `1.5e-7` or `1e300`,
/// without an exponent: `0.00000015`, `1000…0`.
fn write_plain_decimal(out: &mut String, text: &str) {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap_or(0)),
        None => {
            out.push_str(text);
            return;
        }
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int_part}{frac_part}");
    // The position of the decimal point within `digits` after shifting.
    let point = i64::try_from(int_part.len()).unwrap_or(0) + i64::from(exponent);
    if negative {
        out.push('-');
    }
    let digit_count = i64::try_from(digits.len()).unwrap_or(0);
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(digits.trim_end_matches('0'));
    } else if point >= digit_count {
        out.push_str(&digits);
        for _ in 0..(point - digit_count) {
            out.push('0');
        }
    } else {
        let split = usize::try_from(point).unwrap_or(0);
        out.push_str(&digits[..split]);
        out.push('.');
        out.push_str(&digits[split..]);
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
    fn keys_sort_by_length_then_bytes() {
        let value = json!({"bb": 1, "a": [true, null, "x"], "ab": {"zz": 1.5, "y": -0.0}});
        assert_eq!(
            to_canonical_string(&value),
            r#"{"a": [true, null, "x"], "ab": {"y": 0.0, "zz": 1.5}, "bb": 1}"#
        );
        assert_eq!(to_canonical_string(&json!({})), "{}");
        assert_eq!(to_canonical_string(&json!({"a": []})), r#"{"a": []}"#);
    }

    #[test]
    fn strings_escape_controls() {
        let value = json!("q\"\\\n\u{1}é/");
        assert_eq!(to_canonical_string(&value), "\"q\\\"\\\\\\n\\u0001é/\"");
    }

    #[test]
    fn floats_are_plain_decimals() {
        let cases = [
            (json!(1e300), format!("1{}", "0".repeat(300))),
            (json!(1.5e-7), "0.00000015".to_owned()),
            (json!(0.1), "0.1".to_owned()),
            (json!(100.0), "100.0".to_owned()),
            (json!(-2.5), "-2.5".to_owned()),
            (json!(1e16), "10000000000000000".to_owned()),
            (json!(-1.25e-3), "-0.00125".to_owned()),
            (json!(18446744073709551615u64), "18446744073709551615".to_owned()),
            (json!(-9223372036854775808i64), "-9223372036854775808".to_owned()),
        ];
        for (value, expected) in cases {
            assert_eq!(to_canonical_string(&value), expected, "{value}");
        }
    }

    #[test]
    fn canonical_text_reparses_to_the_same_text() {
        let value = json!({"n": [1e300, 0.1, 18446744073709551615u64, 1.0, 1e-7, 12345.678], "s": "\u{7f}"});
        let text = to_canonical_string(&value);
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(to_canonical_string(&reparsed), text);
    }
}
