//! The reference session registry on the `zt_sessions` table.

use std::sync::Arc;

use zt_db::{AsConnection, Pool};
use zt_types::{Clock, RequestContext, SessionClaims, SessionHash, SystemClock, Timestamp, UserId};

use crate::directory::{SessionState, UserDirectory};
use crate::error::{Error, ErrorKind, Result};
use crate::registry::{Activity, NewSession, RegistryPolicy, SessionRecord, Tracker};
use crate::store::{Ops, SignOut, on_pool, ops};

/// The session registry: one row per session in `zt_sessions`, for
/// inactivity timeouts, an absolute lifetime, "list my sessions", "sign out
/// this device" and "sign out all other devices", and client changes that
/// may mean a stolen session. Opt-in: its table comes from
/// [`REGISTRY_MIGRATIONS`](crate::REGISTRY_MIGRATIONS), apart from the
/// reference store's. Cloning shares the pool.
///
/// Give it to the validator with
/// [`Validator::with_registry`](crate::Validator::with_registry); every
/// check then also:
///
/// 1. finds the session's row (a session never registered is denied, or
///    adopted under [`RegistryPolicy::adopt_unknown`]); a signed-out one is
///    denied (`SESSION_REVOKED`);
/// 2. ends it past the policy's absolute lifetime or inactivity timeout
///    (`SESSION_EXPIRED`);
/// 3. compares the request's client IP and user agent with the session's at
///    creation, and acts on a difference as the requirement's
///    [`BindingPolicy`](crate::BindingPolicy) says: log it, ask for a step-up
///    login, or deny;
/// 4. records a change of client at once, and the last-seen time at most
///    once per touch interval: most checks write nothing.
///
/// A registry from [`UserStore::registry`](crate::UserStore::registry)
/// reads the user's state in the same statement, so a check is still one
/// `SELECT`: a primary-key lookup of the user joined to a primary-key lookup
/// of the session. A registry from [`SessionRegistry::new`], beside an app's
/// own [`UserDirectory`], reads the row after the directory: two round trips.
///
/// ```
/// use zt_session::{RegistryPolicy, Requirement, UserStore, Validator};
/// use zt_types::{RequestContext, Role, SessionClaims, SessionId, Timestamp, UserId};
///
/// let dir = std::env::temp_dir().join(format!("zt-registry-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = UserStore::new(zt_db::Pool::connect(&format!("sqlite://{}", dir.join("app.db").display()))?);
/// store.migrate()?;
/// let registry = store.registry().with_policy(RegistryPolicy::aal2());
/// registry.migrate()?;
/// let validator = Validator::new(store.clone()).with_registry(registry.clone());
///
/// let alice = UserId::parse("alice")?;
/// store.create_user(&alice, None, &Role::user())?;
/// let laptop = RequestContext::new().with_ip("203.0.113.7".parse()?).with_user_agent("Firefox");
/// let phone = RequestContext::new().with_ip("198.51.100.2".parse()?).with_user_agent("Safari");
/// let sign_in = |id: &str, request: &RequestContext| -> Result<SessionClaims, Box<dyn std::error::Error>> {
///     let claims = SessionClaims::new(SessionId::parse(id)?, alice.clone(), Role::user(), 0, Timestamp::now());
///     registry.register(&claims, request)?;
///     Ok(claims)
/// };
/// let (on_laptop, on_phone) = (sign_in("sess_laptop", &laptop)?, sign_in("sess_phone", &phone)?);
/// assert_eq!(registry.list(&alice)?.len(), 2);
///
/// // "Sign out all other devices", from the laptop.
/// assert_eq!(registry.sign_out_others(&alice, &on_laptop.session_hash())?, 1);
/// assert!(validator.validate(&on_laptop, &Requirement::new(), &laptop).is_ok());
/// let denial = validator.validate(&on_phone, &Requirement::new(), &phone).unwrap_err();
/// assert_eq!(denial.code().reason(), "SESSION_REVOKED");
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SessionRegistry {
    pool: Pool,
    clock: Arc<dyn Clock>,
    policy: RegistryPolicy,
    reads_users: bool,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("pool", &self.pool)
            .field("policy", &self.policy)
            .field("reads_users", &self.reads_users)
            .finish_non_exhaustive()
    }
}

