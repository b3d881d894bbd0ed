//! What one operation asks of a session.

use std::time::Duration;

use zt_types::{AuthLevel, Role};

/// How recent the last full login must be: a maximum age of
/// `authenticated_at`.
///
/// | preset | max age | matches |
/// |---|---|---|
/// | [`Freshness::STRICT`] | 10 minutes | Clerk reverification `strict` |
/// | [`Freshness::MODERATE`] | 1 hour | Clerk `moderate`; Ory Kratos' default `privileged_session_max_age` |
/// | [`Freshness::LAX`] | 24 hours | Clerk `lax` |
/// | [`Freshness::AAL2`] | 24 hours | NIST SP 800-63B-4 §2.2.3, AAL2 reauthentication |
/// | [`Freshness::AAL3`] | 12 hours | NIST SP 800-63B-4 §2.3.3, AAL3 reauthentication |
///
/// The NIST values are the *overall timeouts* of SP 800-63B-4 (final, 2025):
/// at AAL2 the subscriber reauthenticates at least once every 24 hours, at
/// AAL3 at least once every 12 hours, regardless of activity (§2.2.3 and
/// §2.3.3; reauthentication itself is §5.2). SP 800-63B-4 also sets
/// inactivity timeouts (1 hour at AAL2, 15 minutes at AAL3), which need the
/// time of last activity: the [`crate::SessionRegistry`] tracks it, with the
/// [`crate::RegistryPolicy::aal2`] and [`crate::RegistryPolicy::aal3`] presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Freshness {
    max_age: Duration,
}

impl Freshness {
    /// 10 minutes: Clerk's `strict`, for destructive or irreversible actions.
    pub const STRICT: Self = Self::max_age(Duration::from_secs(10 * 60));
    /// 1 hour: Clerk's `moderate`, Ory Kratos' default privileged session.
    pub const MODERATE: Self = Self::max_age(Duration::from_secs(60 * 60));
    /// 24 hours: Clerk's `lax`.
    pub const LAX: Self = Self::max_age(Duration::from_secs(24 * 60 * 60));
    /// 24 hours: NIST SP 800-63B-4 §2.2.3, the AAL2 overall timeout.
    pub const AAL2: Self = Self::max_age(Duration::from_secs(24 * 60 * 60));
    /// 12 hours: NIST SP 800-63B-4 §2.3.3, the AAL3 overall timeout.
    pub const AAL3: Self = Self::max_age(Duration::from_secs(12 * 60 * 60));

    /// A custom maximum age.
    pub const fn max_age(max_age: Duration) -> Self {
        Self { max_age }
    }

    /// The maximum age.
    pub const fn as_duration(self) -> Duration {
        self.max_age
    }
}

/// What a check does when the request does not match the client the session
/// was bound to at sign-in ([`zt_types::ClientBinding`]).
///
/// A bound field is a mismatch when the request's value differs, or when the
/// request has no value for it (such as a context without a client IP). The
/// binding is the claims' [`zt_types::ClientBinding`] and, with a
/// [`crate::SessionRegistry`], the client the registry saw at the session's
/// creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BindingPolicy {
    /// The binding is not checked.
    Off,
    /// A mismatch is allowed, logged as a `tracing` warning, and exposed on
    /// the validated session ([`crate::ValidatedSession::binding_mismatch`]),
    /// so the operation can ask for more or record it. The default, because
    /// IP binding breaks mobile users, whose address changes as they move
    /// between networks.
    #[default]
    Log,
    /// A mismatch denies the check with `SESSION_BINDING_MISMATCH`.
    Strict,
    /// A mismatch asks for a step-up login (`AUTH_REAUTHENTICATION_REQUIRED`,
    /// [`crate::Remedy::StepUp`]): with a [`crate::SessionRegistry`], the
    /// check passes again once the last full login is later than the change
    /// of client; with claims' own binding, once the step-up issues claims
    /// bound to the new client.
    StepUp,
}

