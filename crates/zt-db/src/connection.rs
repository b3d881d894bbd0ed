//! The one backend seam: which diesel connections zt works on, and how a
//! borrowed connection of either backend reaches the code for its backend.

#[cfg(feature = "postgres")]
use diesel::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::SqliteConnection;
use diesel::r2d2::{ManageConnection, R2D2Connection};

use crate::url::Backend;

/// A mutable borrow of a diesel connection of one of zt's backends.
///
/// Crates that hold backend-specific SQL match on it once, in one function,
/// and answer the backends they were not built for with a clear error.
/// `#[non_exhaustive]`: a variant appears for each backend feature of zt-db,
/// and Cargo unifies features across the whole build, so every match outside
/// this crate needs a wildcard arm; that is what keeps any mix of features
/// compiling.
#[non_exhaustive]
pub enum AnyConnection<'a> {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(&'a mut SqliteConnection),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(&'a mut PgConnection),
    /// Never built: keeps the lifetime used when no backend is enabled.
    #[doc(hidden)]
    _Unbuilt(std::convert::Infallible, std::marker::PhantomData<&'a mut ()>),
}

impl std::fmt::Debug for AnyConnection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyConnection({})", self.backend())
    }
}

impl<'a> AnyConnection<'a> {
    /// The backend of the connection.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Backend::Postgres,
            Self::_Unbuilt(never, _) => match *never {},
        }
    }

    /// Reborrows, for passing the connection on while keeping it.
    pub fn reborrow(&mut self) -> AnyConnection<'_> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(conn) => AnyConnection::Sqlite(conn),
            #[cfg(feature = "postgres")]
            Self::Postgres(conn) => AnyConnection::Postgres(conn),
            Self::_Unbuilt(never, _) => match *never {},
        }
    }

    /// Calls `visitor` with the concrete connection: the one dispatch on the
    /// backend that code generic over [`DbConnection`] needs, with no
    /// backend `cfg` of its own.
    pub fn visit<V: ConnectionVisitor>(self, visitor: V) -> V::Output {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(conn) => visitor.visit(conn),
            #[cfg(feature = "postgres")]
            Self::Postgres(conn) => visitor.visit(conn),
            Self::_Unbuilt(never, _) => match never {},
        }
    }

    /// The connection as the concrete type `C`, or `None` when it is of
    /// another backend. An app on one backend gets its own connection type
    /// back: `let conn: &mut PgConnection = any.downcast().ok_or("not pg")?`.
    pub fn downcast<C: DbConnection>(self) -> Option<&'a mut C> {
        C::from_any(self)
    }
}

/// Code generic over the connection type, run by [`AnyConnection::visit`]
/// on whichever backend the connection is.
pub trait ConnectionVisitor {
    /// What the visit returns.
    type Output;
    /// Runs on the concrete connection.
    fn visit<C: DbConnection>(self, conn: &mut C) -> Self::Output;
}

/// The diesel connection types zt works on: `SqliteConnection` and
/// `PgConnection`, each behind its backend feature. Sealed.
///
/// zt's APIs are written against this trait or against [`AnyConnection`],
/// never against a feature of another crate.
pub trait DbConnection: R2D2Connection + Send + 'static + sealed::Sealed {
    /// The backend.
    const BACKEND: Backend;

    /// Borrows the connection as an [`AnyConnection`].
    fn as_any(&mut self) -> AnyConnection<'_>;

    /// Takes the connection back out of an [`AnyConnection`] of its backend.
    fn from_any(conn: AnyConnection<'_>) -> Option<&mut Self>;

    /// Runs `body` in a transaction that writes: on SQLite an immediate
    /// transaction, which takes the write lock first so that a transaction
    /// that reads before it writes cannot fail with "database is locked"; on
    /// PostgreSQL an ordinary one. Inside an open transaction, a savepoint.
    fn write_transaction<T, E, F>(&mut self, body: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        diesel::Connection::transaction(self, body)
    }

    /// Prepares a new connection made by zt's pool manager.
    #[doc(hidden)]
    fn after_connect(&mut self) {}

    /// Whether the connection has reported that it is closed.
    #[doc(hidden)]
    fn saw_closed_connection(&mut self) -> bool {
        false
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
    #[cfg(feature = "sqlite")]
    impl Sealed for diesel::SqliteConnection {}
    #[cfg(feature = "postgres")]
    impl Sealed for diesel::PgConnection {}
}

#[cfg(feature = "sqlite")]
impl DbConnection for SqliteConnection {
    const BACKEND: Backend = Backend::Sqlite;

    fn write_transaction<T, E, F>(&mut self, body: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        // A savepoint inside an open transaction; BEGIN IMMEDIATE outside one.
        if AnsiTransactionManager::transaction_manager_status_mut(self)
            .transaction_depth()
            .map_err(E::from)?
            .is_some()
        {
            diesel::Connection::transaction(self, body)
        } else {
            self.immediate_transaction(body)
        }
    }

    fn as_any(&mut self) -> AnyConnection<'_> {
        AnyConnection::Sqlite(self)
    }

    fn from_any(conn: AnyConnection<'_>) -> Option<&mut Self> {
        match conn {
            AnyConnection::Sqlite(conn) => Some(conn),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

#[cfg(feature = "postgres")]
impl DbConnection for PgConnection {
    const BACKEND: Backend = Backend::Postgres;

    fn as_any(&mut self) -> AnyConnection<'_> {
        AnyConnection::Postgres(self)
    }

    fn from_any(conn: AnyConnection<'_>) -> Option<&mut Self> {
        match conn {
            AnyConnection::Postgres(conn) => Some(conn),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn after_connect(&mut self) {
        use diesel::Connection;
        self.set_instrumentation(crate::health::HealthProbe::new(
            diesel::connection::get_default_instrumentation(),
        ));
    }

    fn saw_closed_connection(&mut self) -> bool {
        crate::health::take_closed(self)
    }
}

/// Anything that lends a connection of one of zt's backends: the diesel
/// connection itself (`&mut PgConnection` inside `conn.transaction(|conn| …)`),
/// the app's own `r2d2::PooledConnection`, zt-db's [`PooledConnection`](crate::PooledConnection)
/// and an [`AnyConnection`]. zt's "inside your transaction" APIs take
/// `&mut impl AsConnection`, so the app passes what it has, as it is.
pub trait AsConnection {
    /// Borrows the connection.
    fn as_connection(&mut self) -> AnyConnection<'_>;
}

impl<C: DbConnection> AsConnection for C {
    fn as_connection(&mut self) -> AnyConnection<'_> {
        self.as_any()
    }
}

impl<M> AsConnection for diesel::r2d2::PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: DbConnection,
{
    fn as_connection(&mut self) -> AnyConnection<'_> {
        (**self).as_any()
    }
}

impl AsConnection for AnyConnection<'_> {
    fn as_connection(&mut self) -> AnyConnection<'_> {
        self.reborrow()
    }
}
