//! Running embedded migrations, serialized across processes, recorded in zt's
//! own bookkeeping table.
//!
//! diesel's harness records applied versions in `__diesel_schema_migrations`,
//! the app's table. Had zt recorded its versions there, the app's
//! `revert_last_migration` would find zt's (newer) version on top and fail
//! with `UnknownMigrationVersion`. zt records its versions in
//! [`MIGRATIONS_TABLE`] instead, through a small harness of its own, so the
//! app's diesel migrations never see them.

use diesel_migrations::EmbeddedMigrations;

use crate::connection::{AnyConnection, AsConnection};
use crate::error::{Error, ErrorKind, first_line};
use crate::pool::Pool;

/// The table in which zt records the migrations it applied, apart from the
/// app's `__diesel_schema_migrations`. Same shape as diesel's:
/// `version VARCHAR(50) PRIMARY KEY, run_on TIMESTAMP`.
pub const MIGRATIONS_TABLE: &str = "__zt_schema_migrations";

/// One crate's migrations, embedded for both backends.
#[derive(Clone, Copy)]
pub struct MigrationSet {
    /// The crate that owns them, for messages.
    pub name: &'static str,
    /// The PostgreSQL migrations.
    pub postgres: &'static EmbeddedMigrations,
    /// The SQLite migrations.
    pub sqlite: &'static EmbeddedMigrations,
    /// What the app needs on this set's objects at run time, and no more;
    /// see [`crate::RuntimeRole`].
    pub runtime_privileges: &'static [crate::RuntimePrivilege],
}

impl std::fmt::Debug for MigrationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationSet")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl MigrationSet {
    /// The versions of this set already applied on `conn`, oldest first.
    ///
    /// Read-only: it creates no table. Versions an earlier zt release
    /// recorded in `__diesel_schema_migrations` count as applied; the next
    /// [`run_migrations`] moves them to [`MIGRATIONS_TABLE`].
    pub fn applied(&self, conn: &mut impl AsConnection) -> Result<Vec<String>, Error> {
        let result: Result<Vec<String>, BoxError> = match conn.as_connection() {
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(conn) => {
                versions::<diesel::sqlite::Sqlite>(self.sqlite).and_then(|ours| Ok(Harness(conn).applied_of(&ours)?))
            }
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(conn) => {
                versions::<diesel::pg::Pg>(self.postgres).and_then(|ours| Ok(Harness(conn).applied_of(&ours)?))
            }
            AnyConnection::_Unbuilt(never, _) => match never {},
        };
        result.map_err(|e| migration_error(self, &e))
    }

    /// The versions of this set not yet applied on `conn`, oldest first:
    /// what [`run_migrations`] would apply. Read-only, like [`applied`](Self::applied).
    pub fn pending(&self, conn: &mut impl AsConnection) -> Result<Vec<String>, Error> {
        let all: Result<Vec<String>, BoxError> = match conn.as_connection() {
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(_) => versions::<diesel::sqlite::Sqlite>(self.sqlite),
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(_) => versions::<diesel::pg::Pg>(self.postgres),
            AnyConnection::_Unbuilt(never, _) => match never {},
        };
        let all = all.map_err(|e| migration_error(self, &e))?;
        let applied = self.applied(conn)?;
        Ok(all.into_iter().filter(|v| !applied.contains(v)).collect())
    }
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The versions of an embedded set, oldest first.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn versions<DB: diesel::backend::Backend>(source: &'static EmbeddedMigrations) -> Result<Vec<String>, BoxError> {
    let mut versions: Vec<String> = diesel::migration::MigrationSource::<DB>::migrations(source)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    Ok(versions)
}

/// Lends a static embedded set to diesel's harness, which takes its source by value.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
struct Source(&'static EmbeddedMigrations);

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl<DB: diesel::backend::Backend> diesel::migration::MigrationSource<DB> for Source {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<DB>>>> {
        diesel::migration::MigrationSource::<DB>::migrations(self.0)
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unreachable_pub, missing_docs)]
mod tables {
    diesel::table! {
        /// zt's bookkeeping: the versions of zt's migrations applied here.
        __zt_schema_migrations (version) {
            version -> VarChar,
            run_on -> Timestamp,
        }
    }

    diesel::table! {
        /// The app's bookkeeping, diesel's, where zt releases before
        /// `__zt_schema_migrations` recorded their versions too.
        __diesel_schema_migrations (version) {
            version -> VarChar,
            run_on -> Timestamp,
        }
    }
}

/// Creates [`MIGRATIONS_TABLE`]; the same statement as diesel's for its own table.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS __zt_schema_migrations (\
     version VARCHAR(50) PRIMARY KEY NOT NULL, \
     run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

/// diesel's migration harness over a connection, keeping zt's bookkeeping
/// in [`MIGRATIONS_TABLE`]: diesel's default `run_pending_migrations` drives
/// it, and the app's `__diesel_schema_migrations` is never written, except
/// to move out the rows an earlier zt release put there.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
struct Harness<'a, C>(&'a mut C);

