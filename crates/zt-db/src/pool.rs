//! r2d2 pools for both backends.

use std::fmt;
use std::time::Duration;

use diesel::r2d2::{self, ManageConnection, R2D2Connection};

use crate::error::{Error, ErrorKind, first_line};
use crate::url::{Backend, DatabaseUrl};

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

/// A pool for either backend. Cloning shares the pool.
///
/// Exhaustive on purpose: one variant per backend feature, so that code
/// matching on it is checked against the features it was built with.
#[derive(Clone)]
pub enum Pool {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite(SqlitePool),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres(PgPool),
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

impl Pool {
    /// Connects to `url` with the default [`PoolConfig`].
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(&url.parse()?, &PoolConfig::default())
    }

    /// Connects to `url`. One connection is opened at once, so an unreachable
    /// server or an unopenable file is reported here, in one line, without
    /// waiting for the pool's timeout.
    pub fn connect_with(url: &DatabaseUrl, config: &PoolConfig) -> Result<Self, Error> {
        match url {
            #[cfg(feature = "sqlite")]
            DatabaseUrl::Sqlite(_) => {
                let customizer = SqliteCustomizer {
                    busy_timeout: config.busy_timeout,
                    synchronous: config.synchronous,
                };
                let pool = build(url, config, Some(Box::new(customizer)))?;
                Ok(Self::Sqlite(pool))
            }
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(_) => Ok(Self::Postgres(build(url, config, None)?)),
            #[allow(unreachable_patterns)]
            other => Err(Error::new(
                ErrorKind::BackendDisabled,
                format!(
                    "{other} needs the `{}` feature of zt-db, which is not enabled",
                    other.backend()
                ),
            )),
        }
    }

    /// Builds the pool without opening a connection, so that an app can start
    /// while its database is down; each use then fails after the connection
    /// timeout, and zt's session checks fail closed.
    pub fn connect_lazy(url: &DatabaseUrl, config: &PoolConfig) -> Result<Self, Error> {
        match url {
            #[cfg(feature = "sqlite")]
            DatabaseUrl::Sqlite(_) => {
                let customizer = SqliteCustomizer {
                    busy_timeout: config.busy_timeout,
                    synchronous: config.synchronous,
                };
                Ok(Self::Sqlite(
                    builder(config, Some(Box::new(customizer))).build_unchecked(Manager::new(url.connection_string())),
                ))
            }
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(_) => Ok(Self::Postgres(
                builder(config, None).build_unchecked(Manager::new(url.connection_string())),
            )),
            #[allow(unreachable_patterns)]
            other => Err(Error::new(
                ErrorKind::BackendDisabled,
                format!(
                    "{other} needs the `{}` feature of zt-db, which is not enabled",
                    other.backend()
                ),
            )),
        }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Connection counts, for metrics.
    pub fn state(&self) -> r2d2::State {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => pool.state(),
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => pool.state(),
        }
    }
}

fn build<C: ZtConnection>(
    url: &DatabaseUrl,
    config: &PoolConfig,
    customizer: Option<Box<dyn r2d2::CustomizeConnection<C, r2d2::Error>>>,
) -> Result<r2d2::Pool<Manager<C>>, Error> {
    let manager = Manager::<C>::new(url.connection_string());
    let unreachable = |message: String| {
        Error::new(
            ErrorKind::Unreachable,
            format!("cannot connect to {url}: {}", first_line(&message)),
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

fn builder<C: ZtConnection>(
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
/// reported a closed connection, without pinging on checkout.
///
/// Diesel's own manager either pings on every checkout, a round trip on every
/// operation, or keeps a dead connection in the pool forever after a server
/// restart. This one watches each PostgreSQL connection's query results
/// through diesel's instrumentation and tells r2d2 to drop it once it has seen
/// its connection close.
pub struct Manager<C: R2D2Connection> {
    inner: r2d2::ConnectionManager<C>,
}

impl<C: R2D2Connection> fmt::Debug for Manager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Manager")
    }
}

impl<C: ZtConnection> Manager<C> {
    /// A manager for `url` (a file path for SQLite).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            inner: r2d2::ConnectionManager::new(url),
        }
    }
}

impl<C: ZtConnection> ManageConnection for Manager<C> {
    type Connection = C;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<C, r2d2::Error> {
        let mut conn = self.inner.connect()?;
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

/// The connection types zt pools. Sealed: implemented for diesel's SQLite and
/// PostgreSQL connections.
pub trait ZtConnection: R2D2Connection + Send + 'static + sealed::Sealed {
    /// Prepares a new connection.
    fn after_connect(&mut self);
    /// Whether the connection has reported that it is closed.
    fn saw_closed_connection(&mut self) -> bool;
}

mod sealed {
    pub trait Sealed {}
    #[cfg(feature = "sqlite")]
    impl Sealed for diesel::SqliteConnection {}
    #[cfg(feature = "postgres")]
    impl Sealed for diesel::PgConnection {}
}

#[cfg(feature = "sqlite")]
impl ZtConnection for SqliteConnection {
    fn after_connect(&mut self) {}
    fn saw_closed_connection(&mut self) -> bool {
        // An SQLite file does not close under us.
        false
    }
}

#[cfg(feature = "postgres")]
impl ZtConnection for PgConnection {
    fn after_connect(&mut self) {
        use diesel::Connection;
        self.set_instrumentation(health::HealthProbe::new(
            diesel::connection::get_default_instrumentation(),
        ));
    }

    fn saw_closed_connection(&mut self) -> bool {
        health::take_closed(self)
    }
}

#[cfg(feature = "postgres")]
mod health {
    //! Diesel lets us set a connection's instrumentation but not read it back.
    //! So to learn what the probe saw, we swap in a fresh probe: the old one,
    //! as it drops, leaves its verdict and the wrapped instrumentation in a
    //! thread-local slot, which we read at once on the same thread.

    use std::cell::RefCell;

    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use diesel::result::{DatabaseErrorKind, Error};
    use diesel::{Connection, PgConnection};

    type Returned = (bool, Option<Box<dyn Instrumentation>>);

    thread_local! {
        static RETURNED: RefCell<Option<Returned>> = const { RefCell::new(None) };
    }

    pub(super) struct HealthProbe {
        closed: bool,
        armed: bool,
        inner: Option<Box<dyn Instrumentation>>,
    }

    impl HealthProbe {
        pub(super) fn new(inner: Option<Box<dyn Instrumentation>>) -> Self {
            Self {
                closed: false,
                armed: true,
                inner,
            }
        }
    }

    impl Instrumentation for HealthProbe {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::FinishQuery { error: Some(error), .. } = &event
                && matches!(
                    error,
                    Error::DatabaseError(
                        DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                        _
                    )
                )
            {
                self.closed = true;
            }
            if let Some(inner) = &mut self.inner {
                inner.on_connection_event(event);
            }
        }
    }

    impl Drop for HealthProbe {
        fn drop(&mut self) {
            if self.armed {
                let returned = (self.closed, self.inner.take());
                RETURNED.with(|slot| *slot.borrow_mut() = Some(returned));
            }
        }
    }

    /// Whether `conn`'s probe saw its connection close; the probe is renewed.
    pub(super) fn take_closed(conn: &mut PgConnection) -> bool {
        RETURNED.with(|slot| slot.borrow_mut().take());
        conn.set_instrumentation(HealthProbe {
            closed: false,
            armed: false,
            inner: None,
        });
        let (closed, inner) = RETURNED.with(|slot| slot.borrow_mut().take()).unwrap_or((false, None));
        conn.set_instrumentation(HealthProbe::new(inner));
        closed
    }
}
