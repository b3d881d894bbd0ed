//! The session registry's policy and records: what the validator needs to
//! enforce inactivity timeouts, an absolute lifetime and client changes. The
//! reference registry on the `zt_sessions` table is
//! [`SessionRegistry`](crate::SessionRegistry), with a backend feature.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use zt_types::{RequestContext, SessionClaims, SessionHash, Timestamp, UserAgent, UserId};

use crate::directory::{SessionState, UserDirectory};
use crate::error::Result;

/// How long a registered session lives: an inactivity timeout, an absolute
/// lifetime, and how often a check records activity.
///
/// | preset | inactivity | absolute | source |
/// |---|---|---|---|
/// | [`RegistryPolicy::new`] | none | none | |
/// | [`RegistryPolicy::aal2`] | 1 hour | 24 hours | NIST SP 800-63B-4 §2.2.3 |
/// | [`RegistryPolicy::aal3`] | 15 minutes | 12 hours | NIST SP 800-63B-4 §2.3.3 |
///
/// SP 800-63B-4 (final, 2025) asks at AAL2 for reauthentication at least
/// once per 24 hours of an extended session and after 1 hour of inactivity
/// (§2.2.3), and at AAL3 at least once per 12 hours and after 15 minutes of
/// inactivity (§2.3.3); session management itself is §5. The absolute
/// lifetime counts from the session's creation in the registry, which for a
/// session first seen in a check ([`RegistryPolicy::adopt_unknown`]) is its
/// login time.
///
/// Activity is recorded at most once per [`touch_interval`](Self::touch_interval)
/// (default 60 seconds), so that most checks stay one `SELECT`; the last-seen
/// time thus lags by up to that interval, and a session may end up to that
/// much *early*, never late. The interval is capped at a quarter of the
/// inactivity timeout.
///
/// ```
/// use std::time::Duration;
/// use zt_session::RegistryPolicy;
///
/// let policy = RegistryPolicy::aal3().touch_interval(Duration::from_secs(30));
/// assert_eq!(policy.inactivity_timeout(), Some(Duration::from_secs(15 * 60)));
/// assert_eq!(policy.lifetime(), Some(Duration::from_secs(12 * 3600)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryPolicy {
    idle_timeout: Option<Duration>,
    absolute_lifetime: Option<Duration>,
    touch_interval: Duration,
    adopt_unknown: bool,
}

impl Default for RegistryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RegistryPolicy {
    /// The default activity-recording interval: 60 seconds.
    pub const DEFAULT_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

    /// No inactivity timeout, no absolute lifetime, activity recorded at
    /// most once a minute, unknown sessions denied.
    pub const fn new() -> Self {
        Self {
            idle_timeout: None,
            absolute_lifetime: None,
            touch_interval: Self::DEFAULT_TOUCH_INTERVAL,
            adopt_unknown: false,
        }
    }

    /// NIST SP 800-63B-4 AAL2 (§2.2.3): 1 hour of inactivity, 24 hours in all.
    pub const fn aal2() -> Self {
        Self::new()
            .idle_timeout(Duration::from_secs(60 * 60))
            .absolute_lifetime(Duration::from_secs(24 * 60 * 60))
    }

    /// NIST SP 800-63B-4 AAL3 (§2.3.3): 15 minutes of inactivity, 12 hours in all.
    pub const fn aal3() -> Self {
        Self::new()
            .idle_timeout(Duration::from_secs(15 * 60))
            .absolute_lifetime(Duration::from_secs(12 * 60 * 60))
    }

    /// Ends a session that made no check for longer than `timeout`
    /// (`SESSION_EXPIRED`).
    #[must_use]
    pub const fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Ends a session older than `lifetime`, counted from its creation in the
    /// registry, whatever its activity (`SESSION_EXPIRED`).
    #[must_use]
    pub const fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute_lifetime = Some(lifetime);
        self
    }

    /// Records a session's activity at most once per `interval`. Default: 60
    /// seconds. At least one second; at most a quarter of the inactivity timeout.
    #[must_use]
    pub const fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// Whether a check registers a session it has never seen (created at the
    /// claims' login time, from the request's client) instead of denying it
    /// (`SESSION_INVALID`). Default: `false`. Turn it on for provider tokens,
    /// whose sessions begin at the provider, not in your sign-in code.
    #[must_use]
    pub const fn adopt_unknown(mut self, adopt: bool) -> Self {
        self.adopt_unknown = adopt;
        self
    }

    /// The inactivity timeout, if any.
    pub const fn inactivity_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// The absolute lifetime, if any.
    pub const fn lifetime(&self) -> Option<Duration> {
        self.absolute_lifetime
    }

    /// Whether unknown sessions are registered by a check.
    pub const fn adopts_unknown(&self) -> bool {
        self.adopt_unknown
    }

    /// The interval in effect: the configured one, at least one second and
    /// at most a quarter of the inactivity timeout.
    pub fn effective_touch_interval(&self) -> Duration {
        let interval = self.touch_interval.max(Duration::from_secs(1));
        match self.idle_timeout {
            Some(idle) => interval.min(idle / 4),
            None => interval,
        }
    }

    /// Whether `record` is still live at `now`: not signed out, within the
    /// lifetime and the inactivity timeout.
    pub fn is_live(&self, record: &SessionRecord, now: Timestamp) -> bool {
        let older = |since: Timestamp, limit: Option<Duration>| {
            limit.is_some_and(|limit| now.duration_since(since).is_some_and(|age| age > limit))
        };
        record.revoked_at.is_none()
            && !older(record.created_at, self.absolute_lifetime)
            && !older(record.last_seen_at, self.idle_timeout)
    }
}

