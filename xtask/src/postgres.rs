//! The PostgreSQL server the tests use: `DATABASE_URL` when set, otherwise a
//! throwaway cluster that is torn down when this value is dropped, also on
//! failure and on Ctrl-C.

use zt_testkit::{Durability, INSTALL_HINT, PgCluster, find_bin_dir};

/// The tests need a `postgres://` URL in `DATABASE_URL`. The message never
/// quotes it: it may hold a password.
fn check_test_url(url: &str) -> Result<(), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(())
    } else {
        Err(
            "DATABASE_URL must be a postgres:// URL for the tests (its value is not shown: it may hold a password)"
                .into(),
        )
    }
}

/// The server for one run, if any.
pub(crate) struct TestServer {
    /// The URL to export as `DATABASE_URL`.
    pub(crate) url: Option<String>,
    /// The cluster we started, stopped and deleted on drop.
    pub(crate) cluster: Option<PgCluster>,
}

impl TestServer {
    pub(crate) fn start(durability: Durability) -> Result<Self, String> {
        if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|url| !url.is_empty()) {
            check_test_url(&url)?;
            eprintln!("xtask: using the PostgreSQL server in DATABASE_URL");
            return Ok(Self {
                url: Some(url),
                cluster: None,
            });
        }
        if std::env::var("ZT_SKIP_POSTGRES").is_ok_and(|value| value == "1") {
            eprintln!("xtask: ZT_SKIP_POSTGRES=1: SKIPPING every PostgreSQL test; only SQLite is tested");
            return Ok(Self {
                url: None,
                cluster: None,
            });
        }
        if find_bin_dir().is_none() {
            return Err(format!("no PostgreSQL server binaries found: {INSTALL_HINT}"));
        }
        let cluster = PgCluster::start(durability).map_err(|e| format!("cannot start a throwaway PostgreSQL: {e}"))?;
        eprintln!("xtask: started a throwaway PostgreSQL on 127.0.0.1:{}", cluster.port());
        Ok(Self {
            url: Some(cluster.url()),
            cluster: Some(cluster),
        })
    }

    /// Sets the variables the tests read on `command`.
    pub(crate) fn export(&self, command: &mut std::process::Command) {
        if let Some(url) = &self.url {
            command.env("DATABASE_URL", url);
        }
        if let Some(cluster) = &self.cluster {
            command.env("ZT_PG_BIN", cluster.bin_dir());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_test_url_is_refused_unseen() {
        assert!(check_test_url("postgres://u:hunter2@db/x").is_ok());
        for url in ["host=db password=hunter2", "mysql://u:hunter2@db/x", "hunter2"] {
            let error = check_test_url(url).unwrap_err();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
