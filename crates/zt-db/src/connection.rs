//! A borrowed connection of either backend, for APIs that work inside the
//! caller's transaction.

#[cfg(feature = "postgres")]
use diesel::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::SqliteConnection;
use diesel::r2d2::PooledConnection;

use crate::pool::Manager;

/// A mutable borrow of a diesel connection of either backend: what zt's
/// "inside your transaction" APIs take, such as `AuditLog::record_in`.
///
/// Plain connections and pooled ones convert with `into()`.
///
/// Exhaustive on purpose: one variant per backend feature.
pub enum ConnectionRef<'a> {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(&'a mut SqliteConnection),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(&'a mut PgConnection),
}

impl std::fmt::Debug for ConnectionRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionRef")
    }
}

impl ConnectionRef<'_> {
    /// Reborrows, for passing the connection on while keeping it.
    pub fn reborrow(&mut self) -> ConnectionRef<'_> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(conn) => ConnectionRef::Sqlite(conn),
            #[cfg(feature = "postgres")]
            Self::Postgres(conn) => ConnectionRef::Postgres(conn),
        }
    }
}

macro_rules! conversions {
    ($feature:literal, $variant:ident, $conn:ty) => {
        #[cfg(feature = $feature)]
        impl<'a> From<&'a mut $conn> for ConnectionRef<'a> {
            fn from(conn: &'a mut $conn) -> Self {
                Self::$variant(conn)
            }
        }

        #[cfg(feature = $feature)]
        impl<'a> From<&'a mut PooledConnection<Manager<$conn>>> for ConnectionRef<'a> {
            fn from(conn: &'a mut PooledConnection<Manager<$conn>>) -> Self {
                Self::$variant(conn)
            }
        }
    };
}

conversions!("sqlite", Sqlite, SqliteConnection);
conversions!("postgres", Postgres, PgConnection);
