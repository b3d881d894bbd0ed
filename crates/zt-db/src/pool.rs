//! r2d2 pools for both backends.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use diesel::r2d2::{self, ManageConnection, R2D2Connection};

use crate::connection::{AnyConnection, AsConnection, DbConnection};
use crate::error::{Error, ErrorKind, first_line};
use crate::url::{Backend, DatabaseUrl, Secrets};

#[cfg(feature = "postgres")]
use diesel::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::SqliteConnection;

/// A pool of SQLite connections with zt's pragmas.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub type SqlitePool = r2d2::Pool<Manager<SqliteConnection>>;

/// A pool of PostgreSQL connections.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub type PgPool = r2d2::Pool<Manager<PgConnection>>;

/// SQLite's `synchronous` setting. zt runs SQLite in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `FULL` (the default): the WAL is synced at every commit, so a committed
    /// audit event survives a power failure. That is what "durable" promises.
    #[default]
    Full,
    /// `NORMAL`: faster commits; after a power failure (not a process crash)
    /// the last commits may be lost.
    Normal,
}

impl Synchronous {
    #[cfg(feature = "sqlite")]
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// How a [`Pool`] is built.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    max_size: u32,
    min_idle: Option<u32>,
    connection_timeout: Duration,
    busy_timeout: Duration,
    synchronous: Synchronous,
    test_on_check_out: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 8,
            min_idle: Some(1),
            connection_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            test_on_check_out: false,
        }
    }
}

impl PoolConfig {
    /// The defaults; see each setter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most connections. Default: 8. Each PostgreSQL connection is a
    /// server process; keep the sum over all pools below `max_connections`.
    pub fn max_size(mut self, max_size: u32) -> Self {
        self.max_size = max_size.max(1);
        self
    }

    /// Idle connections kept open. Default: 1.
    pub fn min_idle(mut self, min_idle: Option<u32>) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// How long `get` waits for a connection before it fails. Default: 5 s.
    /// Session checks fail closed after this long when the database is down.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// SQLite: how long a writer waits for the write lock. Default: 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// SQLite: the `synchronous` setting. Default: [`Synchronous::Full`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Pings each connection when it is checked out. Default: off, because the
    /// ping is a round trip on every operation. Without it, a connection that
    /// reports a closed connection is discarded when it is returned, so after
    /// a server restart each idle connection fails one operation, then heals.
    pub fn test_on_check_out(mut self, test: bool) -> Self {
        self.test_on_check_out = test;
        self
    }
}

/// A pool of connections of one of zt's backends. Cloning shares the pool.
///
/// Build one from a URL ([`Pool::connect`]), or wrap the app's own r2d2
/// pool with `Pool::from(app_pool)`: any `r2d2::Pool<M>` whose connections
/// are `PgConnection` or `SqliteConnection` converts, whatever its manager,
/// and stays shared with the app. Every zt API that takes a pool takes
/// `impl Into<Pool>`, so the app passes its own pool as it is.
#[derive(Clone)]
pub struct Pool {
    source: Arc<dyn Source>,
    backend: Backend,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Pool")
            .field("backend", &self.backend())
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

/// A connection checked out of a [`Pool`]; it goes back when dropped.
pub struct PooledConnection(Box<dyn Lease>);

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PooledConnection")
    }
}

impl PooledConnection {
    /// Borrows the connection.
    pub fn connection(&mut self) -> AnyConnection<'_> {
        self.0.lend()
    }
}

impl AsConnection for PooledConnection {
    fn as_connection(&mut self) -> AnyConnection<'_> {
        self.0.lend()
    }
}

/// An r2d2 pool of any manager, with its connection type erased.
trait Source: Send + Sync {
    fn get(&self) -> Result<PooledConnection, r2d2::PoolError>;
    fn state(&self) -> r2d2::State;
}

