//! Bounded text: checks shared by every string type, log-injection
//! neutralization and truncation with a marker.

use std::borrow::Cow;
use std::fmt;

use crate::error::{FieldError, FieldErrorKind};

/// The marker appended to a value that was cut at its bound.
pub const TRUNCATION_MARKER: &str = "…[truncated]";

/// Returns `text` with CR, LF and every other control character escaped, so
/// that it cannot forge or split a line in a text log.
///
/// `\r`, `\n` and `\t` become those two-character escapes; other control
/// characters (C0, DEL, C1) and the Unicode line and paragraph separators become
/// `\u{..}`. A backslash is left alone, so the output is for people and log
/// parsers, not a reversible encoding. Text with nothing to escape is borrowed,
/// not copied.
///
/// ```
/// assert_eq!(zt_types::neutralize("ok"), "ok");
/// assert_eq!(zt_types::neutralize("a\r\nINFO forged"), "a\\r\\nINFO forged");
/// ```
pub fn neutralize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(Neutralized(text).to_string())
}

/// Formats a string neutralized, without an intermediate allocation; see [`neutralize`].
#[derive(Debug, Clone, Copy)]
pub struct Neutralized<'a>(pub &'a str);

impl fmt::Display for Neutralized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(position) = rest.find(needs_escape) {
            f.write_str(&rest[..position])?;
            let Some(character) = rest[position..].chars().next() else {
                break;
            };
            match character {
                '\r' => f.write_str("\\r")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                other => write!(f, "\\u{{{:x}}}", u32::from(other))?,
            }
            rest = &rest[position + character.len_utf8()..];
        }
        f.write_str(rest)
    }
}

fn needs_escape(character: char) -> bool {
    character.is_control() || character == '\u{2028}' || character == '\u{2029}'
}

/// Rejects an empty value or one over `max` bytes.
pub(crate) fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, FieldErrorKind::Empty));
    }
    if value.len() > max {
        return Err(FieldError::new(
            field,
            FieldErrorKind::TooLong {
                max,
                actual: value.len(),
            },
        ));
    }
    Ok(())
}

/// Rejects the first character that `allowed` refuses.
pub(crate) fn check_chars(field: &'static str, value: &str, allowed: impl Fn(char) -> bool) -> Result<(), FieldError> {
    match value.char_indices().find(|&(_, character)| !allowed(character)) {
        Some((position, character)) => Err(FieldError::new(
            field,
            FieldErrorKind::InvalidCharacter { character, position },
        )),
        None => Ok(()),
    }
}

/// Checks the length and that no control character is present.
pub(crate) fn check_printable(field: &'static str, value: &str, max: usize) -> Result<(), FieldError> {
    check_length(field, value, max)?;
    check_chars(field, value, |character| !character.is_control())
}

/// Cuts `value` to at most `max` bytes, including [`TRUNCATION_MARKER`], on a
/// character boundary, and replaces NUL, which PostgreSQL text cannot hold,
/// with U+FFFD.
pub(crate) fn truncate_with_marker(value: &str, max: usize) -> String {
    let cleaned: Cow<'_, str> = if value.contains('\0') {
        Cow::Owned(value.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(value)
    };
    if cleaned.len() <= max {
        return cleaned.into_owned();
    }
    let mut end = max.saturating_sub(TRUNCATION_MARKER.len());
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + TRUNCATION_MARKER.len());
    out.push_str(&cleaned[..end]);
    out.push_str(TRUNCATION_MARKER);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralize_escapes_line_breaks_and_controls() {
        assert_eq!(neutralize("a\nb"), "a\\nb");
        assert_eq!(neutralize("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(neutralize("x\u{2028}y"), "x\\u{2028}y");
        assert_eq!(neutralize("tab\there"), "tab\\there");
        assert!(matches!(neutralize("plain é"), Cow::Borrowed(_)));
    }

    #[test]
    fn truncation_respects_bound_and_char_boundaries() {
        let long = "é".repeat(100);
        let cut = truncate_with_marker(&long, 51);
        assert!(cut.len() <= 51, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATION_MARKER));
        assert_eq!(truncate_with_marker("short", 51), "short");
        assert_eq!(truncate_with_marker("a\0b", 51), "a\u{fffd}b");
    }
}
