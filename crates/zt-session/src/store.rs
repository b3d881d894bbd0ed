//! The reference user store, on diesel: the `zt_users` and
//! `zt_session_revocations` tables on SQLite or PostgreSQL; and the
//! revocation list alone, for apps with their own users table.

use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, Bool, HasSqlType, Nullable, SqlType, Text};
use zt_db::{AnyConnection, AsConnection, Pool};
use zt_types::{Email, Role, SessionHash, Timestamp, UserId};

use crate::directory::{AdminChange, AdminOperation, RevocationStore, SessionState, UserDirectory, UserState};
use crate::error::{Error, Result};
use crate::registry::{Activity, NewSession, SessionRecord};
use zt_types::{Clock, SystemClock};

/// The one statement of a session check: the user's state and the session's
/// revocation, in one indexed round trip.
///
/// ```sql
/// SELECT u.role, u.session_version, u.valid_after, u.disabled, u.deleted_at IS NOT NULL,
///        EXISTS (SELECT 1 FROM zt_session_revocations r WHERE r.session_hash = $1)
/// FROM zt_users u WHERE u.id = $2
/// ```
///
/// Its SQL is fixed, so it has a static query id and diesel prepares it once
/// per connection and reuses it (`diesel::sql_query` would not be cached).
/// No row means no such user. `T` is the backend's time type.
#[derive(Debug, Clone, Copy)]
struct SessionStateQuery<'a, T> {
    user_id: &'a str,
    session_hash: &'a [u8],
    time: PhantomData<T>,
}

/// The user's columns of both checks, and the revocation.
const STATE_COLUMNS: &str = "SELECT u.role, u.session_version, u.valid_after, u.disabled, u.deleted_at IS NOT NULL, \
     EXISTS (SELECT 1 FROM zt_session_revocations r WHERE r.session_hash = ";

impl<T: 'static> QueryId for SessionStateQuery<'_, T> {
    type QueryId = SessionStateQuery<'static, T>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB, T> QueryFragment<DB> for SessionStateQuery<'_, T>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Binary>,
    str: ToSql<Text, DB>,
    [u8]: ToSql<Binary, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(STATE_COLUMNS);
        out.push_bind_param::<Binary, [u8]>(self.session_hash)?;
        out.push_sql(") FROM zt_users u WHERE u.id = ");
        out.push_bind_param::<Text, str>(self.user_id)?;
        Ok(())
    }
}

impl<T: SqlType + diesel::sql_types::SingleValue> Query for SessionStateQuery<'_, T> {
    type SqlType = (Text, BigInt, T, Bool, Bool, Bool);
}

impl<Conn, T> RunQueryDsl<Conn> for SessionStateQuery<'_, T> {}

/// The session check with the registry: [`SessionStateQuery`] and the
/// session's registry row, still one statement and one round trip.
///
/// ```sql
/// SELECT u.role, u.session_version, u.valid_after, u.disabled, u.deleted_at IS NOT NULL,
///        EXISTS (SELECT 1 FROM zt_session_revocations r WHERE r.session_hash = $1),
///        s.user_id, s.created_at, s.last_seen_at, s.created_ip, s.created_user_agent,
///        s.last_ip, s.last_user_agent, s.client_changes, s.client_changed_at, s.revoked_at
/// FROM zt_users u LEFT JOIN zt_sessions s ON s.session_hash = $2
/// WHERE u.id = $3
/// ```
#[derive(Debug, Clone, Copy)]
struct RegisteredStateQuery<'a, T> {
    user_id: &'a str,
    session_hash: &'a [u8],
    time: PhantomData<T>,
}

impl<T: 'static> QueryId for RegisteredStateQuery<'_, T> {
    type QueryId = RegisteredStateQuery<'static, T>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB, T> QueryFragment<DB> for RegisteredStateQuery<'_, T>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Binary>,
    str: ToSql<Text, DB>,
    [u8]: ToSql<Binary, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(STATE_COLUMNS);
        out.push_bind_param::<Binary, [u8]>(self.session_hash)?;
        out.push_sql(
            "), s.user_id, s.created_at, s.last_seen_at, s.created_ip, s.created_user_agent, \
             s.last_ip, s.last_user_agent, s.client_changes, s.client_changed_at, s.revoked_at \
             FROM zt_users u LEFT JOIN zt_sessions s ON s.session_hash = ",
        );
        out.push_bind_param::<Binary, [u8]>(self.session_hash)?;
        out.push_sql(" WHERE u.id = ");
        out.push_bind_param::<Text, str>(self.user_id)?;
        Ok(())
    }
}

impl<T: SqlType + diesel::sql_types::SingleValue> Query for RegisteredStateQuery<'_, T> {
    type SqlType = (
        Text,
        BigInt,
        T,
        Bool,
        Bool,
        Bool,
        Nullable<Text>,
        Nullable<T>,
        Nullable<T>,
        Nullable<Text>,
        Nullable<Text>,
        Nullable<Text>,
        Nullable<Text>,
        Nullable<BigInt>,
        Nullable<T>,
        Nullable<T>,
    );
}

impl<Conn, T> RunQueryDsl<Conn> for RegisteredStateQuery<'_, T> {}

