//! What an identity provider asserted about a session.
//!
//! [`SessionClaims`] does not depend on any identity provider. Map your
//! provider's token onto it once, at the edge:
//!
//! | claim | OIDC ID token | Clerk session token |
//! |---|---|---|
//! | `session_id` | `sid` | `sid` |
//! | `user_id` | `sub` | `sub` |
//! | `role` | a role claim, if the provider puts one in (optional) | `metadata.role` / org role (optional) |
//! | `session_version` | none, unless your app adds one | none, unless a custom claim carries it |
//! | `authenticated_at` | `auth_time` | `iat − fva[0]` minutes (first-factor age) |
//! | `issued_at` | `authenticated_at` (see below) | `authenticated_at` |
//! | `factors` | `amr`, via [`AuthFactors::from_amr`] | `fva[1] != -1` adds [`AuthFactors::OTP`] |
//! | `auth_level` | `acr`, or derived from `amr` | AAL2 when `fva[1] != -1`, else AAL1 |
//!
//! zt-session's `TokenVerifier` (its `jwt` feature) does this mapping.
//!
//! `session_version` works like ASP.NET Identity's security stamp: the value at
//! issue is carried in the session, and every role change, disable, delete or
//! revoke-all bumps the stored value, so that older sessions fail their next check.
//! A third-party token carries no such version: [`SessionClaims::from_provider`]
//! builds claims without one, and zt-session then compares `issued_at` with the
//! user's "valid after" instant instead, which every such change moves forward.
//! For that comparison to survive token refreshes (Clerk mints a new token every
//! minute), a provider token's `issued_at` is its *login* time, not its `iat`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldErrorKind};
use crate::ids::{SessionHash, SessionId, UserId};
use crate::role::Role;
use crate::timestamp::Timestamp;

/// An authenticator assurance level, as NIST SP 800-63B defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthLevel {
    /// Single-factor authentication.
    Aal1,
    /// Two factors, or a multi-factor authenticator.
    Aal2,
    /// A phishing-resistant hardware-based multi-factor authenticator.
    Aal3,
}

/// The set of authentication factors used at the last full login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthFactors(u16);

impl AuthFactors {
    /// No factor.
    pub const NONE: Self = Self(0);
    /// Something you know: a password or PIN (`pwd`, `pin`).
    pub const PASSWORD: Self = Self(1);
    /// A one-time code from an app or token (`otp`).
    pub const OTP: Self = Self(1 << 1);
    /// A code sent by SMS or phone call (`sms`, `tel`).
    pub const SMS: Self = Self(1 << 2);
    /// A link or code sent by email.
    pub const EMAIL: Self = Self(1 << 3);
    /// A WebAuthn credential or passkey (`hwk`, `swk`, `pop`).
    pub const WEBAUTHN: Self = Self(1 << 4);
    /// A biometric (`fpt`, `face`, `iris`, `retina`, `vbm`).
    pub const BIOMETRIC: Self = Self(1 << 5);
    /// Federated single sign-on from an upstream provider.
    pub const SSO: Self = Self(1 << 6);
    /// The provider asserted multi-factor authentication without naming the factors (`mfa`).
    pub const MFA_ASSERTED: Self = Self(1 << 7);

    /// Whether every factor in `other` is present.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the login used more than one factor: two distinct factors, a
    /// WebAuthn credential, or an explicit `mfa` assertion.
    pub const fn is_multi_factor(self) -> bool {
        let distinct = (self.0 & !Self::MFA_ASSERTED.0).count_ones();
        distinct >= 2 || self.contains(Self::WEBAUTHN) || self.contains(Self::MFA_ASSERTED)
    }

    /// Maps RFC 8176 `amr` values onto factors; unknown values are ignored.
    ///
    /// ```
    /// use zt_types::AuthFactors;
    /// let factors = AuthFactors::from_amr(["pwd", "otp"]);
    /// assert!(factors.is_multi_factor());
    /// assert!(!AuthFactors::from_amr(["pwd"]).is_multi_factor());
    /// ```
    pub fn from_amr<'a>(amr: impl IntoIterator<Item = &'a str>) -> Self {
        amr.into_iter().fold(Self::NONE, |factors, value| {
            let factor = match value {
                "pwd" | "pin" | "kba" => Self::PASSWORD,
                "otp" => Self::OTP,
                "sms" | "tel" => Self::SMS,
                "hwk" | "swk" | "pop" => Self::WEBAUTHN,
                "fpt" | "face" | "iris" | "retina" | "vbm" => Self::BIOMETRIC,
                "mfa" | "mca" => Self::MFA_ASSERTED,
                _ => Self::NONE,
            };
            factors.union(factor)
        })
    }
}

/// What a session was bound to at sign-in. A binding check compares it with
/// the current request; see zt-session's binding policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientBinding {
    /// The client IP at sign-in.
    pub ip: Option<IpAddr>,
    /// The SHA-256 of the user agent at sign-in; see [`crate::UserAgent::hash`].
    pub user_agent_hash: Option<[u8; 32]>,
}

