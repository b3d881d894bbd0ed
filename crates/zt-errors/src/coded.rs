//! An application error that says which code it is.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use serde::Serialize;
use zt_error_codes::ErrorCode;

/// A message about one input field that the caller has explicitly marked safe
/// to show the client, such as "Enter a valid email address."
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldMessage {
    /// The field's name, as the client knows it.
    pub field: String,
    /// What is wrong with it, in words meant for the user.
    pub message: String,
}

/// An error that carries its [`ErrorCode`], an internal message for the log,
/// an optional source, and field messages that are safe to show.
///
/// Return it from application code where you know what went wrong; the
/// sanitizer then uses its code instead of guessing from the chain.
///
/// ```
/// use zt_error_codes::ErrorCode;
/// use zt_errors::CodedError;
///
/// let error = CodedError::validation()
///     .with_safe_field("email", "Enter a valid email address.")
///     .with_message("signup rejected: email `bob@` has no domain");
/// assert_eq!(error.code(), ErrorCode::RequestValidationFailed);
/// assert_eq!(error.safe_fields().len(), 1);
/// ```
///
/// It displays as the code's reason, the internal message and the field
/// messages, such as `REQUEST_VALIDATION_FAILED: signup rejected [email: Enter
/// a valid email address.]`; the source is not repeated there, a reporter
/// reads it from [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[error("{}{}", .code.reason(), Details(.message.as_deref(), .fields))]
pub struct CodedError {
    code: ErrorCode,
    message: Option<Cow<'static, str>>,
    fields: Vec<FieldMessage>,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl CodedError {
    /// An error with `code` and nothing else.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: None,
            fields: Vec::new(),
            source: None,
        }
    }

    /// A validation failure, [`ErrorCode::RequestValidationFailed`].
    pub fn validation() -> Self {
        Self::new(ErrorCode::RequestValidationFailed)
    }

    /// Adds an internal message. It is logged, never shown to the client.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Adds the underlying error. It is logged, never shown to the client.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Adds a field message that **will be shown to the client**. Only pass
    /// text you wrote for users, never text from an error or from input.
    #[must_use]
    pub fn with_safe_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.fields.push(FieldMessage {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The field messages marked safe.
    pub fn safe_fields(&self) -> &[FieldMessage] {
        &self.fields
    }
}

impl From<ErrorCode> for CodedError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

/// What [`CodedError`] displays after its code.
struct Details<'a>(Option<&'a str>, &'a [FieldMessage]);

impl fmt::Display for Details<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(message) = self.0 {
            write!(f, ": {message}")?;
        }
        for field in self.1 {
            write!(f, " [{}: {}]", field.field, field.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_code_message_and_fields_but_not_the_source() {
        let error = CodedError::validation()
            .with_message("signup rejected")
            .with_safe_field("email", "Enter a valid email address.")
            .with_source(std::io::Error::other("disk full"));
        assert_eq!(
            error.to_string(),
            "REQUEST_VALIDATION_FAILED: signup rejected [email: Enter a valid email address.]"
        );
        let source = error.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk full"));

        let bare = CodedError::new(ErrorCode::RateLimited);
        assert_eq!(bare.to_string(), "RATE_LIMITED");
        assert!(bare.source().is_none());
    }
}
