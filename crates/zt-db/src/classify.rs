//! Diesel and r2d2 errors, classified once: every zt crate asks here what a
//! database error means, as rustls maps each error onto its alert in one place.

use std::error::Error as StdError;

use diesel::r2d2::{Error as ManagerError, PoolError};
use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};

/// What a database error means to a caller: whether to retry, report a
/// conflict, or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// No usable database: no connection could be had, the connection
    /// closed, or the server is read-only (a standby after a failover). A
    /// retry on a fresh connection may succeed.
    Unavailable,
    /// A lock or statement timeout, or SQLite's "database is locked".
    Timeout,
    /// A unique constraint refused the row.
    UniqueViolation,
    /// A foreign-key, not-null or check constraint refused the row.
    ConstraintViolation,
    /// A serialization failure or deadlock; retrying the transaction may succeed.
    SerializationFailure,
    /// A query that must return a row returned none.
    NotFound,
    /// Anything else: a bad query, a type mismatch, a server error.
    Other,
}

impl ErrorClass {
    /// Classifies a diesel query error.
    pub fn of_query(error: &DieselError) -> Self {
        match error {
            DieselError::NotFound => Self::NotFound,
            DieselError::DatabaseError(kind, info) => match kind {
                DatabaseErrorKind::UniqueViolation => Self::UniqueViolation,
                DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation => Self::ConstraintViolation,
                DatabaseErrorKind::SerializationFailure => Self::SerializationFailure,
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::ReadOnlyTransaction => Self::Unavailable,
                _ => Self::of_message(info.message()),
            },
            DieselError::BrokenTransactionManager => Self::Unavailable,
            _ => Self::Other,
        }
    }

    /// Classifies a diesel connection error: every one means no database.
    pub fn of_connection(_error: &ConnectionError) -> Self {
        Self::Unavailable
    }

    /// Classifies an r2d2 pool error: the pool gave up waiting for a connection.
    pub fn of_pool(_error: &PoolError) -> Self {
        Self::Unavailable
    }

    /// Classifies any error that is a diesel query or connection error, an
    /// r2d2 pool error, or a connection manager error; `None` for others.
    /// This looks at `error` itself, not its sources.
    pub fn of(error: &(dyn StdError + 'static)) -> Option<Self> {
        if let Some(error) = error.downcast_ref::<DieselError>() {
            return Some(Self::of_query(error));
        }
        if let Some(error) = error.downcast_ref::<ConnectionError>() {
            return Some(Self::of_connection(error));
        }
        if let Some(error) = error.downcast_ref::<PoolError>() {
            return Some(Self::of_pool(error));
        }
        if let Some(error) = error.downcast_ref::<ManagerError>() {
            return Some(match error {
                ManagerError::ConnectionError(error) => Self::of_connection(error),
                ManagerError::QueryError(error) => Self::of_query(error),
            });
        }
        None
    }

    /// Whether a retry on a fresh connection may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout | Self::SerializationFailure)
    }

    /// Errors that diesel does not classify, recognized by the server's message.
    fn of_message(message: &str) -> Self {
        let message = message.to_ascii_lowercase();
        let any = |needles: &[&str]| needles.iter().any(|needle| message.contains(needle));
        if any(&[
            "database is locked",
            "database table is locked",
            "statement timeout",
            "canceling statement",
            "lock timeout",
        ]) {
            Self::Timeout
        } else if any(&["deadlock detected", "could not serialize"]) {
            Self::SerializationFailure
        } else if any(&[
            "server closed the connection",
            "terminating connection",
            "no connection to the server",
            "could not connect",
            "connection refused",
            "the database system is shutting down",
            "the database system is starting up",
            "the database system is in recovery mode",
            "read-only transaction",
            "disk i/o error",
        ]) {
            Self::Unavailable
        } else {
            Self::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn kinds_and_messages_classify() {
        let cases = [
            (DieselError::NotFound, ErrorClass::NotFound),
            (
                database_error(DatabaseErrorKind::UniqueViolation, "dup"),
                ErrorClass::UniqueViolation,
            ),
            (
                database_error(DatabaseErrorKind::CheckViolation, "c"),
                ErrorClass::ConstraintViolation,
            ),
            (
                database_error(DatabaseErrorKind::ReadOnlyTransaction, "ro"),
                ErrorClass::Unavailable,
            ),
            (
                database_error(DatabaseErrorKind::ClosedConnection, "c"),
                ErrorClass::Unavailable,
            ),
            (
                database_error(DatabaseErrorKind::Unknown, "database is locked"),
                ErrorClass::Timeout,
            ),
            (
                database_error(DatabaseErrorKind::Unknown, "deadlock detected"),
                ErrorClass::SerializationFailure,
            ),
            (
                database_error(
                    DatabaseErrorKind::Unknown,
                    "terminating connection due to administrator command",
                ),
                ErrorClass::Unavailable,
            ),
            (
                database_error(DatabaseErrorKind::Unknown, "syntax error"),
                ErrorClass::Other,
            ),
            (DieselError::RollbackTransaction, ErrorClass::Other),
        ];
        for (error, class) in cases {
            assert_eq!(ErrorClass::of_query(&error), class, "{error}");
            assert_eq!(ErrorClass::of(&error), Some(class));
        }
        assert_eq!(ErrorClass::of(&std::io::Error::other("x")), None);
    }
}
