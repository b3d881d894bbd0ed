//! The check itself.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use zt_types::{
    Actor, AuthFactors, AuthLevel, ClientBinding, Neutralized, RequestContext, RequestId, Role, SessionClaims,
    SessionHash, Severity, Timestamp, UserAgent, UserId,
};

use crate::audit::AuditSink;
use crate::cache::StateCache;
use crate::denial::{BindingMismatch, Denial, DenialReason, StepUp};
use crate::directory::{SessionState, UserDirectory, UserState};
use crate::registry::{Activity, SessionRecord, Tracker};
use crate::requirement::{BindingPolicy, Freshness, Requirement};
use crate::role::{RoleChangePolicy, RoleHierarchy};
use zt_types::{Clock, SystemClock};

/// A session that passed its check, with the user's *current* role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedSession {
    user_id: UserId,
    role: Role,
    session_hash: SessionHash,
    session_version: Option<i64>,
    auth_level: AuthLevel,
    factors: AuthFactors,
    authenticated_at: Timestamp,
    auth_age: Duration,
    binding_mismatch: Option<BindingMismatch>,
    record: Option<SessionRecord>,
    from_cache: bool,
    checked_at: Timestamp,
}

impl ValidatedSession {
    /// The user.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The user's current role, as the store holds it now. Authorize with
    /// this, not with the role in the claims.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The session's hash.
    pub fn session_hash(&self) -> SessionHash {
        self.session_hash
    }

    /// The user's current session version, equal to the session's, when
    /// the directory or the claims keep one.
    pub fn session_version(&self) -> Option<i64> {
        self.session_version
    }

    /// The assurance level of the last full login.
    pub fn auth_level(&self) -> AuthLevel {
        self.auth_level
    }

    /// The factors of the last full login.
    pub fn factors(&self) -> AuthFactors {
        self.factors
    }

    /// When the user last fully authenticated.
    pub fn authenticated_at(&self) -> Timestamp {
        self.authenticated_at
    }

    /// How old the last full login was at the check; zero for a login
    /// slightly in the future, within the clock skew.
    pub fn auth_age(&self) -> Duration {
        self.auth_age
    }

    /// What did not match the session's client binding (the claims', or the
    /// registry's client at creation), when the requirement's policy allowed
    /// it: [`BindingPolicy::Log`], or [`BindingPolicy::StepUp`] after a
    /// step-up login. The check logged a warning; the operation may ask for
    /// more, or record it.
    pub fn binding_mismatch(&self) -> Option<BindingMismatch> {
        self.binding_mismatch
    }

    /// The session's registry row as the check read it (before the check
    /// recorded its own activity), with a [`crate::SessionRegistry`].
    pub fn session_record(&self) -> Option<&SessionRecord> {
        self.record.as_ref()
    }

    /// Whether the user's state came from the cache, for a non-sensitive
    /// requirement, rather than from the store.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// When the check ran, by the validator's clock.
    pub fn checked_at(&self) -> Timestamp {
        self.checked_at
    }

    /// The user as an audit actor, for the operation's own audit event.
    pub fn actor(&self) -> Actor {
        Actor::user(self.user_id.clone(), None)
    }
}

