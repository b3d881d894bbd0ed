//! The app as it was before zt: its `users` table, its own embedded diesel
//! migrations, its own r2d2 pool, its own queries and transactions, and its
//! own error type.
//!
//! Nothing here knows zt, except the lines marked `zt step N`, which the
//! adoption added: the audit event in the role change's transaction (step 1)
//! and the one query a session check reads (step 2).
//!
//! The app runs on SQLite or PostgreSQL. Its queries are diesel DSL, written
//! once (`user_queries!`) and compiled for each connection type; only the
//! migrations, the kind of write transaction and the session query's SQL
//! differ per backend. An app on one backend writes its functions on its own
//! connection type and needs none of this.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PoolError, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use zt_audit::{Actor, AuditEvent, AuditLog, AuditStatus, Recorded, UserId};

diesel::table! {
    /// The app's users. Integer ids; `updated_at` moves forward on every change.
    users (id) {
        /// The primary key.
        id -> BigInt,
        /// The sign-in address, unique.
        email -> Text,
        /// `user` or `admin`.
        role -> Text,
        /// A disabled user cannot sign in.
        disabled -> Bool,
        /// When the row was created, UTC.
        created_at -> Timestamp,
        /// When the row last changed, UTC.
        updated_at -> Timestamp,
    }
}

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// The primary key.
    pub id: i64,
    /// The sign-in address.
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// When the row was created, UTC.
    pub created_at: NaiveDateTime,
    /// When the row last changed, UTC.
    pub updated_at: NaiveDateTime,
}

/// The app's own migrations: `existing_app_migrations/{sqlite,postgres}`.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("existing_app_migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("existing_app_migrations/postgres");

/// The app's errors. `Display` is the app's own account; the underlying
/// error, with the database's words, is the [`source`](StdError::source).
#[derive(Debug)]
pub enum AppError {
    /// A query failed.
    Db(diesel::result::Error),
    /// No connection could be had.
    Pool(PoolError),
    /// A file could not be read or written.
    Io(std::io::Error),
    /// The command line or the set-up was wrong.
    Setup(String),
    /// One of the zt crates the app adopted failed.
    Zt(Box<dyn StdError + Send + Sync>),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Db(_) => f.write_str("a database statement failed"),
            Self::Pool(_) => f.write_str("no database connection"),
            Self::Io(_) => f.write_str("a file operation failed"),
            Self::Setup(message) => f.write_str(message),
            Self::Zt(_) => f.write_str("a zt operation failed"),
        }
    }
}

impl StdError for AppError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Db(error) => Some(error),
            Self::Pool(error) => Some(error),
            Self::Io(error) => Some(error),
            Self::Setup(_) => None,
            Self::Zt(error) => Some(error.as_ref()),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Db(error)
    }
}

impl From<PoolError> for AppError {
    fn from(error: PoolError) -> Self {
        Self::Pool(error)
    }
}

impl From<std::io::Error> for AppError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

impl AppError {
    /// Wraps an error of a zt crate, such as an event that fails its checks.
    pub fn zt(error: impl StdError + Send + Sync + 'static) -> Self {
        Self::Zt(Box::new(error))
    }
}

// zt step 1.
impl From<zt_audit::Error> for AppError {
    fn from(error: zt_audit::Error) -> Self {
        Self::zt(error)
    }
}

// zt step 2.
impl From<zt_session::Error> for AppError {
    fn from(error: zt_session::Error) -> Self {
        Self::zt(error)
    }
}

/// The error with its sources, `outer: inner: innermost`, for the server log.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut link = error.source();
    while let Some(current) = link {
        text.push_str(": ");
        text.push_str(&current.to_string());
        link = current.source();
    }
    text
}

/// The time now, UTC, to the microsecond: PostgreSQL keeps microseconds, so
/// a time read back equals the time written.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// The app's pool: its own r2d2 pool of either backend.
#[derive(Debug, Clone)]
pub enum AppPool {
    /// SQLite, on a file.
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    /// PostgreSQL.
    Postgres(Pool<ConnectionManager<PgConnection>>),
}

/// The app's SQLite settings, on each new connection.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The app's pool settings.
fn builder<C: R2D2Connection + 'static>() -> diesel::r2d2::Builder<ConnectionManager<C>> {
    Pool::builder().max_size(4).connection_timeout(Duration::from_secs(5))
}