/// A client IP as stored: the text of `IpAddr`.
fn decode_ip(text: Option<String>) -> Result<Option<IpAddr>> {
    text.map(|text| {
        text.parse()
            .map_err(|e| Error::new(crate::ErrorKind::Decode, "stored client ip cannot be decoded").with_source(e))
    })
    .transpose()
}

/// The reference user store: a [`UserDirectory`] and [`RevocationStore`] on
/// the `zt_users` and `zt_session_revocations` tables, with the admin operations
/// that keep sessions honest. Cloning shares the pool.
///
/// Every admin operation that changes a user bumps the user's
/// `session_version`, so sessions issued before it fail their next check:
///
/// | operation | bumps the version | audit action |
/// |---|---|---|
/// | [`create_user`](Self::create_user) | starts at 0 | `CREATE_USER` |
/// | [`change_role`](Self::change_role) | yes | `UPDATE_ROLE` |
/// | [`disable_user`](Self::disable_user), [`enable_user`](Self::enable_user) | yes | `DISABLE_USER`, `ENABLE_USER` |
/// | [`delete_user`](Self::delete_user) | yes; the row stays, marked | `DELETE_USER` |
/// | [`revoke_all_sessions`](Self::revoke_all_sessions) | yes | `REVOKE_ALL_SESSIONS` |
/// | [`revoke_session`](Self::revoke_session) | no: it lists the one session's hash, the others live on | `REVOKE_SESSION` |
///
/// Each runs in one transaction that locks the user's row (on SQLite, an
/// immediate transaction), so concurrent admin operations serialize and each
/// bump counts. An operation that changes nothing (the same role, an already
/// disabled user) leaves the version alone and reports `changed: false`.
#[derive(Clone)]
pub struct UserStore {
    pool: Pool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore")
            .field("pool", &self.pool)
            .field("clock", &self.clock)
            .finish()
    }
}

