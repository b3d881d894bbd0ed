//! An app that keeps its own users table, with integer ids, its own r2d2
//! pool and its own transactions: its `UserDirectory` reads a "valid after"
//! instant instead of a session version, and zt's revocation list holds its
//! revocations. Real SQLite files and a real PostgreSQL server, each with
//! its feature.
// Every test here needs a database: built with `store` but no backend, the
// suite is empty. `backend_tests!` runs each backend this crate was built with.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::ConnectionManager;
use diesel::sql_types::{BigInt, Bool, Text};
use zt_db::{AnyConnection, AsConnection};
use zt_session::{
    Clock, DenialReason, ManualClock, Requirement, RevocationList, RevocationStore, SessionState, UserDirectory,
    UserState, UserStore, Validator,
};
use zt_testkit::{Backend, TestDatabase};
use zt_types::{RequestContext, Role, SessionClaims, SessionHash, SessionId, Timestamp, UserId};

fn t0() -> Timestamp {
    "2026-11-29T12:00:00Z".parse().unwrap()
}

/// The app's row: its role, whether it is locked, and the instant before
/// which its sessions no longer count, kept as microseconds by the app.
#[derive(QueryableByName)]
struct AppUserRow {
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Bool)]
    locked: bool,
    #[diesel(sql_type = BigInt)]
    sessions_valid_after: i64,
}

/// The app's own directory: its `app_users` table, whose ids are integers,
/// and zt's revocation list, read on the same connection.
struct AppDirectory<M: diesel::r2d2::ManageConnection> {
    pool: diesel::r2d2::Pool<M>,
    revocations: RevocationList,
}

impl<M> UserDirectory for AppDirectory<M>
where
    M: diesel::r2d2::ManageConnection,
    M::Connection: zt_db::DbConnection,
{
    fn session_state(&self, user: &UserId, session: &SessionHash) -> zt_session::Result<SessionState> {
        let not_ours = || zt_session::Error::new(zt_session::ErrorKind::Database, "the app's pool failed");
        let mut conn = self.pool.get().map_err(|e| not_ours().with_source(e))?;
        let Ok(id) = user.as_str().parse::<i64>() else {
            return Ok(SessionState {
                user: None,
                session_revoked: false,
            });
        };
        let sql = "SELECT role, locked, sessions_valid_after FROM app_users WHERE id = ";
        let row: Option<AppUserRow> = match conn.as_connection() {
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(conn) => diesel::sql_query(format!("{sql}?"))
                .bind::<BigInt, _>(id)
                .get_result(conn)
                .optional()?,
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(conn) => diesel::sql_query(format!("{sql}$1"))
                .bind::<BigInt, _>(id)
                .get_result(conn)
                .optional()?,
            _ => unreachable!("backend_tests! runs only the backends this crate was built with"),
        };
        let revocations = self.revocations.check_in(&mut conn, user, session)?;
        let user = row
            .map(|row| -> zt_session::Result<UserState> {
                let valid_after = Timestamp::from_unix_micros(row.sessions_valid_after)?;
                Ok(UserState::from_valid_after(Role::parse(row.role)?, valid_after)
                    .with_valid_after(revocations.revoked_before)
                    .with_disabled(row.locked))
            })
            .transpose()?;
        Ok(SessionState {
            user,
            session_revoked: revocations.session_revoked,
        })
    }
}

fn exec(conn: &mut impl AsConnection, sql: &str) {
    match conn.as_connection() {
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(conn) => diesel::sql_query(sql).execute(conn).unwrap(),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(conn) => diesel::sql_query(sql).execute(conn).unwrap(),
        _ => unreachable!("backend_tests! runs only the backends this crate was built with"),
    };
}