impl SessionRegistry {
    /// A registry on `pool` (the app's own r2d2 pool as it is, or a
    /// [`zt_db::Pool`]) with [`RegistryPolicy::new`], for an app with its own
    /// [`UserDirectory`]: a check reads the directory, then the row.
    pub fn new(pool: impl Into<Pool>) -> Self {
        Self {
            pool: pool.into(),
            clock: Arc::new(SystemClock),
            policy: RegistryPolicy::new(),
            reads_users: false,
        }
    }

    pub(crate) fn reading_users(pool: Pool, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool,
            clock,
            policy: RegistryPolicy::new(),
            reads_users: true,
        }
    }

    /// Sets the inactivity timeout, lifetime and touch interval.
    #[must_use]
    pub fn with_policy(mut self, policy: RegistryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Timestamps rows with `clock` instead. Default: [`SystemClock`], or the
    /// store's clock for [`UserStore::registry`](crate::UserStore::registry).
    /// A validator's checks use the validator's clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The policy.
    pub fn policy(&self) -> &RegistryPolicy {
        &self.policy
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies the registry's pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>> {
        self.pool.run_migrations(&crate::REGISTRY_MIGRATIONS).map_err(|e| {
            let kind = match e.kind() {
                zt_db::ErrorKind::Unreachable => ErrorKind::Unavailable,
                _ => ErrorKind::Database,
            };
            Error::new(kind, e.to_string()).with_source(e)
        })
    }

    /// Registers the session in `claims` at sign-in, from the client in
    /// `context`; created and last seen now. Idempotent: a session already
    /// registered keeps its row, which is returned.
    pub fn register(&self, claims: &SessionClaims, context: &RequestContext) -> Result<SessionRecord> {
        let now = self.clock.now();
        on_pool(&self.pool, |ops| {
            register(ops, &NewSession::new(claims, context, now, now))
        })
    }

    /// [`SessionRegistry::register`] inside the caller's open transaction on
    /// `conn`, such as the one that writes the sign-in's audit row.
    pub fn register_in(
        &self,
        conn: &mut impl AsConnection,
        claims: &SessionClaims,
        context: &RequestContext,
    ) -> Result<SessionRecord> {
        let now = self.clock.now();
        register(ops(conn.as_connection())?, &NewSession::new(claims, context, now, now))
    }

    /// The session's row, signed out or not, if it is registered.
    pub fn session(&self, session: &SessionHash) -> Result<Option<SessionRecord>> {
        on_pool(&self.pool, |ops| ops.session_record(session))
    }

    /// "List my sessions": the user's live sessions (not signed out, within
    /// the policy's lifetime and inactivity timeout), most recently active
    /// first, at most 1000. Compare each [`SessionRecord::session_hash`] with
    /// the current session's to mark "this device".
    ///
    /// The registry does not see the user store: sessions ended by a role
    /// change or [`UserStore::revoke_all_sessions`](crate::UserStore::revoke_all_sessions)
    /// fail their next check but stay listed until signed out here; pair a
    /// revoke-all with [`SessionRegistry::sign_out_everywhere`].
    pub fn list(&self, user: &UserId) -> Result<Vec<SessionRecord>> {
        let now = self.clock.now();
        let rows = on_pool(&self.pool, |ops| ops.list_sessions(user))?;
        Ok(self.live(rows, now))
    }

    /// [`SessionRegistry::list`] on the caller's connection.
    pub fn list_in(&self, conn: &mut impl AsConnection, user: &UserId) -> Result<Vec<SessionRecord>> {
        let now = self.clock.now();
        let rows = ops(conn.as_connection())?.list_sessions(user)?;
        Ok(self.live(rows, now))
    }

    fn live(&self, rows: Vec<SessionRecord>, now: Timestamp) -> Vec<SessionRecord> {
        rows.into_iter()
            .filter(|record| self.policy.is_live(record, now))
            .collect()
    }

    /// "Sign out this device": ends `session` of `user`. Whether it ended a
    /// live session (`false` for one already signed out, unknown, or another
    /// user's).
    pub fn sign_out(&self, user: &UserId, session: &SessionHash) -> Result<bool> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.sign_out(user, SignOut::One(session), at)).map(|n| n > 0)
    }

    /// [`SessionRegistry::sign_out`] inside the caller's open transaction.
    pub fn sign_out_in(&self, conn: &mut impl AsConnection, user: &UserId, session: &SessionHash) -> Result<bool> {
        let at = self.clock.now();
        Ok(ops(conn.as_connection())?.sign_out(user, SignOut::One(session), at)? > 0)
    }

    /// "Sign out all other devices": ends every session of `user` but
    /// `current`; returns how many.
    pub fn sign_out_others(&self, user: &UserId, current: &SessionHash) -> Result<usize> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.sign_out(user, SignOut::AllBut(current), at))
    }

    /// [`SessionRegistry::sign_out_others`] inside the caller's open transaction.
    pub fn sign_out_others_in(
        &self,
        conn: &mut impl AsConnection,
        user: &UserId,
        current: &SessionHash,
    ) -> Result<usize> {
        let at = self.clock.now();
        ops(conn.as_connection())?.sign_out(user, SignOut::AllBut(current), at)
    }

    /// Ends every registered session of `user`; returns how many. Sessions
    /// registered later live. To also end sessions not yet registered (such
    /// as provider tokens not yet seen), use
    /// [`UserStore::revoke_all_sessions`](crate::UserStore::revoke_all_sessions).
    pub fn sign_out_everywhere(&self, user: &UserId) -> Result<usize> {
        let at = self.clock.now();
        on_pool(&self.pool, |ops| ops.sign_out(user, SignOut::All, at))
    }

    /// [`SessionRegistry::sign_out_everywhere`] inside the caller's open transaction.
    pub fn sign_out_everywhere_in(&self, conn: &mut impl AsConnection, user: &UserId) -> Result<usize> {
        let at = self.clock.now();
        ops(conn.as_connection())?.sign_out(user, SignOut::All, at)
    }

    /// Deletes rows last seen before `last_seen_before`; returns how many.
    ///
    /// A row, signed out or not, must outlive every token that names its
    /// session: with [`RegistryPolicy::adopt_unknown`], a pruned session
    /// would be adopted again. Pass now minus the longest of the policy's
    /// absolute lifetime and your provider's session lifetime.
    pub fn prune(&self, last_seen_before: Timestamp) -> Result<usize> {
        on_pool(&self.pool, |ops| ops.prune_sessions(last_seen_before))
    }
}

