//! Diesel and r2d2 errors, mapped by kind.

use std::error::Error as StdError;

use diesel::r2d2::{Error as ManagerError, PoolError};
use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use zt_error_codes::ErrorCode;

/// Recognizes diesel's query and connection errors, the r2d2 pool's timeout
/// and the connection manager's errors.
pub(crate) fn classify(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    if let Some(error) = error.downcast_ref::<DieselError>() {
        return Some(query_error(error));
    }
    if let Some(error) = error.downcast_ref::<ConnectionError>() {
        return Some(connection_error(error));
    }
    if error.downcast_ref::<PoolError>().is_some() {
        // r2d2 gives up after its connection timeout: no connection could be had.
        return Some(ErrorCode::DbUnavailable);
    }
    if let Some(error) = error.downcast_ref::<ManagerError>() {
        return Some(match error {
            ManagerError::ConnectionError(error) => connection_error(error),
            ManagerError::QueryError(error) => query_error(error),
        });
    }
    None
}

/// Maps a diesel query error onto a code.
pub fn query_error(error: &DieselError) -> ErrorCode {
    match error {
        DieselError::NotFound => ErrorCode::ResourceNotFound,
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation => ErrorCode::ResourceConflict,
            DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::NotNullViolation
            | DatabaseErrorKind::CheckViolation => ErrorCode::DbConstraintViolation,
            DatabaseErrorKind::SerializationFailure => ErrorCode::DbSerializationFailure,
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction => ErrorCode::DbUnavailable,
            _ => unknown_database_error(info.message()),
        },
        _ => ErrorCode::DbQueryFailed,
    }
}

/// Maps a diesel connection error onto a code: every one means no database.
pub fn connection_error(_error: &ConnectionError) -> ErrorCode {
    ErrorCode::DbUnavailable
}

/// Errors that diesel does not classify, recognized by the server's message.
fn unknown_database_error(message: &str) -> ErrorCode {
    let message = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|needle| message.contains(needle));
    if any(&[
        "database is locked",
        "database table is locked",
        "statement timeout",
        "canceling statement",
        "lock timeout",
    ]) {
        ErrorCode::DbTimeout
    } else if any(&["deadlock detected", "could not serialize"]) {
        ErrorCode::DbSerializationFailure
    } else if any(&[
        "server closed the connection",
        "terminating connection",
        "no connection to the server",
        "could not connect",
        "connection refused",
        "the database system is shutting down",
        "the database system is starting up",
        "disk i/o error",
    ]) {
        ErrorCode::DbUnavailable
    } else {
        ErrorCode::DbQueryFailed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_owned()))
    }

    #[test]
    fn kinds_map_onto_codes() {
        let cases = [
            (DieselError::NotFound, ErrorCode::ResourceNotFound),
            (
                database_error(DatabaseErrorKind::UniqueViolation, "dup"),
                ErrorCode::ResourceConflict,
            ),
            (
                database_error(DatabaseErrorKind::ForeignKeyViolation, "fk"),
                ErrorCode::DbConstraintViolation,
            ),
            (
                database_error(DatabaseErrorKind::SerializationFailure, "s"),
                ErrorCode::DbSerializationFailure,
            ),
            (
                database_error(DatabaseErrorKind::ClosedConnection, "c"),
                ErrorCode::DbUnavailable,
            ),
            (
                database_error(DatabaseErrorKind::Unknown, "database is locked"),
                ErrorCode::DbTimeout,
            ),
            (
                database_error(
                    DatabaseErrorKind::Unknown,
                    "canceling statement due to statement timeout",
                ),
                ErrorCode::DbTimeout,
            ),
            (
                database_error(DatabaseErrorKind::Unknown, "deadlock detected"),
                ErrorCode::DbSerializationFailure,
            ),
            (
                database_error(
                    DatabaseErrorKind::Unknown,
                    "terminating connection due to administrator command",
                ),
                ErrorCode::DbUnavailable,
            ),
            (
                database_error(DatabaseErrorKind::Unknown, "relation \"x\" does not exist"),
                ErrorCode::DbQueryFailed,
            ),
            (DieselError::RollbackTransaction, ErrorCode::DbQueryFailed),
        ];
        for (error, code) in cases {
            assert_eq!(query_error(&error), code, "{error}");
        }
    }
}