impl<M> Source for r2d2::Pool<M>
where
    M: ManageConnection,
    M::Connection: DbConnection,
{
    fn get(&self) -> Result<PooledConnection, r2d2::PoolError> {
        Ok(PooledConnection(Box::new(r2d2::Pool::get(self)?)))
    }

    fn state(&self) -> r2d2::State {
        r2d2::Pool::state(self)
    }
}

/// A checked-out connection, with its manager erased.
trait Lease {
    fn lend(&mut self) -> AnyConnection<'_>;
}

impl<M> Lease for r2d2::PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: DbConnection,
{
    fn lend(&mut self) -> AnyConnection<'_> {
        (**self).as_any()
    }
}

impl<M> From<r2d2::Pool<M>> for Pool
where
    M: ManageConnection,
    M::Connection: DbConnection,
{
    /// Wraps an r2d2 pool, such as the app's own; both share its connections.
    fn from(pool: r2d2::Pool<M>) -> Self {
        Self {
            source: Arc::new(pool),
            backend: <M::Connection as DbConnection>::BACKEND,
        }
    }
}

impl Pool {
    /// Connects to `url` with the default [`PoolConfig`].
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(&url.parse()?, &PoolConfig::default())
    }

    /// Connects to `url`. One connection is opened at once, so an unreachable
    /// server or an unopenable file is reported here, in one line, without
    /// waiting for the pool's timeout.
    pub fn connect_with(url: &DatabaseUrl, config: &PoolConfig) -> Result<Self, Error> {
        Self::open(url, config, true)
    }

    /// Builds the pool without opening a connection, so that an app can start
    /// while its database is down; each use then fails after the connection
    /// timeout, and zt's session checks fail closed.
    pub fn connect_lazy(url: &DatabaseUrl, config: &PoolConfig) -> Result<Self, Error> {
        Self::open(url, config, false)
    }

    fn open(url: &DatabaseUrl, config: &PoolConfig, probe: bool) -> Result<Self, Error> {
        match url {
            #[cfg(feature = "sqlite")]
            DatabaseUrl::Sqlite(_) => {
                let customizer = SqliteCustomizer {
                    busy_timeout: config.busy_timeout,
                    synchronous: config.synchronous,
                };
                Ok(build::<SqliteConnection>(url, config, Some(Box::new(customizer)), probe)?.into())
            }
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(_) => Ok(build::<PgConnection>(url, config, None, probe)?.into()),
            #[allow(unreachable_patterns)]
            other => {
                let _ = (config, probe);
                Err(Error::new(
                    ErrorKind::BackendDisabled,
                    format!(
                        "{other} needs the `{}` feature of zt-db, which is not enabled",
                        other.backend()
                    ),
                ))
            }
        }
    }

    /// Checks a connection out, waiting up to the pool's connection timeout.
    pub fn get(&self) -> Result<PooledConnection, r2d2::PoolError> {
        self.source.get()
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Connection counts, for metrics.
    pub fn state(&self) -> r2d2::State {
        self.source.state()
    }
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn build<C: DbConnection>(
    url: &DatabaseUrl,
    config: &PoolConfig,
    customizer: Option<Box<dyn r2d2::CustomizeConnection<C, r2d2::Error>>>,
    probe: bool,
) -> Result<r2d2::Pool<Manager<C>>, Error> {
    let manager = Manager::<C>::new(url.connection_string());
    if !probe {
        return Ok(builder(config, customizer).build_unchecked(manager));
    }
    // The manager already scrubs libpq's messages; scrubbing again costs nothing.
    let unreachable = |message: String| {
        Error::new(
            ErrorKind::Unreachable,
            format!("cannot connect to {url}: {}", first_line(&url.scrub(&message))),
        )
    };
    // Open one connection now, for a prompt, clear error.
    let mut probe = manager.connect().map_err(|e| unreachable(e.to_string()))?;
    if let Some(customizer) = &customizer {
        customizer
            .on_acquire(&mut probe)
            .map_err(|e| unreachable(e.to_string()))?;
    }
    let pool = builder(config, customizer).build_unchecked(manager);
    drop(probe);
    Ok(pool)
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn builder<C: DbConnection>(
    config: &PoolConfig,
    customizer: Option<Box<dyn r2d2::CustomizeConnection<C, r2d2::Error>>>,
) -> r2d2::Builder<Manager<C>> {
    let mut builder = r2d2::Pool::builder()
        .max_size(config.max_size)
        .min_idle(config.min_idle)
        .connection_timeout(config.connection_timeout)
        .test_on_check_out(config.test_on_check_out)
        .error_handler(Box::new(r2d2::NopErrorHandler));
    if let Some(customizer) = customizer {
        builder = builder.connection_customizer(customizer);
    }
    builder
}

/// Sets zt's pragmas on every new SQLite connection, in this order:
/// `busy_timeout` first, so that switching to WAL waits for other
/// connections instead of failing; `journal_mode = WAL`, so that readers do
/// not block the writer; `foreign_keys = ON`; and `synchronous`.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
#[derive(Debug, Clone, Copy)]
pub struct SqliteCustomizer {
    busy_timeout: Duration,
    synchronous: Synchronous,
}

#[cfg(feature = "sqlite")]
impl SqliteCustomizer {
    /// A customizer with these settings.
    pub fn new(busy_timeout: Duration, synchronous: Synchronous) -> Self {
        Self {
            busy_timeout,
            synchronous,
        }
    }

    /// Applies the pragmas to `conn`.
    pub fn apply(&self, conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
            self.busy_timeout.as_millis(),
            self.synchronous.pragma()
        ))
    }
}