/// One session as the registry holds it. The id itself is never stored,
/// only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The SHA-256 of the session id.
    pub session_hash: SessionHash,
    /// The session's user.
    pub user_id: UserId,
    /// When it was registered: at sign-in, or the login time of a session
    /// adopted in a check.
    pub created_at: Timestamp,
    /// When a check last recorded activity (at most once per touch interval).
    pub last_seen_at: Timestamp,
    /// The client IP at creation.
    pub created_ip: Option<IpAddr>,
    /// The user agent at creation.
    pub created_user_agent: Option<UserAgent>,
    /// The client IP of the latest recorded change, or of creation.
    pub last_ip: Option<IpAddr>,
    /// The user agent of the latest recorded change, or of creation.
    pub last_user_agent: Option<UserAgent>,
    /// How many times a check saw the client IP or user agent change from
    /// the one seen before: a possible hijack signal.
    pub client_changes: i64,
    /// When the latest such change was seen.
    pub client_changed_at: Option<Timestamp>,
    /// When it was signed out, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A new row of the registry.
#[derive(Debug, Clone)]
pub(crate) struct NewSession<'a> {
    pub(crate) session_hash: SessionHash,
    pub(crate) user_id: &'a UserId,
    pub(crate) created_at: Timestamp,
    pub(crate) seen_at: Timestamp,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) user_agent: Option<&'a UserAgent>,
}

impl<'a> NewSession<'a> {
    pub(crate) fn new(
        claims: &'a SessionClaims,
        context: &'a RequestContext,
        created_at: Timestamp,
        now: Timestamp,
    ) -> Self {
        Self {
            session_hash: claims.session_hash(),
            user_id: claims.user_id(),
            created_at,
            seen_at: now,
            ip: context.client_ip(),
            user_agent: context.user_agent(),
        }
    }

    /// The record as inserted.
    pub(crate) fn record(&self) -> SessionRecord {
        SessionRecord {
            session_hash: self.session_hash,
            user_id: self.user_id.clone(),
            created_at: self.created_at,
            last_seen_at: self.seen_at,
            created_ip: self.ip,
            created_user_agent: self.user_agent.cloned(),
            last_ip: self.ip,
            last_user_agent: self.user_agent.cloned(),
            client_changes: 0,
            client_changed_at: None,
            revoked_at: None,
        }
    }
}

/// What a check writes back: a client change, the last-seen time, or both,
/// in one `UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Activity {
    /// The client now, when it differs from the last one recorded.
    pub(crate) change: Option<(Option<IpAddr>, Option<UserAgent>)>,
    /// Moves `last_seen_at` to this, when it is older than the threshold.
    pub(crate) seen: Option<(Timestamp, Timestamp)>,
    /// When the check ran.
    pub(crate) at: Timestamp,
}

impl Activity {
    pub(crate) fn is_empty(&self) -> bool {
        self.change.is_none() && self.seen.is_none()
    }
}

/// The registry as the validator sees it. Implemented by
/// [`SessionRegistry`](crate::SessionRegistry).
pub(crate) trait Tracker: Send + Sync + fmt::Debug {
    fn policy(&self) -> &RegistryPolicy;

    /// The user's state and the session's record: with the reference store,
    /// one statement; otherwise `directory`'s read, then the record.
    fn read(
        &self,
        directory: &dyn UserDirectory,
        user: &UserId,
        session: &SessionHash,
    ) -> Result<(SessionState, Option<SessionRecord>)>;

    /// Registers a session first seen in a check; returns its record.
    fn adopt(&self, claims: &SessionClaims, context: &RequestContext, now: Timestamp) -> Result<SessionRecord>;

    /// Writes a check's activity.
    fn record(&self, session: &SessionHash, activity: &Activity) -> Result<()>;
}
