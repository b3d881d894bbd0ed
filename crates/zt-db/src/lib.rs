//! The backend layer of zt: the one crate that knows which databases zt runs on.
//!
//! - [`DbConnection`]: the diesel connections zt works on, `SqliteConnection`
//!   and `PgConnection`, each behind its feature.
//! - [`AnyConnection`]: a borrowed connection of either backend. Crates with
//!   backend-specific SQL match on it once; it is `#[non_exhaustive]`, so a
//!   feature enabled elsewhere in the build never breaks their match.
//! - [`AsConnection`]: what zt's "inside your transaction" APIs take: the
//!   app's `&mut PgConnection`, its `r2d2::PooledConnection`, as they are.
//! - [`Pool`]: an r2d2 pool of either backend. Wrap the app's own pool with
//!   `Pool::from(app_pool)`, or build one from a URL with [`Pool::connect`];
//!   zt's own pools give SQLite WAL, a busy timeout, foreign keys and
//!   `synchronous = FULL` ([`SqliteCustomizer`]), and drop PostgreSQL
//!   connections that reported a closed connection, so a server restart heals
//!   without a ping on every checkout.
//! - [`ErrorClass`]: diesel and r2d2 errors, classified once for every crate.
//! - [`DatabaseUrl`]: `sqlite://path` or `postgres://...`, with the password
//!   hidden when displayed.
//! - [`MigrationSet`] and [`run_migrations`]: each zt crate embeds its own
//!   migrations; running them is serialized across processes, and zt records
//!   them in its own [`MIGRATIONS_TABLE`], `__zt_schema_migrations`, never in
//!   the app's `__diesel_schema_migrations`. The app's own diesel migrations
//!   (`run_pending_migrations`, `revert_last_migration`, `diesel migration
//!   revert`) run beside zt's as if zt were not there; rows an earlier zt
//!   release wrote into diesel's table move to zt's on the next run.
//!   [`MigrationSet::pending`] and [`MigrationSet::applied`] tell what is left,
//!   without changing anything.
//!
//! ```
//! use zt_db::{AnyConnection, Backend, Pool};
//!
//! let dir = std::env::temp_dir().join(format!("zt-db-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let pool = Pool::connect(&format!("sqlite://{}", dir.join("app.db").display()))?;
//! assert_eq!(pool.backend(), Backend::Sqlite);
//! let mut conn = pool.get()?;
//! assert!(matches!(conn.connection(), AnyConnection::Sqlite(_)));
//! # let _ = std::fs::remove_dir_all(&dir); // Best effort: pool threads may still be closing files.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `sqlite` (default): the bundled SQLite backend.
//! - `postgres`: the PostgreSQL backend, through libpq.
//!
//! With neither, the crate still classifies errors and parses URLs; opening
//! a pool reports the missing feature.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a backend only the error classes and URLs are live.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_variables, unreachable_code, clippy::needless_pass_by_value)
)]

mod classify;
mod connection;
mod error;
#[cfg(feature = "postgres")]
mod health;
mod migrate;
mod pool;
mod runtime_role;
mod url;

pub use classify::ErrorClass;
pub use connection::{AnyConnection, AsConnection, ConnectionVisitor, DbConnection};
pub use error::{Error, ErrorKind};
pub use migrate::{MIGRATIONS_TABLE, Migrate, MigrationSet, run_migrations};
#[cfg(feature = "postgres")]
pub use pool::PgPool;
pub use pool::{Manager, Pool, PoolConfig, PooledConnection, Synchronous};
#[cfg(feature = "sqlite")]
pub use pool::{SqliteCustomizer, SqlitePool};
pub use runtime_role::{RuntimePrivilege, RuntimeRole};
pub use url::{Backend, DatabaseUrl};

pub use diesel_migrations::{EmbeddedMigrations, embed_migrations};
