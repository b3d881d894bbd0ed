//! Running embedded migrations, serialized across processes.

use diesel_migrations::EmbeddedMigrations;

use crate::connection::{AnyConnection, AsConnection};
use crate::error::{Error, ErrorKind, first_line};
use crate::pool::Pool;

/// One crate's migrations, embedded for both backends.
#[derive(Clone, Copy)]
pub struct MigrationSet {
    /// The crate that owns them, for messages.
    pub name: &'static str,
    /// The PostgreSQL migrations.
    pub postgres: &'static EmbeddedMigrations,
    /// The SQLite migrations.
    pub sqlite: &'static EmbeddedMigrations,
}

impl std::fmt::Debug for MigrationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationSet")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Lends a static embedded set to diesel's harness, which takes its source by value.
struct Source(&'static EmbeddedMigrations);

impl<DB: diesel::backend::Backend> diesel::migration::MigrationSource<DB> for Source {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<DB>>>> {
        diesel::migration::MigrationSource::<DB>::migrations(self.0)
    }
}

/// A connection that can run a [`MigrationSet`]: diesel's SQLite and
/// PostgreSQL connections.
///
/// Concurrent runners are serialized: on PostgreSQL by a transaction-scoped
/// advisory lock, on SQLite by an immediate transaction. Each runner sees the
/// migrations the others applied and applies only what is still pending, all
/// in one transaction, so a failure leaves nothing half-applied.
pub trait Migrate {
    /// Applies the pending migrations of `set`; returns the versions applied.
    fn run_migrations(&mut self, set: &MigrationSet) -> Result<Vec<String>, Error>;
}

/// An arbitrary, fixed key for `pg_advisory_xact_lock`: "ztmigr" in ASCII.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x7a74_6d69_6772;

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn migration_error(set: &MigrationSet, error: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Migration,
        format!("{} migrations failed: {}", set.name, first_line(&error.to_string())),
    )
}

#[cfg(feature = "postgres")]
impl Migrate for diesel::PgConnection {
    fn run_migrations(&mut self, set: &MigrationSet) -> Result<Vec<String>, Error> {
        use diesel::{Connection, RunQueryDsl};
        use diesel_migrations::MigrationHarness;
        let applied = self
            .transaction::<_, Box<dyn std::error::Error + Send + Sync>, _>(|conn| {
                diesel::sql_query(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")).execute(conn)?;
                let versions = conn.run_pending_migrations(Source(set.postgres))?;
                Ok(versions.iter().map(ToString::to_string).collect())
            })
            .map_err(|e| migration_error(set, &e))?;
        Ok(applied)
    }
}

#[cfg(feature = "sqlite")]
impl Migrate for diesel::SqliteConnection {
    fn run_migrations(&mut self, set: &MigrationSet) -> Result<Vec<String>, Error> {
        use diesel_migrations::MigrationHarness;
        let applied = self
            .immediate_transaction::<_, Box<dyn std::error::Error + Send + Sync>, _>(|conn| {
                let versions = conn.run_pending_migrations(Source(set.sqlite))?;
                Ok(versions.iter().map(ToString::to_string).collect())
            })
            .map_err(|e| migration_error(set, &e))?;
        Ok(applied)
    }
}

/// Applies the pending migrations of `set` on any connection zt works on:
/// the app's own connection, pooled or not, or one of a [`Pool`]'s.
pub fn run_migrations(conn: &mut impl AsConnection, set: &MigrationSet) -> Result<Vec<String>, Error> {
    match conn.as_connection() {
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(conn) => conn.run_migrations(set),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(conn) => conn.run_migrations(set),
        AnyConnection::_Unbuilt(never, _) => match never {},
    }
}

impl Pool {
    /// Applies the pending migrations of `set` on one pooled connection.
    pub fn run_migrations(&self, set: &MigrationSet) -> Result<Vec<String>, Error> {
        let mut conn = self.get().map_err(|e| {
            Error::new(
                ErrorKind::Unreachable,
                format!("no database connection for migrations: {}", first_line(&e.to_string())),
            )
        })?;
        run_migrations(&mut conn, set)
    }
}
