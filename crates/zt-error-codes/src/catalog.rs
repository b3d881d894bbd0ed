//! The catalog itself: one entry per code, in one table.
//!
//! Public titles and messages are what a client may see. They never name a
//! table, a query, a product, a host or a user, and several codes share the
//! same public text on purpose: a client must not be able to tell a deleted
//! account from a revoked session.

use crate::{Category, CodeInfo};
use zt_types::Severity;

/// Declares [`ErrorCode`] and its table together, so they cannot drift.
macro_rules! catalog {
    ($(
        $(#[$doc:meta])*
        $variant:ident {
            reason: $reason:literal,
            category: $category:ident,
            severity: $severity:ident,
            status: $status:literal,
            retryable: $retryable:literal,
            reauthenticate: $reauthenticate:literal,
            title: $title:expr,
            message: $message:expr,
            description: $description:literal,
            remediation: $remediation:literal $(,)?
        }
    )*) => {
        /// A stable error code. Each one has an entry in the catalog; see
        /// [`ErrorCode::info`]. Published codes are never removed or renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in catalog order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];
        }

        pub(crate) static CATALOG: &[CodeInfo] = &[ $(
            CodeInfo {
                code: ErrorCode::$variant,
                reason: $reason,
                category: Category::$category,
                severity: Severity::$severity,
                http_status: $status,
                retryable: $retryable,
                reauthenticate: $reauthenticate,
                public_title: $title,
                public_message: $message,
                description: $description,
                remediation: $remediation,
            },
        )* ];
    };
}

const SIGN_IN_AGAIN: &str = "Your session is no longer valid. Sign in again to continue.";

