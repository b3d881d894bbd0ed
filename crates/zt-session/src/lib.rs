//! Zero-trust session revalidation: don't blindly trust the identity
//! provider's session.
//!
//! An identity provider says who signed in and when. It does not know that
//! the user was demoted a minute ago, disabled, deleted, or that an admin
//! revoked the session. ASP.NET Identity rechecks its security stamp every 30
//! minutes by default, which is its users' most common complaint; zt checks
//! on every sensitive operation, closing the revocation window to zero
//! seconds for the cost of one indexed database round trip.
//!
//! - [`Validator`]: checks [`zt_types::SessionClaims`] against a
//!   [`Requirement`] and the [`zt_types::RequestContext`], returning a
//!   [`ValidatedSession`] with the user's *current* role, or a [`Denial`].
//! - [`Requirement`]: minimum role (in a configurable [`RoleHierarchy`]),
//!   login freshness ([`Freshness`] presets for Clerk's strict, moderate and
//!   lax and NIST AAL2 and AAL3), MFA, absolute lifetime, [`BindingPolicy`],
//!   and whether the check is sensitive (never cached).
//! - [`Denial`]: a [`DenialReason`] that maps onto a `zt-error-codes`
//!   [`ErrorCode`](zt_error_codes::ErrorCode), with a [`Remedy`]: sign in
//!   again, step up, retry later, or nothing.
//! - [`UserDirectory`] and [`RevocationStore`]: where the user's state comes
//!   from. [`UserStore`] implements both on the reference `zt_users` and
//!   `zt_session_revocations` tables, with the admin operations (create, change
//!   role, disable, enable, delete, revoke one session or all), each an
//!   [`AdminChange`].
//! - [`Clock`]: the time source, [`SystemClock`] or, in tests, [`ManualClock`].
//! - [`AuditSink`], [`Denial::audit_event`] and [`AdminChange::audit_event`]:
//!   denials and admin operations as [`zt_types::AuditEvent`]s, without a
//!   dependency on zt-audit.
//! - [`MIGRATIONS`] and [`run_migrations`] create the reference tables; the
//!   SQL is in the workspace's `migrations/` and is embedded here.
//!
//! The usual use, in a server action:
//!
//! ```
//! use zt_session::{Denial, Remedy, Requirement, UserStore, Validator};
//! use zt_types::{RequestContext, Role, SessionClaims, SessionId, Timestamp, UserId};
//!
//! /// Deleting a project: admins only, signed in within the last 10 minutes.
//! fn delete_project(validator: &Validator, claims: &SessionClaims, request: &RequestContext) -> Result<String, Denial> {
//!     let requirement = Requirement::strict().min_role(Role::admin()).operation("DELETE_PROJECT");
//!     let session = validator.validate(claims, &requirement, request)?;
//!     // ... delete it, audit it as session.actor() ...
//!     Ok(format!("deleted by {} as {}", session.user_id(), session.role()))
//! }
//!
//! // At start-up: a pool, the tables, a validator.
//! let dir = std::env::temp_dir().join(format!("zt-session-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let store = UserStore::new(zt_db::Pool::connect(&format!("sqlite://{}", dir.join("app.db").display()))?);
//! store.migrate()?;
//! let validator = Validator::new(store.clone());
//! let alice = UserId::parse("alice")?;
//! store.create_user(&alice, None, &Role::admin())?;
//!
//! // At sign-in: the session carries the role and session version of that moment.
//! let state = store.user_state(&alice)?.ok_or("alice exists")?;
//! let claims = SessionClaims::new(
//!     SessionId::parse("sess_2abc")?, alice.clone(), state.role().clone(), state.session_version().unwrap_or_default(), Timestamp::now(),
//! );
//! let request = RequestContext::new().with_ip("203.0.113.7".parse()?).with_user_agent("Mozilla/5.0");
//! assert_eq!(delete_project(&validator, &claims, &request)?, "deleted by alice as admin");
//!
//! // An admin demotes alice. Her session fails its very next check.
//! store.change_role(&alice, &Role::user())?;
//! let denial = delete_project(&validator, &claims, &request).unwrap_err();
//! assert_eq!(denial.code().reason(), "SESSION_ROLE_CHANGED");
//! // Curable by signing in again: redirect to the login page, not a 500.
//! assert!(denial.reauthenticate());
//! assert_eq!(denial.remedy(), Remedy::SignIn);
//! assert_eq!(denial.http_status(), 401);
//! # let _ = std::fs::remove_dir_all(&dir); // Best effort: pool threads may still be closing files.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Answer a denial by its [`Remedy`]: [`Remedy::SignIn`] redirects to the
//! login page; [`Remedy::StepUp`] starts the provider's reverification with
//! the [`StepUp`]'s maximum age and factors, then retries; [`Remedy::RetryLater`]
//! (the store was down) and [`Remedy::None`] go through the error sanitizer
//! with [`Denial::code`], which gives the client a generic message and the
//! status. Never show the [`DenialReason`] to the client: telling a deleted
//! account from a revoked session helps an attacker.
//!
//! # Session claims from an identity provider
//!
//! [`zt_types::SessionClaims`] depends on no provider; its docs hold the
//! full mapping table. In short:
//!
//! | claim | OIDC ID token | Clerk session token |
//! |---|---|---|
//! | `authenticated_at` | `auth_time` | `iat` minus `fva[0]` minutes (first-factor age) |
//! | `factors` | `amr`, via [`AuthFactors::from_amr`](zt_types::AuthFactors::from_amr) | `fva[1] != -1` adds an OTP factor |
//! | `auth_level` | `acr`, or derived from `amr` | AAL2 when `fva[1] != -1`, else AAL1 |
//! | `role`, `session_version` | read from the [`UserStore`] (or your directory) at sign-in | the same; or custom session claims |
//! | `issued_at` | the session's creation time | the session's `created_at`, not the token's `iat` |
//!
//! Two points matter for these checks:
//!
//! - **Freshness** counts from `authenticated_at`, the last *full* login. A
//!   token refresh must not move it; a step-up login must. Clerk's `fva`
//!   gives minutes since each factor was verified, so a strict check
//!   (10 minutes) is cured by Clerk's reverification, which resets `fva`.
//! - **Absolute lifetime** counts from `issued_at`. Clerk reissues session
//!   tokens every 60 seconds and OIDC providers refresh ID tokens, so map
//!   `issued_at` to the session's creation (Clerk's session object, or your
//!   own session record) if you set [`Requirement::max_session_lifetime`].
//!
//! # One query per check
//!
//! The reference store reads the user's state and the session's revocation
//! with one statement on both backends:
//!
//! ```sql
//! SELECT u.role, u.session_version, u.disabled, u.deleted_at IS NOT NULL,
//!        EXISTS (SELECT 1 FROM zt_session_revocations r WHERE r.session_hash = $1)
//! FROM zt_users u WHERE u.id = $2
//! ```
//!
//! It is a primary-key lookup plus a primary-key probe, prepared once per
//! connection and cached by diesel, with no transaction around it and no
//! ping of the pooled connection: one round trip. A missing row means the
//! user is deleted. Sessions are stored only as the SHA-256 of their id
//! ([`zt_types::SessionHash`]).
//!
//! `session_version` works like ASP.NET Identity's security stamp: every
//! [`UserStore`] admin operation that changes the user bumps it, so every
//! session issued before fails its next check, wherever it runs.
//!
//! # Failing closed
//!
//! Any error reading the user's state denies with
//! [`DenialReason::CheckFailed`], code `SESSION_CHECK_FAILED`, severity
//! critical, HTTP 503; the store error is kept as the denial's source and
//! logged. How quickly that happens when the database is down is the pool's
//! connection timeout ([`zt_db::PoolConfig::connection_timeout`]). After a
//! PostgreSQL restart, zt-db's pool drops each connection that reported the
//! closed connection, so the checks heal on their own.
//!
//! # Caching
//!
//! [`Validator::cache`] keeps user state for a short TTL for requirements
//! marked non-sensitive (`Requirement::sensitive(false)`); sensitive ones,
//! the default, always read the store. A cached answer can be up to the TTL
//! old: a user demoted or revoked in that window still passes non-sensitive
//! checks until it expires. Use it for pages that run many cheap checks,
//! never for anything that changes data.
//!
//! # Feature flags
//!
//! - `sqlite` (default): the reference store on SQLite.
//! - `postgres`: the reference store on PostgreSQL.
//! - `store`: the reference store's code, [`UserStore`] and
//!   [`RevocationList`]; `sqlite` and `postgres` turn it on.
//!
//! An app that brings its own [`UserDirectory`] can turn every feature off
//! (`default-features = false`): the validator, the traits and the audit
//! adapter then need no database crate at all.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a backend, the reference store's queries and the registry's rows
// have no connection to run on.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports, unused_macros)
)]