/// Checks session claims against a [`Requirement`] and the request, reading
/// the user's current state from a [`UserDirectory`] on every sensitive check.
///
/// Cheap to clone and to share between threads. The checks run in this
/// order, and the first that fails is the denial:
///
/// 1. the claims themselves: `authenticated_at` and `issued_at` no later than
///    now plus the clock skew (`SESSION_INVALID`); the session within the
///    requirement's absolute lifetime (`SESSION_EXPIRED`); the client binding
///    under a strict policy (`SESSION_BINDING_MISMATCH`);
/// 2. one read of the user's state and the session's revocation; an error
///    denies (`SESSION_CHECK_FAILED`);
/// 3. the user exists and is not deleted (`SESSION_USER_DELETED`), is not
///    disabled (`SESSION_USER_DISABLED`); the session is not revoked
///    (`SESSION_REVOKED`); the role at issue, if the claims assert one, has
///    not changed (`SESSION_ROLE_CHANGED`); the session version is current,
///    or, for claims without one, the session began after the user's last
///    change (`SESSION_REVOKED`); with a [`crate::SessionRegistry`], the
///    session is registered (`SESSION_INVALID`), not signed out
///    (`SESSION_REVOKED`), within its lifetime and inactivity timeout
///    (`SESSION_EXPIRED`), and on the client it began on, as the binding
///    policy asks;
/// 4. the requirement: minimum role (`AUTH_INSUFFICIENT_ROLE`), factors and
///    level (`AUTH_MFA_REQUIRED`), login age (`AUTH_REAUTHENTICATION_REQUIRED`).
///
/// The claims checks come first because they need no database; the user's
/// state comes before the requirement's step-up conditions, so a revoked
/// session is told to sign in again, not to step up.
#[derive(Clone)]
pub struct Validator {
    directory: Arc<dyn UserDirectory>,
    clock: Arc<dyn Clock>,
    hierarchy: RoleHierarchy,
    role_change: RoleChangePolicy,
    clock_skew: Duration,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    cache: Option<Arc<StateCache>>,
    sink: Option<Arc<dyn AuditSink>>,
    registry: Option<Arc<dyn Tracker>>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("clock", &self.clock)
            .field("hierarchy", &self.hierarchy)
            .field("role_change", &self.role_change)
            .field("clock_skew", &self.clock_skew)
            .field("ipv4_prefix", &self.ipv4_prefix)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .field("cache", &self.cache)
            .field("audit_sink", &self.sink.is_some())
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// The default clock skew: 60 seconds.
    pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

    /// A validator reading from `directory`, with the defaults: the system
    /// clock, roles `user` < `admin`, [`RoleChangePolicy::RequireNewSession`],
    /// 60 seconds of clock skew, exact IP binding, no cache, no audit sink.
    pub fn new(directory: impl UserDirectory + 'static) -> Self {
        Self {
            directory: Arc::new(directory),
            clock: Arc::new(SystemClock),
            hierarchy: RoleHierarchy::default(),
            role_change: RoleChangePolicy::default(),
            clock_skew: Self::DEFAULT_CLOCK_SKEW,
            ipv4_prefix: 32,
            ipv6_prefix: 128,
            cache: None,
            sink: None,
            registry: None,
        }
    }

    /// Reads the time from `clock`. Default: [`SystemClock`].
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the role order. Default: `user` < `admin`.
    #[must_use]
    pub fn role_hierarchy(mut self, hierarchy: RoleHierarchy) -> Self {
        self.hierarchy = hierarchy;
        self
    }

    /// Sets what a role change does to existing sessions. Default:
    /// [`RoleChangePolicy::RequireNewSession`].
    #[must_use]
    pub fn role_change_policy(mut self, policy: RoleChangePolicy) -> Self {
        self.role_change = policy;
        self
    }

    /// How far in the future `authenticated_at` and `issued_at` may lie, for
    /// clocks that disagree; such a login counts as age zero. Beyond it the
    /// claims are invalid (`SESSION_INVALID`). Default: 60 seconds. The skew
    /// never lengthens a freshness window or a lifetime.
    #[must_use]
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Compares bound IPs by network instead of exactly: the first `ipv4`
    /// bits of an IPv4 address and `ipv6` bits of an IPv6 address. Default:
    /// 32 and 128, exact. A /24 and /64 keep a session across a carrier's
    /// address changes at the cost of trusting the neighbours.
    #[must_use]
    pub fn binding_ip_prefix(mut self, ipv4: u8, ipv6: u8) -> Self {
        self.ipv4_prefix = ipv4.min(32);
        self.ipv6_prefix = ipv6.min(128);
        self
    }

    /// Caches the user's state for `ttl`, up to `max_entries` sessions, for
    /// requirements that are not [sensitive](Requirement::sensitive).
    /// Default: no cache.
    ///
    /// The trade-off: a cached answer saves the round trip but may be up to
    /// `ttl` old, so a user demoted, disabled, deleted or revoked in that
    /// window still passes *non-sensitive* checks until the entry expires.
    /// Sensitive checks never read the cache; they refresh it. Changes made
    /// through [`Validator::invalidate_user`] in this process take effect at
    /// once; other processes' changes wait out the TTL. Keep it to seconds,
    /// for pages such as dashboards that run many checks per view.
    #[must_use]
    pub fn cache(mut self, ttl: Duration, max_entries: usize) -> Self {
        self.cache = (!ttl.is_zero()).then(|| Arc::new(StateCache::new(ttl, max_entries)));
        self
    }

