//! The one error type of this crate: a value that failed to parse.

use std::fmt;

/// A value was rejected when it was built.
///
/// Every constructor in this crate that takes outside input returns this error.
/// It names the field, so that a caller can tell the user which input was wrong
/// without exposing anything internal.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field;
        match &self.kind {
            FieldErrorKind::Empty => write!(f, "field `{field}` is empty"),
            FieldErrorKind::TooLong { max, actual } => {
                write!(
                    f,
                    "field `{field}` is {actual} bytes long, over its bound of {max} bytes"
                )
            }
            FieldErrorKind::InvalidCharacter { character, position } => write!(
                f,
                "field `{field}` has the character {character:?} at byte {position}, which it does not allow"
            ),
            FieldErrorKind::InvalidFormat(format) => {
                write!(f, "field `{field}` is not {format}")
            }
            FieldErrorKind::TooDeep { max } => {
                write!(f, "field `{field}` nests deeper than {max} levels")
            }
            FieldErrorKind::Serialize(reason) => {
                write!(f, "field `{field}` could not be serialized: {reason}")
            }
        }
    }
}

impl std::error::Error for FieldError {}
