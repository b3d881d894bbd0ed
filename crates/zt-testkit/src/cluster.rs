//! A throwaway PostgreSQL cluster from the machine's PostgreSQL install.

use std::path::{Path, PathBuf};

use crate::install::ClusterError;
use crate::server::{Server, Tools};

/// How the cluster trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=off`, `synchronous_commit=off`: fast, for tests. A clean stop
    /// and restart still keeps every committed row.
    Fast,
    /// The server's defaults, for benchmarks that compare commit latency.
    Default,
}

/// A PostgreSQL cluster in a temporary directory, on a free loopback port.
/// Dropping it stops the server and deletes the directory.
#[derive(Debug)]
pub struct PgCluster {
    server: Server,
    root_dir: PathBuf,
}

impl PgCluster {
    /// Finds the binaries, runs `initdb` (as the `postgres` user when running
    /// as root, because `initdb` refuses root) and starts the server.
    pub fn start(durability: Durability) -> Result<Self, ClusterError> {
        let tools = Tools::find()?;
        let root_dir = tools.make_root_dir("pg")?;
        let data_dir = root_dir.join("data");
        let mut server = Server::new(tools, data_dir, root_dir.clone(), root_dir.join("server.log"));
        if durability == Durability::Fast {
            server.set("fsync", "off");
            server.set("synchronous_commit", "off");
            server.set("full_page_writes", "off");
        }
        // From here on, dropping the cluster deletes the directory.
        let mut cluster = Self { server, root_dir };
        cluster.server.tools.initdb(&cluster.server.data_dir)?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Starts the server again after [`PgCluster::stop`], on the same port.
    pub fn start_server(&mut self) -> Result<(), ClusterError> {
        self.server.start(true)
    }

    /// Stops the server, keeping its data: the fault-injection tests stop and
    /// restart it under load.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        self.server.stop("fast")
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`).
    pub fn kill(&mut self) -> Result<(), ClusterError> {
        self.server.stop("immediate")
    }

    /// The URL of the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of another database on this cluster.
    pub fn url_for(&self, database: &str) -> String {
        self.server.url_for(database)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.server.running
    }

    /// The directory with the binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.server.tools.bin_dir
    }

    /// Runs `sql` on `database` with `psql` and returns what it printed:
    /// unaligned rows, one a line, columns separated by `|`. For tools that
    /// check a database without linking a PostgreSQL client library.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        self.server.psql(database, sql)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.root_dir);
    }
}