#[cfg(feature = "sqlite")]
impl r2d2::CustomizeConnection<SqliteConnection, r2d2::Error> for SqliteCustomizer {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), r2d2::Error> {
        self.apply(conn).map_err(r2d2::Error::QueryError)
    }
}

/// zt's connection manager: diesel's, plus discarding a connection that
/// reported a closed connection, without pinging on checkout, and keeping
/// the connection string's secrets out of connection errors.
///
/// Diesel's own manager either pings on every checkout, a round trip on every
/// operation, or keeps a dead connection in the pool forever after a server
/// restart. This one watches each PostgreSQL connection's query results
/// through diesel's instrumentation and tells r2d2 to drop it once it has seen
/// its connection close.
///
/// libpq quotes the parts of a connection string it rejects, and r2d2 keeps
/// the last connection error in its timeout error; this manager masks the
/// URL's password and secret parameters in every connection error first.
pub struct Manager<C: R2D2Connection> {
    inner: r2d2::ConnectionManager<C>,
    secrets: Secrets,
}

impl<C: R2D2Connection> fmt::Debug for Manager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Manager")
    }
}

impl<C: DbConnection> Manager<C> {
    /// A manager for `url` (a file path for SQLite).
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        let secrets = match C::BACKEND {
            Backend::Postgres => Secrets::of_postgres(&url),
            Backend::Sqlite => Secrets::default(),
        };
        Self {
            inner: r2d2::ConnectionManager::new(url),
            secrets,
        }
    }

    /// The error with the connection string's secrets masked.
    fn scrubbed(&self, error: r2d2::Error) -> r2d2::Error {
        use diesel::ConnectionError;
        match error {
            r2d2::Error::ConnectionError(ConnectionError::BadConnection(message)) => {
                r2d2::Error::ConnectionError(ConnectionError::BadConnection(self.secrets.scrub(&message)))
            }
            r2d2::Error::ConnectionError(ConnectionError::InvalidConnectionUrl(message)) => {
                r2d2::Error::ConnectionError(ConnectionError::InvalidConnectionUrl(self.secrets.scrub(&message)))
            }
            other => other,
        }
    }
}

impl<C: DbConnection> ManageConnection for Manager<C> {
    type Connection = C;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<C, r2d2::Error> {
        let mut conn = self.inner.connect().map_err(|e| self.scrubbed(e))?;
        conn.after_connect();
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut C) -> Result<(), r2d2::Error> {
        self.inner.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut C) -> bool {
        self.inner.has_broken(conn) || conn.saw_closed_connection()
    }
}
