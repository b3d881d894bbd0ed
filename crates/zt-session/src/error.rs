//! The error type of the store and of [`crate::UserDirectory`] implementations.

use std::error::Error as StdError;

use zt_error_codes::ErrorCode;

/// A user-store operation failed.
///
/// The validator never returns this: a failed read becomes a
/// [`crate::Denial`] with the reason [`crate::DenialReason::CheckFailed`],
/// which keeps this error as its source. Admin operations on the reference
/// store return it directly.
///
/// `Display` gives zt-session's own account; the database's words are in
/// [`source`](std::error::Error::source), never repeated.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// What kind of [`Error`] it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No connection could be had: the database is down, or the pool stayed
    /// exhausted for its whole connection timeout.
    Unavailable,
    /// The database refused or failed the statement.
    Database,
    /// A stored value could not be decoded, such as a role that is not a valid [`zt_types::Role`].
    Decode,
    /// The user does not exist, or is deleted, for an operation that needs a live user.
    NotFound,
    /// The user id, or the live user's email, is taken.
    Conflict,
    /// A configuration value was rejected, such as a role hierarchy with a duplicate.
    InvalidConfig,
    /// An identity provider's token did not verify; the denial's
    /// [`crate::TokenProblem`] says how.
    InvalidToken,
    /// The identity provider's key set could not be fetched or read.
    KeysUnavailable,
}

impl Error {
    /// An error of `kind`. Implementations of [`crate::UserDirectory`] use
    /// this to report their own failures; messages are lowercase and must
    /// not contain secrets, because they are logged.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of error it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The error code it maps onto, for the sanitizer.
    pub fn code(&self) -> ErrorCode {
        match self.kind {
            ErrorKind::Unavailable => ErrorCode::DbUnavailable,
            ErrorKind::Database | ErrorKind::Decode => ErrorCode::DbQueryFailed,
            ErrorKind::NotFound => ErrorCode::ResourceNotFound,
            ErrorKind::Conflict => ErrorCode::ResourceConflict,
            ErrorKind::InvalidConfig => ErrorCode::Internal,
            ErrorKind::InvalidToken => ErrorCode::SessionInvalid,
            ErrorKind::KeysUnavailable => ErrorCode::SessionCheckFailed,
        }
    }
}

#[cfg(feature = "store")]
impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        use zt_db::ErrorClass;
        let (kind, message) = match ErrorClass::of_query(&error) {
            ErrorClass::Unavailable => (ErrorKind::Unavailable, "no usable user store database"),
            ErrorClass::UniqueViolation => (ErrorKind::Conflict, "user store conflict"),
            _ if matches!(error, diesel::result::Error::DeserializationError(_)) => {
                (ErrorKind::Decode, "user store row cannot be decoded")
            }
            _ => (ErrorKind::Database, "user store database error"),
        };
        Self::new(kind, message).with_source(error)
    }
}

#[cfg(feature = "store")]
impl From<diesel::r2d2::PoolError> for Error {
    fn from(error: diesel::r2d2::PoolError) -> Self {
        Self::new(ErrorKind::Unavailable, "no user store database connection").with_source(error)
    }
}

impl From<zt_types::FieldError> for Error {
    fn from(error: zt_types::FieldError) -> Self {
        Self::new(ErrorKind::Decode, "stored value rejected").with_source(error)
    }
}

/// `Result` with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
