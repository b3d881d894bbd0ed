//! zt's migrations beside an app's own diesel migrations, on both backends:
//! zt keeps its bookkeeping in `__zt_schema_migrations`, so the app's
//! `__diesel_schema_migrations` holds only the app's versions and diesel's
//! harness (`run_pending_migrations`, `revert_last_migration`,
//! `has_pending_migration`, `applied_migrations`) keeps working on them. And
//! databases migrated by an earlier zt, which wrote its versions into
//! diesel's table, are moved over without applying anything twice.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::migration::{Migration, MigrationSource, MigrationVersion};
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use zt_db::{AnyConnection, AsConnection, MigrationSet, Pool, PoolConfig, PooledConnection};
use zt_testkit::TestDatabase;

/// The test app's own migrations: `accounts` and its own `users`, then `invoices`.
const APP_POSTGRES: EmbeddedMigrations = embed_migrations!("fixtures/app_migrations/postgres");
const APP_SQLITE: EmbeddedMigrations = embed_migrations!("fixtures/app_migrations/sqlite");

const APP_FIRST: &str = "20200101000001";
const APP_SECOND: &str = "20200102000001";
const AUDIT: &str = "20261129000001";
/// zt-session's set: the reference tables, then their `valid_after` column.
const SESSIONS: [&str; 2] = ["20261129000002", "20261130000002"];
/// zt-audit's second migration, the hash chains; later than the first release.
const AUDIT_CHAINS: &str = "20261130000001";
/// zt-audit's third: the prune records of retention.
const AUDIT_PRUNES: &str = "20261130000004";

/// Runs `$body` with `$conn` bound to the backend's diesel connection and
/// `$app` to the app's migrations for that backend, as the app itself would.
macro_rules! on_backend {
    ($pooled:expr, |$conn:ident, $app:ident| $body:expr) => {
        match $pooled.as_connection() {
            AnyConnection::Sqlite($conn) => {
                let $app = APP_SQLITE;
                $body
            }
            AnyConnection::Postgres($conn) => {
                let $app = APP_POSTGRES;
                $body
            }
            other => panic!("unexpected backend: {other:?}"),
        }
    };
}

/// Lends one of zt's embedded sets to diesel's own harness: how zt releases
/// before `__zt_schema_migrations` ran them.
struct OldZt(&'static EmbeddedMigrations);

impl<DB: diesel::backend::Backend> MigrationSource<DB> for OldZt {
    /// The migrations the earlier release shipped: those before the chains.
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        let mut migrations = MigrationSource::<DB>::migrations(self.0)?;
        migrations.retain(|migration| migration.name().version().to_string().as_str() < AUDIT_CHAINS);
        Ok(migrations)
    }
}

fn connect(db: &TestDatabase) -> PooledConnection {
    let pool = Pool::connect_with(&db.url().parse().unwrap(), &PoolConfig::new().max_size(1)).unwrap();
    pool.get().unwrap()
}

