//! A primary with a synchronous streaming standby, both throwaway servers on
//! loopback, for failover tests. See `docs/failover.md` for the settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::install::{ClusterError, error};
use crate::server::{Server, Tools};

/// The standby's name, in `application_name` and `synchronous_standby_names`.
pub const STANDBY_NAME: &str = "standby1";

/// How long starting, catching up and promoting may take.
const WAIT: Duration = Duration::from_secs(60);

/// A primary and a synchronous streaming standby on loopback.
///
/// The primary runs with `wal_level = replica`, `synchronous_commit = on` and
/// `synchronous_standby_names = 'standby1'`: a commit returns only once the
/// standby has flushed its WAL, so every acknowledged commit survives losing
/// the primary. The standby is a `pg_basebackup -R` of the primary that
/// streams from it as `application_name = standby1`.
///
/// The primary's settings are on its command line, not in its data directory,
/// so the standby does not inherit them: once promoted, it commits without
/// waiting for a standby of its own (it has none).
///
/// Dropping the pair stops both servers and deletes their directories.
///
/// ```no_run
/// let mut pair = zt_testkit::PgReplicaPair::start()?;
/// pair.create_database("app")?;
/// let url = pair.multi_host_url("app"); // writers follow the primary
/// pair.stop_primary_immediately()?;
/// pair.promote_standby()?;
/// # Ok::<(), zt_testkit::ClusterError>(())
/// ```
#[derive(Debug)]
pub struct PgReplicaPair {
    primary: Server,
    standby: Server,
    root_dir: PathBuf,
}

impl PgReplicaPair {
    /// Starts the primary, takes a base backup of it for the standby, starts
    /// the standby, and waits until the primary reports it `streaming` and
    /// `sync`.
    pub fn start() -> Result<Self, ClusterError> {
        let tools = Tools::find()?;
        let root_dir = tools.make_root_dir("pg-pair")?;
        let primary = Server::new(
            tools.clone(),
            root_dir.join("primary"),
            root_dir.clone(),
            root_dir.join("primary.log"),
        );
        let standby = Server::new(
            tools,
            root_dir.join("standby"),
            root_dir.clone(),
            root_dir.join("standby.log"),
        );
        // From here on, dropping the pair stops what runs and deletes the directory.
        let mut pair = Self {
            primary,
            standby,
            root_dir,
        };
        pair.start_primary()?;
        pair.start_standby()?;
        Ok(pair)
    }

    fn start_primary(&mut self) -> Result<(), ClusterError> {
        let primary = &mut self.primary;
        primary.tools.initdb(&primary.data_dir)?;
        // initdb's trust template already lets replication in from
        // 127.0.0.1; say so explicitly, as a real deployment must.
        let hba = primary.data_dir.join("pg_hba.conf");
        let mut rules =
            std::fs::read_to_string(&hba).map_err(|e| error(format!("cannot read {}: {e}", hba.display())))?;
        rules
            .push_str("\n# zt-testkit: the standby streams from here.\nhost replication postgres 127.0.0.1/32 trust\n");
        std::fs::write(&hba, rules).map_err(|e| error(format!("cannot write {}: {e}", hba.display())))?;
        primary.set("wal_level", "replica");
        primary.set("max_wal_senders", "10");
        primary.set("max_replication_slots", "10");
        primary.set("wal_keep_size", "64MB");
        primary.set("synchronous_commit", "on");
        primary.set("synchronous_standby_names", STANDBY_NAME);
        primary.start(true)
    }

    fn start_standby(&mut self) -> Result<(), ClusterError> {
        let primary_port = self.primary.port;
        let conninfo = format!("host=127.0.0.1 port={primary_port} user=postgres application_name={STANDBY_NAME}");
        let tools = &self.standby.tools;
        let mut backup = tools.command("pg_basebackup");
        backup.arg("-D").arg(&self.standby.data_dir).args([
            "-d",
            &conninfo,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]);
        tools.run_checked(&mut backup)?;
        // `-R` wrote standby.signal and a primary_conninfo; this later line
        // wins, and names the standby whatever pg_basebackup kept.
        let auto_conf = self.standby.data_dir.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto_conf)
            .map_err(|e| error(format!("cannot read {}: {e}", auto_conf.display())))?;
        conf.push_str(&format!("primary_conninfo = '{conninfo}'\n"));
        std::fs::write(&auto_conf, conf).map_err(|e| error(format!("cannot write {}: {e}", auto_conf.display())))?;
        self.standby.set("hot_standby", "on");
        self.standby.start(true)?;
        self.primary.wait_for(
            &format!(
                "SELECT state || ' ' || sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
            ),
            "streaming sync",
            WAIT,
        )
    }

    /// The primary's `postgres` database.
    pub fn primary_url(&self) -> String {
        self.primary.url_for("postgres")
    }

    /// A database on the primary.
    pub fn primary_url_for(&self, database: &str) -> String {
        self.primary.url_for(database)
    }

    /// The standby's `postgres` database (read-only until promoted).
    pub fn standby_url(&self) -> String {
        self.standby.url_for("postgres")
    }

    /// A database on the standby.
    pub fn standby_url_for(&self, database: &str) -> String {
        self.standby.url_for(database)
    }

    /// Both servers in one libpq URL, `target_session_attrs=read-write`:
    /// libpq tries them in order and keeps the first that accepts writes, so
    /// a new connection finds whichever is the primary now.
    pub fn multi_host_url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
            self.primary.port, self.standby.port
        )
    }

    /// The primary's port.
    pub fn primary_port(&self) -> u16 {
        self.primary.port
    }

    /// The standby's port.
    pub fn standby_port(&self) -> u16 {
        self.standby.port
    }

    /// Creates a database on the primary; it reaches the standby before this returns.
    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(error(format!(
                "database names here are letters, digits and _, not {name:?}"
            )));
        }
        self.primary
            .psql("postgres", &format!("CREATE DATABASE {name}"))
            .map(drop)
    }

    /// Runs `sql` on a database of the primary with `psql`; returns its
    /// unaligned output.
    pub fn psql_primary(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        self.primary.psql(database, sql)
    }

    /// Runs `sql` on a database of the standby with `psql`; returns its
    /// unaligned output.
    pub fn psql_standby(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        self.standby.psql(database, sql)
    }

    /// Stops the primary at once, as a crash would (`pg_ctl stop -m
    /// immediate`): its clients see their connections close mid-statement.
    pub fn stop_primary_immediately(&mut self) -> Result<(), ClusterError> {
        self.primary.stop("immediate")
    }

    /// Promotes the standby (`pg_ctl promote`) and waits until it accepts
    /// writes (`pg_is_in_recovery()` is false).
    pub fn promote_standby(&mut self) -> Result<(), ClusterError> {
        let tools = &self.standby.tools;
        let mut promote = tools.command("pg_ctl");
        promote
            .arg("-D")
            .arg(&self.standby.data_dir)
            .args(["-w", "-t", "60", "promote"]);
        tools.run_checked(&mut promote)?;
        self.standby.wait_for("SELECT pg_is_in_recovery()", "f", WAIT)
    }

    /// Whether the primary is running.
    pub fn primary_is_running(&self) -> bool {
        self.primary.running
    }
}

impl Drop for PgReplicaPair {
    fn drop(&mut self) {
        let _ = self.primary.stop("immediate");
        let _ = self.standby.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.root_dir);
    }
}
