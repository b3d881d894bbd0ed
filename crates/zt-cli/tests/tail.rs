//! `zt audit tail`, run as a process while rows are written: on SQLite and
//! PostgreSQL, across a restart of a private PostgreSQL server, with
//! `--verify` on a tampered log, into a closed pipe, and shipping syslog to a
//! real rsyslog over TCP and over RELP, across a restart of rsyslog.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zt_audit::{AuditLog, AuditRecord, ChainKey};
use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_testkit::{Backend, TestDatabase};
use zt_types::{Actor, AuditEvent, AuditStatus, RequestContext, RequestId, UserId};

const KEY_HEX: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

fn key() -> ChainKey {
    ChainKey::parse(KEY_HEX).unwrap()
}

fn log_on(url: &str) -> AuditLog {
    let url: DatabaseUrl = url.parse().unwrap();
    let pool = Pool::connect_with(
        &url,
        &PoolConfig::new().max_size(2).connection_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let log = AuditLog::new(pool, &key());
    log.migrate().unwrap();
    log
}

/// Event `i`, with characters that syslog must escape in its user agent and
/// metadata.
fn event(i: u32) -> AuditEvent {
    let context = RequestContext::new()
        .with_ip(format!("198.51.100.{}", i % 250).parse().unwrap())
        .with_user_agent("agent \"quoted\" [bracketed] back\\slash ünïcode")
        .with_request_id(RequestId::parse(format!("req-{i}")).unwrap());
    AuditEvent::builder(
        Actor::user(UserId::parse((i % 5).to_string()).unwrap(), None),
        "SHIP",
        "rows",
    )
    .resource_id(i)
    .metadata(&serde_json::json!({ "i": i, "tricky": "a\"b]c\\d" }))
    .context(&context)
    .status(if i.is_multiple_of(3) {
        AuditStatus::Denied
    } else {
        AuditStatus::Success
    })
    .build()
    .unwrap()
}

/// Records event `i`, retrying while the database is down: the event id
/// makes a retry after an unclear failure safe.
fn record_retrying(log: &AuditLog, i: u32) {
    let event = event(i);
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Err(error) = log.record(&event) {
        assert!(Instant::now() < deadline, "cannot write row {i}: {error}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `zt audit tail`, its stdout lines on a channel and its stderr kept.
struct Tail {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Tail {
    fn spawn(url: &str, args: &[&str]) -> Self {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("zt"))
            .args(["audit", "tail", "--interval", "50ms"])
            .args(args)
            .env("DATABASE_URL", url)
            .env("ZT_AUDIT_KEY", KEY_HEX)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let kept = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                kept.lock().unwrap().push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Self {
            child,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Waits until `tail` has read where it starts.
    fn started(self) -> Self {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stderr().contains("following the audit log after row") {
            assert!(Instant::now() < deadline, "tail did not start: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    /// The ids of the next `count` lines, waiting up to `timeout` in all.
    fn ids(&self, count: usize, timeout: Duration) -> Vec<i64> {
        let deadline = Instant::now() + timeout;
        let mut ids = Vec::with_capacity(count);
        while ids.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let row: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                    ids.push(row["id"].as_i64().unwrap());
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("got {} of {count} rows: {ids:?}; stderr: {}", ids.len(), self.stderr())
                }
            }
        }
        ids
    }

    /// Whether another line arrives within `wait`.
    fn quiet_for(&self, wait: Duration) -> bool {
        matches!(
            self.lines.recv_timeout(wait),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected)
        )
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit on its own.
    fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // All of stderr is in once its reader saw the end.
                if let Some(reader) = self.stderr_reader.take() {
                    reader.join().unwrap();
                }
                return status.code();
            }
            assert!(Instant::now() < deadline, "zt audit tail did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn range(from: i64, to: i64) -> Vec<i64> {
    (from..=to).collect()
}

/// Rows written from another thread while `tail` runs appear once each, in
/// order; the default start is the current end, `--from-id` resumes.
fn follows_rows_as_they_commit(db: &TestDatabase) {
    let log = log_on(db.url());
    for i in 0..5 {
        log.record(&event(i)).unwrap();
    }
    let from_end = Tail::spawn(db.url(), &[]).started();
    let everything = Tail::spawn(db.url(), &["--from-id", "0", "--batch", "7"]);
    let resumed = Tail::spawn(db.url(), &["--from-id", "3", "--verify"]);
    assert_eq!(everything.ids(5, Duration::from_secs(30)), range(1, 5));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 5..80 {
                log.record(&event(i)).unwrap();
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
        })
    };
    writer.join().unwrap();
    assert_eq!(from_end.ids(75, Duration::from_secs(60)), range(6, 80));
    assert_eq!(everything.ids(75, Duration::from_secs(60)), range(6, 80));
    assert_eq!(resumed.ids(77, Duration::from_secs(60)), range(4, 80));
    assert!(everything.quiet_for(Duration::from_millis(300)), "no row twice");

    // The records are `zt audit export`'s, field for field.
    let line = {
        let tail = Tail::spawn(db.url(), &["--from-id", "79"]);
        tail.lines.recv_timeout(Duration::from_secs(30)).unwrap()
    };
    let exported = log.rows_after(&log.cursor_after_id(79).unwrap(), 1).unwrap();
    assert_eq!(line, serde_json::to_string(&exported[0]).unwrap());

    let mut past_end = Tail::spawn(db.url(), &["--from-id", "81"]);
    assert_eq!(past_end.exit_code(Duration::from_secs(30)), Some(2));
    assert!(past_end.stderr().contains("past the end"), "{}", past_end.stderr());
}

/// `--verify` ships the good rows, then stops with exit 1 at the bad one.
fn verify_stops_at_the_first_bad_row(db: &TestDatabase) {
    let log = log_on(db.url());
    for i in 0..10 {
        log.record(&event(i)).unwrap();
    }
    let sql = |sql: &str| {
        use diesel::{Connection, RunQueryDsl};
        match db.backend() {
            Backend::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(db.url().trim_start_matches("sqlite://")).unwrap();
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            }
            Backend::Postgres => {
                let mut conn = diesel::PgConnection::establish(db.url()).unwrap();
                diesel::sql_query(sql).execute(&mut conn).unwrap();
            }
        }
    };
    match db.backend() {
        Backend::Sqlite => sql("DROP TRIGGER audit_logs_no_update"),
        Backend::Postgres => sql("ALTER TABLE audit_logs DISABLE TRIGGER USER"),
    }
    sql("UPDATE audit_logs SET user_id = '4' WHERE id = 7");
    let mut tail = Tail::spawn(db.url(), &["--from-id", "2", "--verify"]);
    assert_eq!(tail.ids(4, Duration::from_secs(30)), range(3, 6));
    assert_eq!(tail.exit_code(Duration::from_secs(30)), Some(1));
    let stderr = tail.stderr();
    assert!(stderr.contains(" position 7: modified"), "{stderr}");
    assert!(tail.quiet_for(Duration::from_millis(100)), "the bad row is not shipped");

    // Without --verify the rows flow; the key is not needed.
    let plain = Tail::spawn(db.url(), &["--from-id", "0"]);
    assert_eq!(plain.ids(10, Duration::from_secs(30)), range(1, 10));
    // --verify without a key is a usage error.
    let output = assert_cmd::Command::cargo_bin("zt")
        .unwrap()
        .args(["audit", "tail", "--verify", "--database-url", db.url()])
        .env_remove("ZT_AUDIT_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// A reader that goes away ends `tail` quietly, with exit 0.
fn closed_stdout_ends_quietly(db: &TestDatabase) {
    let log = log_on(db.url());
    log.record(&event(0)).unwrap();
    let mut tail = Tail::spawn(db.url(), &["--from-id", "0"]);
    assert_eq!(tail.ids(1, Duration::from_secs(30)), [1]);
    // Drop the reading end: the channel's reader thread stops at its next line.
    let Tail { lines, .. } = &mut tail;
    let (_, closed) = channel();
    drop(std::mem::replace(lines, closed));
    for i in 1..20 {
        log.record(&event(i)).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        if tail.child.try_wait().unwrap().is_some() {
            break;
        }
    }
    assert_eq!(tail.exit_code(Duration::from_secs(30)), Some(0), "{}", tail.stderr());
    let stderr = tail.stderr();
    assert_eq!(stderr.lines().count(), 1, "a closed pipe is not an error: {stderr}");
}

zt_testkit::backend_tests!(
    always:
    follows_rows_as_they_commit,
    verify_stops_at_the_first_bad_row,
    closed_stdout_ends_quietly,
);

/// A PostgreSQL restart under a running `tail`: it reconnects and every row
/// arrives exactly once, in order.
#[test]
fn survives_a_postgres_restart() {
    if zt_testkit::find_bin_dir().is_none() && zt_testkit::skip_postgres() {
        eprintln!("SKIPPED: no PostgreSQL server binaries and ZT_SKIP_POSTGRES=1");
        return;
    }
    let mut cluster = zt_testkit::PgCluster::start(zt_testkit::Durability::Fast).unwrap();
    let url = cluster.url();
    let log = log_on(&url);
    let tail = Tail::spawn(&url, &["--from-id", "0"]);
    let total = 120u32;
    let written = Arc::new(Mutex::new(0u32));
    let writer = {
        let (log, written) = (log.clone(), Arc::clone(&written));
        std::thread::spawn(move || {
            for i in 0..total {
                record_retrying(&log, i);
                *written.lock().unwrap() = i + 1;
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let first = tail.ids(30, Duration::from_secs(60));
    assert_eq!(first, range(1, 30));
    cluster.stop().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.start_server().unwrap();
    assert_eq!(cluster.url(), url, "the server came back on its port");
    writer.join().unwrap();
    assert_eq!(*written.lock().unwrap(), total);
    let rest = tail.ids(90, Duration::from_secs(120));
    assert_eq!(rest, range(31, 120), "stderr: {}", tail.stderr());
    assert!(tail.quiet_for(Duration::from_millis(500)), "no row twice");
    let stderr = tail.stderr();
    assert!(
        stderr.contains("unavailable") && stderr.contains("is back"),
        "the outage is reported: {stderr}"
    );
    assert!(!stderr.contains("postgres@"), "{stderr}");
}

/// SQLite rows written by another process (`zt`'s own writer is this test
/// process; the tail is a process of its own) while `tail` polls.
#[test]
fn follows_sqlite_rows_from_another_process() {
    let db = TestDatabase::sqlite();
    let log = log_on(db.url());
    let tail = Tail::spawn(db.url(), &["--from-id", "0", "--batch", "3"]);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (log, stop) = (log.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                for i in 0..40 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    log.record(&event(w * 1000 + i)).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(tail.ids(120, Duration::from_secs(60)), range(1, 120));
    assert!(tail.quiet_for(Duration::from_millis(300)));
}

// ---------------------------------------------------------------------------
// Syslog to a real rsyslog.

/// The rsyslogd binary, or `None` (the caller skips, loudly) when it is not
/// installed and this is not CI. Under CI a missing rsyslogd fails the test.
fn rsyslogd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("rsyslogd"))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "rsyslogd is not installed, and CI is set: install rsyslog and rsyslog-relp (.ci/run does)"
        );
        eprintln!("SKIPPED: rsyslog not installed (apt-get install rsyslog rsyslog-relp)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An rsyslogd in the foreground, with a configuration of this test's: a
/// RELP and a TCP input on loopback, the structured data parsed into JSON
/// (mmpstrucdata) and written one line per message, as in
/// docs/log-shipping.md.
struct Rsyslog {
    binary: PathBuf,
    dir: PathBuf,
    relp_port: u16,
    tcp_port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    fn start(binary: PathBuf, dir: &Path) -> Self {
        let mut daemon = Self {
            binary,
            dir: dir.to_owned(),
            relp_port: free_port(),
            tcp_port: free_port(),
            child: None,
        };
        let config = format!(
            r#"global(maxMessageSize="64k" workDirectory="{dir}")
module(load="imrelp")
module(load="imtcp")
module(load="mmpstrucdata")
template(name="ztJson" type="string" string="%$!rfc5424-sd!zt@32473%\n")
ruleset(name="zt" queue.type="Direct") {{
  action(type="mmpstrucdata")
  action(type="omfile" file="{dir}/audit.jsonl" template="ztJson")
}}
input(type="imrelp" address="127.0.0.1" port="{relp}" ruleset="zt")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="zt")
"#,
            dir = dir.display(),
            relp = daemon.relp_port,
            tcp = daemon.tcp_port,
        );
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
        daemon.run();
        daemon
    }

    fn run(&mut self) {
        let child = Command::new(&self.binary)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslogd.stderr")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [self.relp_port, self.tcp_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "rsyslogd did not listen: {}",
                    std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Kills the daemon at once (SIGKILL), as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The rows written to the output file so far, as parsed by rsyslog.
    fn rows(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let text = std::fs::read_to_string(self.dir.join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Waits until the output holds every id in `1..=count`.
    fn wait_for(&self, count: i64, timeout: Duration) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.rows();
            let mut seen: Vec<i64> = rows.iter().map(id_of).collect();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() >= usize::try_from(count).unwrap() {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslog holds {} of {count} rows",
                seen.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

fn id_of(row: &serde_json::Map<String, serde_json::Value>) -> i64 {
    row["id"].as_str().unwrap().parse().unwrap()
}

/// What the structured data must say for `record`: every field, as
/// `zt audit export` names them, with control characters neutralized.
fn assert_same(row: &serde_json::Map<String, serde_json::Value>, record: &AuditRecord) {
    let exported = serde_json::to_value(record).unwrap();
    for (name, value) in exported.as_object().unwrap() {
        let expected = match value {
            serde_json::Value::Null => {
                assert!(!row.contains_key(name), "{name} is absent");
                continue;
            }
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Object(_) => record.metadata.clone(),
            other => other.to_string(),
        };
        let expected = zt_types::neutralize(&expected).into_owned();
        assert_eq!(
            row[name].as_str(),
            Some(expected.as_str()),
            "field {name} of row {}",
            record.id
        );
    }
}

/// The ids in the order rsyslog wrote them, with the repeats a RELP resend
/// may cause removed: what must equal `1..=count`.
fn first_occurrences(rows: &[serde_json::Map<String, serde_json::Value>]) -> Vec<i64> {
    let mut seen = std::collections::HashSet::new();
    rows.iter().map(id_of).filter(|id| seen.insert(*id)).collect()
}

#[test]
fn ships_syslog_over_tcp_to_rsyslog() {
    let Some(binary) = rsyslogd() else { return };
    let db = TestDatabase::sqlite();
    let log = log_on(db.url());
    for i in 0..50 {
        log.record(&event(i)).unwrap();
    }
    let daemon = Rsyslog::start(binary, &db.scratch_dir());
    let address = format!("127.0.0.1:{}", daemon.tcp_port);
    let tail = Tail::spawn(
        db.url(),
        &["--from-id", "0", "--format", "syslog", "--syslog-tcp", &address],
    );
    let rows = daemon.wait_for(50, Duration::from_secs(60));
    assert_eq!(
        rows.iter().map(id_of).collect::<Vec<_>>(),
        range(1, 50),
        "in order, once each"
    );
    for (row, record) in rows
        .iter()
        .zip(log.rows_after(&zt_audit::FollowCursor::start(), 50).unwrap())
    {
        assert_same(row, &record);
    }
    assert!(tail.quiet_for(Duration::from_millis(10)), "nothing on stdout");
}

/// RELP across a crash of rsyslog: rows written before, during and after all
/// reach the output file, in order; a row whose acknowledgement the crash
/// swallowed may be written twice, never lost.
#[test]
fn ships_syslog_over_relp_across_an_rsyslog_restart() {
    let Some(binary) = rsyslogd() else { return };
    let db = TestDatabase::sqlite();
    let log = log_on(db.url());
    let mut daemon = Rsyslog::start(binary, &db.scratch_dir());
    let address = format!("127.0.0.1:{}", daemon.relp_port);
    let tail = Tail::spawn(
        db.url(),
        &[
            "--from-id",
            "0",
            "--format",
            "syslog",
            "--syslog-relp",
            &address,
            "--batch",
            "10",
        ],
    );
    let total = 300u32;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..total {
                log.record(&event(i)).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    daemon.wait_for(60, Duration::from_secs(60));
    daemon.kill();
    std::thread::sleep(Duration::from_millis(1000));
    daemon.run();
    writer.join().unwrap();
    let rows = daemon.wait_for(i64::from(total), Duration::from_secs(120));
    let ids = first_occurrences(&rows);
    assert_eq!(ids, range(1, i64::from(total)), "stderr: {}", tail.stderr());
    let records = log.rows_after(&zt_audit::FollowCursor::start(), total).unwrap();
    for row in &rows {
        assert_same(row, &records[usize::try_from(id_of(row) - 1).unwrap()]);
    }
    let stderr = tail.stderr();
    assert!(stderr.contains("RELP collector unavailable"), "{stderr}");
    eprintln!(
        "RELP across a crash: {} rows, {} lines written ({} resent)",
        total,
        rows.len(),
        rows.len() - ids.len()
    );
}
