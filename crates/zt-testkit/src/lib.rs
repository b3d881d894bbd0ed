//! Test support for the zt workspace, not published.
//!
//! - [`PgCluster`]: a throwaway PostgreSQL server from the machine's install,
//!   which `cargo xtask test` and the fault-injection tests start.
//! - [`PgReplicaPair`]: a primary with a synchronous streaming standby, for
//!   failover tests: stop the primary, promote the standby.
//! - [`TestDatabase`]: a fresh database per test on SQLite or PostgreSQL, and
//!   [`backend_tests!`] to run one test body on both.
//!
//! ```no_run
//! let cluster = zt_testkit::PgCluster::start(zt_testkit::Durability::Fast)?;
//! println!("{}", cluster.url());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Test support: a failed set-up should fail the test loudly.
#![allow(clippy::expect_used, clippy::print_stderr)]

mod cluster;
#[cfg(feature = "databases")]
mod databases;
mod install;
mod replica;
mod server;

pub use cluster::{Durability, PgCluster};
#[cfg(feature = "databases")]
pub use databases::{Backend, DATABASE_URL, TestDatabase, skip_postgres};
pub use install::{ClusterError, INSTALL_HINT, find_bin_dir};
pub use replica::{PgReplicaPair, STANDBY_NAME};