    /// Sends every denial to `sink` as an audit event; see
    /// [`Denial::audit_event`]. Default: none; denials are still logged
    /// through `tracing`.
    #[must_use]
    pub fn audit_denials(mut self, sink: impl AuditSink + 'static) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Checks every session against `registry` too: its row must exist (or
    /// be adopted), not be signed out, be within the policy's lifetime and
    /// inactivity timeout, and its client is compared with the one at
    /// creation under the requirement's [`BindingPolicy`]. See
    /// [`crate::SessionRegistry`].
    ///
    /// With a registry every check reads it, so [`Validator::cache`] no longer
    /// answers non-sensitive checks: activity must be seen to be recorded.
    /// A registry from [`UserStore::registry`](crate::UserStore::registry)
    /// reads the user's state from `zt_users` itself, in the same statement,
    /// instead of asking the validator's directory: give both the same store.
    #[cfg(feature = "store")]
    #[cfg_attr(docsrs, doc(cfg(feature = "store")))]
    #[must_use]
    pub fn with_registry(mut self, registry: crate::SessionRegistry) -> Self {
        self.registry = Some(Arc::new(registry));
        self
    }

    /// The role order.
    pub fn hierarchy(&self) -> &RoleHierarchy {
        &self.hierarchy
    }

    /// Forgets the cached state of `user`'s sessions. Call it after an admin
    /// operation on that user, so that this process's non-sensitive checks
    /// see it at once.
    pub fn invalidate_user(&self, user: &UserId) {
        if let Some(cache) = &self.cache {
            cache.invalidate_user(user);
        }
    }

    /// Forgets every cached state.
    pub fn clear_cache(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Checks `claims` against `requirement` for the request in `context`.
    ///
    /// For a sensitive requirement this is one read of the user store: on
    /// the reference [`UserStore`](crate::UserStore), one prepared statement
    /// and one round trip, also with a registry from
    /// [`UserStore::registry`](crate::UserStore::registry). It never allows on
    /// error: a failed read is a denial with [`DenialReason::CheckFailed`].
    /// Every denial is logged through `tracing` at its code's severity and,
    /// with an audit sink, sent as an audit event.
    pub fn validate(
        &self,
        claims: &SessionClaims,
        requirement: &Requirement,
        context: &RequestContext,
    ) -> Result<ValidatedSession, Denial> {
        let now = self.clock.now();
        // Hashed once: the check and the registry's write both key on it.
        let session = claims.session_hash();
        let mut activity = None;
        let result = self.check(claims, session, requirement, context, now, &mut activity);
        let (Some(registry), Some(mut activity)) = (&self.registry, activity) else {
            return result;
        };
        if result.is_err() {
            // A denied request keeps no session alive, but a change of client is recorded.
            activity.seen = None;
        }
        match (registry.record(&session, &activity), result) {
            (Ok(()), result) => result,
            (Err(error), Ok(_)) => {
                let denial = Denial::new(DenialReason::CheckFailed, now)
                    .for_session(claims.user_id(), session)
                    .with_operation(requirement.operation)
                    .with_source(error);
                Err(self.deny(denial, context))
            }
            (Err(error), Err(denial)) => {
                tracing::error!(
                    error = %Neutralized(&error.to_string()),
                    session = %session,
                    "the registry could not record a denied session's client change"
                );
                Err(denial)
            }
        }
    }

    /// Logs `denial`, made outside [`Validator::validate`] (such as by
    /// [`crate::TokenVerifier::verify`]), and sends it to the audit sink,
    /// as the validator's own denials are; returns it.
    pub fn report(&self, denial: Denial, context: &RequestContext) -> Denial {
        self.deny(denial, context)
    }

    /// Verifies a provider's bearer token with `verifier`, then checks its
    /// claims as [`Validator::validate`] does. No token denies with
    /// [`DenialReason::Missing`]; a token that does not verify, with
    /// [`DenialReason::InvalidToken`]; both are logged and audited.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn validate_token(
        &self,
        verifier: &crate::TokenVerifier,
        token: Option<&str>,
        requirement: &Requirement,
        context: &RequestContext,
    ) -> Result<ValidatedSession, Denial> {
        let Some(token) = token else {
            return self.validate_optional(None, requirement, context);
        };
        match verifier.verify(token) {
            Ok(verified) => self.validate(verified.claims(), requirement, context),
            Err(denial) => Err(self.deny(denial.with_operation(requirement.operation), context)),
        }
    }

    #[allow(clippy::too_many_lines)] // The checks in order, as the type's docs list them.
    fn check(
        &self,
        claims: &SessionClaims,
        session: SessionHash,
        requirement: &Requirement,
        context: &RequestContext,
        now: Timestamp,
        activity: &mut Option<Activity>,
    ) -> Result<ValidatedSession, Denial> {
        let deny = |reason: DenialReason| {
            let denial = Denial::new(reason, now)
                .for_session(claims.user_id(), session)
                .with_operation(requirement.operation);
            self.deny(denial, context)
        };
        let deny_step_up = |reason: DenialReason, step_up: StepUp| {
            let denial = Denial::new(reason, now)
                .for_session(claims.user_id(), session)
                .with_operation(requirement.operation)
                .with_step_up(step_up);
            self.deny(denial, context)
        };

        // 1. The claims alone.
        for (field, at) in [
            ("authenticated_at", claims.authenticated_at()),
            ("issued_at", claims.issued_at()),
        ] {
            if let Some(ahead) = at.duration_since(now)
                && ahead > self.clock_skew
            {
                return Err(deny(DenialReason::FromTheFuture { field, ahead }));
            }
        }
        if let Some(lifetime) = requirement.max_session_lifetime
            && now.duration_since(claims.issued_at()).is_some_and(|age| age > lifetime)
        {
            return Err(deny(DenialReason::Expired {
                issued_at: claims.issued_at(),
                lifetime,
            }));
        }
        let mut mismatch = match (requirement.binding, claims.binding()) {
            (BindingPolicy::Off, _) | (_, None) => None,
            (_, Some(binding)) => Some(self.compare_binding(binding, context)).filter(|m| m.any()),
        };
        if let Some(found) = mismatch {
            match requirement.binding {
                BindingPolicy::Strict => return Err(deny(DenialReason::BindingMismatch(found))),
                // The step-up issues claims bound to the client it ran on.
                BindingPolicy::StepUp => {
                    return Err(deny_step_up(
                        DenialReason::BindingStepUp(found),
                        fresh_login(requirement, Duration::ZERO),
                    ));
                }
                _ => {}
            }
        }

        // 2. One read.
        let (state, record, from_cache) = match self.read_state(claims.user_id(), &session, requirement.sensitive, now)
        {
            Ok(read) => read,
            Err(error) => {
                let denial = Denial::new(DenialReason::CheckFailed, now)
                    .for_session(claims.user_id(), session)
                    .with_operation(requirement.operation)
                    .with_source(error);
                return Err(self.deny(denial, context));
            }
        };

        // 3. The user and the session, now.
        let Some(user) = state.user else {
            return Err(deny(DenialReason::UserMissing));
        };
        if user.is_deleted() {
            return Err(deny(DenialReason::UserDeleted));
        }
        if user.is_disabled() {
            return Err(deny(DenialReason::UserDisabled));
        }
        if state.session_revoked {
            return Err(deny(DenialReason::SessionRevoked));
        }
        if let Some(at_issue) = claims.role()
            && user.role() != at_issue
        {
            let promotion_allowed = self.role_change == RoleChangePolicy::AllowPromotion
                && self.hierarchy.is_promotion(at_issue, user.role());
            if !promotion_allowed {
                return Err(deny(DenialReason::RoleChanged {
                    at_issue: at_issue.clone(),
                    current: user.role().clone(),
                }));
            }
        }
        if let Some(reason) = version_denial(claims, &user) {
            return Err(deny(reason));
        }
        if let Some(valid_after) = user.valid_after()
            && claims.issued_at() < valid_after
        {
            return Err(deny(DenialReason::IssuedBeforeValidAfter {
                issued_at: claims.issued_at(),
                valid_after,
            }));
        }

        // 3b. The session in the registry.
        let mut touch = None;
        let mut touch_record = None;
        if let Some(registry) = &self.registry {
            let policy = registry.policy();
            let record = match record {
                Some(record) => record,
                None if policy.adopts_unknown() => match registry.adopt(claims, context, now) {
                    Ok(record) => record,
                    Err(error) => {
                        let denial = Denial::new(DenialReason::CheckFailed, now)
                            .for_session(claims.user_id(), session)
                            .with_operation(requirement.operation)
                            .with_source(error);
                        return Err(self.deny(denial, context));
                    }
                },
                None => return Err(deny(DenialReason::UnknownSession)),
            };
            if record.user_id != *claims.user_id() {
                return Err(deny(DenialReason::SessionOfAnotherUser));
            }
            if let Some(at) = record.revoked_at {
                return Err(deny(DenialReason::SignedOut { at }));
            }
            if let Some(lifetime) = policy.lifetime()
                && now.duration_since(record.created_at).is_some_and(|age| age > lifetime)
            {
                return Err(deny(DenialReason::Expired {
                    issued_at: record.created_at,
                    lifetime,
                }));
            }
            if let Some(timeout) = policy.inactivity_timeout()
                && now
                    .duration_since(record.last_seen_at)
                    .is_some_and(|idle| idle > timeout)
            {
                return Err(deny(DenialReason::Idle {
                    last_seen: record.last_seen_at,
                    timeout,
                }));
            }
            let change = client_change(&record, context);
            let changed_at = if change.is_some() {
                Some(now)
            } else {
                record.client_changed_at
            };
            *activity = Some(Activity {
                change,
                seen: None,
                at: now,
            });
            let interval = policy.effective_touch_interval();
            if now
                .duration_since(record.last_seen_at)
                .is_some_and(|since| since >= interval)
            {
                touch = Some((now, now.saturating_sub(interval)));
            }
            let found = (requirement.binding != BindingPolicy::Off)
                .then(|| self.compare_created(&record, context))
                .filter(|m| m.any());
            if let Some(found) = found {
                match requirement.binding {
                    BindingPolicy::Strict => return Err(deny(DenialReason::BindingMismatch(found))),
                    BindingPolicy::StepUp => {
                        let since = changed_at.unwrap_or(now);
                        if claims.authenticated_at() < since {
                            let max_age = now.duration_since(since).unwrap_or(Duration::ZERO);
                            return Err(deny_step_up(
                                DenialReason::BindingStepUp(found),
                                fresh_login(requirement, max_age),
                            ));
                        }
                    }
                    _ => {}
                }
                let merged = mismatch.unwrap_or_default();
                mismatch = Some(BindingMismatch {
                    ip: merged.ip || found.ip,
                    user_agent: merged.user_agent || found.user_agent,
                });
            }
            touch_record = Some(record);
        }

        // 4. What this operation asks for.
        if let Some(required) = &requirement.min_role
            && !self.hierarchy.satisfies(user.role(), required)
        {
            if self.hierarchy.rank(required).is_none() {
                tracing::error!(
                    role = %required,
                    "a requirement names a role outside the role hierarchy; every check for it is denied"
                );
            }
            return Err(deny(DenialReason::InsufficientRole {
                required: required.clone(),
                current: user.role().clone(),
            }));
        }
        let step_up = || StepUp {
            max_age: requirement.freshness.map(Freshness::as_duration),
            mfa: requirement.mfa,
            min_level: requirement.min_auth_level,
        };
        let factors_short = requirement.mfa && !claims.factors().is_multi_factor();
        let level_short = requirement
            .min_auth_level
            .is_some_and(|level| claims.auth_level() < level);
        if factors_short || level_short {
            return Err(deny_step_up(
                DenialReason::MfaRequired {
                    level: claims.auth_level(),
                },
                step_up(),
            ));
        }
        // A login in the future within the skew counts as just now.
        let auth_age = now.duration_since(claims.authenticated_at()).unwrap_or(Duration::ZERO);
        if let Some(freshness) = requirement.freshness
            && auth_age > freshness.as_duration()
        {
            let reason = DenialReason::StaleAuthentication {
                age: auth_age,
                max_age: freshness.as_duration(),
            };
            return Err(deny_step_up(reason, step_up()));
        }

        if let Some(mismatch) = mismatch {
            tracing::warn!(
                user_id = %claims.user_id(),
                session = %session,
                mismatch = %mismatch,
                operation = requirement.operation.unwrap_or_default(),
                request_id = context.request_id().map(RequestId::as_str).unwrap_or_default(),
                "session binding mismatch allowed by the binding policy"
            );
        }
        if let Some(activity) = activity.as_mut() {
            activity.seen = touch;
        }
        Ok(ValidatedSession {
            user_id: claims.user_id().clone(),
            role: user.role().clone(),
            session_hash: session,
            session_version: user.session_version().or(claims.session_version()),
            auth_level: claims.auth_level(),
            factors: claims.factors(),
            authenticated_at: claims.authenticated_at(),
            auth_age,
            binding_mismatch: mismatch,
            record: touch_record,
            from_cache,
            checked_at: now,
        })
    }

    /// [`Validator::validate`] for a request that may carry no session:
    /// without claims it denies with [`DenialReason::Missing`]
    /// (`SESSION_MISSING`).
    pub fn validate_optional(
        &self,
        claims: Option<&SessionClaims>,
        requirement: &Requirement,
        context: &RequestContext,
    ) -> Result<ValidatedSession, Denial> {
        match claims {
            Some(claims) => self.validate(claims, requirement, context),
            None => {
                let denial = Denial::new(DenialReason::Missing, self.clock.now()).with_operation(requirement.operation);
                Err(self.deny(denial, context))
            }
        }
    }

    fn read_state(
        &self,
        user: &UserId,
        session: &SessionHash,
        sensitive: bool,
        now: Timestamp,
    ) -> crate::Result<(SessionState, Option<SessionRecord>, bool)> {
        if let Some(registry) = &self.registry {
            let (state, record) = registry.read(self.directory.as_ref(), user, session)?;
            return Ok((state, record, false));
        }
        if !sensitive
            && let Some(cache) = &self.cache
            && let Some(state) = cache.get(user, session, now)
        {
            return Ok((state, None, true));
        }
        let state = self.directory.session_state(user, session)?;
        if let Some(cache) = &self.cache {
            cache.put(user, *session, &state, now);
        }
        Ok((state, None, false))
    }

    /// What differs from the client the registry saw at the session's creation.
    fn compare_created(&self, record: &SessionRecord, context: &RequestContext) -> BindingMismatch {
        let ip = record.created_ip.is_some_and(|bound| match context.client_ip() {
            Some(ip) => !same_network(bound, ip, self.ipv4_prefix, self.ipv6_prefix),
            None => true,
        });
        let user_agent = record
            .created_user_agent
            .as_ref()
            .is_some_and(|bound| context.user_agent() != Some(bound));
        BindingMismatch { ip, user_agent }
    }

    fn compare_binding(&self, binding: &ClientBinding, context: &RequestContext) -> BindingMismatch {
        let ip = binding.ip.is_some_and(|bound| match context.client_ip() {
            Some(ip) => !same_network(bound, ip, self.ipv4_prefix, self.ipv6_prefix),
            None => true,
        });
        let user_agent = binding.user_agent_hash.is_some_and(|bound| match context.user_agent() {
            Some(agent) => agent.hash() != bound,
            None => true,
        });
        BindingMismatch { ip, user_agent }
    }

    /// Logs `denial` and hands it to the audit sink.
    fn deny(&self, denial: Denial, context: &RequestContext) -> Denial {
        log_denial(&denial, context);
        if let Some(sink) = &self.sink {
            match denial.audit_event(context) {
                Ok(event) => sink.record(event),
                Err(error) => {
                    tracing::error!(%error, code = %denial.code(), "a session denial could not become an audit event");
                }
            }
        }
        denial
    }
}

/// The version check. Claims with a version are judged by it; claims
/// without one by the instant the user's version last moved, and a directory
/// that keeps a version but neither instant cannot judge them.
fn version_denial(claims: &SessionClaims, user: &UserState) -> Option<DenialReason> {
    match (claims.session_version(), user.session_version()) {
        (Some(claimed), Some(current)) if claimed < current => Some(DenialReason::VersionChanged { claimed, current }),
        (Some(claimed), Some(current)) if claimed > current => Some(DenialReason::VersionAhead { claimed, current }),
        (Some(_), _) => None,
        (None, current) => match user.version_changed_at() {
            Some(changed) if claims.issued_at() < changed => Some(DenialReason::IssuedBeforeValidAfter {
                issued_at: claims.issued_at(),
                valid_after: changed,
            }),
            Some(_) => None,
            None if current.is_some() && user.valid_after().is_none() => Some(DenialReason::Unverifiable),
            None => None,
        },
    }
}

/// The client of this request, when it differs from the last one the
/// registry recorded. A request without an IP or user agent changes nothing:
/// unknown is not a new client.
fn client_change(record: &SessionRecord, context: &RequestContext) -> Option<(Option<IpAddr>, Option<UserAgent>)> {
    let ip = context.client_ip().map(|ip| ip.to_canonical());
    let agent = context.user_agent();
    let ip_changed = ip.is_some() && ip != record.last_ip.map(|last| last.to_canonical());
    let agent_changed = agent.is_some() && agent != record.last_user_agent.as_ref();
    (ip_changed || agent_changed).then(|| {
        (
            ip.or(record.last_ip),
            agent.cloned().or_else(|| record.last_user_agent.clone()),
        )
    })
}

/// A step-up to a login no older than `max_age`, with the requirement's
/// factors and level.
fn fresh_login(requirement: &Requirement, max_age: Duration) -> StepUp {
    StepUp {
        max_age: Some(max_age),
        mfa: requirement.mfa,
        min_level: requirement.min_auth_level,
    }
}

/// Logs a denial: the one event for it. The validator owns it; zt-guard adds
/// the reference id the client gets as a field of the span around the check,
/// and its sanitizer does not log the denial again (ARCHITECTURE.md, "Who
/// logs what").
fn log_denial(denial: &Denial, context: &RequestContext) {
    let detail = denial.to_string();
    let client_ip = context.client_ip().map(tracing::field::display);
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                $level,
                code = %denial.code(),
                reason = denial.reason().name(),
                user_id = denial.user_id().map(UserId::as_str).unwrap_or_default(),
                session = %denial.session_hash().map(|hash| hash.to_string()).unwrap_or_default(),
                operation = denial.operation().unwrap_or_default(),
                request_id = context.request_id().map(RequestId::as_str).unwrap_or_default(),
                client_ip,
                detail = %Neutralized(&detail),
                "session denied"
            )
        };
    }
    match denial.severity() {
        Severity::Info => event!(tracing::Level::INFO),
        Severity::Warning => event!(tracing::Level::WARN),
        _ => event!(tracing::Level::ERROR),
    }
}

/// Whether `a` and `b` share their first `v4` (IPv4) or `v6` (IPv6) bits.
/// An IPv4-mapped IPv6 address counts as IPv4.
fn same_network(a: IpAddr, b: IpAddr, v4: u8, v6: u8) -> bool {
    match (a.to_canonical(), b.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(v4)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(v6)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_compare_by_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_network(ip("203.0.113.7"), ip("203.0.113.7"), 32, 128));
        assert!(!same_network(ip("203.0.113.7"), ip("203.0.113.8"), 32, 128));
        assert!(same_network(ip("203.0.113.7"), ip("203.0.113.200"), 24, 128));
        assert!(!same_network(ip("203.0.113.7"), ip("203.0.114.7"), 24, 128));
        assert!(same_network(ip("1.2.3.4"), ip("9.9.9.9"), 0, 0));
        assert!(same_network(ip("2001:db8::1"), ip("2001:db8::ffff"), 32, 64));
        assert!(!same_network(ip("2001:db8::1"), ip("2001:db9::1"), 32, 64));
        assert!(same_network(ip("::ffff:203.0.113.7"), ip("203.0.113.7"), 32, 128));
        assert!(!same_network(ip("203.0.113.7"), ip("2001:db8::1"), 0, 0));
    }
}
