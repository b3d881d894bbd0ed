//! Shared set-up for the audit tests: a migrated log on a fresh database, raw
//! SQL for playing the attacker, and event factories.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "sqlite")]
use diesel::SqliteConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use zt_audit::{AuditLog, ChainKey};
use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_testkit::{Backend, TestDatabase};
use zt_types::{Actor, AuditEvent, AuditStatus, Email, RequestContext, RequestId, Timestamp, UserId};

/// The chain key every test uses.
pub(crate) fn key() -> ChainKey {
    ChainKey::from_bytes(&(42..42 + 32).collect::<Vec<u8>>()).unwrap()
}

pub(crate) fn pool(db: &TestDatabase) -> Pool {
    let url: DatabaseUrl = db.url().parse().unwrap();
    Pool::connect_with(&url, &PoolConfig::new().max_size(10)).unwrap()
}

/// A migrated audit log on `db`.
pub(crate) fn open(db: &TestDatabase) -> AuditLog {
    let log = AuditLog::new(pool(db), &key());
    log.migrate().unwrap();
    log
}

/// Runs SQL on a connection of its own, as an attacker or admin would.
pub(crate) fn raw(db: &TestDatabase, sql: &str) -> Result<usize, diesel::result::Error> {
    match db.backend() {
        #[cfg(not(feature = "sqlite"))]
        Backend::Sqlite => unreachable!("SQLite tests need the `sqlite` feature"),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let path = db.url().trim_start_matches("sqlite://");
            let mut conn = SqliteConnection::establish(path).unwrap();
            diesel::sql_query("PRAGMA busy_timeout = 5000").execute(&mut conn)?;
            diesel::sql_query(sql).execute(&mut conn)
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(db.url()).unwrap();
            diesel::sql_query(sql).execute(&mut conn)
        }
    }
}

/// Runs several statements on one connection of its own, such as a pragma
/// and the statements it should apply to.
pub(crate) fn raw_batch(db: &TestDatabase, sql: &str) {
    use diesel::connection::SimpleConnection;
    match db.backend() {
        #[cfg(not(feature = "sqlite"))]
        Backend::Sqlite => unreachable!("SQLite tests need the `sqlite` feature"),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let path = db.url().trim_start_matches("sqlite://");
            let mut conn = SqliteConnection::establish(path).unwrap();
            conn.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))
                .unwrap();
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(db.url()).unwrap();
            conn.batch_execute(sql).unwrap();
        }
    }
}

/// Turns the append-only triggers off, as a database superuser can.
pub(crate) fn disable_triggers(db: &TestDatabase) {
    match db.backend() {
        Backend::Sqlite => {
            raw(db, "DROP TRIGGER audit_logs_no_update").unwrap();
            raw(db, "DROP TRIGGER audit_logs_no_delete").unwrap();
        }
        Backend::Postgres => {
            raw(db, "ALTER TABLE audit_logs DISABLE TRIGGER USER").unwrap();
        }
    }
}

/// A varied event: user `i % 7`, one of four actions, a client IP in one of
/// two networks, and a time `i` seconds after a fixed start.
pub(crate) fn event(i: u32) -> AuditEvent {
    let user = UserId::parse((i % 7).to_string()).unwrap();
    let email = Email::parse_address(format!("user{}@example.com", i % 7)).unwrap();
    let action = ["CREATE_PROJECT", "UPDATE_PROJECT", "DELETE_PROJECT", "UPDATE_ROLE"][(i % 4) as usize];
    let status = [AuditStatus::Success, AuditStatus::Failed, AuditStatus::Denied][(i % 3) as usize];
    let ip = if i.is_multiple_of(2) {
        format!("10.0.{}.{}", i % 200, i % 250)
    } else {
        format!("2001:db8::{:x}:{:x}", i >> 16, i & 0xffff)
    };
    let context = RequestContext::new()
        .with_ip(ip.parse().unwrap())
        .with_user_agent("Mozilla/5.0 (test)")
        .with_request_id(RequestId::parse(format!("req-{i}")).unwrap());
    let mut builder = AuditEvent::builder(Actor::user(user, Some(email)), action, "projects")
        .resource_id(i % 50)
        .metadata(&serde_json::json!({ "i": i, "name": format!("project {i}") }))
        .context(&context)
        .status(status)
        .created_at(start().saturating_add(std::time::Duration::from_secs(u64::from(i))));
    if status != AuditStatus::Success {
        builder = builder.error_code("DB_UNAVAILABLE");
    }
    builder.build().unwrap()
}

/// The time of event 0.
pub(crate) fn start() -> Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs `SELECT COUNT(*) AS n ...` on a connection of its own.
pub(crate) fn raw_count(db: &TestDatabase, sql: &str) -> i64 {
    match db.backend() {
        #[cfg(not(feature = "sqlite"))]
        Backend::Sqlite => unreachable!("SQLite tests need the `sqlite` feature"),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let path = db.url().trim_start_matches("sqlite://");
            let mut conn = SqliteConnection::establish(path).unwrap();
            diesel::sql_query(sql).get_result::<Count>(&mut conn).unwrap().n
        }
        Backend::Postgres => {
            let mut conn = PgConnection::establish(db.url()).unwrap();
            diesel::sql_query(sql).get_result::<Count>(&mut conn).unwrap().n
        }
    }
}
