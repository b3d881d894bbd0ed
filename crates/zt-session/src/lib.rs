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
//! - [`TokenVerifier`] (feature `jwt`): verifies an identity provider's JWT
//!   (Clerk, Auth0, Ory, Keycloak, any OIDC provider) against its JWKS and
//!   maps the claims onto [`SessionClaims`], with a
//!   [`ClaimLayout`] preset per provider.
//! - [`SessionRegistry`] (opt-in, its own [`REGISTRY_MIGRATIONS`]): one row per
//!   session for inactivity timeouts ([`RegistryPolicy`] presets for NIST
//!   AAL2 and AAL3), an absolute lifetime, "list my sessions", "sign out this
//!   device" and "sign out all other devices", and client changes that may
//!   mean a stolen session.
//! - [`Clock`]: the time source, [`SystemClock`] or, in tests, [`ManualClock`].
//! - [`AuditSink`], [`Denial::audit_event`] and [`AdminChange::audit_event`]:
//!   denials and admin operations as [`zt_types::AuditEvent`]s, without a
//!   dependency on zt-audit.
//! - [`MIGRATIONS`] and [`run_migrations`] create the reference tables,
//!   [`REGISTRY_MIGRATIONS`] and [`run_registry_migrations`] the registry's;
//!   the SQL is in the workspace's `migrations/` and is embedded here.
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
//! [`zt_types::SessionClaims`] depends on no provider. With the `jwt`
//! feature, a [`TokenVerifier`] builds them from the provider's token:
//!
#![cfg_attr(feature = "jwt", doc = "```")]
#![cfg_attr(not(feature = "jwt"), doc = "```ignore")]
//! use zt_session::{ClaimLayout, JwksSource, Requirement, TokenVerifier, UserStore, Validator};
//! use zt_types::RequestContext;
//!
//! # fn check(store: UserStore, bearer: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = TokenVerifier::builder(
//!     "https://your-tenant.eu.auth0.com/",
//!     JwksSource::url("https://your-tenant.eu.auth0.com/.well-known/jwks.json")?,
//! )
//! .audience(["https://api.example.com"])
//! .layout(ClaimLayout::auth0("https://example.com"))
//! .build()?;
//! let validator = Validator::new(store);
//! // Per request: the bearer token, verified, then checked against the database.
//! let session = validator.validate_token(&verifier, bearer, &Requirement::strict(), &RequestContext::new())?;
//! # let _ = session; Ok(()) }
//! ```
//!
//! The key set comes from a string, a file or an HTTPS URL; a fetched one is
//! cached (10 minutes) and refetched when a token names an unknown `kid`
//! (at most every 30 seconds), so key rotation needs no restart. The
//! algorithm is the key's, never the token's: `alg: none`, HMAC and a
//! mismatch with the key are refused. `iss`, `aud` (or Clerk's `azp`),
//! `exp`, `nbf` and `iat` are checked with a leeway of at most 5 minutes,
//! and tokens are bounded (8 KiB by default). A token that does not verify
//! is a [`DenialReason::InvalidToken`] naming its [`TokenProblem`]:
//! `SESSION_EXPIRED` when expired, `SESSION_INVALID` otherwise; a key set
//! that cannot be fetched denies every token with `SESSION_CHECK_FAILED`.
//!
//! Where each provider puts what zt needs ([`ClaimLayout`]):
//!
//! | | OIDC | Clerk | Auth0 | Keycloak | Ory |
//! |---|---|---|---|---|---|
//! | user id | `sub` | `sub` | `sub` | `sub` | `sub` |
//! | session id | `sid` | `sid` | `sid` | `sid`, `session_state` | `sid` |
//! | login (`authenticated_at`) | `auth_time`, else `iat` | `iat` − `fva[0]` minutes | `auth_time` | `auth_time` | `auth_time` |
//! | factors, level | `amr`, `acr` | `fva[1] != -1`: OTP, AAL2 | `amr`, `acr` | `amr`, `acr` | `amr`, `acr` (`aal2`) |
//! | role at issue | none | `metadata.role`, `o.rol`, `org_role` | `<namespace>/roles` | `realm_access.roles` | `ext.role`, `metadata_public.role` |
//!
//! A third-party token carries no zt session version, so its claims have
//! none ([`SessionClaims::from_provider`](zt_types::SessionClaims::from_provider)).
//! The check then compares the claims' `issued_at` with the instant the
//! user last changed: the reference store keeps it in `zt_users.valid_after`,
//! which every role change, disable, enable, delete and revoke-all moves
//! forward ([`UserState::with_version_changed_at`]). For this to survive
//! token refreshes (Clerk reissues its token every minute, OIDC providers
//! refresh theirs), a provider token's `issued_at` is its *login* time, not
//! its `iat`: a refreshed token of a session from before the change is still
//! denied, and signing in again cures it. Tokens carry whole seconds, so a
//! login in the same second as a change counts as before it: fail closed.
//! Claims that do carry a version (your own sessions, or a provider token
//! with a custom claim, [`ClaimLayout::version_claim`]) are judged by the
//! version alone, which is exact. A directory that keeps a version but no
//! instant cannot check versionless claims, and denies them
//! ([`DenialReason::Unverifiable`], `SESSION_CHECK_FAILED`).
//!
//! Two points matter for these checks:
//!
//! - **Freshness** counts from `authenticated_at`, the last *full* login. A
//!   token refresh must not move it; a step-up login must. Clerk's `fva`
//!   gives minutes since each factor was verified, so a strict check
//!   (10 minutes) is cured by Clerk's reverification, which resets `fva`.
//! - **Absolute lifetime** ([`Requirement::max_session_lifetime`]) counts
//!   from `issued_at`; the registry's counts from the session's creation.
//!
//! # The session registry
//!
//! [`SessionRegistry`] keeps one row per session in `zt_sessions`: its
//! hash, user, creation and last-seen times, the client IP and user agent at
//! creation and as last seen, how often the client changed, and whether it
//! was signed out. It is opt-in: its table is in [`REGISTRY_MIGRATIONS`], a
//! set apart from [`MIGRATIONS`], so an app that does not use it has no
//! table for it. With [`Validator::with_registry`], every check also:
//!
//! - denies a session that is signed out, unknown (or adopts it, for
//!   provider sessions, [`RegistryPolicy::adopt_unknown`]), past its
//!   absolute lifetime or idle past its inactivity timeout
//!   ([`RegistryPolicy::aal2`]: 1 hour idle, 24 hours in all;
//!   [`RegistryPolicy::aal3`]: 15 minutes, 12 hours; NIST SP 800-63B-4
//!   §2.2.3 and §2.3.3);
//! - compares the client with the one at creation and, by the requirement's
//!   [`BindingPolicy`], logs a difference, asks for a step-up login, or denies;
//! - records a change of client at once, and the last-seen time at most once
//!   a minute: most checks are the one `SELECT` below and write nothing.
//!
//! "List my sessions" is [`SessionRegistry::list`]; "sign out this device",
//! [`SessionRegistry::sign_out`]; "sign out all other devices",
//! [`SessionRegistry::sign_out_others`]. Each has an `_in` form that runs in
//! the caller's transaction.
//!
//! # One query per check
//!
//! The reference store reads the user's state and the session's revocation
//! with one statement on both backends:
//!
//! ```sql
//! SELECT u.role, u.session_version, u.valid_after, u.disabled, u.deleted_at IS NOT NULL,
//!        EXISTS (SELECT 1 FROM zt_session_revocations r WHERE r.session_hash = $1)
//! FROM zt_users u WHERE u.id = $2
//! ```
//!
//! It is a primary-key lookup plus a primary-key probe, prepared once per
//! connection and cached by diesel, with no transaction around it and no
//! ping of the pooled connection: one round trip. A missing row means the
//! user is deleted. Sessions are stored only as the SHA-256 of their id
//! ([`zt_types::SessionHash`]). With a registry from
//! [`UserStore::registry`], the same statement also reads the session's row
//! (`LEFT JOIN zt_sessions s ON s.session_hash = $1`): still one round trip.
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
//! never for anything that changes data. A validator with a registry reads
//! on every check, so that activity is seen.
//!
//! # Feature flags
//!
//! - `sqlite` (default): the reference store on SQLite.
//! - `postgres`: the reference store on PostgreSQL.
//! - `store`: the reference store's code, [`UserStore`],
//!   [`RevocationList`] and [`SessionRegistry`]; `sqlite` and `postgres`
//!   turn it on.
//! - `jwt`: [`TokenVerifier`], with `jsonwebtoken` (RustCrypto, no C
//!   toolchain) and, for key sets fetched over HTTPS, `ureq` with rustls and
//!   the webpki roots.
//!
//! An app that brings its own [`UserDirectory`] can turn every feature off
//! (`default-features = false`): the validator, the traits and the audit
//! adapter then need no database crate at all.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate docs name the `jwt` feature's items, which docs built without it lack.
#![cfg_attr(not(feature = "jwt"), allow(rustdoc::broken_intra_doc_links))]
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
#[cfg(feature = "store")]
pub use zt_db::{AnyConnection, AsConnection, DbConnection, Pool};
pub use zt_types::{
    Clock, FieldError, ManualClock, RequestContext, Role, SessionClaims, SessionHash, SessionId, SystemClock,
    Timestamp, UserId,
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
        runtime_privileges: &[
            zt_db::RuntimePrivilege {
                kind: "TABLE",
                object: "zt_users",
                privileges: "SELECT, INSERT, UPDATE",
            },
            // Expired revocations are deleted by `prune_revocations`.
            zt_db::RuntimePrivilege {
                kind: "TABLE",
                object: "zt_session_revocations",
                privileges: "SELECT, INSERT, DELETE",
            },
            zt_db::RuntimePrivilege {
                kind: "TABLE",
                object: "zt_user_revocations",
                privileges: "SELECT, INSERT, UPDATE",
            },
        ],
    };

    /// The session registry's migrations (`zt_sessions`), for both backends:
    /// a set of its own, so that an app without the registry has no table for
    /// it. [`crate::SessionRegistry::migrate`] applies it.
    pub static REGISTRY_MIGRATIONS: MigrationSet = MigrationSet {
        name: "zt-session registry",
        postgres: &POSTGRES_REGISTRY,
        sqlite: &SQLITE_REGISTRY,
        // Sessions are touched, signed out and, once stale, deleted.
        runtime_privileges: &[zt_db::RuntimePrivilege {
            kind: "TABLE",
            object: "zt_sessions",
            privileges: "SELECT, INSERT, UPDATE, DELETE",
        }],
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
