//! What every command that opens the log needs: its database, on a pool
//! that suits a short-lived command, and the chain key.

use std::time::Duration;

use anyhow::{Result, anyhow};
use zt_audit::ChainKey;
use zt_db::{DatabaseUrl, Pool, PoolConfig};

use crate::KeyArgs;

/// The pool of the database at `url`. A SQLite file must exist.
pub(crate) fn connect(url: &str) -> Result<Pool> {
    let url: DatabaseUrl = url.parse().map_err(|e| anyhow!("{e}"))?;
    if let Some(path) = url.sqlite_path() {
        // Opening SQLite creates a missing file; an investigator's typo should not.
        if !path.exists() {
            return Err(anyhow!("no SQLite database at {}", path.display()));
        }
    }
    Pool::connect_with(
        &url,
        &cli_pool().max_size(2).connection_timeout(Duration::from_secs(10)),
    )
    .map_err(|e| anyhow!("{e}"))
}

/// A pool that opens connections only when asked. r2d2 would otherwise open
/// its idle connection on a background thread, and a command that ends while
/// libpq is still connecting there can abort in libpq's Kerberos set-up as
/// the process exits.
pub(crate) fn cli_pool() -> PoolConfig {
    PoolConfig::new().min_idle(Some(0))
}

pub(crate) fn chain_key(key: &KeyArgs) -> Result<ChainKey> {
    match &key.key_file {
        Some(path) => ChainKey::from_file(path),
        None => ChainKey::from_env(),
    }
    .map_err(|e| anyhow!("{e}; pass --key-file FILE or set {}", zt_audit::KEY_ENV))
}