/// What one operation asks of a session, checked by
/// [`crate::Validator::validate`].
///
/// [`Requirement::new`] asks only for a live session: the user exists, is
/// neither disabled nor deleted, holds the role the session was issued with,
/// and the session is not revoked. Each setter adds one condition:
///
/// | setter | denies with | cured by |
/// |---|---|---|
/// | [`min_role`](Self::min_role) | `AUTH_INSUFFICIENT_ROLE` | nothing the user can do |
/// | [`freshness`](Self::freshness) | `AUTH_REAUTHENTICATION_REQUIRED` | a step-up login |
/// | [`require_mfa`](Self::require_mfa), [`min_auth_level`](Self::min_auth_level) | `AUTH_MFA_REQUIRED` | a step-up login with more factors |
/// | [`max_session_lifetime`](Self::max_session_lifetime) | `SESSION_EXPIRED` | a new sign-in |
/// | [`binding`](Self::binding) `Strict` | `SESSION_BINDING_MISMATCH` | a new sign-in |
/// | [`binding`](Self::binding) `StepUp` | `AUTH_REAUTHENTICATION_REQUIRED` | a step-up login |
///
/// ```
/// use zt_session::{BindingPolicy, Requirement};
/// use zt_types::Role;
///
/// // Deleting a project: admins only, logged in with MFA in the last 10 minutes.
/// let delete_project = Requirement::strict_mfa().min_role(Role::admin()).operation("DELETE_PROJECT");
/// // Reading a dashboard: any live session, and the short cache may answer.
/// let dashboard = Requirement::new().sensitive(false).binding(BindingPolicy::Off);
/// assert!(delete_project.is_sensitive() && !dashboard.is_sensitive());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub(crate) min_role: Option<Role>,
    pub(crate) freshness: Option<Freshness>,
    pub(crate) mfa: bool,
    pub(crate) min_auth_level: Option<AuthLevel>,
    pub(crate) max_session_lifetime: Option<Duration>,
    pub(crate) binding: BindingPolicy,
    pub(crate) sensitive: bool,
    pub(crate) operation: Option<&'static str>,
}

impl Default for Requirement {
    fn default() -> Self {
        Self::new()
    }
}

impl Requirement {
    /// A live session, nothing more; sensitive, binding [`BindingPolicy::Log`].
    pub const fn new() -> Self {
        Self {
            min_role: None,
            freshness: None,
            mfa: false,
            min_auth_level: None,
            max_session_lifetime: None,
            binding: BindingPolicy::Log,
            sensitive: true,
            operation: None,
        }
    }

    /// Login within [`Freshness::STRICT`] (10 minutes), as Clerk's `strict`.
    pub const fn strict() -> Self {
        Self::new().freshness(Freshness::STRICT)
    }

    /// Login within 10 minutes, with multiple factors, as Clerk's `strict_mfa`.
    pub const fn strict_mfa() -> Self {
        Self::new().freshness(Freshness::STRICT).require_mfa()
    }

    /// Login within [`Freshness::MODERATE`] (1 hour), as Clerk's `moderate`.
    pub const fn moderate() -> Self {
        Self::new().freshness(Freshness::MODERATE)
    }

    /// Login within [`Freshness::LAX`] (24 hours), as Clerk's `lax`.
    pub const fn lax() -> Self {
        Self::new().freshness(Freshness::LAX)
    }

    /// NIST AAL2: a login at [`AuthLevel::Aal2`] or above within 24 hours
    /// (SP 800-63B-4 §2.2.3).
    pub const fn aal2() -> Self {
        Self::new().freshness(Freshness::AAL2).min_auth_level(AuthLevel::Aal2)
    }

    /// NIST AAL3: a login at [`AuthLevel::Aal3`] within 12 hours
    /// (SP 800-63B-4 §2.3.3).
    pub const fn aal3() -> Self {
        Self::new().freshness(Freshness::AAL3).min_auth_level(AuthLevel::Aal3)
    }

    /// Asks for the user's *current* role to be at or above `role` in the
    /// validator's [`crate::RoleHierarchy`]. Default: any role.
    #[must_use]
    pub fn min_role(mut self, role: Role) -> Self {
        self.min_role = Some(role);
        self
    }

