//! The one error type of this crate: a value that failed to parse.

use std::fmt;

/// A value was rejected when it was built.
///
/// Every constructor in this crate that takes outside input returns this error.
/// It names the field, so that a caller can tell the user which input was wrong
/// without exposing anything internal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {}", Reason(kind))]
pub struct FieldError {
    field: &'static str,
    kind: FieldErrorKind,
}

/// Why a value was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// The value is empty where a value is required.
    Empty,
    /// The value is longer than its bound, in bytes.
    TooLong {
        /// The bound, in bytes.
        max: usize,
        /// The length that was given, in bytes.
        actual: usize,
    },
    /// The value holds a character that the field does not allow.
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its byte offset in the value.
        position: usize,
    },
    /// The value does not have the field's format; the text says which format.
    InvalidFormat(&'static str),
    /// Nested JSON is deeper than its bound.
    TooDeep {
        /// The deepest nesting allowed.
        max: usize,
    },
    /// A value could not be serialized to JSON.
    Serialize(String),
}

impl FieldError {
    /// Creates an error for `field`.
    pub const fn new(field: &'static str, kind: FieldErrorKind) -> Self {
        Self { field, kind }
    }

    /// The name of the rejected field, such as `user_agent`.
    pub const fn field(&self) -> &'static str {
        self.field
    }

    /// Why it was rejected.
    pub const fn kind(&self) -> &FieldErrorKind {
        &self.kind
    }
}

/// Why a field was rejected, as the end of [`FieldError`]'s message.
struct Reason<'a>(&'a FieldErrorKind);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            FieldErrorKind::Empty => f.write_str("is empty"),
            FieldErrorKind::TooLong { max, actual } => {
                write!(f, "is {actual} bytes long, over its bound of {max} bytes")
            }
            FieldErrorKind::InvalidCharacter { character, position } => {
                write!(
                    f,
                    "has the character {character:?} at byte {position}, which it does not allow"
                )
            }
            FieldErrorKind::InvalidFormat(format) => write!(f, "is not {format}"),
            FieldErrorKind::TooDeep { max } => write!(f, "nests deeper than {max} levels"),
            FieldErrorKind::Serialize(reason) => write!(f, "could not be serialized: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field() {
        let cases = [
            (FieldErrorKind::Empty, "field `user_id` is empty"),
            (
                FieldErrorKind::TooLong { max: 128, actual: 130 },
                "field `user_id` is 130 bytes long, over its bound of 128 bytes",
            ),
            (
                FieldErrorKind::InvalidCharacter {
                    character: ' ',
                    position: 2,
                },
                "field `user_id` has the character ' ' at byte 2, which it does not allow",
            ),
            (FieldErrorKind::InvalidFormat("a UUID"), "field `user_id` is not a UUID"),
            (
                FieldErrorKind::TooDeep { max: 32 },
                "field `user_id` nests deeper than 32 levels",
            ),
            (
                FieldErrorKind::Serialize("key must be a string".to_owned()),
                "field `user_id` could not be serialized: key must be a string",
            ),
        ];
        for (kind, expected) in cases {
            let error = FieldError::new("user_id", kind);
            assert_eq!(error.to_string(), expected);
            assert!(std::error::Error::source(&error).is_none());
        }
    }
}