/// Runs the scenario on the app's own pool of connection type `C`.
fn scenario<C>(url: &str)
where
    C: zt_db::DbConnection + diesel::r2d2::R2D2Connection,
{
    let pool = diesel::r2d2::Pool::builder()
        .max_size(3)
        .build(ConnectionManager::<C>::new(url))
        .unwrap();
    let mut conn = pool.get().unwrap();
    zt_session::run_migrations(&mut conn).unwrap();
    exec(
        &mut conn,
        "CREATE TABLE app_users (id BIGINT PRIMARY KEY, role TEXT NOT NULL, locked BOOLEAN NOT NULL, \
         sessions_valid_after BIGINT NOT NULL)",
    );
    exec(
        &mut conn,
        &format!(
            "INSERT INTO app_users VALUES (42, 'admin', FALSE, {})",
            t0().unix_micros()
        ),
    );
    drop(conn);

    let clock = Arc::new(ManualClock::new(t0()));
    let revocations = RevocationList::new(pool.clone()).with_clock(Arc::clone(&clock));
    let validator = Validator::new(AppDirectory {
        pool: pool.clone(),
        revocations: revocations.clone(),
    })
    .with_clock(Arc::clone(&clock));
    let user = UserId::from(42_i64);
    let sign_in = |session: &str, at: Timestamp| {
        // The version is the app's to ignore: its directory keeps no version.
        SessionClaims::new(SessionId::parse(session).unwrap(), user.clone(), Role::admin(), 0, at)
    };
    let request = RequestContext::new();
    let check = |claims: &SessionClaims| validator.validate(claims, &Requirement::new(), &request);

    clock.advance(Duration::from_secs(60));
    let laptop = sign_in("sess_laptop", clock.now());
    check(&laptop).unwrap();

    // The user changes their password; the app moves the instant forward in
    // its own transaction: the laptop's session, issued before, is denied.
    clock.advance(Duration::from_secs(60));
    exec(
        &mut pool.get().unwrap(),
        &format!(
            "UPDATE app_users SET sessions_valid_after = {} WHERE id = 42",
            clock.now().unix_micros()
        ),
    );
    let denial = check(&laptop).unwrap_err();
    assert!(
        matches!(denial.reason(), DenialReason::IssuedBeforeValidAfter { .. }),
        "{denial}"
    );
    assert!(denial.reauthenticate());
    clock.advance(Duration::from_secs(1));
    let phone = SessionClaims::new(
        SessionId::parse("sess_phone").unwrap(),
        user.clone(),
        Role::admin(),
        0,
        clock.now(),
    );
    let tablet = SessionClaims::new(
        SessionId::parse("sess_tablet").unwrap(),
        user.clone(),
        Role::admin(),
        0,
        clock.now(),
    );
    check(&phone).unwrap();
    check(&tablet).unwrap();

    // Sign out one device, inside the app's own transaction.
    let mut conn = pool.get().unwrap();
    let change = revocations
        .revoke_session_in(&mut conn, &user, &phone.session_hash())
        .unwrap();
    assert!(change.changed);
    assert!(
        !revocations
            .revoke_session_in(&mut conn, &user, &phone.session_hash())
            .unwrap()
            .changed,
        "revoking again changes nothing"
    );
    drop(conn);
    assert_eq!(check(&phone).unwrap_err().reason(), &DenialReason::SessionRevoked);
    check(&tablet).unwrap();

    // Sign out everywhere: every session issued before now ends; a new one works.
    clock.advance(Duration::from_secs(1));
    revocations.revoke_all_sessions(&user).unwrap();
    assert!(matches!(
        check(&tablet).unwrap_err().reason(),
        DenialReason::IssuedBeforeValidAfter { .. }
    ));
    let listed = revocations.check(&user, &tablet.session_hash()).unwrap();
    assert_eq!(listed.revoked_before, Some(clock.now()));
    assert!(listed.revokes(tablet.issued_at()));
    clock.advance(Duration::from_secs(1));
    let fresh = SessionClaims::new(
        SessionId::parse("sess_new").unwrap(),
        user.clone(),
        Role::admin(),
        0,
        clock.now(),
    );
    check(&fresh).unwrap();

    // Unknown and non-integer ids are missing users, never errors.
    let stranger = SessionClaims::new(
        SessionId::parse("s").unwrap(),
        UserId::from(7_i32),
        Role::admin(),
        0,
        clock.now(),
    );
    assert_eq!(check(&stranger).unwrap_err().reason(), &DenialReason::UserMissing);

    // zt created its own tables, never the app's: no `users` table exists.
    let mut conn = pool.get().unwrap();
    let probe = diesel::sql_query("SELECT 1 AS one FROM users");
    let missing = match conn.as_connection() {
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(conn) => probe.execute(conn).is_err(),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(conn) => probe.execute(conn).is_err(),
        _ => unreachable!("backend_tests! runs only the backends this crate was built with"),
    };
    assert!(missing, "zt must not create a `users` table");
}

fn app_directory_with_valid_after_and_revocation_list(db: &TestDatabase) {
    match db.backend() {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => scenario::<diesel::SqliteConnection>(db.url().trim_start_matches("sqlite://")),
        #[cfg(feature = "postgres")]
        Backend::Postgres => scenario::<diesel::PgConnection>(db.url()),
        #[allow(unreachable_patterns)]
        other => unreachable!("backend_tests! runs {other:?} only with its feature"),
    }
}

/// The reference store on the app's own pool: a user created inside the
/// app's transaction rolls back with it.
fn reference_store_joins_the_app_transaction(db: &TestDatabase) {
    fn run<C: zt_db::DbConnection>(url: &str) {
        let pool = diesel::r2d2::Pool::builder()
            .max_size(2)
            .build(ConnectionManager::<C>::new(url))
            .unwrap();
        let store = UserStore::new(pool.clone());
        store.migrate().unwrap();
        let alice = UserId::from(1_i64);
        let mut conn = pool.get().unwrap();
        let rolled_back: Result<(), zt_session::Error> = (*conn).write_transaction(|conn| {
            store.create_user_in(conn, &alice, None, &Role::user())?;
            Err(zt_session::Error::new(
                zt_session::ErrorKind::Database,
                "the app changed its mind",
            ))
        });
        assert!(rolled_back.is_err());
        assert_eq!(store.user_state(&alice).unwrap(), None, "rolled back with the app");
        (*conn)
            .write_transaction(|conn| store.create_user_in(conn, &alice, None, &Role::user()).map(drop))
            .unwrap();
        assert_eq!(store.user_state(&alice).unwrap().unwrap().session_version(), Some(0));
    }
    match db.backend() {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => run::<diesel::SqliteConnection>(db.url().trim_start_matches("sqlite://")),
        #[cfg(feature = "postgres")]
        Backend::Postgres => run::<diesel::PgConnection>(db.url()),
        #[allow(unreachable_patterns)]
        other => unreachable!("backend_tests! runs {other:?} only with its feature"),
    }
}

zt_testkit::backend_tests!(
    app_directory_with_valid_after_and_revocation_list,
    reference_store_joins_the_app_transaction
);