/// What the identity provider asserted about a session, checked again on each
/// sensitive operation by zt-session.
///
/// ```
/// use zt_types::{AuthFactors, AuthLevel, Role, SessionClaims, SessionId, Timestamp, UserId};
///
/// let login: Timestamp = "2026-11-29T10:00:00Z".parse()?;
/// let claims = SessionClaims::new(SessionId::parse("sess_abc")?, UserId::parse("42")?, Role::user(), 3, login)
///     .with_factors(AuthFactors::PASSWORD.union(AuthFactors::OTP), AuthLevel::Aal2);
/// assert!(claims.factors().is_multi_factor());
/// assert_eq!(claims.issued_at(), login);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    session_id: SessionId,
    user_id: UserId,
    role: Option<Role>,
    session_version: Option<i64>,
    issued_at: Timestamp,
    authenticated_at: Timestamp,
    auth_level: AuthLevel,
    factors: AuthFactors,
    binding: Option<ClientBinding>,
}

impl SessionClaims {
    /// Claims for a session issued at the moment of a password login, at AAL1.
    ///
    /// `role` and `session_version` are the user's when the session was issued.
    pub fn new(
        session_id: SessionId,
        user_id: UserId,
        role: Role,
        session_version: i64,
        authenticated_at: Timestamp,
    ) -> Self {
        Self::from_provider(session_id, user_id, authenticated_at)
            .with_role(role)
            .with_session_version(session_version)
    }

    /// Claims as a third-party identity provider asserts them: no session
    /// version and, until [`Self::with_role`], no role. A check then relies
    /// on the user's "valid after" instant to end sessions that began before
    /// a role change, disable, delete or revoke-all.
    ///
    /// ```
    /// use zt_types::{Role, SessionClaims, SessionId, Timestamp, UserId};
    ///
    /// let login: Timestamp = "2026-11-29T10:00:00Z".parse()?;
    /// let claims = SessionClaims::from_provider(SessionId::parse("sess_2abc")?, UserId::parse("user_2xyz")?, login)
    ///     .with_role(Role::admin());
    /// assert_eq!((claims.role(), claims.session_version()), (Some(&Role::admin()), None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_provider(session_id: SessionId, user_id: UserId, authenticated_at: Timestamp) -> Self {
        Self {
            session_id,
            user_id,
            role: None,
            session_version: None,
            issued_at: authenticated_at,
            authenticated_at,
            auth_level: AuthLevel::Aal1,
            factors: AuthFactors::PASSWORD,
            binding: None,
        }
    }

    /// Sets when the session (or its current token) was issued, which may be
    /// after the last full login. It may not be before it.
    pub fn with_issued_at(mut self, issued_at: Timestamp) -> Result<Self, FieldError> {
        if issued_at < self.authenticated_at {
            return Err(FieldError::new(
                "issued_at",
                FieldErrorKind::InvalidFormat("a time at or after authenticated_at"),
            ));
        }
        self.issued_at = issued_at;
        Ok(self)
    }

    /// Sets the role the session was issued with.
    #[must_use]
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    /// Sets the user's session version when the session was issued.
    #[must_use]
    pub fn with_session_version(mut self, session_version: i64) -> Self {
        self.session_version = Some(session_version);
        self
    }

    /// Sets the factors and assurance level of the last full login.
    pub fn with_factors(mut self, factors: AuthFactors, auth_level: AuthLevel) -> Self {
        self.factors = factors;
        self.auth_level = auth_level;
        self
    }

    /// Binds the session to the client seen at sign-in.
    pub fn with_binding(mut self, binding: ClientBinding) -> Self {
        self.binding = Some(binding);
        self
    }

    /// The session id. It is a secret; store [`Self::session_hash`] instead.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// The SHA-256 of the session id.
    pub fn session_hash(&self) -> SessionHash {
        self.session_id.hash()
    }

    /// The user.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The role when the session was issued, if the claims assert one.
    pub fn role(&self) -> Option<&Role> {
        self.role.as_ref()
    }

    /// The user's session version when the session was issued, if the
    /// claims carry one; a third-party token does not.
    pub fn session_version(&self) -> Option<i64> {
        self.session_version
    }

    /// When the session was issued.
    pub fn issued_at(&self) -> Timestamp {
        self.issued_at
    }

    /// When the user last fully authenticated.
    pub fn authenticated_at(&self) -> Timestamp {
        self.authenticated_at
    }

    /// The assurance level of the last full login.
    pub fn auth_level(&self) -> AuthLevel {
        self.auth_level
    }

    /// The factors of the last full login.
    pub fn factors(&self) -> AuthFactors {
        self.factors
    }

    /// The client binding, if the session has one.
    pub fn binding(&self) -> Option<&ClientBinding> {
        self.binding.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_factor_rules() {
        assert!(!AuthFactors::PASSWORD.is_multi_factor());
        assert!(AuthFactors::PASSWORD.union(AuthFactors::SMS).is_multi_factor());
        assert!(AuthFactors::WEBAUTHN.is_multi_factor());
        assert!(AuthFactors::from_amr(["mfa"]).is_multi_factor());
        assert!(!AuthFactors::from_amr(["pwd", "pin"]).is_multi_factor());
        assert_eq!(AuthFactors::from_amr(["nonsense"]), AuthFactors::NONE);
    }

    #[test]
    fn issued_before_login_is_rejected() {
        let login: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let claims = SessionClaims::new(
            SessionId::parse("s").unwrap(),
            UserId::parse("1").unwrap(),
            Role::user(),
            0,
            login,
        );
        let earlier: Timestamp = "2025-12-31T23:59:59Z".parse().unwrap();
        assert_eq!(claims.with_issued_at(earlier).unwrap_err().field(), "issued_at");
    }
}