/// The result of a "does this table exist" query.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[derive(diesel::QueryableByName)]
struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

/// The harness and the bookkeeping helpers for one backend. The code is the
/// same on both; only the connection type and the catalog query differ.
macro_rules! backend_harness {
    ($feature:literal, $conn:ty, $backend:ty, $table_exists:literal) => {
        #[cfg(feature = $feature)]
        impl diesel_migrations::MigrationHarness<$backend> for Harness<'_, $conn> {
            fn run_migration(
                &mut self,
                migration: &dyn diesel::migration::Migration<$backend>,
            ) -> diesel::migration::Result<diesel::migration::MigrationVersion<'static>> {
                use diesel::{Connection, ExpressionMethods, RunQueryDsl};
                use tables::__zt_schema_migrations as zt;
                let version = migration.name().version().as_owned();
                let apply = |conn: &mut $conn| -> diesel::migration::Result<()> {
                    migration.run(conn)?;
                    diesel::insert_into(zt::table)
                        .values(zt::version.eq(version.to_string()))
                        .execute(conn)?;
                    Ok(())
                };
                if migration.metadata().run_in_transaction() {
                    self.0.transaction(apply)?;
                } else {
                    apply(self.0)?;
                }
                Ok(version)
            }

            fn revert_migration(
                &mut self,
                migration: &dyn diesel::migration::Migration<$backend>,
            ) -> diesel::migration::Result<diesel::migration::MigrationVersion<'static>> {
                use diesel::{Connection, QueryDsl, RunQueryDsl};
                use tables::__zt_schema_migrations as zt;
                let version = migration.name().version().as_owned();
                let revert = |conn: &mut $conn| -> diesel::migration::Result<()> {
                    migration.revert(conn)?;
                    diesel::delete(zt::table.find(version.to_string())).execute(conn)?;
                    Ok(())
                };
                if migration.metadata().run_in_transaction() {
                    self.0.transaction(revert)?;
                } else {
                    revert(self.0)?;
                }
                Ok(version)
            }

            fn applied_migrations(
                &mut self,
            ) -> diesel::migration::Result<Vec<diesel::migration::MigrationVersion<'static>>> {
                use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
                use tables::__zt_schema_migrations as zt;
                self.setup()?;
                let versions: Vec<String> = zt::table
                    .select(zt::version)
                    .order(zt::version.desc())
                    .load(self.0)?;
                Ok(versions.into_iter().map(Into::into).collect())
            }
        }

        #[cfg(feature = $feature)]
        impl Harness<'_, $conn> {
            /// Creates zt's table, moves this set's rows out of diesel's,
            /// and applies what is pending. The caller holds the lock and the
            /// transaction.
            fn run_pending(&mut self, source: &'static EmbeddedMigrations) -> Result<Vec<String>, BoxError> {
                use diesel_migrations::MigrationHarness;
                self.setup()?;
                self.adopt_legacy(&versions::<$backend>(source)?)?;
                let applied = self.run_pending_migrations(Source(source))?;
                Ok(applied.iter().map(ToString::to_string).collect())
            }

            fn setup(&mut self) -> diesel::QueryResult<()> {
                use diesel::RunQueryDsl;
                diesel::sql_query(CREATE_MIGRATIONS_TABLE).execute(self.0)?;
                Ok(())
            }

            fn table_exists(&mut self, name: &str) -> diesel::QueryResult<bool> {
                use diesel::RunQueryDsl;
                let row: Present = diesel::sql_query($table_exists)
                    .bind::<diesel::sql_types::Text, _>(name)
                    .get_result(self.0)?;
                Ok(row.present)
            }

            /// Moves the rows of `versions` that an earlier zt release wrote
            /// into diesel's table to zt's, keeping their `run_on`, so that
            /// they are neither applied again nor in the app's way.
            fn adopt_legacy(&mut self, versions: &[String]) -> diesel::QueryResult<()> {
                use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
                use tables::__diesel_schema_migrations as diesel_table;
                use tables::__zt_schema_migrations as zt;
                if !self.table_exists("__diesel_schema_migrations")? {
                    return Ok(());
                }
                let legacy: Vec<String> = diesel_table::table
                    .select(diesel_table::version)
                    .filter(diesel_table::version.eq_any(versions))
                    .load(self.0)?;
                if legacy.is_empty() {
                    return Ok(());
                }
                let ours: Vec<String> = zt::table
                    .select(zt::version)
                    .filter(zt::version.eq_any(&legacy))
                    .load(self.0)?;
                let to_move: Vec<&String> = legacy.iter().filter(|v| !ours.contains(v)).collect();
                if !to_move.is_empty() {
                    diesel::insert_into(zt::table)
                        .values(
                            diesel_table::table
                                .select((diesel_table::version, diesel_table::run_on))
                                .filter(diesel_table::version.eq_any(to_move)),
                        )
                        .into_columns((zt::version, zt::run_on))
                        .execute(self.0)?;
                }
                diesel::delete(diesel_table::table.filter(diesel_table::version.eq_any(&legacy))).execute(self.0)?;
                Ok(())
            }

            /// The versions of `versions` recorded as applied, in zt's table
            /// or, by an earlier release, in diesel's; oldest first.
            fn applied_of(&mut self, versions: &[String]) -> diesel::QueryResult<Vec<String>> {
                use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
                use tables::__diesel_schema_migrations as diesel_table;
                use tables::__zt_schema_migrations as zt;
                let mut applied = Vec::new();
                if self.table_exists(MIGRATIONS_TABLE)? {
                    applied.extend(
                        zt::table
                            .select(zt::version)
                            .filter(zt::version.eq_any(versions))
                            .load::<String>(self.0)?,
                    );
                }
                if self.table_exists("__diesel_schema_migrations")? {
                    applied.extend(
                        diesel_table::table
                            .select(diesel_table::version)
                            .filter(diesel_table::version.eq_any(versions))
                            .load::<String>(self.0)?,
                    );
                }
                applied.sort();
                applied.dedup();
                Ok(applied)
            }
        }
    };
}