/// Which of a user's sessions a sign-out ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SignOut<'a> {
    /// This one.
    One(&'a SessionHash),
    /// All but this one.
    AllBut(&'a SessionHash),
    /// All of them.
    All,
}

/// The most sessions of one user that a listing returns, newest activity first.
pub(crate) const MAX_LISTED_SESSIONS: i64 = 1000;

/// The reference tables' operations, implemented for each backend's
/// connection by `store_ops!`.
pub(crate) trait Ops {
    fn create_user(&mut self, id: &UserId, email: Option<&Email>, role: &Role, at: Timestamp) -> Result<AdminChange>;
    fn change_role(&mut self, nested: bool, id: &UserId, role: &Role, at: Timestamp) -> Result<AdminChange>;
    fn set_disabled(&mut self, nested: bool, id: &UserId, disabled: bool, at: Timestamp) -> Result<AdminChange>;
    fn delete_user(&mut self, nested: bool, id: &UserId, at: Timestamp) -> Result<AdminChange>;
    fn revoke_session(
        &mut self,
        nested: bool,
        id: &UserId,
        session: &SessionHash,
        at: Timestamp,
    ) -> Result<AdminChange>;
    fn revoke_all(&mut self, nested: bool, id: &UserId, at: Timestamp) -> Result<AdminChange>;
    fn user_state(&mut self, id: &UserId) -> Result<Option<UserState>>;
    fn session_state(&mut self, id: &UserId, session: &SessionHash) -> Result<SessionState>;
    fn prune_revocations(&mut self, before: Timestamp) -> Result<usize>;
    fn list_revoke(&mut self, id: &UserId, session: &SessionHash, at: Timestamp) -> Result<bool>;
    fn list_revoke_all(&mut self, id: &UserId, at: Timestamp) -> Result<()>;
    fn list_check(&mut self, id: &UserId, session: &SessionHash) -> Result<Revocations>;
    /// The user's state and the session's registry row, in one statement.
    fn registered_state(&mut self, id: &UserId, session: &SessionHash)
    -> Result<(SessionState, Option<SessionRecord>)>;
    fn session_record(&mut self, session: &SessionHash) -> Result<Option<SessionRecord>>;
    /// Inserts the session unless it is registered; whether it inserted.
    fn register(&mut self, new: &NewSession<'_>) -> Result<bool>;
    fn record_activity(&mut self, session: &SessionHash, activity: &Activity) -> Result<()>;
    /// The user's sessions not signed out, newest activity first, at most [`MAX_LISTED_SESSIONS`].
    fn list_sessions(&mut self, id: &UserId) -> Result<Vec<SessionRecord>>;
    fn sign_out(&mut self, id: &UserId, which: SignOut<'_>, at: Timestamp) -> Result<usize>;
    fn prune_sessions(&mut self, last_seen_before: Timestamp) -> Result<usize>;
}

/// The reference tables' operations on `conn`'s backend: the one place
/// zt-session dispatches on the backend.
pub(crate) fn ops(conn: AnyConnection<'_>) -> Result<&mut dyn Ops> {
    match conn {
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(conn) => Ok(conn),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(conn) => Ok(conn),
        other => Err(Error::new(
            crate::ErrorKind::Database,
            format!(
                "zt-session was built without its `{0}` feature; enable it to use the reference tables on {0}",
                other.backend()
            ),
        )),
    }
}

/// Runs `op` on one of `pool`'s connections.
pub(crate) fn on_pool<T>(pool: &Pool, op: impl FnOnce(&mut dyn Ops) -> Result<T>) -> Result<T> {
    let mut conn = pool.get()?;
    op(ops(conn.connection())?)
}

impl UserStore {
    /// A store on `pool`, timestamping with the system clock. `pool` is the
    /// app's own r2d2 pool of `PgConnection` or `SqliteConnection`, as it
    /// is, or a [`zt_db::Pool`].
    pub fn new(pool: impl Into<Pool>) -> Self {
        Self {
            pool: pool.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Timestamps rows and changes with `clock` instead. Default: [`SystemClock`].
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A [`SessionRegistry`](crate::SessionRegistry) on this store's pool
    /// and clock that reads the user's state in its own statement: with it, a
    /// validator's check is one `SELECT` of the user, the revocation and the
    /// session's row. Its table needs
    /// [`SessionRegistry::migrate`](crate::SessionRegistry::migrate).
    pub fn registry(&self) -> crate::SessionRegistry {
        crate::SessionRegistry::reading_users(self.pool.clone(), Arc::clone(&self.clock))
    }

    /// Applies this crate's pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>> {
        self.pool.run_migrations(&crate::MIGRATIONS).map_err(|e| {
            let kind = match e.kind() {
                zt_db::ErrorKind::Unreachable => crate::ErrorKind::Unavailable,
                _ => crate::ErrorKind::Database,
            };
            Error::new(kind, e.to_string()).with_source(e)
        })
    }

    /// Creates a live user with `role` and session version 0. Fails with
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) when the id exists
    /// (deleted users keep theirs) or a live user has the email.
    pub fn create_user(&self, id: &UserId, email: Option<&Email>, role: &Role) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.create_user(id, email, role, at))
    }

    /// Sets the user's role and bumps the session version. A demotion thus
    /// ends every session at its next check, and so, by default, does a
    /// promotion; see [`RoleChangePolicy`](crate::RoleChangePolicy).
    pub fn change_role(&self, id: &UserId, role: &Role) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.change_role(false, id, role, at))
    }

    /// Disables the user and bumps the session version.
    pub fn disable_user(&self, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.set_disabled(false, id, true, at))
    }

    /// Enables a disabled user and bumps the session version, so that no
    /// session from before the disable comes back to life.
    pub fn enable_user(&self, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.set_disabled(false, id, false, at))
    }

    /// Marks the user deleted and bumps the session version. The row stays,
    /// so the id is never reused and audit rows keep their meaning.
    pub fn delete_user(&self, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.delete_user(false, id, at))
    }

    /// Revokes one session: its hash goes on the revocation list. The user's
    /// other sessions live on.
    pub fn revoke_session(&self, id: &UserId, session: &SessionHash) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.revoke_session(false, id, session, at))
    }

    /// Revokes every session of the user issued so far, by bumping the
    /// session version. Sessions issued afterwards, with the new version, work.
    pub fn revoke_all_sessions(&self, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.revoke_all(false, id, at))
    }

    /// [`UserStore::create_user`] inside the caller's open transaction on
    /// `conn`, the app's own connection or pooled connection as it is.
    pub fn create_user_in(
        &self,
        conn: &mut impl AsConnection,
        id: &UserId,
        email: Option<&Email>,
        role: &Role,
    ) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection())?.create_user(id, email, role, at)
    }

    /// [`UserStore::change_role`] inside the caller's open transaction on
    /// `conn`, so that the change commits or rolls back with it, such as with
    /// its audit row.
    pub fn change_role_in(&self, conn: &mut impl AsConnection, id: &UserId, role: &Role) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection()).and_then(|ops| ops.change_role(true, id, role, at))
    }

    /// [`UserStore::disable_user`] inside the caller's open transaction.
    pub fn disable_user_in(&self, conn: &mut impl AsConnection, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection()).and_then(|ops| ops.set_disabled(true, id, true, at))
    }

    /// [`UserStore::enable_user`] inside the caller's open transaction.
    pub fn enable_user_in(&self, conn: &mut impl AsConnection, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection()).and_then(|ops| ops.set_disabled(true, id, false, at))
    }

    /// [`UserStore::delete_user`] inside the caller's open transaction.
    pub fn delete_user_in(&self, conn: &mut impl AsConnection, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection()).and_then(|ops| ops.delete_user(true, id, at))
    }

    /// [`UserStore::revoke_session`] inside the caller's open transaction.
    pub fn revoke_session_in(
        &self,
        conn: &mut impl AsConnection,
        id: &UserId,
        session: &SessionHash,
    ) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection()).and_then(|ops| ops.revoke_session(true, id, session, at))
    }

    /// [`UserStore::revoke_all_sessions`] inside the caller's open transaction.
    pub fn revoke_all_sessions_in(&self, conn: &mut impl AsConnection, id: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection()).and_then(|ops| ops.revoke_all(true, id, at))
    }

    /// The user's current state, or `None` when there is no such user. Read
    /// it at sign-in to put the current role and session version into the
    /// new session's claims.
    pub fn user_state(&self, id: &UserId) -> Result<Option<UserState>> {
        on_pool(&self.pool, |ops| ops.user_state(id))
    }

    /// Deletes revocations listed before `revoked_before`; returns how many.
    ///
    /// A revocation is only needed while the session could still pass a
    /// check: pass now minus your longest session lifetime (the identity
    /// provider's, or the requirements' absolute lifetime).
    pub fn prune_revocations(&self, revoked_before: Timestamp) -> Result<usize> {
        on_pool(&self.pool, |ops| ops.prune_revocations(revoked_before))
    }
}

