//! The error type of this crate.

/// A database set-up error: a bad URL, an unreachable server, a failed migration.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// What kind of [`Error`] it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL could not be parsed.
    InvalidUrl,
    /// The URL names a backend whose feature is not enabled.
    BackendDisabled,
    /// The server or file could not be reached or opened.
    Unreachable,
    /// A migration, or setting up the runtime role, failed.
    Migration,
    /// A value given is not acceptable, such as a runtime role that owns
    /// zt's tables.
    InvalidInput,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What kind of error it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// The first line of a driver message, trimmed: libpq's messages run over
/// several lines, and one clear line is what a terminal user needs.
pub(crate) fn first_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("unknown error")
        .to_owned()
}
