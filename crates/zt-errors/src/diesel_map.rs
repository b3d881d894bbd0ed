//! Database errors onto codes. What a diesel or r2d2 error *is* comes from
//! zt-db's [`ErrorClass`], the one classification every zt crate shares;
//! this module only names the code of each class.

use std::error::Error as StdError;

use diesel::result::{ConnectionError, Error as DieselError};
use zt_db::ErrorClass;
use zt_error_codes::ErrorCode;

/// Recognizes diesel's query and connection errors, the r2d2 pool's timeout
/// and the connection manager's errors.
pub(crate) fn classify(error: &(dyn StdError + 'static)) -> Option<ErrorCode> {
    ErrorClass::of(error).map(class_code)
}

/// The code of a database error class.
pub fn class_code(class: ErrorClass) -> ErrorCode {
    match class {
        ErrorClass::NotFound => ErrorCode::ResourceNotFound,
        ErrorClass::UniqueViolation => ErrorCode::ResourceConflict,
        ErrorClass::ConstraintViolation => ErrorCode::DbConstraintViolation,
        ErrorClass::SerializationFailure => ErrorCode::DbSerializationFailure,
        ErrorClass::Unavailable => ErrorCode::DbUnavailable,
        ErrorClass::Timeout => ErrorCode::DbTimeout,
        _ => ErrorCode::DbQueryFailed,
    }
}

/// Maps a diesel query error onto a code.
pub fn query_error(error: &DieselError) -> ErrorCode {
    class_code(ErrorClass::of_query(error))
}

/// Maps a diesel connection error onto a code: every one means no database.
pub fn connection_error(error: &ConnectionError) -> ErrorCode {
    class_code(ErrorClass::of_connection(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    use diesel::result::DatabaseErrorKind;

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
            // A standby after a failover refuses writes: unavailable, so callers retry.
            (
                database_error(DatabaseErrorKind::ReadOnlyTransaction, "read-only"),
                ErrorCode::DbUnavailable,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(query_error(&error), code, "{error}");
        }
    }
}