impl UserDirectory for UserStore {
    fn session_state(&self, user: &UserId, session: &SessionHash) -> Result<SessionState> {
        on_pool(&self.pool, |ops| ops.session_state(user, session))
    }
}

impl RevocationStore for UserStore {
    fn revoke_session(&self, user: &UserId, session: &SessionHash) -> Result<AdminChange> {
        UserStore::revoke_session(self, user, session)
    }

    fn revoke_all_sessions(&self, user: &UserId) -> Result<AdminChange> {
        UserStore::revoke_all_sessions(self, user)
    }
}

/// What the revocation list holds for one user and session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocations {
    /// Whether this session's hash is on the list.
    pub session_revoked: bool,
    /// Every session of the user issued before this instant is revoked
    /// (sign-out-everywhere), when one was recorded.
    pub revoked_before: Option<Timestamp>,
}

impl Revocations {
    /// Whether a session issued at `issued_at` is revoked.
    pub fn revokes(&self, issued_at: Timestamp) -> bool {
        self.session_revoked || self.revoked_before.is_some_and(|before| issued_at < before)
    }
}

/// The revocation list alone, for an app that keeps its own users table:
/// `zt_session_revocations` (one session, by the hash of its id) and
/// `zt_user_revocations` (every session of a user issued before an instant).
/// User ids are stored as text, so integer, UUID and text ids all fit
/// ([`UserId`] converts from each).
///
/// Read it inside your own [`UserDirectory`] query, so that the user and the
/// revocations come from one snapshot; [`RevocationList::check_in`] does it on
/// your connection, and the SQL is short enough to join yourself:
///
/// ```sql
/// SELECT u.role, u.disabled,
///        EXISTS (SELECT 1 FROM zt_session_revocations r WHERE r.session_hash = $1),
///        (SELECT revoked_before FROM zt_user_revocations v WHERE v.user_id = $2)
/// FROM users u WHERE u.id = $3
/// ```
#[derive(Clone)]
pub struct RevocationList {
    pool: Pool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl RevocationList {
    /// The list on `pool`: the app's own r2d2 pool, or a [`zt_db::Pool`].
    pub fn new(pool: impl Into<Pool>) -> Self {
        Self {
            pool: pool.into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Timestamps revocations with `clock` instead. Default: [`SystemClock`].
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// What the list holds for `user` and `session`.
    pub fn check(&self, user: &UserId, session: &SessionHash) -> Result<Revocations> {
        on_pool(&self.pool, |ops| ops.list_check(user, session))
    }

    /// [`RevocationList::check`] on the app's connection, such as inside
    /// the transaction that reads its users table.
    pub fn check_in(&self, conn: &mut impl AsConnection, user: &UserId, session: &SessionHash) -> Result<Revocations> {
        ops(conn.as_connection())?.list_check(user, session)
    }

    /// [`RevocationStore::revoke_session`] on the app's connection, inside its transaction.
    pub fn revoke_session_in(
        &self,
        conn: &mut impl AsConnection,
        user: &UserId,
        session: &SessionHash,
    ) -> Result<AdminChange> {
        let at = self.clock.now();
        let changed = ops(conn.as_connection())?.list_revoke(user, session, at)?;
        Ok(list_change(
            AdminOperation::RevokeSession { session: *session },
            user,
            changed,
            at,
        ))
    }

    /// [`RevocationStore::revoke_all_sessions`] on the app's connection, inside its transaction.
    pub fn revoke_all_sessions_in(&self, conn: &mut impl AsConnection, user: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        ops(conn.as_connection())?.list_revoke_all(user, at)?;
        Ok(list_change(AdminOperation::RevokeAllSessions, user, true, at))
    }
}

/// An [`AdminChange`] of the revocation list, which keeps no session version.
fn list_change(operation: AdminOperation, user: &UserId, changed: bool, at: Timestamp) -> AdminChange {
    AdminChange {
        operation,
        user_id: user.clone(),
        session_version: 0,
        changed,
        at,
    }
}

impl RevocationStore for RevocationList {
    fn revoke_session(&self, user: &UserId, session: &SessionHash) -> Result<AdminChange> {
        let at = self.clock.now();
        let changed = on_pool(&self.pool, |ops| ops.list_revoke(user, session, at))?;
        Ok(list_change(
            AdminOperation::RevokeSession { session: *session },
            user,
            changed,
            at,
        ))
    }

    fn revoke_all_sessions(&self, user: &UserId) -> Result<AdminChange> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.list_revoke_all(user, at))?;
        Ok(list_change(AdminOperation::RevokeAllSessions, user, true, at))
    }
}

/// The admin operations, written once and instantiated per backend: the
/// backends differ only in the connection, the schema module, how a time is
/// bound and stored, how a transaction locks the user's row.
macro_rules! store_ops {
    (
        conn = $conn:ty,
        schema = $schema:ident,
        time = $time:path,
        from_time = $from_time:path,
        time_sql = $time_sql:ty,
        stored_time = $stored_time:ty,
        transaction = $transaction:ident,
        lock = [$($lock:tt)*] $(,)?
    ) => {
        use std::marker::PhantomData;

        use diesel::prelude::*;
        use zt_types::{Email, Role, SessionHash, Timestamp, UserAgent, UserId};

        use super::{
            MAX_LISTED_SESSIONS, Ops, RegisteredStateQuery, Revocations, SessionStateQuery, SignOut, decode_ip,
        };
        use crate::directory::{AdminChange, AdminOperation, SessionState, UserState};
        use crate::error::{Error, ErrorKind, Result};
        use crate::registry::{Activity, NewSession, SessionRecord};
        use crate::schema::$schema::{zt_session_revocations, zt_sessions, zt_user_revocations, zt_users};

        /// Role, session version, disabled, deleted.
        type UserRow = (String, i64, bool, bool);

        /// A row of the check: role, session version, valid after, disabled,
        /// deleted, revoked.
        type StateRow = (String, i64, $stored_time, bool, bool, bool);

        /// A registry row as the check reads it, every column nullable
        /// (the left join): user, created, last seen, created ip and user
        /// agent, last ip and user agent, changes, changed at, revoked at.
        type JoinedRow = (
            Option<String>,
            Option<$stored_time>,
            Option<$stored_time>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<$stored_time>,
            Option<$stored_time>,
        );

        /// A registry row, read alone.
        type SessionRow = (
            Vec<u8>,
            String,
            $stored_time,
            $stored_time,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            Option<$stored_time>,
            Option<$stored_time>,
        );

        fn not_found(id: &UserId) -> Error {
            Error::new(ErrorKind::NotFound, format!("no live user `{id}`"))
        }

        fn decode_state(row: Option<StateRow>) -> Result<SessionState> {
            Ok(match row {
                None => SessionState { user: None, session_revoked: false },
                Some((role, version, valid_after, disabled, deleted, revoked)) => SessionState {
                    user: Some(
                        UserState::new(Role::parse(role)?, version)
                            .with_version_changed_at($from_time(valid_after)?)
                            .with_disabled(disabled)
                            .with_deleted(deleted),
                    ),
                    session_revoked: revoked,
                },
            })
        }

        fn decode_session(row: SessionRow) -> Result<SessionRecord> {
            let (hash, user, created, seen, created_ip, created_agent, last_ip, last_agent, changes, changed, revoked) = row;
            let hash: [u8; 32] = hash
                .try_into()
                .map_err(|_| Error::new(ErrorKind::Decode, "stored session hash is not 32 bytes"))?;
            Ok(SessionRecord {
                session_hash: SessionHash::from_bytes(hash),
                user_id: UserId::parse(user)?,
                created_at: $from_time(created)?,
                last_seen_at: $from_time(seen)?,
                created_ip: decode_ip(created_ip)?,
                created_user_agent: created_agent.map(UserAgent::from),
                last_ip: decode_ip(last_ip)?,
                last_user_agent: last_agent.map(UserAgent::from),
                client_changes: changes,
                client_changed_at: changed.map($from_time).transpose()?,
                revoked_at: revoked.map($from_time).transpose()?,
            })
        }

        /// The registry half of a joined row: `None` when the session has no row.
        fn decode_joined(session: &SessionHash, row: JoinedRow) -> Result<Option<SessionRecord>> {
            let (user, created, seen, created_ip, created_agent, last_ip, last_agent, changes, changed, revoked) = row;
            let (Some(user), Some(created), Some(seen), Some(changes)) = (user, created, seen, changes) else {
                return Ok(None);
            };
            decode_session((
                session.as_bytes().to_vec(),
                user,
                created,
                seen,
                created_ip,
                created_agent,
                last_ip,
                last_agent,
                changes,
                changed,
                revoked,
            ))
            .map(Some)
        }

        /// Reads the user's row, locking it for the rest of the transaction.
        fn locked_user(conn: &mut $conn, id: &UserId) -> Result<Option<UserRow>> {
            Ok(zt_users::table
                .find(id.as_str())
                .select((zt_users::role, zt_users::session_version, zt_users::disabled, zt_users::deleted_at.is_not_null()))
                $($lock)*
                .first::<UserRow>(conn)
                .optional()?)
        }

        /// Ends every session issued so far: the version goes up by one and
        /// "valid after" moves to now.
        fn bump(conn: &mut $conn, id: &UserId, at: Timestamp) -> Result<()> {
            diesel::update(zt_users::table.find(id.as_str()))
                .set((
                    zt_users::session_version.eq(zt_users::session_version + 1),
                    zt_users::updated_at.eq($time(at)),
                    zt_users::valid_after.eq($time(at)),
                ))
                .execute(conn)?;
            Ok(())
        }

        /// A transaction of its own, or a savepoint of the caller's open one.
        fn begin<T>(conn: &mut $conn, nested: bool, body: impl FnOnce(&mut $conn) -> Result<T>) -> Result<T> {
            if nested { conn.transaction(body) } else { conn.$transaction(body) }
        }

        fn change(operation: AdminOperation, id: &UserId, session_version: i64, changed: bool, at: Timestamp) -> AdminChange {
            AdminChange { operation, user_id: id.clone(), session_version, changed, at }
        }

        impl Ops for $conn {
            fn create_user(&mut self, id: &UserId,
                email: Option<&Email>,
                role: &Role,
                at: Timestamp,
            ) -> Result<AdminChange> {
                let inserted = diesel::insert_into(zt_users::table)
                    .values((
                        zt_users::id.eq(id.as_str()),
                        zt_users::email.eq(email.map(Email::as_str)),
                        zt_users::role.eq(role.as_str()),
                        zt_users::session_version.eq(0_i64),
                        zt_users::disabled.eq(false),
                        zt_users::created_at.eq($time(at)),
                        zt_users::updated_at.eq($time(at)),
                    ))
                    .execute(self);
                match inserted {
                    Ok(_) => Ok(change(AdminOperation::CreateUser { role: role.clone() }, id, 0, true, at)),
                    Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, info)) => {
                        Err(Error::new(
                            ErrorKind::Conflict,
                            format!("user `{id}` already exists, or a live user has that email"),
                        )
                        .with_source(info.message().to_owned()))
                    }
                    Err(error) => Err(error.into()),
                }
            }

            fn change_role(&mut self, nested: bool, id: &UserId, role: &Role, at: Timestamp) -> Result<AdminChange> {
                begin(self, nested, |conn| {
                    let (from, version, _, deleted) = locked_user(conn, id)?.ok_or_else(|| not_found(id))?;
                    if deleted {
                        return Err(not_found(id));
                    }
                    let from = Role::parse(from)?;
                    let operation = AdminOperation::ChangeRole { from: from.clone(), to: role.clone() };
                    if &from == role {
                        return Ok(change(operation, id, version, false, at));
                    }
                    diesel::update(zt_users::table.find(id.as_str())).set(zt_users::role.eq(role.as_str())).execute(conn)?;
                    bump(conn, id, at)?;
                    Ok(change(operation, id, version + 1, true, at))
                })
            }

            fn set_disabled(&mut self, nested: bool, id: &UserId, disabled: bool, at: Timestamp) -> Result<AdminChange> {
                begin(self, nested, |conn| {
                    let (_, version, was_disabled, deleted) = locked_user(conn, id)?.ok_or_else(|| not_found(id))?;
                    if deleted {
                        return Err(not_found(id));
                    }
                    let operation = if disabled { AdminOperation::DisableUser } else { AdminOperation::EnableUser };
                    if was_disabled == disabled {
                        return Ok(change(operation, id, version, false, at));
                    }
                    diesel::update(zt_users::table.find(id.as_str())).set(zt_users::disabled.eq(disabled)).execute(conn)?;
                    bump(conn, id, at)?;
                    Ok(change(operation, id, version + 1, true, at))
                })
            }

            fn delete_user(&mut self, nested: bool, id: &UserId, at: Timestamp) -> Result<AdminChange> {
                begin(self, nested, |conn| {
                    let (_, version, _, deleted) = locked_user(conn, id)?.ok_or_else(|| not_found(id))?;
                    if deleted {
                        return Ok(change(AdminOperation::DeleteUser, id, version, false, at));
                    }
                    diesel::update(zt_users::table.find(id.as_str()))
                        .set(zt_users::deleted_at.eq(Some($time(at))))
                        .execute(conn)?;
                    bump(conn, id, at)?;
                    Ok(change(AdminOperation::DeleteUser, id, version + 1, true, at))
                })
            }

            fn revoke_session(&mut self, nested: bool,
                id: &UserId,
                session: &SessionHash,
                at: Timestamp,
            ) -> Result<AdminChange> {
                begin(self, nested, |conn| {
                    let (_, version, _, _) = locked_user(conn, id)?.ok_or_else(|| not_found(id))?;
                    let inserted = diesel::insert_into(zt_session_revocations::table)
                        .values((
                            zt_session_revocations::session_hash.eq(&session.as_bytes()[..]),
                            zt_session_revocations::user_id.eq(id.as_str()),
                            zt_session_revocations::revoked_at.eq($time(at)),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                    Ok(change(AdminOperation::RevokeSession { session: *session }, id, version, inserted > 0, at))
                })
            }

            fn revoke_all(&mut self, nested: bool, id: &UserId, at: Timestamp) -> Result<AdminChange> {
                begin(self, nested, |conn| {
                    let (_, version, _, _) = locked_user(conn, id)?.ok_or_else(|| not_found(id))?;
                    bump(conn, id, at)?;
                    Ok(change(AdminOperation::RevokeAllSessions, id, version + 1, true, at))
                })
            }

            fn user_state(&mut self, id: &UserId) -> Result<Option<UserState>> {
                let row = zt_users::table
                    .find(id.as_str())
                    .select((
                        zt_users::role,
                        zt_users::session_version,
                        zt_users::valid_after,
                        zt_users::disabled,
                        zt_users::deleted_at.is_not_null(),
                    ))
                    .first::<(String, i64, $stored_time, bool, bool)>(self)
                    .optional()?;
                row.map(|(role, version, valid_after, disabled, deleted)| {
                    Ok(UserState::new(Role::parse(role)?, version)
                        .with_version_changed_at($from_time(valid_after)?)
                        .with_disabled(disabled)
                        .with_deleted(deleted))
                })
                .transpose()
            }

            fn prune_revocations(&mut self, before: Timestamp) -> Result<usize> {
                Ok(diesel::delete(zt_session_revocations::table.filter(zt_session_revocations::revoked_at.lt($time(before))))
                    .execute(self)?)
            }

            fn session_state(&mut self, user: &UserId, session: &SessionHash) -> Result<SessionState> {
                let query = SessionStateQuery::<$time_sql> {
                    user_id: user.as_str(),
                    session_hash: session.as_bytes(),
                    time: PhantomData,
                };
                decode_state(query.get_result::<StateRow>(self).optional()?)
            }

            fn list_revoke(&mut self, id: &UserId, session: &SessionHash, at: Timestamp) -> Result<bool> {
                let inserted = diesel::insert_into(zt_session_revocations::table)
                    .values((
                        zt_session_revocations::session_hash.eq(&session.as_bytes()[..]),
                        zt_session_revocations::user_id.eq(id.as_str()),
                        zt_session_revocations::revoked_at.eq($time(at)),
                    ))
                    .on_conflict_do_nothing()
                    .execute(self)?;
                Ok(inserted > 0)
            }

            fn list_revoke_all(&mut self, id: &UserId, at: Timestamp) -> Result<()> {
                diesel::insert_into(zt_user_revocations::table)
                    .values((
                        zt_user_revocations::user_id.eq(id.as_str()),
                        zt_user_revocations::revoked_before.eq($time(at)),
                    ))
                    .on_conflict(zt_user_revocations::user_id)
                    .do_update()
                    .set(zt_user_revocations::revoked_before.eq($time(at)))
                    .execute(self)?;
                Ok(())
            }

            fn list_check(&mut self, id: &UserId, session: &SessionHash) -> Result<Revocations> {
                let revoked: bool = diesel::select(diesel::dsl::exists(
                    zt_session_revocations::table.filter(zt_session_revocations::session_hash.eq(&session.as_bytes()[..])),
                ))
                .get_result(self)?;
                let before = zt_user_revocations::table
                    .find(id.as_str())
                    .select(zt_user_revocations::revoked_before)
                    .first(self)
                    .optional()?;
                Ok(Revocations { session_revoked: revoked, revoked_before: before.map($from_time).transpose()? })
            }

            fn registered_state(&mut self, id: &UserId, session: &SessionHash)
                -> Result<(SessionState, Option<SessionRecord>)>
            {
                let query = RegisteredStateQuery::<$time_sql> {
                    user_id: id.as_str(),
                    session_hash: session.as_bytes(),
                    time: PhantomData,
                };
                let row = query
                    .get_result::<(
                        String, i64, $stored_time, bool, bool, bool,
                        Option<String>, Option<$stored_time>, Option<$stored_time>,
                        Option<String>, Option<String>, Option<String>, Option<String>,
                        Option<i64>, Option<$stored_time>, Option<$stored_time>,
                    )>(self)
                    .optional()?;
                let Some(row) = row else {
                    return Ok((decode_state(None)?, None));
                };
                let (role, version, valid_after, disabled, deleted, revoked,
                    user, created, seen, created_ip, created_agent, last_ip, last_agent, changes, changed, ended) = row;
                let state = decode_state(Some((role, version, valid_after, disabled, deleted, revoked)))?;
                let record = decode_joined(
                    session,
                    (user, created, seen, created_ip, created_agent, last_ip, last_agent, changes, changed, ended),
                )?;
                Ok((state, record))
            }

            fn session_record(&mut self, session: &SessionHash) -> Result<Option<SessionRecord>> {
                zt_sessions::table
                    .find(&session.as_bytes()[..])
                    .first::<SessionRow>(self)
                    .optional()?
                    .map(decode_session)
                    .transpose()
            }

            fn register(&mut self, new: &NewSession<'_>) -> Result<bool> {
                let ip = new.ip.map(|ip| ip.to_string());
                let agent = new.user_agent.map(UserAgent::as_str);
                let inserted = diesel::insert_into(zt_sessions::table)
                    .values((
                        zt_sessions::session_hash.eq(&new.session_hash.as_bytes()[..]),
                        zt_sessions::user_id.eq(new.user_id.as_str()),
                        zt_sessions::created_at.eq($time(new.created_at)),
                        zt_sessions::last_seen_at.eq($time(new.seen_at)),
                        zt_sessions::created_ip.eq(ip.as_deref()),
                        zt_sessions::created_user_agent.eq(agent),
                        zt_sessions::last_ip.eq(ip.as_deref()),
                        zt_sessions::last_user_agent.eq(agent),
                        zt_sessions::client_changes.eq(0_i64),
                    ))
                    .on_conflict_do_nothing()
                    .execute(self)?;
                Ok(inserted > 0)
            }

            fn record_activity(&mut self, session: &SessionHash, activity: &Activity) -> Result<()> {
                let row = zt_sessions::table.find(&session.as_bytes()[..]);
                match (&activity.change, activity.seen) {
                    (Some((ip, agent)), seen) => {
                        let ip = ip.map(|ip| ip.to_string());
                        let changed = (
                            zt_sessions::last_ip.eq(ip.as_deref()),
                            zt_sessions::last_user_agent.eq(agent.as_ref().map(UserAgent::as_str)),
                            zt_sessions::client_changes.eq(zt_sessions::client_changes + 1),
                            zt_sessions::client_changed_at.eq(Some($time(activity.at))),
                        );
                        match seen {
                            Some((now, _)) => diesel::update(row)
                                .set((changed, zt_sessions::last_seen_at.eq($time(now))))
                                .execute(self)?,
                            None => diesel::update(row).set(changed).execute(self)?,
                        };
                    }
                    (None, Some((now, threshold))) => {
                        // Only a row not seen since the threshold: concurrent
                        // checks of one session write it once.
                        diesel::update(row.filter(zt_sessions::last_seen_at.le($time(threshold))))
                            .set(zt_sessions::last_seen_at.eq($time(now)))
                            .execute(self)?;
                    }
                    (None, None) => {}
                }
                Ok(())
            }

            fn list_sessions(&mut self, id: &UserId) -> Result<Vec<SessionRecord>> {
                zt_sessions::table
                    .filter(zt_sessions::user_id.eq(id.as_str()))
                    .filter(zt_sessions::revoked_at.is_null())
                    .order((zt_sessions::last_seen_at.desc(), zt_sessions::session_hash))
                    .limit(MAX_LISTED_SESSIONS)
                    .load::<SessionRow>(self)?
                    .into_iter()
                    .map(decode_session)
                    .collect()
            }

            fn sign_out(&mut self, id: &UserId, which: SignOut<'_>, at: Timestamp) -> Result<usize> {
                let live = zt_sessions::table
                    .filter(zt_sessions::user_id.eq(id.as_str()))
                    .filter(zt_sessions::revoked_at.is_null());
                let ended = Some($time(at));
                Ok(match which {
                    SignOut::One(session) => diesel::update(live.filter(zt_sessions::session_hash.eq(&session.as_bytes()[..])))
                        .set(zt_sessions::revoked_at.eq(ended))
                        .execute(self)?,
                    SignOut::AllBut(session) => diesel::update(live.filter(zt_sessions::session_hash.ne(&session.as_bytes()[..])))
                        .set(zt_sessions::revoked_at.eq(ended))
                        .execute(self)?,
                    SignOut::All => diesel::update(live).set(zt_sessions::revoked_at.eq(ended)).execute(self)?,
                })
            }

            fn prune_sessions(&mut self, last_seen_before: Timestamp) -> Result<usize> {
                Ok(diesel::delete(zt_sessions::table.filter(zt_sessions::last_seen_at.lt($time(last_seen_before))))
                    .execute(self)?)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
mod sqlite_ops {

    /// SQLite stores times as the fixed-width text of `Timestamp`'s `Display`.
    fn time(at: zt_types::Timestamp) -> String {
        at.to_string()
    }

    #[allow(clippy::needless_pass_by_value)] // `Option::map` hands it over by value.
    fn from_time(text: String) -> crate::Result<zt_types::Timestamp> {
        Ok(text.parse()?)
    }

    store_ops! {
        conn = diesel::SqliteConnection,
        schema = sqlite,
        time = time,
        from_time = from_time,
        time_sql = diesel::sql_types::Text,
        stored_time = String,
        // The immediate transaction takes the write lock first, which locks the row.
        transaction = immediate_transaction,
        lock = [],
    }
}

#[cfg(feature = "postgres")]
mod pg_ops {
    /// Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01.
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

    /// PostgreSQL's own timestamp representation: microseconds since 2000.
    fn time(at: zt_types::Timestamp) -> diesel::data_types::PgTimestamp {
        diesel::data_types::PgTimestamp(at.unix_micros() - PG_EPOCH_MICROS)
    }

    #[allow(clippy::needless_pass_by_value)] // `Option::map` hands it over by value.
    fn from_time(at: diesel::data_types::PgTimestamp) -> crate::Result<zt_types::Timestamp> {
        Ok(zt_types::Timestamp::from_unix_micros(
            at.0.saturating_add(PG_EPOCH_MICROS),
        )?)
    }

    store_ops! {
        conn = diesel::PgConnection,
        schema = pg,
        time = time,
        from_time = from_time,
        time_sql = diesel::sql_types::Timestamptz,
        stored_time = diesel::data_types::PgTimestamp,
        transaction = transaction,
        lock = [.for_update()],
    }
}
