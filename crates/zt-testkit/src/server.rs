//! What every throwaway server shares: the binaries, running them as the
//! `postgres` user when we are root, and one server process on its data
//! directory and loopback port.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::install::{ClusterError, INSTALL_HINT, error, find_bin_dir};

/// The PostgreSQL binaries, and whether to run them as the `postgres` user
/// (`initdb` and `postgres` refuse root).
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub(crate) bin_dir: PathBuf,
    as_postgres_user: bool,
}

impl Tools {
    pub(crate) fn find() -> Result<Self, ClusterError> {
        let bin_dir =
            find_bin_dir().ok_or_else(|| error(format!("no PostgreSQL server binaries found: {INSTALL_HINT}")))?;
        Ok(Self {
            bin_dir,
            as_postgres_user: running_as_root(),
        })
    }

    /// A new temporary directory for servers, owned by the user they run as.
    pub(crate) fn make_root_dir(&self, kind: &str) -> Result<PathBuf, ClusterError> {
        let root_dir = std::env::temp_dir().join(format!("zt-{kind}-{}-{}", std::process::id(), unique_suffix()));
        std::fs::create_dir_all(&root_dir).map_err(|e| error(format!("cannot create {}: {e}", root_dir.display())))?;
        if self.as_postgres_user {
            self.run_checked(Command::new("chown").arg("postgres:postgres").arg(&root_dir))?;
        }
        Ok(root_dir)
    }

    /// `initdb` into `data_dir`: trust authentication (which also lets
    /// replication connections in from 127.0.0.1), the `postgres` superuser.
    pub(crate) fn initdb(&self, data_dir: &Path) -> Result<(), ClusterError> {
        let mut initdb = self.command("initdb");
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
        initdb.arg(data_dir);
        self.run_checked(&mut initdb).map(drop)
    }

    /// A command running `program` from the binaries, as the `postgres` user
    /// when we are root.
    pub(crate) fn command(&self, program: &str) -> Command {
        let program = self.bin_dir.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Runs `command`; its stdout on success, everything it said on failure.
    pub(crate) fn run_checked(&self, command: &mut Command) -> Result<String, ClusterError> {
        let output: io::Result<Output> = command.stdin(Stdio::null()).output();
        match output {
            Ok(output) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            Ok(output) => Err(error(format!(
                "{command:?} failed with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))),
            Err(e) => Err(error(format!("cannot run {command:?}: {e}"))),
        }
    }

    /// Runs one SQL statement with `psql` on the server at `port` and returns
    /// its output, unaligned, one row a line, `|` between columns.
    pub(crate) fn psql(&self, port: u16, database: &str, sql: &str) -> Result<String, ClusterError> {
        let mut psql = self.command("psql");
        psql.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={port} user=postgres dbname={database} connect_timeout=10"
            ))
            .arg("-c")
            .arg(sql);
        self.run_checked(&mut psql).map(|out| out.trim().to_owned())
    }
}

/// One server process: a data directory, its log, and a loopback port.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) tools: Tools,
    pub(crate) data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    pub(crate) port: u16,
    /// `-c name=value` settings on the server's command line. They are not in
    /// the data directory, so a base backup does not copy them.
    settings: Vec<String>,
    pub(crate) running: bool,
}

impl Server {
    pub(crate) fn new(tools: Tools, data_dir: PathBuf, socket_dir: PathBuf, log_file: PathBuf) -> Self {
        Self {
            tools,
            data_dir,
            socket_dir,
            log_file,
            port: 0,
            settings: Vec::new(),
            running: false,
        }
    }

    /// Adds a `-c name=value` setting for the next starts. `value` must not
    /// need shell quoting: `pg_ctl` runs the server through the shell.
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        self.settings.push(format!("-c {name}={value}"));
    }

    /// Starts the server, on its port if it has one; a port taken in the
    /// meantime is replaced by another free one when `may_move` allows.
    pub(crate) fn start(&mut self, may_move: bool) -> Result<(), ClusterError> {
        let mut last_error = None;
        for _ in 0..5 {
            if self.port == 0 || (may_move && last_error.is_some()) {
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
            self.socket_dir.display()
        );
        for setting in &self.settings {
            options.push(' ');
            options.push_str(setting);
        }
        let mut start = self.tools.command("pg_ctl");
        start.arg("-D").arg(&self.data_dir).arg("-l").arg(&self.log_file);
        start.args(["-w", "-t", "60", "-o", &options, "start"]);
        self.tools.run_checked(&mut start).map(drop).map_err(|e| {
            let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
            error(format!("{e}\nserver log:\n{log}"))
        })
    }

    /// `pg_ctl stop -m mode`: `fast` rolls back and disconnects clients and
    /// shuts down cleanly; `immediate` quits at once, as a crash would.
    pub(crate) fn stop(&mut self, mode: &str) -> Result<(), ClusterError> {
        if !self.running {
            return Ok(());
        }
        let mut stop = self.tools.command("pg_ctl");
        stop.arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "-m", mode, "stop"]);
        self.tools.run_checked(&mut stop)?;
        self.running = false;
        Ok(())
    }

    /// `psql` against this server.
    pub(crate) fn psql(&self, database: &str, sql: &str) -> Result<String, ClusterError> {
        self.tools.psql(self.port, database, sql)
    }

    /// Runs `sql` (one value) until it prints `expected`, for up to `timeout`.
    pub(crate) fn wait_for(&self, sql: &str, expected: &str, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.psql("postgres", sql) {
                Ok(out) if out == expected => return Ok(()),
                Ok(out) => last = out,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        Err(error(format!(
            "waited {timeout:?} on port {} for `{sql}` to give {expected:?}; last: {last:?}\nserver log:\n{log}",
            self.port
        )))
    }

    pub(crate) fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
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
