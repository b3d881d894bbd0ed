//! A throwaway PostgreSQL cluster from the machine's PostgreSQL install.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// How to install PostgreSQL, for the error when it is missing.
pub const INSTALL_HINT: &str = "install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install postgresql`; \
     macOS: `brew install postgresql@15`), put their bin directory on PATH or in ZT_PG_BIN, \
     or set DATABASE_URL to a server you have, or set ZT_SKIP_POSTGRES=1 to run the SQLite half only";

/// Why a cluster could not be started or stopped. The message carries the
/// whole story (the command, its output, the server log); it has no source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(String);

fn error(message: impl Into<String>) -> ClusterError {
    ClusterError(message.into())
}

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
    bin_dir: PathBuf,
    data_dir: PathBuf,
    root_dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    running: bool,
    durability: Durability,
}

impl PgCluster {
    /// Finds the binaries, runs `initdb` (as the `postgres` user when running
    /// as root, because `initdb` refuses root) and starts the server.
    pub fn start(durability: Durability) -> Result<Self, ClusterError> {
        let bin_dir =
            find_bin_dir().ok_or_else(|| error(format!("no PostgreSQL server binaries found: {INSTALL_HINT}")))?;
        let as_postgres_user = running_as_root();
        let root_dir = std::env::temp_dir().join(format!("zt-pg-{}-{}", std::process::id(), unique_suffix()));
        let data_dir = root_dir.join("data");
        std::fs::create_dir_all(&root_dir).map_err(|e| error(format!("cannot create {}: {e}", root_dir.display())))?;
        let mut cluster = Self {
            bin_dir,
            data_dir,
            root_dir,
            port: 0,
            as_postgres_user,
            running: false,
            durability,
        };
        if as_postgres_user {
            cluster.run_checked(Command::new("chown").arg("postgres:postgres").arg(&cluster.root_dir))?;
        }
        let mut initdb = cluster.pg_command("initdb");
        initdb.args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
        ]);
        initdb.arg(&cluster.data_dir);
        cluster.run_checked(&mut initdb)?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Starts the server again after [`PgCluster::stop`], on the same port.
    pub fn start_server(&mut self) -> Result<(), ClusterError> {
        let mut last_error = None;
        for _ in 0..5 {
            if self.port == 0 || last_error.is_some() {
                self.port = free_port()?;
            }
            match self.try_start() {
                Ok(()) => {
                    self.running = true;
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| error("postgres did not start")))
    }

    fn try_start(&self) -> Result<(), ClusterError> {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=400",
            self.port,
            self.root_dir.display()
        );
        if self.durability == Durability::Fast {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let mut start = self.pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.root_dir.join("server.log"));
        start.args(["-w", "-t", "60", "-o", &options, "start"]);
        self.run_checked(&mut start).map_err(|e| {
            let log = std::fs::read_to_string(self.root_dir.join("server.log")).unwrap_or_default();
            error(format!("{e}\nserver log:\n{log}"))
        })
    }

    /// Stops the server, keeping its data: the fault-injection tests stop and
    /// restart it under load.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        self.stop_with("fast")
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`).
    pub fn kill(&mut self) -> Result<(), ClusterError> {
        self.stop_with("immediate")
    }

    fn stop_with(&mut self, mode: &str) -> Result<(), ClusterError> {
        if !self.running {
            return Ok(());
        }
        let mut stop = self.pg_command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-m", mode, "stop"]);
        self.run_checked(&mut stop)?;
        self.running = false;
        Ok(())
    }

    /// The URL of the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of another database on this cluster.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The directory with the binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin_dir.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run_checked(&self, command: &mut Command) -> Result<(), ClusterError> {
        let output: io::Result<Output> = command.stdin(Stdio::null()).output();
        match output {
            Ok(output) if output.status.success() => Ok(()),
            Ok(output) => Err(error(format!(
                "{command:?} failed with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))),
            Err(e) => Err(error(format!("cannot run {command:?}: {e}"))),
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.root_dir);
    }
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

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, ClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| error(format!("no free loopback port: {e}")))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| error(e.to_string()))
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}