mod audit;
mod cache;
mod denial;
mod directory;
mod error;
mod registry;
mod requirement;
mod role;
#[cfg(feature = "store")]
mod schema;
#[cfg(feature = "store")]
mod session_registry;
#[cfg(feature = "store")]
mod store;
#[cfg(feature = "jwt")]
mod token;
mod validator;

pub use audit::{AuditSink, SESSION_DENIED};
pub use denial::{BindingMismatch, Denial, DenialReason, Remedy, StepUp, TokenProblem};
pub use directory::{AdminChange, AdminOperation, RevocationStore, SessionState, UserDirectory, UserState};
pub use error::{Error, ErrorKind, Result};
pub use registry::{RegistryPolicy, SessionRecord};
pub use requirement::{BindingPolicy, Freshness, Requirement};
pub use role::{RoleChangePolicy, RoleHierarchy};
#[cfg(feature = "store")]
#[cfg_attr(docsrs, doc(cfg(feature = "store")))]
pub use session_registry::SessionRegistry;
#[cfg(feature = "store")]
#[cfg_attr(docsrs, doc(cfg(feature = "store")))]
pub use store::{RevocationList, Revocations, UserStore};
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use token::{Audience, ClaimLayout, JwksSource, KeySet, RoleClaim, TokenVerifier, VerifiedToken, VerifierBuilder};
pub use validator::{ValidatedSession, Validator};
pub use zt_types::{
    Clock, ManualClock, RequestContext, Role, SessionClaims, SessionHash, SessionId, SystemClock, Timestamp, UserId,
};

