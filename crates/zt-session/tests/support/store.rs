//! The reference store on a fresh database: a fixture with a clock the test
//! moves, users, sign-ins and raw SQL.

use std::sync::Arc;

use diesel::RunQueryDsl;
use zt_db::{AnyConnection, Pool};
use zt_session::{Clock, ManualClock, UserStore, Validator};
use zt_testkit::TestDatabase;
use zt_types::{Role, SessionClaims, SessionId, UserId};

use super::t0;

pub(crate) struct Fixture {
    pub(crate) store: UserStore,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) validator: Validator,
}

impl Fixture {
    /// A validator with the defaults and this fixture's clock.
    pub(crate) fn validator(&self) -> Validator {
        Validator::new(self.store.clone()).with_clock(Arc::clone(&self.clock))
    }

    /// Creates `id` with `role`. The role is taken by value so that call
    /// sites read `f.user("alice", Role::admin())`.
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn user(&self, id: &str, role: Role) -> UserId {
        let id = UserId::parse(id).unwrap();
        self.store.create_user(&id, None, &role).unwrap();
        id
    }

    /// Claims as a sign-in now would issue them: the user's current role
    /// and session version, authenticated now.
    pub(crate) fn sign_in(&self, user: &UserId, session: &str) -> SessionClaims {
        let state = self.store.user_state(user).unwrap().expect("the user exists");
        SessionClaims::new(
            SessionId::parse(session).unwrap(),
            user.clone(),
            state.role().clone(),
            state.session_version().unwrap(),
            self.clock.now(),
        )
    }

    /// Runs raw SQL, to play an app's own directory or to break the schema.
    pub(crate) fn execute(&self, sql: &str) {
        match self.store.pool().get().unwrap().connection() {
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(conn) => diesel::sql_query(sql).execute(conn).unwrap(),
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(conn) => diesel::sql_query(sql).execute(conn).unwrap(),
            other => panic!("no {} support in this build", other.backend()),
        };
    }
}

/// A migrated store on `db` with a manual clock at [`t0`].
pub(crate) fn setup(db: &TestDatabase) -> Fixture {
    let pool = Pool::connect(db.url()).unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let store = UserStore::new(pool).with_clock(Arc::clone(&clock));
    assert_eq!(store.migrate().unwrap(), ["20261129000002", "20261130000002"]);
    assert!(store.migrate().unwrap().is_empty(), "migrations apply once");
    let validator = Validator::new(store.clone()).with_clock(Arc::clone(&clock));
    Fixture {
        store,
        clock,
        validator,
    }
}