    /// Asks for a login no older than `freshness`. Default: any age. An
    /// `authenticated_at` in the future within the validator's clock skew
    /// counts as age zero.
    #[must_use]
    pub const fn freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = Some(freshness);
        self
    }

    /// Asks for a login no older than `max_age`; see [`Requirement::freshness`].
    #[must_use]
    pub const fn max_auth_age(self, max_age: Duration) -> Self {
        self.freshness(Freshness::max_age(max_age))
    }

    /// Asks for a multi-factor login: the claims' factors must be
    /// [multi-factor](zt_types::AuthFactors::is_multi_factor). Default: off.
    #[must_use]
    pub const fn require_mfa(mut self) -> Self {
        self.mfa = true;
        self
    }

    /// Asks for a login at `level` or above, as the claims' `auth_level`
    /// states it. Default: any level.
    #[must_use]
    pub const fn min_auth_level(mut self, level: AuthLevel) -> Self {
        self.min_auth_level = Some(level);
        self
    }

    /// Ends sessions older than `lifetime`, counted from the claims'
    /// `issued_at`, whatever the activity. Default: no limit. Map `issued_at`
    /// to the session's creation for this to mean what it says; see the
    /// crate docs.
    #[must_use]
    pub const fn max_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_session_lifetime = Some(lifetime);
        self
    }

    /// Sets the client-binding policy. Default: [`BindingPolicy::Log`].
    #[must_use]
    pub const fn binding(mut self, policy: BindingPolicy) -> Self {
        self.binding = policy;
        self
    }

    /// Whether the check must read the database every time. Default: `true`.
    ///
    /// A sensitive check always reads the user's current state: its
    /// revocation window is zero. A non-sensitive check may be answered from
    /// the validator's cache, when one is configured, and so may miss a
    /// change for up to the cache's TTL. Mark only reads that would be
    /// harmless to serve to a just-revoked session as non-sensitive.
    #[must_use]
    pub const fn sensitive(mut self, sensitive: bool) -> Self {
        self.sensitive = sensitive;
        self
    }

    /// Names the operation, such as `DELETE_PROJECT`, for logs and for the
    /// audit event of a denial. Default: none.
    #[must_use]
    pub const fn operation(mut self, name: &'static str) -> Self {
        self.operation = Some(name);
        self
    }

    /// Whether the check bypasses the cache.
    pub const fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// The minimum role, if any.
    pub fn required_role(&self) -> Option<&Role> {
        self.min_role.as_ref()
    }

    /// The maximum login age, if any.
    pub const fn required_freshness(&self) -> Option<Freshness> {
        self.freshness
    }

    /// Whether a multi-factor login is required.
    pub const fn requires_mfa(&self) -> bool {
        self.mfa
    }

    /// The minimum assurance level, if any.
    pub const fn required_auth_level(&self) -> Option<AuthLevel> {
        self.min_auth_level
    }

    /// The absolute session lifetime, if any.
    pub const fn session_lifetime(&self) -> Option<Duration> {
        self.max_session_lifetime
    }

    /// The binding policy.
    pub const fn binding_policy(&self) -> BindingPolicy {
        self.binding
    }

    /// The operation's name, if set.
    pub const fn operation_name(&self) -> Option<&'static str> {
        self.operation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_documented_values() {
        let minutes = |m: u64| Some(Freshness::max_age(Duration::from_secs(m * 60)));
        assert_eq!(Requirement::strict().required_freshness(), minutes(10));
        assert_eq!(Requirement::moderate().required_freshness(), minutes(60));
        assert_eq!(Requirement::lax().required_freshness(), minutes(24 * 60));
        assert!(Requirement::strict_mfa().requires_mfa());
        assert_eq!(Requirement::strict_mfa().required_freshness(), minutes(10));
        assert_eq!(Requirement::aal2().required_freshness(), minutes(24 * 60));
        assert_eq!(Requirement::aal2().required_auth_level(), Some(AuthLevel::Aal2));
        assert_eq!(Requirement::aal3().required_freshness(), minutes(12 * 60));
        assert_eq!(Requirement::aal3().required_auth_level(), Some(AuthLevel::Aal3));
    }

    #[test]
    fn defaults_are_the_safe_ones() {
        let requirement = Requirement::default();
        assert!(requirement.is_sensitive());
        assert_eq!(requirement.binding_policy(), BindingPolicy::Log);
        assert!(!requirement.requires_mfa());
        assert_eq!(requirement.required_role(), None);
    }
}
