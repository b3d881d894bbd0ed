//! The error type of this crate.

use std::error::Error as StdError;
use std::fmt;

use zt_error_codes::ErrorCode;

/// An audit operation failed.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What kind of [`Error`] it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An event or filter field was rejected; the message names the field.
    InvalidInput,
    /// A key could not be read or has the wrong size.
    InvalidKey,
    /// No connection could be had: the database is down or the pool exhausted.
    Unavailable,
    /// The database refused or failed the statement.
    Database,
    /// A stored row could not be decoded.
    Decode,
    /// A checkpoint file is malformed.
    Checkpoint,
    /// Reading or writing a local file failed.
    Io,
    /// The pipeline's spool could not be written; the event was not accepted.
    Spool,
    /// The pipeline's queue stayed full for the whole timeout; the event was not accepted.
    QueueFull,
    /// The pipeline is shut down; the event was not accepted.
    Shutdown,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of error it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error code it maps onto, for the sanitizer: an unreachable database
    /// is `DB_UNAVAILABLE` (503), a full spool `AUDIT_SPOOL_FAILED`, anything
    /// else `AUDIT_WRITE_FAILED`.
    pub fn code(&self) -> ErrorCode {
        match self.kind {
            ErrorKind::Unavailable => ErrorCode::DbUnavailable,
            ErrorKind::Spool => ErrorCode::AuditSpoolFailed,
            _ => ErrorCode::AuditWriteFailed,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn StdError + 'static))
    }
}

impl From<zt_types::FieldError> for Error {
    fn from(error: zt_types::FieldError) -> Self {
        Self::new(ErrorKind::InvalidInput, error.to_string()).with_source(error)
    }
}

impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as D};
        let kind = match &error {
            D::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Database,
        };
        Self::new(kind, format!("audit database error: {error}")).with_source(error)
    }
}

impl From<std::io::Error> for Error {
    /// A local file failed, such as an export's output or the spool.
    fn from(error: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("local file error: {error}")).with_source(error)
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Self::new(ErrorKind::Unavailable, format!("no audit database connection: {error}")).with_source(error)
    }
}

/// Recognizes this crate's errors for `zt_errors::Sanitizer::classifier`.
pub fn classify(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    error.downcast_ref::<Error>().map(Error::code)
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
