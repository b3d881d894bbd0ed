//! Why a check said no, and what can cure it.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use zt_error_codes::ErrorCode;
use zt_types::{AuthLevel, Role, SessionHash, Severity, Timestamp, UserId};

use crate::error::Error;

/// Which parts of a session's client binding the request did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BindingMismatch {
    /// The client IP differs from the one bound at sign-in, or the request has none.
    pub ip: bool,
    /// The user-agent hash differs from the one bound at sign-in, or the request has none.
    pub user_agent: bool,
}

impl BindingMismatch {
    /// Whether anything mismatched.
    pub const fn any(self) -> bool {
        self.ip || self.user_agent
    }
}

impl fmt::Display for BindingMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.ip, self.user_agent) {
            (true, true) => "client ip and user agent",
            (true, false) => "client ip",
            (false, true) => "user agent",
            (false, false) => "nothing",
        })
    }
}

/// What was wrong with an identity provider's token, for
/// [`DenialReason::InvalidToken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenProblem {
    /// Not a compact JWS of the allowed size; bad base64 or JSON; a missing
    /// or mistyped claim; an unsupported critical header.
    Malformed,
    /// `alg` is `none`, an HMAC algorithm, or not the algorithm of the key
    /// that `kid` names: algorithms come from the key set, never the token.
    DisallowedAlgorithm,
    /// No key of the key set has the token's `kid`, even after a refetch.
    UnknownKey,
    /// The signature does not verify: the token was altered or forged.
    BadSignature,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` names none of the configured audiences (or `azp` no authorized party).
    WrongAudience,
    /// `exp` has passed, beyond the leeway.
    Expired,
    /// `nbf` or `iat` lies in the future, beyond the leeway.
    NotYetValid,
}

impl TokenProblem {
    /// A short, stable, snake_case name, for logs and tests.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::DisallowedAlgorithm => "disallowed_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
        }
    }
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "token is malformed",
            Self::DisallowedAlgorithm => "token's algorithm is not allowed for its key",
            Self::UnknownKey => "token's key id is not in the key set",
            Self::BadSignature => "token's signature does not verify",
            Self::WrongIssuer => "token is from another issuer",
            Self::WrongAudience => "token is for another audience",
            Self::Expired => "token has expired",
            Self::NotYetValid => "token is not yet valid",
        })
    }
}

/// Why a session was denied. Each reason maps onto one error code; see
/// [`DenialReason::code`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenialReason {
    /// No session claims came with the request. `SESSION_MISSING`.
    Missing,
    /// `authenticated_at` or `issued_at` is later than now plus the allowed
    /// clock skew. `SESSION_INVALID`.
    FromTheFuture {
        /// `authenticated_at` or `issued_at`.
        field: &'static str,
        /// How far past now the claim lies.
        ahead: Duration,
    },
    /// The session's version is higher than the user's: the claims do not
    /// match the store, which has never issued that version. `SESSION_INVALID`.
    VersionAhead {
        /// The version in the claims.
        claimed: i64,
        /// The user's current version.
        current: i64,
    },
    /// The session is older than the requirement's absolute lifetime. `SESSION_EXPIRED`.
    Expired {
        /// When the session was issued.
        issued_at: Timestamp,
        /// The lifetime it exceeded.
        lifetime: Duration,
    },
    /// The request does not match the session's client binding, under
    /// [`crate::BindingPolicy::Strict`]. `SESSION_BINDING_MISMATCH`.
    BindingMismatch(BindingMismatch),
    /// The user store has no such user. `SESSION_USER_DELETED`.
    UserMissing,
    /// The user is marked deleted. `SESSION_USER_DELETED`.
    UserDeleted,
    /// The user is disabled. `SESSION_USER_DISABLED`.
    UserDisabled,
    /// This session's hash is on the revocation list. `SESSION_REVOKED`.
    SessionRevoked,
    /// The user's session version moved past the session's: a role change,
    /// disable, enable, delete or revoke-all since the session was issued.
    /// `SESSION_REVOKED`.
    VersionChanged {
        /// The version in the claims.
        claimed: i64,
        /// The user's current version.
        current: i64,
    },
    /// The session was issued before the user's "valid after" instant: a
    /// role change, disable, delete or sign-out-everywhere since then, for a
    /// directory that keeps an instant instead of a version, or for claims
    /// without a version (an identity provider's token) compared with the
    /// instant the user's version last moved. `SESSION_REVOKED`.
    IssuedBeforeValidAfter {
        /// When the session was issued.
        issued_at: Timestamp,
        /// The user's "valid after" instant.
        valid_after: Timestamp,
    },
    /// The role at issue differs from the current role: a demotion, or a
    /// promotion under [`crate::RoleChangePolicy::RequireNewSession`].
    /// `SESSION_ROLE_CHANGED`.
    RoleChanged {
        /// The role when the session was issued.
        at_issue: Role,
        /// The role now.
        current: Role,
    },
    /// The user's current role is below the requirement's minimum. `AUTH_INSUFFICIENT_ROLE`.
    InsufficientRole {
        /// The minimum role.
        required: Role,
        /// The user's current role.
        current: Role,
    },
    /// The requirement asks for more factors or a higher assurance level
    /// than the last login had. `AUTH_MFA_REQUIRED`.
    MfaRequired {
        /// The assurance level of the last login.
        level: AuthLevel,
    },
    /// The last full login is older than the requirement allows.
    /// `AUTH_REAUTHENTICATION_REQUIRED`.
    StaleAuthentication {
        /// How old the login is.
        age: Duration,
        /// The most the requirement allows.
        max_age: Duration,
    },
    /// The user's state could not be read, or a token's keys could not be
    /// fetched, so the check failed closed. `SESSION_CHECK_FAILED`, severity critical.
    CheckFailed,
    /// An identity provider's token did not verify. `SESSION_EXPIRED` for
    /// [`TokenProblem::Expired`], else `SESSION_INVALID`.
    InvalidToken(TokenProblem),
    /// The claims carry no session version, and the directory keeps a version
    /// but no instant to compare them with
    /// ([`crate::UserState::with_version_changed_at`] or a "valid after"), so
    /// a change since the session began cannot be ruled out: a configuration
    /// error. `SESSION_CHECK_FAILED`, severity critical.
    Unverifiable,
    /// The session is not in the registry and the registry does not adopt
    /// unknown sessions. `SESSION_INVALID`.
    UnknownSession,
    /// The registry holds this session for another user. `SESSION_INVALID`.
    SessionOfAnotherUser,
    /// The session was signed out in the registry. `SESSION_REVOKED`.
    SignedOut {
        /// When.
        at: Timestamp,
    },
    /// The session made no request for longer than the registry's inactivity
    /// timeout. `SESSION_EXPIRED`.
    Idle {
        /// When the registry last saw it.
        last_seen: Timestamp,
        /// The timeout.
        timeout: Duration,
    },
    /// The client differs from the session's, under
    /// [`crate::BindingPolicy::StepUp`], and the last full login is older
    /// than the change. `AUTH_REAUTHENTICATION_REQUIRED`.
    BindingStepUp(BindingMismatch),
}

impl DenialReason {
    /// The error code: the one place where reasons map onto codes.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Missing => ErrorCode::SessionMissing,
            Self::FromTheFuture { .. } | Self::VersionAhead { .. } => ErrorCode::SessionInvalid,
            Self::Expired { .. } => ErrorCode::SessionExpired,
            Self::BindingMismatch(_) => ErrorCode::SessionBindingMismatch,
            Self::UserMissing | Self::UserDeleted => ErrorCode::SessionUserDeleted,
            Self::UserDisabled => ErrorCode::SessionUserDisabled,
            Self::SessionRevoked | Self::VersionChanged { .. } | Self::IssuedBeforeValidAfter { .. } => {
                ErrorCode::SessionRevoked
            }
            Self::RoleChanged { .. } => ErrorCode::SessionRoleChanged,
            Self::InsufficientRole { .. } => ErrorCode::AuthInsufficientRole,
            Self::MfaRequired { .. } => ErrorCode::AuthMfaRequired,
            Self::StaleAuthentication { .. } => ErrorCode::AuthReauthenticationRequired,
            Self::CheckFailed | Self::Unverifiable => ErrorCode::SessionCheckFailed,
            Self::InvalidToken(TokenProblem::Expired) | Self::Idle { .. } => ErrorCode::SessionExpired,
            Self::InvalidToken(_) | Self::UnknownSession | Self::SessionOfAnotherUser => ErrorCode::SessionInvalid,
            Self::SignedOut { .. } => ErrorCode::SessionRevoked,
            Self::BindingStepUp(_) => ErrorCode::AuthReauthenticationRequired,
        }
    }

    /// A short, stable, snake_case name of the reason, for logs and audit metadata.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::FromTheFuture { .. } => "from_the_future",
            Self::VersionAhead { .. } => "version_ahead",
            Self::Expired { .. } => "expired",
            Self::BindingMismatch(_) => "binding_mismatch",
            Self::UserMissing => "user_missing",
            Self::UserDeleted => "user_deleted",
            Self::UserDisabled => "user_disabled",
            Self::SessionRevoked => "session_revoked",
            Self::VersionChanged { .. } => "version_changed",
            Self::IssuedBeforeValidAfter { .. } => "issued_before_valid_after",
            Self::RoleChanged { .. } => "role_changed",
            Self::InsufficientRole { .. } => "insufficient_role",
            Self::MfaRequired { .. } => "mfa_required",
            Self::StaleAuthentication { .. } => "stale_authentication",
            Self::CheckFailed => "check_failed",
            Self::InvalidToken(_) => "invalid_token",
            Self::Unverifiable => "unverifiable",
            Self::UnknownSession => "unknown_session",
            Self::SessionOfAnotherUser => "session_of_another_user",
            Self::SignedOut { .. } => "signed_out",
            Self::Idle { .. } => "idle",
            Self::BindingStepUp(_) => "binding_step_up",
        }
    }
}

impl From<&DenialReason> for ErrorCode {
    fn from(reason: &DenialReason) -> Self {
        reason.code()
    }
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no session"),
            Self::FromTheFuture { field, ahead } => {
                write!(f, "{field} is {ahead:?} in the future, beyond the allowed clock skew")
            }
            Self::VersionAhead { claimed, current } => {
                write!(f, "session version {claimed} is ahead of the user's version {current}")
            }
            Self::Expired { issued_at, lifetime } => {
                write!(
                    f,
                    "session issued at {issued_at} is older than its lifetime of {lifetime:?}"
                )
            }
            Self::BindingMismatch(mismatch) => {
                write!(f, "request does not match the session's bound {mismatch}")
            }
            Self::UserMissing => f.write_str("user does not exist"),
            Self::UserDeleted => f.write_str("user is deleted"),
            Self::UserDisabled => f.write_str("user is disabled"),
            Self::SessionRevoked => f.write_str("session is revoked"),
            Self::VersionChanged { claimed, current } => {
                write!(f, "session version {claimed} is behind the user's version {current}")
            }
            Self::IssuedBeforeValidAfter { issued_at, valid_after } => {
                write!(
                    f,
                    "session issued at {issued_at} is before the user's valid-after instant {valid_after}"
                )
            }
            Self::RoleChanged { at_issue, current } => {
                write!(
                    f,
                    "role changed from `{at_issue}` to `{current}` since the session was issued"
                )
            }
            Self::InsufficientRole { required, current } => {
                write!(f, "role `{current}` is below the required `{required}`")
            }
            Self::MfaRequired { level } => {
                write!(f, "multi-factor login required, last login was {level:?}")
            }
            Self::StaleAuthentication { age, max_age } => {
                write!(
                    f,
                    "last login is {}s old, over the {}s allowed",
                    age.as_secs(),
                    max_age.as_secs()
                )
            }
            Self::CheckFailed => f.write_str("user state could not be read"),
            Self::InvalidToken(problem) => problem.fmt(f),
            Self::Unverifiable => {
                f.write_str("claims carry no session version and the directory keeps no valid-after instant")
            }
            Self::UnknownSession => f.write_str("session is not in the registry"),
            Self::SessionOfAnotherUser => f.write_str("registry holds the session for another user"),
            Self::SignedOut { at } => write!(f, "session was signed out at {at}"),
            Self::Idle { last_seen, timeout } => {
                write!(
                    f,
                    "session was last seen at {last_seen}, over its inactivity timeout of {}s",
                    timeout.as_secs()
                )
            }
            Self::BindingStepUp(mismatch) => {
                write!(f, "{mismatch} changed since the last full login")
            }
        }
    }
}

/// What the user can do about a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// Sign in again from scratch: redirect to the login page.
    SignIn,
    /// Confirm their identity within the same session (reverification), as
    /// [`StepUp`] describes.
    StepUp(StepUp),
    /// Nothing now; the same request may succeed later (the store was down).
    RetryLater,
    /// Nothing: the account is gone or disabled, or lacks the role.
    None,
}

/// What a step-up login must achieve, for the client or the identity
/// provider's reverification flow.
///
/// With OIDC, send `max_age` (0 forces a fresh login) and, for
/// multi-factor, an `acr_values` your provider maps to MFA; with Clerk, map
/// `mfa` to the `second_factor` or `multi_factor` reverification level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUp {
    /// The oldest login the operation accepts, if it asks for freshness.
    pub max_age: Option<Duration>,
    /// Whether the login must be multi-factor.
    pub mfa: bool,
    /// The assurance level the login must reach, if any.
    pub min_level: Option<AuthLevel>,
}

/// A denied check: the reason, its code, and what can cure it.
///
/// `Display` gives a one-line, lowercase description for the server log,
/// with no secret in it (the session appears only as its hash). Clients get
/// the code's generic public message through the sanitizer, never this.
#[derive(Debug)]
pub struct Denial {
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    reason: DenialReason,
    user_id: Option<UserId>,
    session: Option<SessionHash>,
    step_up: Option<StepUp>,
    operation: Option<&'static str>,
    at: Timestamp,
    source: Option<Error>,
}

impl Denial {
    pub(crate) fn new(reason: DenialReason, at: Timestamp) -> Self {
        Self {
            inner: Box::new(Inner {
                reason,
                user_id: None,
                session: None,
                step_up: None,
                operation: None,
                at,
                source: None,
            }),
        }
    }

    pub(crate) fn for_session(mut self, user_id: &UserId, session: SessionHash) -> Self {
        self.inner.user_id = Some(user_id.clone());
        self.inner.session = Some(session);
        self
    }

    pub(crate) fn with_step_up(mut self, step_up: StepUp) -> Self {
        self.inner.step_up = Some(step_up);
        self
    }

    pub(crate) fn with_operation(mut self, operation: Option<&'static str>) -> Self {
        self.inner.operation = operation;
        self
    }

    pub(crate) fn with_source(mut self, source: Error) -> Self {
        self.inner.source = Some(source);
        self
    }

    /// Why.
    pub fn reason(&self) -> &DenialReason {
        &self.inner.reason
    }

    /// The error code, such as `SESSION_REVOKED`.
    pub fn code(&self) -> ErrorCode {
        self.inner.reason.code()
    }

    /// How bad it is: the code's severity. A failed check is critical.
    pub fn severity(&self) -> Severity {
        self.code().severity()
    }

    /// The HTTP status for the client: 401, 403 or 503.
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// Whether signing in again, or a step-up login, can cure it: the
    /// catalog's `reauthenticate` flag. A web app redirects to its login
    /// page when this is true, instead of failing the request.
    pub fn reauthenticate(&self) -> bool {
        self.code().info().reauthenticate
    }

    /// What the user can do about it.
    pub fn remedy(&self) -> Remedy {
        match &self.inner.reason {
            DenialReason::MfaRequired { .. }
            | DenialReason::StaleAuthentication { .. }
            | DenialReason::BindingStepUp(_) => Remedy::StepUp(self.inner.step_up.unwrap_or(StepUp {
                max_age: None,
                mfa: false,
                min_level: None,
            })),
            DenialReason::CheckFailed => Remedy::RetryLater,
            DenialReason::Unverifiable
            | DenialReason::UserMissing
            | DenialReason::UserDeleted
            | DenialReason::UserDisabled
            | DenialReason::InsufficientRole { .. } => Remedy::None,
            DenialReason::Missing
            | DenialReason::FromTheFuture { .. }
            | DenialReason::VersionAhead { .. }
            | DenialReason::Expired { .. }
            | DenialReason::BindingMismatch(_)
            | DenialReason::SessionRevoked
            | DenialReason::VersionChanged { .. }
            | DenialReason::IssuedBeforeValidAfter { .. }
            | DenialReason::RoleChanged { .. }
            | DenialReason::InvalidToken(_)
            | DenialReason::UnknownSession
            | DenialReason::SessionOfAnotherUser
            | DenialReason::SignedOut { .. }
            | DenialReason::Idle { .. } => Remedy::SignIn,
        }
    }

    /// What a step-up login must achieve, for step-up denials.
    pub fn step_up(&self) -> Option<StepUp> {
        match self.remedy() {
            Remedy::StepUp(step_up) => Some(step_up),
            _ => None,
        }
    }

    /// The session's user, when there were claims.
    pub fn user_id(&self) -> Option<&UserId> {
        self.inner.user_id.as_ref()
    }

    /// The session's hash, when there were claims.
    pub fn session_hash(&self) -> Option<SessionHash> {
        self.inner.session
    }

    /// The requirement's operation name, if it had one.
    pub fn operation(&self) -> Option<&'static str> {
        self.inner.operation
    }

    /// When the check ran, by the validator's clock.
    pub fn at(&self) -> Timestamp {
        self.inner.at
    }

    /// The store error behind a failed check.
    pub fn store_error(&self) -> Option<&Error> {
        self.inner.source.as_ref()
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session denied ({}): {}", self.code(), self.inner.reason)?;
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Denial {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_reason() -> Vec<DenialReason> {
        let role = || Role::user();
        vec![
            DenialReason::Missing,
            DenialReason::FromTheFuture {
                field: "authenticated_at",
                ahead: Duration::from_secs(1),
            },
            DenialReason::VersionAhead { claimed: 2, current: 1 },
            DenialReason::Expired {
                issued_at: Timestamp::now(),
                lifetime: Duration::from_secs(1),
            },
            DenialReason::BindingMismatch(BindingMismatch {
                ip: true,
                user_agent: false,
            }),
            DenialReason::UserMissing,
            DenialReason::UserDeleted,
            DenialReason::UserDisabled,
            DenialReason::SessionRevoked,
            DenialReason::VersionChanged { claimed: 1, current: 2 },
            DenialReason::RoleChanged {
                at_issue: Role::admin(),
                current: role(),
            },
            DenialReason::InsufficientRole {
                required: Role::admin(),
                current: role(),
            },
            DenialReason::MfaRequired { level: AuthLevel::Aal1 },
            DenialReason::StaleAuthentication {
                age: Duration::from_secs(2),
                max_age: Duration::from_secs(1),
            },
            DenialReason::CheckFailed,
            DenialReason::Unverifiable,
            DenialReason::UnknownSession,
            DenialReason::SessionOfAnotherUser,
            DenialReason::SignedOut { at: Timestamp::now() },
            DenialReason::Idle {
                last_seen: Timestamp::now(),
                timeout: Duration::from_secs(1),
            },
            DenialReason::BindingStepUp(BindingMismatch {
                ip: true,
                user_agent: false,
            }),
            DenialReason::IssuedBeforeValidAfter {
                issued_at: Timestamp::now(),
                valid_after: Timestamp::now(),
            },
        ]
        .into_iter()
        .chain(
            [
                TokenProblem::Malformed,
                TokenProblem::DisallowedAlgorithm,
                TokenProblem::UnknownKey,
                TokenProblem::BadSignature,
                TokenProblem::WrongIssuer,
                TokenProblem::WrongAudience,
                TokenProblem::Expired,
                TokenProblem::NotYetValid,
            ]
            .map(DenialReason::InvalidToken),
        )
        .collect()
    }

    #[test]
    fn remedy_agrees_with_the_catalog() {
        for reason in every_reason() {
            let denial = Denial::new(reason.clone(), Timestamp::now());
            let curable = matches!(denial.remedy(), Remedy::SignIn | Remedy::StepUp(_));
            assert_eq!(curable, denial.reauthenticate(), "{reason:?}");
            assert_eq!(ErrorCode::from(&reason), denial.code());
            let text = denial.to_string();
            assert!(text.starts_with("session denied ("), "{text}");
        }
    }

    #[test]
    fn check_failed_is_critical_and_retryable() {
        let denial = Denial::new(DenialReason::CheckFailed, Timestamp::now());
        assert_eq!(denial.code(), ErrorCode::SessionCheckFailed);
        assert_eq!(denial.severity(), Severity::Critical);
        assert_eq!(denial.remedy(), Remedy::RetryLater);
        assert_eq!(denial.http_status(), 503);
    }
}
