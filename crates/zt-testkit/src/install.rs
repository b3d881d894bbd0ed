//! Where PostgreSQL's server binaries are, and the error when they are not:
//! what both a cluster and a server need.

use std::path::{Path, PathBuf};

/// How to install PostgreSQL, for the error when it is missing.
pub const INSTALL_HINT: &str = "install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`; \
     macOS: `brew install postgresql@15`), put their bin directory on PATH or in ZT_PG_BIN, \
     or set DATABASE_URL to a server you have, or set ZT_SKIP_POSTGRES=1 to run the SQLite half only";

/// Why a cluster could not be started or stopped. The message carries the
/// whole story (the command, its output, the server log); it has no source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(String);

pub(crate) fn error(message: impl Into<String>) -> ClusterError {
    ClusterError(message.into())
}

/// The directory with `initdb` and `pg_ctl`: `ZT_PG_BIN`, then the newest
/// `/usr/lib/postgresql/*/bin`, then `PATH`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("ZT_PG_BIN").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_tools(dir))
}
