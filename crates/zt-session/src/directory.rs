//! Where the user's current state comes from: the traits an app implements,
//! and the values they return.

use zt_types::{Role, SessionHash, Timestamp, UserId};

use crate::error::Result;

/// A user's current state, as the user store holds it now.
///
/// A directory tells sessions issued before a change apart in one of two
/// ways, or both:
///
/// - a **session version** (a security stamp) that every change bumps:
///   [`UserState::new`]; the session's claims carry the version of sign-in.
///   Claims without one (an identity provider's token) are compared with the
///   instant the version last moved instead, when the directory gives it
///   ([`UserState::with_version_changed_at`]; the reference store does);
/// - a **"valid after" instant** that every change moves forward:
///   [`UserState::from_valid_after`], for a users table with no version
///   column (an `updated_at` or `sessions_valid_after` column serves); a
///   session issued before it is denied, with or without a version.
///
/// ```
/// use zt_session::UserState;
/// use zt_types::{Role, Timestamp};
///
/// let state = UserState::new(Role::admin(), 4).with_disabled(true);
/// assert!(state.is_disabled() && !state.is_deleted());
/// assert_eq!(state.session_version(), Some(4));
///
/// let changed: Timestamp = "2026-11-30T09:00:00Z".parse()?;
/// let state = UserState::from_valid_after(Role::user(), changed);
/// assert_eq!((state.session_version(), state.valid_after()), (None, Some(changed)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    role: Role,
    session_version: Option<i64>,
    version_changed_at: Option<Timestamp>,
    valid_after: Option<Timestamp>,
    disabled: bool,
    deleted: bool,
}

impl UserState {
    /// A live user with `role` and `session_version`, neither disabled nor deleted.
    pub fn new(role: Role, session_version: i64) -> Self {
        Self {
            role,
            session_version: Some(session_version),
            version_changed_at: None,
            valid_after: None,
            disabled: false,
            deleted: false,
        }
    }

    /// A live user with `role` and no session version: sessions issued
    /// before `valid_after` are denied. `None` means no session is denied by
    /// time.
    pub fn from_valid_after(role: Role, valid_after: impl Into<Option<Timestamp>>) -> Self {
        Self {
            role,
            session_version: None,
            version_changed_at: None,
            valid_after: valid_after.into(),
            disabled: false,
            deleted: false,
        }
    }

    /// Also denies sessions issued before `valid_after`, such as the user's
    /// last sign-out-everywhere; the later of this and any earlier instant counts.
    #[must_use]
    pub fn with_valid_after(mut self, valid_after: impl Into<Option<Timestamp>>) -> Self {
        self.valid_after = self.valid_after.max(valid_after.into());
        self
    }

    /// Records when the session version last moved (the epoch, or the
    /// creation, if it never did). Claims that carry a version are judged by
    /// the version, exactly; claims without one, such as an identity
    /// provider's token, are denied when issued before this instant.
    #[must_use]
    pub fn with_version_changed_at(mut self, changed_at: Timestamp) -> Self {
        self.version_changed_at = Some(changed_at);
        self
    }

    /// Marks the user disabled or not.
    #[must_use]
    pub fn with_disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Marks the user deleted or not.
    #[must_use]
    pub fn with_deleted(mut self, deleted: bool) -> Self {
        self.deleted = deleted;
        self
    }

    /// The current role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The current session version (security stamp), when the directory keeps one.
    pub fn session_version(&self) -> Option<i64> {
        self.session_version
    }

    /// When the session version last moved, when the directory says.
    pub fn version_changed_at(&self) -> Option<Timestamp> {
        self.version_changed_at
    }

    /// Sessions issued before this instant are denied, when the directory keeps one.
    pub fn valid_after(&self) -> Option<Timestamp> {
        self.valid_after
    }

    /// Whether the user is disabled.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Whether the user is marked deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }
}

/// What one read returns: the user's state, or `None` when the user does not
/// exist (which counts as deleted), and whether the session is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The user's current state; `None` when there is no such user.
    pub user: Option<UserState>,
    /// Whether this session's hash is on the revocation list.
    pub session_revoked: bool,
}