impl AppPool {
    /// Connects to `url`: `postgres://...`, or `sqlite://PATH` (or a bare path).
    pub fn connect(url: &str) -> Result<Self, AppError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(builder().build(ConnectionManager::new(url))?))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Ok(Self::Sqlite(
                builder()
                    .connection_customizer(Box::new(SqlitePragmas))
                    .build(ConnectionManager::new(path))?,
            ))
        }
    }
}

/// The one query of a session check (zt step 2): the user's row and zt's
/// revocations of the user and of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The user's role.
    pub role: String,
    /// Whether the user is disabled.
    pub disabled: bool,
    /// When the user's row last changed: sessions issued before are stale.
    pub updated_at: NaiveDateTime,
    /// Whether this session is on zt's `zt_session_revocations`.
    pub session_revoked: bool,
    /// The user's last sign-out-everywhere, from zt's `zt_user_revocations`.
    pub revoked_before: Option<DateTime<Utc>>,
}

/// The app's queries, on either backend's connection.
pub trait Db: R2D2Connection + Send + 'static {
    /// Applies the app's pending migrations; returns the versions applied.
    fn run_app_migrations(&mut self) -> Result<Vec<String>, AppError>;

    /// Runs `body` in a transaction that writes: on SQLite `BEGIN IMMEDIATE`,
    /// which takes the write lock first; on PostgreSQL an ordinary one.
    fn app_transaction<T, E, F>(&mut self, body: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>;

    /// How many users there are.
    fn count_users(&mut self) -> QueryResult<i64>;

    /// Creates a user.
    fn insert_user(&mut self, email: &str, role: &str, at: NaiveDateTime) -> QueryResult<User>;

    /// The user with `id`; `NotFound` if there is none.
    fn find_user(&mut self, id: i64) -> QueryResult<User>;

    /// The user with `email`; `NotFound` if there is none.
    fn find_by_email(&mut self, email: &str) -> QueryResult<User>;

    /// Sets the user's role, moving `updated_at` forward.
    fn set_role(&mut self, id: i64, role: &str, at: NaiveDateTime) -> QueryResult<User>;

    /// Sets the user's email, moving `updated_at` forward.
    fn set_email(&mut self, id: i64, email: &str, at: NaiveDateTime) -> QueryResult<User>;

    /// zt step 2: the user's row and zt's revocations, in one query; `None`
    /// when there is no such user.
    fn session_row(&mut self, id: i64, session_hash: &[u8]) -> QueryResult<Option<SessionRow>>;
}

/// The app's queries, written once for both connection types.
macro_rules! user_queries {
    () => {
        fn count_users(&mut self) -> QueryResult<i64> {
            users::table.count().get_result(self)
        }

        fn insert_user(&mut self, email: &str, role: &str, at: NaiveDateTime) -> QueryResult<User> {
            diesel::insert_into(users::table)
                .values((
                    users::email.eq(email),
                    users::role.eq(role),
                    users::created_at.eq(at),
                    users::updated_at.eq(at),
                ))
                .returning(User::as_returning())
                .get_result(self)
        }

        fn find_user(&mut self, id: i64) -> QueryResult<User> {
            users::table.find(id).select(User::as_select()).first(self)
        }

        fn find_by_email(&mut self, email: &str) -> QueryResult<User> {
            users::table
                .filter(users::email.eq(email))
                .select(User::as_select())
                .first(self)
        }

        fn set_role(&mut self, id: i64, role: &str, at: NaiveDateTime) -> QueryResult<User> {
            diesel::update(users::table.find(id))
                .set((users::role.eq(role), users::updated_at.eq(at)))
                .returning(User::as_returning())
                .get_result(self)
        }

        fn set_email(&mut self, id: i64, email: &str, at: NaiveDateTime) -> QueryResult<User> {
            diesel::update(users::table.find(id))
                .set((users::email.eq(email), users::updated_at.eq(at)))
                .returning(User::as_returning())
                .get_result(self)
        }
    };
}

/// zt step 2: the session check's SQL. The user's row, whether this session
/// is revoked, and the user's last sign-out-everywhere, in one statement;
/// zt keeps the app's integer ids as text.
macro_rules! session_sql {
    ($hash:literal, $id:literal) => {
        concat!(
            "SELECT u.role, u.disabled, u.updated_at, ",
            "EXISTS (SELECT 1 FROM zt_session_revocations r WHERE r.session_hash = ",
            $hash,
            ") AS session_revoked, ",
            "(SELECT v.revoked_before FROM zt_user_revocations v WHERE v.user_id = CAST(u.id AS TEXT)) AS revoked_before ",
            "FROM users u WHERE u.id = ",
            $id
        )
    };
}