catalog! {
    /// The request carries no session.
    SessionMissing {
        reason: "SESSION_MISSING", category: Session, severity: Info, status: 401,
        retryable: false, reauthenticate: true,
        title: "Authentication required",
        message: "Sign in to continue.",
        description: "A sensitive operation was called without session claims.",
        remediation: "The user is not signed in, or the client dropped its session cookie or token. Ask them to sign in.",
    }
    /// The session is older than its absolute lifetime.
    SessionExpired {
        reason: "SESSION_EXPIRED", category: Session, severity: Info, status: 401,
        retryable: false, reauthenticate: true,
        title: "Authentication required",
        message: "Your session has expired. Sign in again to continue.",
        description: "The session is older than its absolute lifetime (the requirement's, or the session registry's), made no request for longer than the registry's inactivity timeout, or its identity provider's token has expired.",
        remediation: "Expected after long or idle sessions. The user signs in again; a client that keeps sending expired tokens is not refreshing them.",
    }
    /// The session was revoked, alone or with all of the user's sessions.
    SessionRevoked {
        reason: "SESSION_REVOKED", category: Session, severity: Warning, status: 401,
        retryable: false, reauthenticate: true,
        title: "Authentication required",
        message: SIGN_IN_AGAIN,
        description: "The session id's hash is in zt_session_revocations, the user's session_version moved past the session's, the session was signed out in the session registry, or (for claims without a version, such as a provider's token) the user changed after the session's login.",
        remediation: "Find who revoked it in the audit log (action REVOKE_SESSION or REVOKE_ALL_SESSIONS). If the user did not expect it, treat the account as possibly compromised.",
    }
    /// The user no longer exists.
    SessionUserDeleted {
        reason: "SESSION_USER_DELETED", category: Session, severity: Warning, status: 401,
        retryable: false, reauthenticate: false,
        title: "Authentication required",
        message: SIGN_IN_AGAIN,
        description: "The session's user is missing from the user store or marked deleted.",
        remediation: "The account was deleted; check the audit log for DELETE_USER. A request from a deleted account after that is worth a look.",
    }
    /// The user is disabled.
    SessionUserDisabled {
        reason: "SESSION_USER_DISABLED", category: Session, severity: Warning, status: 403,
        retryable: false, reauthenticate: false,
        title: "Access denied",
        message: "This account cannot perform this action. Contact support if you think this is a mistake.",
        description: "The session's user is marked disabled in the user store.",
        remediation: "Check the audit log for DISABLE_USER and the reason given. Re-enable only through the admin operation, which is audited.",
    }
    /// The user's role changed since the session was issued.
    SessionRoleChanged {
        reason: "SESSION_ROLE_CHANGED", category: Session, severity: Info, status: 401,
        retryable: false, reauthenticate: true,
        title: "Authentication required",
        message: "Your permissions have changed. Sign in again to continue.",
        description: "The role at issue differs from the user's current role; a promotion or demotion needs a new session.",
        remediation: "Expected after a role change (UPDATE_ROLE in the audit log). The user signs in again.",
    }
    /// The request does not match the client the session was bound to.
    SessionBindingMismatch {
        reason: "SESSION_BINDING_MISMATCH", category: Session, severity: Warning, status: 401,
        retryable: false, reauthenticate: true,
        title: "Authentication required",
        message: SIGN_IN_AGAIN,
        description: "Under a strict binding policy, the client IP or user-agent hash differs from the session's binding.",
        remediation: "Either the user moved networks (common on mobile) or the session was stolen. Compare the audit rows' client IPs for this session.",
    }
    /// The session claims are inconsistent, such as a login time in the future.
    SessionInvalid {
        reason: "SESSION_INVALID", category: Session, severity: Warning, status: 401,
        retryable: false, reauthenticate: true,
        title: "Authentication required",
        message: SIGN_IN_AGAIN,
        description: "The claims are inconsistent (authenticated_at or issued_at beyond the allowed clock skew in the future, a session version ahead of the user's), the identity provider's token does not verify (malformed, disallowed algorithm, unknown key, bad signature, wrong issuer or audience, not yet valid), or the session registry does not know the session.",
        remediation: "Check the server clock and the identity provider's clock, issuer and audience settings. Repeated bad signatures, `none` or HMAC algorithms from one client mean forged tokens. An unknown key after the provider rotated its keys heals at the next key-set fetch.",
    }
    /// The session could not be checked, so it was denied.
    SessionCheckFailed {
        reason: "SESSION_CHECK_FAILED", category: Session, severity: Critical, status: 503,
        retryable: true, reauthenticate: false,
        title: "Service unavailable",
        message: "The service is temporarily unavailable. Try again later.",
        description: "Reading the user's state, the revocation list or the session registry failed, or the identity provider's key set could not be fetched, or claims without a session version met a directory that keeps no instant to compare them with; the check failed closed and denied the request.",
        remediation: "The user store, its database or the key set's URL is down or slow, or the directory is misconfigured. Check the logged cause under this reference id and the database's health.",
    }
    /// The operation needs a more recent login.
    AuthReauthenticationRequired {
        reason: "AUTH_REAUTHENTICATION_REQUIRED", category: Authorization, severity: Info, status: 401,
        retryable: false, reauthenticate: true,
        title: "Re-authentication required",
        message: "Confirm your identity to continue.",
        description: "The last full login is older than the requirement's maximum age for this operation.",
        remediation: "Expected for destructive actions. The client should send the user through re-authentication and retry.",
    }
    /// The operation needs multi-factor authentication.
    AuthMfaRequired {
        reason: "AUTH_MFA_REQUIRED", category: Authorization, severity: Info, status: 401,
        retryable: false, reauthenticate: true,
        title: "Additional verification required",
        message: "Complete multi-factor verification to continue.",
        description: "The requirement asks for multi-factor authentication and the session's factors are single-factor.",
        remediation: "The user needs to enroll in or complete multi-factor authentication.",
    }
    /// The user's role is below the operation's minimum.
    AuthInsufficientRole {
        reason: "AUTH_INSUFFICIENT_ROLE", category: Authorization, severity: Warning, status: 403,
        retryable: false, reauthenticate: false,
        title: "Access denied",
        message: "You do not have permission to perform this action.",
        description: "The user's current role is below the requirement's minimum role in the configured hierarchy.",
        remediation: "Confirm the user's role in the audit log (UPDATE_ROLE). Repeated attempts may be probing.",
    }
    /// The request failed validation.
    RequestValidationFailed {
        reason: "REQUEST_VALIDATION_FAILED", category: Request, severity: Info, status: 422,
        retryable: false, reauthenticate: false,
        title: "Invalid request",
        message: "Some of the information you sent is not valid.",
        description: "Input failed validation; field messages marked safe may be shown to the client.",
        remediation: "Show the user the field messages. The logged chain has the full reason.",
    }
    /// The request is larger than allowed.
    RequestTooLarge {
        reason: "REQUEST_TOO_LARGE", category: Request, severity: Info, status: 413,
        retryable: false, reauthenticate: false,
        title: "Request too large",
        message: "The request is larger than allowed.",
        description: "A field or body is over its bound.",
        remediation: "The logged chain names the field and its bound.",
    }
    /// Too many requests.
    RateLimited {
        reason: "RATE_LIMITED", category: Request, severity: Warning, status: 429,
        retryable: true, reauthenticate: false,
        title: "Too many requests",
        message: "Too many requests. Try again later.",
        description: "The caller exceeded a rate limit.",
        remediation: "Expected under abuse. Persistent limits for one legitimate user may need a higher quota.",
    }
    /// The resource does not exist.
    ResourceNotFound {
        reason: "RESOURCE_NOT_FOUND", category: Resource, severity: Info, status: 404,
        retryable: false, reauthenticate: false,
        title: "Not found",
        message: "The requested resource was not found.",
        description: "A lookup found no row, such as diesel's NotFound.",
        remediation: "Check the resource id the user gave. A burst of these from one client may be enumeration.",
    }
    /// The request conflicts with existing data, such as a duplicate.
    ResourceConflict {
        reason: "RESOURCE_CONFLICT", category: Resource, severity: Info, status: 409,
        retryable: false, reauthenticate: false,
        title: "Conflict",
        message: "This request conflicts with existing data.",
        description: "A unique constraint was violated: the row already exists.",
        remediation: "Usually a duplicate submission. The logged chain names the constraint.",
    }
    /// The database cannot be reached.
    DbUnavailable {
        reason: "DB_UNAVAILABLE", category: Database, severity: Error, status: 503,
        retryable: true, reauthenticate: false,
        title: "Service unavailable",
        message: "The service is temporarily unavailable. Try again later.",
        description: "No database connection could be obtained or the connection broke: pool timeout, refused connection, closed connection.",
        remediation: "Check that the database is up and reachable, and the pool size against its connection limit.",
    }
    /// A database operation took too long.
    DbTimeout {
        reason: "DB_TIMEOUT", category: Database, severity: Error, status: 503,
        retryable: true, reauthenticate: false,
        title: "Service unavailable",
        message: "The service is temporarily unavailable. Try again later.",
        description: "A statement timed out or waited too long for a lock (PostgreSQL statement timeout, SQLite busy).",
        remediation: "Look for long transactions or lock contention at the logged time.",
    }
    /// A database constraint other than uniqueness was violated.
    DbConstraintViolation {
        reason: "DB_CONSTRAINT_VIOLATION", category: Database, severity: Warning, status: 409,
        retryable: false, reauthenticate: false,
        title: "Conflict",
        message: "This request conflicts with existing data.",
        description: "A foreign-key, check or not-null constraint was violated.",
        remediation: "Either the input references something missing, or something still depends on what was deleted. The logged chain names the constraint.",
    }
    /// A transaction lost a serialization race and may be retried.
    DbSerializationFailure {
        reason: "DB_SERIALIZATION_FAILURE", category: Database, severity: Warning, status: 503,
        retryable: true, reauthenticate: false,
        title: "Service busy",
        message: "The request could not be completed right now. Try again.",
        description: "The database aborted a transaction for serialization or deadlock; retrying it is safe.",
        remediation: "Occasional cases are normal under concurrency. Many at once point to a hot row.",
    }
    /// A database operation failed for another reason.
    DbQueryFailed {
        reason: "DB_QUERY_FAILED", category: Database, severity: Error, status: 500,
        retryable: false, reauthenticate: false,
        title: "Internal error",
        message: "Something went wrong on our side. Quote the reference id if you contact support.",
        description: "A query failed for a reason other than those above, such as a missing table or a type mismatch.",
        remediation: "Read the logged chain: usually a bug or a migration that was not run.",
    }
    /// An audit event could not be written, so the action did not happen.
    AuditWriteFailed {
        reason: "AUDIT_WRITE_FAILED", category: Audit, severity: Critical, status: 500,
        retryable: false, reauthenticate: false,
        title: "Internal error",
        message: "Something went wrong on our side. Quote the reference id if you contact support.",
        description: "Writing the audit event failed, so the audited action was rolled back or refused.",
        remediation: "Check the database and the logged chain at once: nothing audited can happen while this lasts.",
    }
    /// The audit pipeline could not spool an event to local disk.
    AuditSpoolFailed {
        reason: "AUDIT_SPOOL_FAILED", category: Audit, severity: Critical, status: 500,
        retryable: false, reauthenticate: false,
        title: "Internal error",
        message: "Something went wrong on our side. Quote the reference id if you contact support.",
        description: "The database was unreachable and the local spool file could not be written (disk full, permissions).",
        remediation: "Free disk space or fix the spool directory's permissions; events submitted meanwhile were refused, not lost.",
    }
    /// Audit log verification found tampering or a broken chain.
    AuditChainInvalid {
        reason: "AUDIT_CHAIN_INVALID", category: Audit, severity: Critical, status: 500,
        retryable: false, reauthenticate: false,
        title: "Internal error",
        message: "Something went wrong on our side. Quote the reference id if you contact support.",
        description: "zt audit verify found a modified, deleted, inserted or reordered row, or a checkpoint mismatch.",
        remediation: "Treat as a security incident: preserve the database and checkpoints, and run zt audit verify to name the first bad row.",
    }
    /// Anything else.
    Internal {
        reason: "INTERNAL", category: Internal, severity: Error, status: 500,
        retryable: false, reauthenticate: false,
        title: "Internal error",
        message: "Something went wrong on our side. Quote the reference id if you contact support.",
        description: "An error that no more specific code describes.",
        remediation: "Read the logged chain under the reference id; consider giving this failure its own code.",
    }
}