/// Reads a user's current state and a session's revocation, for
/// [`crate::Validator`].
///
/// The reference implementation is [`UserStore`](crate::UserStore), on the
/// reference `zt_users` and `zt_session_revocations` tables. An app with its own
/// users table implements this trait instead:
///
/// - Read the user and the revocation *together*: one query, or one snapshot.
///   Two reads leave a window in which a revocation between them is missed.
/// - Return `Ok` with `user: None` for an unknown user, never an error.
/// - Return an [`Error`](crate::Error) for anything that went wrong: the
///   validator turns every error into a denial (`SESSION_CHECK_FAILED`),
///   never into an allowed request.
/// - Keep it fast: it runs on every sensitive operation.
///
/// ```
/// use zt_session::{Requirement, Result, SessionState, UserDirectory, UserState, Validator};
/// use zt_types::{RequestContext, Role, SessionClaims, SessionHash, SessionId, Timestamp, UserId};
///
/// /// An app's own user table; here a fixed answer stands in for its query.
/// struct AppUsers;
///
/// impl UserDirectory for AppUsers {
///     fn session_state(&self, user: &UserId, _session: &SessionHash) -> Result<SessionState> {
///         // SELECT role, security_stamp, locked, deleted_at IS NOT NULL,
///         //        EXISTS (SELECT 1 FROM revoked_sessions WHERE hash = $2)
///         // FROM accounts WHERE id = $1
///         let user = (user.as_str() == "42").then(|| UserState::new(Role::user(), 7));
///         Ok(SessionState { user, session_revoked: false })
///     }
/// }
///
/// let validator = Validator::new(AppUsers);
/// let claims = SessionClaims::new(SessionId::parse("s")?, UserId::parse("42")?, Role::user(), 7, Timestamp::now());
/// assert!(validator.validate(&claims, &Requirement::new(), &RequestContext::new()).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait UserDirectory: Send + Sync {
    /// The current state of `user` and whether `session` is revoked.
    fn session_state(&self, user: &UserId, session: &SessionHash) -> Result<SessionState>;
}

impl<D: UserDirectory + ?Sized> UserDirectory for std::sync::Arc<D> {
    fn session_state(&self, user: &UserId, session: &SessionHash) -> Result<SessionState> {
        (**self).session_state(user, session)
    }
}

impl<D: UserDirectory + ?Sized> UserDirectory for &D {
    fn session_state(&self, user: &UserId, session: &SessionHash) -> Result<SessionState> {
        (**self).session_state(user, session)
    }
}

/// Revokes sessions: one, by its hash, or all of a user's, by bumping the
/// user's `session_version`.
pub trait RevocationStore: Send + Sync {
    /// Revokes one session of `user`. Idempotent: revoking it again changes
    /// nothing and reports [`AdminChange::changed`] `false`.
    fn revoke_session(&self, user: &UserId, session: &SessionHash) -> Result<AdminChange>;

    /// Revokes every session of `user` issued so far, by bumping the user's
    /// `session_version`.
    fn revoke_all_sessions(&self, user: &UserId) -> Result<AdminChange>;
}

/// Which admin operation an [`AdminChange`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminOperation {
    /// A user was created.
    CreateUser {
        /// The role given.
        role: Role,
    },
    /// The user's role changed.
    ChangeRole {
        /// The role before.
        from: Role,
        /// The role after.
        to: Role,
    },
    /// The user was disabled.
    DisableUser,
    /// The user was enabled again.
    EnableUser,
    /// The user was marked deleted.
    DeleteUser,
    /// One session was revoked.
    RevokeSession {
        /// The hash of the revoked session.
        session: SessionHash,
    },
    /// Every session of the user was revoked.
    RevokeAllSessions,
}

impl AdminOperation {
    /// The audit action: `CREATE_USER`, `UPDATE_ROLE`, `DISABLE_USER`,
    /// `ENABLE_USER`, `DELETE_USER`, `REVOKE_SESSION` or `REVOKE_ALL_SESSIONS`.
    pub const fn action(&self) -> &'static str {
        match self {
            Self::CreateUser { .. } => "CREATE_USER",
            Self::ChangeRole { .. } => "UPDATE_ROLE",
            Self::DisableUser => "DISABLE_USER",
            Self::EnableUser => "ENABLE_USER",
            Self::DeleteUser => "DELETE_USER",
            Self::RevokeSession { .. } => "REVOKE_SESSION",
            Self::RevokeAllSessions => "REVOKE_ALL_SESSIONS",
        }
    }
}

/// What an admin operation did, for the caller and for its audit event
/// ([`AdminChange::audit_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminChange {
    /// The operation.
    pub operation: AdminOperation,
    /// The user it applied to.
    pub user_id: UserId,
    /// The user's session version after it. Sessions issued with a lower
    /// version fail their next check.
    pub session_version: i64,
    /// Whether anything changed. Repeating an operation (disabling a
    /// disabled user, setting the same role, revoking a revoked session)
    /// changes nothing and leaves the version as it was.
    pub changed: bool,
    /// When it happened, by the store's clock.
    pub at: Timestamp,
}