backend_harness!(
    "postgres",
    diesel::PgConnection,
    diesel::pg::Pg,
    "SELECT to_regclass($1) IS NOT NULL AS present"
);
backend_harness!(
    "sqlite",
    diesel::SqliteConnection,
    diesel::sqlite::Sqlite,
    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?) AS present"
);

/// A connection that can run a [`MigrationSet`]: diesel's SQLite and
/// PostgreSQL connections.
///
/// Applied versions are recorded in zt's own [`MIGRATIONS_TABLE`], never in
/// the app's `__diesel_schema_migrations`, so the app's own diesel migrations
/// (`run_pending_migrations`, `revert_last_migration`, `diesel migration
/// revert`) never see zt's. Rows that an earlier zt release wrote into
/// diesel's table are moved to zt's, in the same transaction.
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
        self.transaction::<_, BoxError, _>(|conn| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")).execute(conn)?;
            Harness(conn).run_pending(set.postgres)
        })
        .map_err(|e| migration_error(set, &e))
    }
}

#[cfg(feature = "sqlite")]
impl Migrate for diesel::SqliteConnection {
    fn run_migrations(&mut self, set: &MigrationSet) -> Result<Vec<String>, Error> {
        self.immediate_transaction::<_, BoxError, _>(|conn| Harness(conn).run_pending(set.sqlite))
            .map_err(|e| migration_error(set, &e))
    }
}

/// Applies the pending migrations of `set` on any connection zt works on:
/// the app's own connection, pooled or not, or one of a [`Pool`]'s.
///
/// zt records them in its own [`MIGRATIONS_TABLE`]; see [`Migrate`].
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
        run_migrations(&mut self.migration_connection()?, set)
    }

    /// The versions of `set` applied, oldest first; see [`MigrationSet::applied`].
    pub fn applied_migrations(&self, set: &MigrationSet) -> Result<Vec<String>, Error> {
        set.applied(&mut self.migration_connection()?)
    }

    /// The versions of `set` still to apply, oldest first; see [`MigrationSet::pending`].
    pub fn pending_migrations(&self, set: &MigrationSet) -> Result<Vec<String>, Error> {
        set.pending(&mut self.migration_connection()?)
    }

    fn migration_connection(&self) -> Result<crate::PooledConnection, Error> {
        self.get().map_err(|e| {
            Error::new(
                ErrorKind::Unreachable,
                format!("no database connection for migrations: {}", first_line(&e.to_string())),
            )
        })
    }
}
