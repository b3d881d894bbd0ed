//! Database plumbing shared by the zt crates.
//!
//! - [`DatabaseUrl`]: `sqlite://path` or `postgres://...`, with the password
//!   hidden when displayed.
//! - [`Pool`]: an r2d2 pool for either backend, built by [`Pool::connect`]
//!   with a [`PoolConfig`]. SQLite connections get WAL, a busy timeout,
//!   foreign keys and `synchronous = FULL` through [`SqliteCustomizer`].
//!   PostgreSQL connections that report a closed connection are dropped when
//!   returned, so a server restart heals without a ping on every checkout.
//! - [`MigrationSet`] and [`Migrate`]: each zt crate embeds its own
//!   migrations; running them is serialized across processes.
//!
//! ```
//! use zt_db::{Backend, Pool};
//!
//! let dir = std::env::temp_dir().join(format!("zt-db-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let pool = Pool::connect(&format!("sqlite://{}", dir.join("app.db").display()))?;
//! assert_eq!(pool.backend(), Backend::Sqlite);
//! # let _ = std::fs::remove_dir_all(&dir); // Best effort: pool threads may still be closing files.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `sqlite` (default): the bundled SQLite backend.
//! - `postgres`: the PostgreSQL backend, through libpq.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("zt-db needs a backend: enable its `sqlite` or `postgres` feature");

mod connection;
mod error;
mod migrate;
mod pool;
mod url;

pub use connection::ConnectionRef;
pub use error::{Error, ErrorKind};
pub use migrate::{Migrate, MigrationSet};
#[cfg(feature = "postgres")]
pub use pool::PgPool;
pub use pool::{Manager, Pool, PoolConfig, Synchronous, ZtConnection};
#[cfg(feature = "sqlite")]
pub use pool::{SqliteCustomizer, SqlitePool};
pub use url::{Backend, DatabaseUrl};

pub use diesel_migrations::{EmbeddedMigrations, embed_migrations};
