//! The right thing, made the easy thing: run one sensitive action of a
//! backend the zero-trust way.
//!
//! [`Guard::run`] takes a [`GuardedAction`] (name, resource, and the session
//! [`Requirement`]), the session claims and the
//! request, and a body that does the work in a [`Tx`]. It:
//!
//! 1. revalidates the session against the requirement, with zt-session;
//! 2. runs the body in a transaction;
//! 3. records the audit event (success, failed or denied) in that same
//!    transaction, with zt-audit;
//! 4. on error, sanitizes it with zt-errors (the full chain is logged, and
//!    reported to a zt-monitoring monitor with the `monitoring` feature) and
//!    returns the client-safe RFC 9457 [`Problem`].
//!
//! Every crate it builds on stays usable on its own; this one only wires them.
//!
//! ```
//! use diesel::RunQueryDsl;
//! use zt_audit::{AuditLog, ChainKey};
//! use zt_guard::{GuardedAction, Guard};
//! use zt_session::{Requirement, UserStore, Validator};
//! use zt_types::{RequestContext, Role, SessionClaims, SessionId, Timestamp, UserId};
//!
//! # let dir = std::env::temp_dir().join(format!("zt-guard-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let pool = zt_db::Pool::connect(&format!("sqlite://{}", dir.join("app.db").display()))?;
//! let audit = AuditLog::new(pool.clone(), &ChainKey::load_or_create(&dir.join("chain.key"))?);
//! let users = UserStore::new(pool);
//! audit.migrate()?;
//! users.migrate()?;
//! let guard = Guard::new(Validator::new(users.clone()), audit.clone(), zt_errors::Sanitizer::new());
//!
//! // Alice signs in; her session carries her role and session version.
//! let alice = UserId::parse("alice")?;
//! users.create_user(&alice, None, &Role::user())?;
//! let version = users.user_state(&alice)?.ok_or("alice exists")?.session_version().unwrap_or_default();
//! let claims = SessionClaims::new(SessionId::parse("sess_1")?, alice, Role::user(), version, Timestamp::now());
//! let request = RequestContext::new().with_ip("203.0.113.7".parse()?);
//!
//! // Creating a project: any signed-in user, login within the hour.
//! let create = GuardedAction::new("CREATE_PROJECT", "projects", Requirement::moderate());
//! let answer = guard.run(&create, Some(&claims), &request, |tx| {
//!     tx.set_resource_id(7);
//!     let conn: &mut diesel::SqliteConnection = tx.connection()?;
//!     Ok(diesel::sql_query("SELECT 1").execute(conn)?)
//! });
//! assert_eq!(answer.ok(), Some(1));
//!
//! // Without a session, the client gets a problem with a reference id, and the attempt is audited.
//! let problem = guard.run(&create, None, &request, |_| Ok(())).unwrap_err();
//! assert_eq!(problem.status(), 401);
//! assert_eq!(audit.count(&zt_audit::AuditFilter::new().status(zt_types::AuditStatus::Denied))?, 1);
//! # let _ = std::fs::remove_dir_all(&dir); // Best effort: pool threads may still be closing files.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `sqlite` (default): actions on SQLite.
//! - `postgres`: actions on PostgreSQL.
//! - `monitoring`: [`Guard::with_monitor`] reports errors to a
//!   `zt_monitoring::Monitor` and times each action.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod guard;

pub use guard::{BoxError, Guard, GuardedAction, Tx};
pub use zt_audit::{AuditLog, ChainKey};
pub use zt_db::{AnyConnection, AsConnection, DbConnection, Pool};
pub use zt_errors::{Problem, Sanitizer};
pub use zt_session::{Requirement, Validator};
pub use zt_types::{RequestContext, SessionClaims};