/// Inserts unless registered, then reads the row back.
fn register(ops: &mut dyn Ops, new: &NewSession<'_>) -> Result<SessionRecord> {
    if ops.register(new)? {
        return Ok(new.record());
    }
    ops.session_record(&new.session_hash)?.ok_or_else(|| {
        Error::new(
            ErrorKind::Database,
            "registered session vanished before it could be read",
        )
    })
}

impl Tracker for SessionRegistry {
    fn policy(&self) -> &RegistryPolicy {
        &self.policy
    }

    fn read(
        &self,
        directory: &dyn UserDirectory,
        user: &UserId,
        session: &SessionHash,
    ) -> Result<(SessionState, Option<SessionRecord>)> {
        if self.reads_users {
            return on_pool(&self.pool, |ops| ops.registered_state(user, session));
        }
        let state = directory.session_state(user, session)?;
        let record = on_pool(&self.pool, |ops| ops.session_record(session))?;
        Ok((state, record))
    }

    fn adopt(&self, claims: &SessionClaims, context: &RequestContext, now: Timestamp) -> Result<SessionRecord> {
        // The session began at its login, as far as anyone here can tell.
        let created = claims.authenticated_at().min(now);
        on_pool(&self.pool, |ops| {
            register(ops, &NewSession::new(claims, context, created, now))
        })
    }

    fn record(&self, session: &SessionHash, activity: &Activity) -> Result<()> {
        if activity.is_empty() {
            return Ok(());
        }
        on_pool(&self.pool, |ops| ops.record_activity(session, activity))
    }
}