#[cfg(feature = "store")]
pub use migrations::{MIGRATIONS, REGISTRY_MIGRATIONS, run_migrations, run_registry_migrations};

#[cfg(feature = "store")]
mod migrations {
    use zt_db::{AsConnection, EmbeddedMigrations, MigrationSet, embed_migrations};

    static POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
    static SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    static POSTGRES_REGISTRY: EmbeddedMigrations = embed_migrations!("registry-migrations/postgres");
    static SQLITE_REGISTRY: EmbeddedMigrations = embed_migrations!("registry-migrations/sqlite");

    /// The reference tables' migrations (`zt_users`, `zt_session_revocations`,
    /// `zt_user_revocations`) for both backends.
    pub static MIGRATIONS: MigrationSet = MigrationSet {
        name: "zt-session",
        postgres: &POSTGRES_MIGRATIONS,
        sqlite: &SQLITE_MIGRATIONS,
    };

    /// The session registry's migrations (`zt_sessions`), for both backends:
    /// a set of its own, so that an app without the registry has no table for
    /// it. [`crate::SessionRegistry::migrate`] applies it.
    pub static REGISTRY_MIGRATIONS: MigrationSet = MigrationSet {
        name: "zt-session registry",
        postgres: &POSTGRES_REGISTRY,
        sqlite: &SQLITE_REGISTRY,
    };

    /// Applies the registry's pending migrations on `conn`; returns the
    /// versions applied.
    pub fn run_registry_migrations(conn: &mut impl AsConnection) -> Result<Vec<String>, zt_db::Error> {
        zt_db::run_migrations(conn, &REGISTRY_MIGRATIONS)
    }

    /// Applies the reference tables' pending migrations on `conn`, the app's
    /// own connection or pooled connection as it is; returns the versions applied.
    pub fn run_migrations(conn: &mut impl AsConnection) -> Result<Vec<String>, zt_db::Error> {
        zt_db::run_migrations(conn, &MIGRATIONS)
    }
}