fn strings(versions: &[MigrationVersion<'_>]) -> Vec<String> {
    versions.iter().map(ToString::to_string).collect()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

#[derive(QueryableByName)]
struct AppUser {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

fn count(conn: &mut PooledConnection, sql: &str) -> i64 {
    on_backend!(conn, |c, _app| diesel::sql_query(sql).get_result::<Count>(c).unwrap().n)
}

/// The versions in a bookkeeping table, oldest first.
fn versions_in(conn: &mut PooledConnection, table: &str) -> Vec<String> {
    let sql = format!("SELECT version FROM {table} ORDER BY version");
    on_backend!(conn, |c, _app| diesel::sql_query(&sql)
        .load::<Version>(c)
        .unwrap()
        .into_iter()
        .map(|row| row.version)
        .collect())
}

fn app_users(conn: &mut PooledConnection) -> Vec<(i64, String)> {
    on_backend!(conn, |c, _app| diesel::sql_query(
        "SELECT CAST(id AS BIGINT) AS id, name FROM users ORDER BY id"
    )
    .load::<AppUser>(c)
    .unwrap()
    .into_iter()
    .map(|row| (row.id, row.name))
    .collect())
}

fn zt_sets() -> [&'static MigrationSet; 2] {
    [&zt_audit::MIGRATIONS, &zt_session::MIGRATIONS]
}

fn app_and_zt_migrations_coexist(db: &TestDatabase) {
    let mut conn = connect(db);

    // The app's first migration, through diesel's harness, and a user of its own.
    let first = on_backend!(conn, |c, app| strings(&[c.run_next_migration(app).unwrap()]));
    assert_eq!(first, [APP_FIRST]);
    on_backend!(conn, |c, _app| {
        diesel::sql_query("INSERT INTO accounts (name) VALUES ('acme')")
            .execute(c)
            .unwrap();
        diesel::sql_query("INSERT INTO users (account_id, name) VALUES (1, 'alice')")
            .execute(c)
            .unwrap();
    });

    // zt's sets, in code, on the app's own connection.
    assert!(zt_audit::MIGRATIONS.applied(&mut conn).unwrap().is_empty());
    assert_eq!(zt_session::MIGRATIONS.pending(&mut conn).unwrap(), SESSIONS);
    assert_eq!(
        zt_audit::run_migrations(&mut conn).unwrap(),
        [AUDIT, AUDIT_CHAINS, AUDIT_PRUNES]
    );
    assert_eq!(zt_session::run_migrations(&mut conn).unwrap(), SESSIONS);

    // The app's second migration: diesel sees only the app's versions.
    let pending = on_backend!(conn, |c, app| c.has_pending_migration(app).unwrap());
    assert!(pending);
    let second = on_backend!(conn, |c, app| strings(&c.run_pending_migrations(app).unwrap()));
    assert_eq!(second, [APP_SECOND]);
    let applied = on_backend!(conn, |c, _app| strings(
        &MigrationHarness::applied_migrations(c).unwrap()
    ));
    assert_eq!(
        applied,
        [APP_SECOND, APP_FIRST],
        "diesel's table holds only the app's versions"
    );
    assert_eq!(
        versions_in(&mut conn, "__zt_schema_migrations"),
        [AUDIT, SESSIONS[0], AUDIT_CHAINS, SESSIONS[1], AUDIT_PRUNES]
    );

    // The failure: reverting the app's newest migration works.
    let reverted = on_backend!(conn, |c, app| c.revert_last_migration(app).unwrap().to_string());
    assert_eq!(reverted, APP_SECOND);
    assert_eq!(versions_in(&mut conn, "__diesel_schema_migrations"), [APP_FIRST]);
    let pending = on_backend!(conn, |c, app| c.has_pending_migration(app).unwrap());
    assert!(pending);
    let again = on_backend!(conn, |c, app| strings(&c.run_pending_migrations(app).unwrap()));
    assert_eq!(again, [APP_SECOND]);

    // zt applies nothing twice, its tables are there, the app's are untouched.
    for set in zt_sets() {
        assert!(zt_db::run_migrations(&mut conn, set).unwrap().is_empty(), "{set:?}");
        assert!(set.pending(&mut conn).unwrap().is_empty(), "{set:?}");
    }
    assert_eq!(
        zt_audit::MIGRATIONS.applied(&mut conn).unwrap(),
        [AUDIT, AUDIT_CHAINS, AUDIT_PRUNES]
    );
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM audit_logs"), 0);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM zt_users"), 0);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM zt_session_revocations"), 0);
    assert_eq!(app_users(&mut conn), [(1, "alice".to_owned())]);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM invoices"), 0);

    // And the app can still revert everything of its own.
    let all = on_backend!(conn, |c, app| strings(&c.revert_all_migrations(app).unwrap()));
    assert_eq!(all, [APP_SECOND, APP_FIRST]);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM zt_users"), 0);
}

fn zt_runs_first_without_creating_diesels_table(db: &TestDatabase) {
    let mut conn = connect(db);
    for set in zt_sets() {
        assert!(!zt_db::run_migrations(&mut conn, set).unwrap().is_empty(), "{set:?}");
    }
    let diesel_tables =
        match conn.as_connection() {
            AnyConnection::Sqlite(c) => {
                diesel::sql_query("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = '__diesel_schema_migrations'")
                    .get_result::<Count>(c)
                    .unwrap()
                    .n
            }
            AnyConnection::Postgres(c) => diesel::sql_query(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_tables WHERE tablename = '__diesel_schema_migrations'",
            )
            .get_result::<Count>(c)
            .unwrap()
            .n,
            other => panic!("unexpected backend: {other:?}"),
        };
    assert_eq!(diesel_tables, 0, "zt never creates the app's bookkeeping table");
    // The app adopts diesel migrations later: nothing of zt's is in its way.
    let first = on_backend!(conn, |c, app| strings(&c.run_pending_migrations(app).unwrap()));
    assert_eq!(first, [APP_FIRST, APP_SECOND]);
    let reverted = on_backend!(conn, |c, app| c.revert_last_migration(app).unwrap().to_string());
    assert_eq!(reverted, APP_SECOND);
}

fn earlier_zt_bookkeeping_moves_to_zts_table(db: &TestDatabase) {
    let mut conn = connect(db);
    let first = on_backend!(conn, |c, app| strings(&[c.run_next_migration(app).unwrap()]));
    assert_eq!(first, [APP_FIRST]);

    // What an earlier zt did: diesel's harness, diesel's table.
    for set in zt_sets() {
        let source = match conn.as_connection() {
            AnyConnection::Sqlite(_) => set.sqlite,
            _ => set.postgres,
        };
        let applied = on_backend!(conn, |c, _app| strings(
            &c.run_pending_migrations(OldZt(source)).unwrap()
        ));
        assert!(!applied.is_empty(), "{set:?}");
    }
    assert_eq!(
        versions_in(&mut conn, "__diesel_schema_migrations"),
        [APP_FIRST, AUDIT, SESSIONS[0]]
    );
    // The issue: zt's newer version on top of the app's.
    let error = on_backend!(conn, |c, app| c.revert_last_migration(app).unwrap_err().to_string());
    assert!(error.contains(SESSIONS[0]), "{error}");
    // Counted as applied, before anything moves.
    assert_eq!(zt_session::MIGRATIONS.applied(&mut conn).unwrap(), [SESSIONS[0]]);
    assert_eq!(zt_session::MIGRATIONS.pending(&mut conn).unwrap(), [SESSIONS[1]]);
    assert_eq!(
        zt_audit::MIGRATIONS.pending(&mut conn).unwrap(),
        [AUDIT_CHAINS, AUDIT_PRUNES]
    );

    // zt-session first, then zt-audit: each moves only its own row and
    // applies only what the earlier release did not have (applying the rest
    // again would fail: the tables exist).
    assert_eq!(zt_session::run_migrations(&mut conn).unwrap(), [SESSIONS[1]]);
    assert_eq!(versions_in(&mut conn, "__zt_schema_migrations"), SESSIONS);
    assert_eq!(versions_in(&mut conn, "__diesel_schema_migrations"), [APP_FIRST, AUDIT]);
    // The earlier log's rows stay; only the chains and prunes migrations are new.
    assert_eq!(
        zt_audit::run_migrations(&mut conn).unwrap(),
        [AUDIT_CHAINS, AUDIT_PRUNES]
    );
    assert_eq!(
        versions_in(&mut conn, "__zt_schema_migrations"),
        [AUDIT, SESSIONS[0], AUDIT_CHAINS, SESSIONS[1], AUDIT_PRUNES]
    );
    assert_eq!(versions_in(&mut conn, "__diesel_schema_migrations"), [APP_FIRST]);
    assert_eq!(
        count(
            &mut conn,
            "SELECT COUNT(*) AS n FROM __zt_schema_migrations WHERE run_on IS NOT NULL"
        ),
        5
    );

    // The app's harness works again.
    let second = on_backend!(conn, |c, app| strings(&c.run_pending_migrations(app).unwrap()));
    assert_eq!(second, [APP_SECOND]);
    let reverted = on_backend!(conn, |c, app| c.revert_last_migration(app).unwrap().to_string());
    assert_eq!(reverted, APP_SECOND);
    for set in zt_sets() {
        assert!(zt_db::run_migrations(&mut conn, set).unwrap().is_empty(), "{set:?}");
    }
    assert_eq!(count(&mut conn, "SELECT COUNT(*) AS n FROM audit_logs"), 0);
}

fn a_row_in_both_tables_is_kept_once(db: &TestDatabase) {
    // A crash between two releases, or a hand-made fix, left zt's version in
    // both tables: zt's row stays, diesel's goes.
    let mut conn = connect(db);
    assert_eq!(
        zt_audit::run_migrations(&mut conn).unwrap(),
        [AUDIT, AUDIT_CHAINS, AUDIT_PRUNES]
    );
    on_backend!(conn, |c, _app| {
        diesel::sql_query(
            "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        )
        .execute(c)
        .unwrap();
        diesel::sql_query(format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{APP_FIRST}'), ('{AUDIT}')"
        ))
        .execute(c)
        .unwrap();
    });
    assert!(zt_audit::run_migrations(&mut conn).unwrap().is_empty());
    assert_eq!(
        versions_in(&mut conn, "__zt_schema_migrations"),
        [AUDIT, AUDIT_CHAINS, AUDIT_PRUNES]
    );
    assert_eq!(versions_in(&mut conn, "__diesel_schema_migrations"), [APP_FIRST]);
}

zt_testkit::backend_tests!(
    always:
    app_and_zt_migrations_coexist,
    zt_runs_first_without_creating_diesels_table,
    earlier_zt_bookkeeping_moves_to_zts_table,
    a_row_in_both_tables_is_kept_once,
);