/// zt step 2: the session query's row on SQLite, where zt stores times as
/// RFC 3339 text.
#[derive(QueryableByName)]
struct SqliteSessionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    disabled: bool,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    updated_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    session_revoked: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    revoked_before: Option<String>,
}

/// zt step 2: the session query's row on PostgreSQL.
#[derive(QueryableByName)]
struct PgSessionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    disabled: bool,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    updated_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    session_revoked: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    revoked_before: Option<DateTime<Utc>>,
}

fn applied(
    result: diesel::migration::Result<Vec<diesel::migration::MigrationVersion<'_>>>,
) -> Result<Vec<String>, AppError> {
    result
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| AppError::Setup(format!("the app's migrations failed: {e}")))
}

impl Db for SqliteConnection {
    fn run_app_migrations(&mut self) -> Result<Vec<String>, AppError> {
        applied(self.run_pending_migrations(SQLITE_MIGRATIONS))
    }

    fn app_transaction<T, E, F>(&mut self, body: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.immediate_transaction(body)
    }

    user_queries!();

    fn session_row(&mut self, id: i64, session_hash: &[u8]) -> QueryResult<Option<SessionRow>> {
        let row: Option<SqliteSessionRow> = diesel::sql_query(session_sql!("?", "?"))
            .bind::<diesel::sql_types::Binary, _>(session_hash)
            .bind::<diesel::sql_types::BigInt, _>(id)
            .get_result(self)
            .optional()?;
        row.map(|row| {
            let revoked_before = row
                .revoked_before
                .map(|text| DateTime::parse_from_rfc3339(&text).map(|at| at.with_timezone(&Utc)))
                .transpose()
                .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
            Ok(SessionRow {
                role: row.role,
                disabled: row.disabled,
                updated_at: row.updated_at,
                session_revoked: row.session_revoked,
                revoked_before,
            })
        })
        .transpose()
    }
}

impl Db for PgConnection {
    fn run_app_migrations(&mut self) -> Result<Vec<String>, AppError> {
        applied(self.run_pending_migrations(POSTGRES_MIGRATIONS))
    }

    fn app_transaction<T, E, F>(&mut self, body: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.transaction(body)
    }

    user_queries!();

    fn session_row(&mut self, id: i64, session_hash: &[u8]) -> QueryResult<Option<SessionRow>> {
        let row: Option<PgSessionRow> = diesel::sql_query(session_sql!("$1", "$2"))
            .bind::<diesel::sql_types::Binary, _>(session_hash)
            .bind::<diesel::sql_types::BigInt, _>(id)
            .get_result(self)
            .optional()?;
        Ok(row.map(|row| SessionRow {
            role: row.role,
            disabled: row.disabled,
            updated_at: row.updated_at,
            session_revoked: row.session_revoked,
            revoked_before: row.revoked_before,
        }))
    }
}

/// The app's user id as zt's: the integer as text.
pub fn zt_user_id(id: i64) -> Result<UserId, AppError> {
    UserId::parse(id.to_string()).map_err(AppError::zt)
}

/// The app's "change a user's role" action, inside the caller's transaction.
///
/// Before zt it was the `set_role` line alone. zt step 1 added the audit
/// event, written with `record_in` on the same connection, so the role change
/// and its audit row commit or roll back together.
pub fn change_role_in<C: Db + zt_db::DbConnection>(
    conn: &mut C,
    audit: &AuditLog,
    actor: &User,
    user_id: i64,
    role: &str,
) -> Result<(User, Recorded), AppError> {
    let before = conn.find_user(user_id)?;
    let after = conn.set_role(user_id, role, now())?;
    // zt step 1: the audit event, in the same transaction.
    let event = AuditEvent::builder(Actor::user(zt_user_id(actor.id)?, None), "UPDATE_ROLE", "users")
        .resource_id(user_id)
        .metadata(&serde_json::json!({ "from": before.role, "to": after.role }))
        .status(AuditStatus::Success)
        .build()
        .map_err(AppError::zt)?;
    let recorded = audit.record_in(conn, &event)?;
    Ok((after, recorded))
}

/// [`change_role_in`] in a transaction of its own.
pub fn change_role<C: Db + zt_db::DbConnection>(
    conn: &mut C,
    audit: &AuditLog,
    actor: &User,
    user_id: i64,
    role: &str,
) -> Result<(User, Recorded), AppError> {
    conn.app_transaction(|conn| change_role_in(conn, audit, actor, user_id, role))
}
