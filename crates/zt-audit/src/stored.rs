//! Stored values read back as they are, so that one poisoned row never stops
//! a query, an export or a verification: text is read as bytes, required
//! columns as nullable, and every value that is not what zt writes is
//! recorded as a [`DamagedField`] naming the column, with a stand-in value.
//!
//! A stored value is damaged when it is not valid UTF-8, is NULL where zt
//! never writes NULL, does not parse, is out of range, or is stored in
//! another text form than the one zt writes (`2026-11-29 12:00:00.000000Z`
//! for `2026-11-29T12:00:00.000000Z`, an uppercase UUID, `SUCCESS`). The MAC
//! covers parsed values, so a value respelled in another form would verify;
//! the verifier reports every damaged field as tampering instead.

use diesel::deserialize::FromSqlRow;

use crate::query::DamagedField;

/// A text column's bytes, exactly as stored, whatever their encoding. Each
/// backend module implements `FromSql<Text>` for it.
#[derive(Debug, Clone, PartialEq, Eq, FromSqlRow)]
pub(crate) struct RawText(pub(crate) Vec<u8>);

/// The longest excerpt of a stored value that a problem quotes.
const EXCERPT_CHARS: usize = 64;

/// `text` escaped and cut short, for quoting a stored value in a problem.
pub(crate) fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// Collects the damaged fields of one row while its columns are decoded.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    damaged: Vec<DamagedField>,
}

impl Decoder {
    /// Records a problem with `field`; only the first problem of a field is kept.
    pub(crate) fn damage(&mut self, field: &'static str, problem: impl Into<String>) {
        if !self.damaged.iter().any(|damaged| damaged.field == field) {
            self.damaged.push(DamagedField {
                field,
                problem: problem.into(),
            });
        }
    }

    /// Records that `field` holds `stored`, which reads as a valid value but
    /// is not the form zt writes, `canonical`.
    pub(crate) fn noncanonical(&mut self, field: &'static str, stored: &str, canonical: &str) {
        if stored != canonical {
            self.damage(
                field,
                format!(
                    "{field} is stored as {}, not in its canonical form {}",
                    excerpt(stored),
                    excerpt(canonical)
                ),
            );
        }
    }

    /// A text column that zt always writes: NULL reads as the empty text.
    pub(crate) fn text(&mut self, field: &'static str, raw: Option<RawText>) -> String {
        match raw {
            Some(raw) => self.utf8(field, raw),
            None => {
                self.damage(field, format!("{field} is NULL"));
                String::new()
            }
        }
    }

    /// A text column that may be NULL.
    pub(crate) fn optional_text(&mut self, field: &'static str, raw: Option<RawText>) -> Option<String> {
        raw.map(|raw| self.utf8(field, raw))
    }

    /// The text, or its lossy form with U+FFFD for invalid bytes.
    fn utf8(&mut self, field: &'static str, raw: RawText) -> String {
        match String::from_utf8(raw.0) {
            Ok(text) => text,
            Err(error) => {
                let lossy = String::from_utf8_lossy(error.as_bytes()).into_owned();
                self.damage(
                    field,
                    format!("{field} is not valid UTF-8 (stored as {})", excerpt(&lossy)),
                );
                lossy
            }
        }
    }

    /// An integer column that zt always writes: NULL reads as 0.
    pub(crate) fn integer<T: Default>(&mut self, field: &'static str, value: Option<T>) -> T {
        value.unwrap_or_else(|| {
            self.damage(field, format!("{field} is NULL"));
            T::default()
        })
    }

    /// A MAC column: 32 bytes, or all zeros as a stand-in.
    pub(crate) fn mac(&mut self, field: &'static str, value: Option<Vec<u8>>) -> [u8; 32] {
        match value {
            Some(bytes) => bytes.as_slice().try_into().unwrap_or_else(|_| {
                self.damage(field, format!("{field} is {} bytes, not 32", bytes.len()));
                [0; 32]
            }),
            None => {
                self.damage(field, format!("{field} is NULL"));
                [0; 32]
            }
        }
    }

    /// The actor kind: `user`, `system` or `anonymous`; anonymous as a stand-in.
    pub(crate) fn actor_kind(&mut self, text: &str) -> zt_types::ActorKind {
        zt_types::ActorKind::parse(text).unwrap_or_else(|_| {
            self.damage(
                "actor_kind",
                format!("actor_kind {} is not user, system or anonymous", excerpt(text)),
            );
            zt_types::ActorKind::Anonymous
        })
    }

    /// The status, in the lowercase form zt writes; `failed` as a stand-in.
    pub(crate) fn status(&mut self, text: &str) -> zt_types::AuditStatus {
        match text.parse::<zt_types::AuditStatus>() {
            Ok(status) => {
                self.noncanonical("status", text, status.as_str());
                status
            }
            Err(_) => {
                self.damage(
                    "status",
                    format!("status {} is not success, failed or denied", excerpt(text)),
                );
                zt_types::AuditStatus::Failed
            }
        }
    }

    /// The damaged fields found.
    pub(crate) fn finish(self) -> Vec<DamagedField> {
        self.damaged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_named_once_per_field_with_a_bounded_excerpt() {
        let mut decoder = Decoder::default();
        let text = decoder.text("user_agent", Some(RawText(b"Mozilla\xff".to_vec())));
        assert_eq!(text, "Mozilla\u{fffd}");
        decoder.damage("user_agent", "second problem");
        assert_eq!(decoder.status("SUCCESS"), zt_types::AuditStatus::Success);
        let long = "x".repeat(1000);
        decoder.actor_kind(&long);
        let damaged = decoder.finish();
        assert_eq!(damaged.len(), 3, "{damaged:?}");
        assert!(damaged[0].problem.contains("not valid UTF-8"), "{damaged:?}");
        assert!(damaged[1].problem.contains("canonical"), "{damaged:?}");
        assert!(damaged[2].problem.len() < 200, "{damaged:?}");
    }
}
