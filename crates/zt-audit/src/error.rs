//! The error type of this crate.

use std::error::Error as StdError;

use zt_db::ErrorClass;
use zt_error_codes::ErrorCode;

/// An audit operation failed.
///
/// `Display` gives zt-audit's own account; the database's or the file
/// system's words are in [`source`](std::error::Error::source), never repeated.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    class: Option<ErrorClass>,
    #[source]
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
    /// The connection is of a backend this crate was built without.
    BackendDisabled,
    /// The log does not verify, so an operation that needs an intact log
    /// (archiving, pruning) refused; `zt audit verify` names the row.
    Tampered,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            class: None,
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

    /// The database error's class, from `zt_db`, when a database failed.
    pub fn database_class(&self) -> Option<ErrorClass> {
        self.class
    }

    pub(crate) fn is_unique_violation(&self) -> bool {
        self.class == Some(ErrorClass::UniqueViolation)
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

impl From<zt_types::FieldError> for Error {
    fn from(error: zt_types::FieldError) -> Self {
        Self::new(ErrorKind::InvalidInput, error.to_string()).with_source(error)
    }
}

impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        Self::database(ErrorClass::of_query(&error), error)
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Self::database(ErrorClass::of_pool(&error), error)
    }
}

impl From<std::io::Error> for Error {
    /// A local file failed, such as an export's output or the spool.
    fn from(error: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, "local file error").with_source(error)
    }
}

impl Error {
    /// A database failure of `class`; transient classes are [`ErrorKind::Unavailable`].
    fn database(class: ErrorClass, source: impl StdError + Send + Sync + 'static) -> Self {
        let (kind, message) = if class == ErrorClass::Unavailable {
            (ErrorKind::Unavailable, "no usable audit database")
        } else {
            (ErrorKind::Database, "audit database error")
        };
        let mut error = Self::new(kind, message).with_source(source);
        error.class = Some(class);
        error
    }
}

/// Recognizes this crate's errors for `zt_errors::Sanitizer::classifier`.
pub fn classify(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    error.downcast_ref::<Error>().map(Error::code)
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
