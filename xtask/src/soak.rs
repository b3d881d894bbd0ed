//! `cargo xtask soak [--minutes N]`: the example HTTP service under mixed
//! load for N minutes (default 10) on a throwaway PostgreSQL that is
//! restarted every few minutes (once, at 30 s, in a 1-minute run).
//!
//! A few client threads send plain HTTP/1.1 over keep-alive connections:
//! sign-ins (which read the user), project creation, renames and deletions,
//! an admin action, newsletter signups (some duplicates), denials, validation
//! failures, missing projects and unknown routes. Every request carries its
//! own `X-Request-Id`, which the service stores in the request's audit row.
//!
//! A request is *acknowledged* when the service answered with the status of
//! an audited outcome: a success, or a failure that the guard audits and
//! commits (a validation error in the action, a missing project, a duplicate
//! signup). Each acknowledged request must have exactly one audit row with
//! its request id afterwards; a missing one is a lost audit row. Denials are
//! audited too, but best effort (the denial stands if its row cannot be
//! written), so they are reported, not required.
//!
//! Reported, and written into the soak section of `BENCHMARKS.md`: p50 and
//! p99 latency per minute, the service's resident memory (`VmRSS`) over the
//! run, the audit rows lost (must be 0), duplicated (must be 0), and whether
//! the chain verifies (`zt audit verify`). Exits non-zero otherwise.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zt_testkit::{Durability, PgCluster};

use crate::shell::{cargo, root, run as run_step, target_dir};

const USAGE: &str = "usage: cargo xtask soak [--minutes N]";

/// The soak section's markers in `BENCHMARKS.md`; the benchmark writer
/// (`bench/src/report.rs`) keeps what is between them.
const SOAK_BEGIN: &str = "<!-- soak: begin, written by `cargo xtask soak` -->";
const SOAK_END: &str = "<!-- soak: end -->";

/// Client threads.
const CLIENTS: usize = 4;
/// The most requests one client sends, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: u64 = 5_000_000;
/// How long PostgreSQL stays down at each restart.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// The chain key of the soak's throwaway database.
const CHAIN_KEY: &str = "5a17c0de5a17c0de5a17c0de5a17c0de5a17c0de5a17c0de5a17c0de5a17c0de";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let minutes = match args {
        [] => 10,
        [flag, value] if flag == "--minutes" => value
            .parse::<u64>()
            .ok()
            .filter(|&minutes| minutes >= 1)
            .ok_or_else(|| format!("--minutes takes a whole number of minutes, at least 1\n{USAGE}"))?,
        _ => return Err(USAGE.into()),
    };
    run_step(
        "build the HTTP service and the zt command (release)",
        cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "zt-examples",
            "--example",
            "http_service",
            "-p",
            "zt-cli",
            "--bin",
            "zt",
        ]),
    )?;
    let soak = Soak::new(minutes)?;
    let report = soak.run()?;
    let markdown = report.markdown(minutes);
    println!("{markdown}");
    let path = root().join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, with_soak_section(&existing, &markdown))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("xtask: wrote the soak section of BENCHMARKS.md");
    report.verdict()
}

/// `existing` with its soak section replaced by `section`, or with `section`
/// appended if it has none.
fn with_soak_section(existing: &str, section: &str) -> String {
    let block = format!("{SOAK_BEGIN}\n{}\n{SOAK_END}", section.trim_end());
    if let Some(start) = existing.find(SOAK_BEGIN)
        && let Some(len) = existing[start..].find(SOAK_END)
    {
        let end = start + len + SOAK_END.len();
        return format!("{}{block}{}", &existing[..start], &existing[end..]);
    }
    let mut out = existing.trim_end().to_owned();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(&block);
    out.push('\n');
    out
}

/// The running parts: the database server, the service and its files.
struct Soak {
    duration: Duration,
    restart_every: Duration,
    cluster: PgCluster,
    database_url: String,
    work_dir: PathBuf,
}

impl Soak {
    fn new(minutes: u64) -> Result<Self, String> {
        let duration = Duration::from_secs(minutes * 60);
        let restart_every = (duration / 2).min(Duration::from_secs(180));
        let cluster =
            PgCluster::start(Durability::Default).map_err(|e| format!("cannot start a throwaway PostgreSQL: {e}"))?;
        cluster
            .psql("postgres", "CREATE DATABASE zt_soak")
            .map_err(|e| e.to_string())?;
        let database_url = cluster.url_for("zt_soak");
        let work_dir = std::env::temp_dir().join(format!("zt-soak-{}", std::process::id()));
        std::fs::create_dir_all(&work_dir).map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
        eprintln!(
            "xtask: soak for {minutes} min on PostgreSQL at 127.0.0.1:{}, restarted every {} s",
            cluster.port(),
            restart_every.as_secs()
        );
        Ok(Self {
            duration,
            restart_every,
            cluster,
            database_url,
            work_dir,
        })
    }

    fn run(mut self) -> Result<Report, String> {
        let service = Service::start(&self.database_url, &self.work_dir)?;
        eprintln!("xtask: the service listens on {}", service.address);
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let mut restarts = Vec::new();
        let mut rss = Vec::new();
        let mut restart_error = None;
        let outcomes: Vec<Vec<Outcome>> = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|index| {
                    let (stop, address) = (&stop, service.address);
                    scope.spawn(move || Client::new(index, address, started).drive(stop))
                })
                .collect();
            // The main thread samples memory once a minute (and after a short
            // warm-up) and restarts PostgreSQL on schedule.
            let warm_up = Duration::from_secs(10);
            let mut next_sample = warm_up;
            let mut next_restart = self.restart_every;
            while started.elapsed() < self.duration {
                let now = started.elapsed();
                if now >= next_sample {
                    rss.push((now, service.rss_kib()));
                    next_sample = if next_sample == warm_up {
                        Duration::from_secs(60)
                    } else {
                        next_sample + Duration::from_secs(60)
                    };
                }
                if now >= next_restart && now + Duration::from_secs(10) < self.duration && restart_error.is_none() {
                    eprintln!("xtask: restarting PostgreSQL at {} s", now.as_secs());
                    match self.restart() {
                        Ok(()) => restarts.push(now),
                        Err(e) => restart_error = Some(e),
                    }
                    next_restart += self.restart_every;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            rss.push((started.elapsed(), service.rss_kib()));
            stop.store(true, Ordering::Release);
            clients
                .into_iter()
                .map(|client| client.join().unwrap_or_default())
                .collect()
        });
        if let Some(e) = restart_error {
            return Err(format!("restarting PostgreSQL failed: {e}"));
        }
        let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
        let rows = self.audit_rows()?;
        let verified = self.verify();
        drop(service);
        Ok(Report::new(self.duration, &outcomes, &rows, rss, restarts, verified))
    }

    /// Stops PostgreSQL cleanly, keeps it down a moment, starts it again on
    /// the same port.
    fn restart(&mut self) -> Result<(), String> {
        let port = self.cluster.port();
        self.cluster.stop().map_err(|e| e.to_string())?;
        std::thread::sleep(DOWN_FOR);
        self.cluster.start_server().map_err(|e| e.to_string())?;
        if self.cluster.port() != port {
            return Err(format!(
                "PostgreSQL came back on port {} instead of {port}; the service cannot follow",
                self.cluster.port()
            ));
        }
        Ok(())
    }

    /// The number of audit rows per soak request id.
    fn audit_rows(&self) -> Result<HashMap<String, u64>, String> {
        let out = self
            .cluster
            .psql(
                "zt_soak",
                "SELECT request_id, count(*) FROM audit_logs WHERE request_id LIKE 'soak-%' GROUP BY request_id",
            )
            .map_err(|e| format!("cannot read the audit rows: {e}"))?;
        out.lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (id, count) = line
                    .split_once('|')
                    .ok_or_else(|| format!("unexpected psql line {line:?}"))?;
                let count = count.parse().map_err(|_| format!("unexpected psql line {line:?}"))?;
                Ok((id.to_owned(), count))
            })
            .collect()
    }

    /// `zt audit verify` on the soak's database.
    fn verify(&self) -> Result<(), String> {
        let output = Command::new(target_dir().join("release/zt"))
            .args(["audit", "verify", "--database-url", &self.database_url])
            .env("ZT_AUDIT_KEY", CHAIN_KEY)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run zt audit verify: {e}"))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "zt audit verify exited with {}: {}",
                output.status,
                said.trim()
            ))
        }
    }
}

impl Drop for Soak {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

/// The example HTTP service as a child process. Dropping it kills it.
struct Service {
    child: Child,
    address: SocketAddr,
}

impl Service {
    fn start(database_url: &str, work_dir: &Path) -> Result<Self, String> {
        let log_path = work_dir.join("service.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let binary = target_dir().join("release/examples/http_service");
        let child = Command::new(&binary)
            .args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .env("ZT_AUDIT_KEY", CHAIN_KEY)
            .current_dir(work_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut service = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(address) = text
                .lines()
                .find_map(|line| line.strip_prefix("listening on http://"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|address| address.parse().ok())
            {
                service.address = address;
                return Ok(service);
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                return Err(format!("the service exited with {status}:\n{text}"));
            }
            if Instant::now() > deadline {
                return Err(format!("the service did not start listening within 60 s:\n{text}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The service's resident memory in KiB, from `/proc/PID/status`.
    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    /// `POST /login` as alice: reads the user's state.
    SignIn,
    CreateProject,
    RenameProject,
    DeleteProject,
    /// An admin revokes the sessions of `carol`, whom the example service
    /// does not have: an admin action audited as failed (404).
    AdminAction,
    Newsletter,
    NewsletterDuplicate,
    /// A user calls an admin route: denied.
    Denial,
    /// An empty project name: a validation failure inside the action.
    InvalidName,
    /// Deleting a project that does not exist.
    MissingProject,
    /// A route that does not exist: not an action, not audited.
    UnknownRoute,
}

impl Op {
    /// Picks an operation, weighted, from a random number.
    fn pick(random: u64) -> Self {
        const WEIGHTS: [(Op, u64); 11] = [
            (Op::SignIn, 10),
            (Op::CreateProject, 20),
            (Op::RenameProject, 15),
            (Op::DeleteProject, 8),
            (Op::AdminAction, 5),
            (Op::Newsletter, 8),
            (Op::NewsletterDuplicate, 2),
            (Op::Denial, 10),
            (Op::InvalidName, 8),
            (Op::MissingProject, 7),
            (Op::UnknownRoute, 7),
        ];
        let total: u64 = WEIGHTS.iter().map(|(_, weight)| weight).sum();
        let mut roll = random % total;
        for (op, weight) in WEIGHTS {
            if roll < weight {
                return op;
            }
            roll -= weight;
        }
        Op::SignIn
    }

    /// The statuses that mean the guard audited the request and committed
    /// its row; empty for requests whose row is not promised.
    fn audited_statuses(self) -> &'static [u16] {
        match self {
            Op::CreateProject => &[201, 422],
            Op::RenameProject => &[200, 404, 422],
            Op::DeleteProject => &[204, 404],
            Op::AdminAction => &[204, 404],
            Op::Newsletter | Op::NewsletterDuplicate => &[201, 409],
            Op::InvalidName => &[422],
            Op::MissingProject => &[404],
            Op::SignIn | Op::Denial | Op::UnknownRoute => &[],
        }
    }
}

/// One request's result.
#[derive(Debug, Clone)]
struct Outcome {
    op: Op,
    request_id: String,
    /// Since the start of the soak.
    at: Duration,
    latency: Duration,
    /// The HTTP status, or `None` when no answer came.
    status: Option<u16>,
    /// No answer within the client's 30 s read timeout: the service hung.
    stalled: bool,
}

impl Outcome {
    fn acknowledged(&self) -> bool {
        self.status
            .is_some_and(|status| self.op.audited_statuses().contains(&status))
    }
}

/// One client thread: its connection, sessions and projects.
struct Client {
    index: usize,
    address: SocketAddr,
    started: Instant,
    connection: Option<BufReader<TcpStream>>,
    random: u64,
    sequence: u64,
    user_token: Option<String>,
    admin_token: Option<String>,
    signed_in_at: Instant,
    projects: Vec<u64>,
    outcomes: Vec<Outcome>,
}

impl Client {
    fn new(index: usize, address: SocketAddr, started: Instant) -> Self {
        Self {
            index,
            address,
            started,
            connection: None,
            random: 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            sequence: 0,
            user_token: None,
            admin_token: None,
            signed_in_at: started,
            projects: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn drive(mut self, stop: &AtomicBool) -> Vec<Outcome> {
        while !stop.load(Ordering::Acquire) && self.sequence < MAX_REQUESTS_PER_CLIENT {
            // Fresh sessions every minute: destructive actions need a login
            // at most 10 minutes old.
            if self.user_token.is_none()
                || self.admin_token.is_none()
                || self.signed_in_at.elapsed() > Duration::from_secs(60)
            {
                self.user_token = self.sign_in("alice");
                self.admin_token = self.sign_in("bob");
                self.signed_in_at = Instant::now();
                if self.user_token.is_none() || self.admin_token.is_none() {
                    // The database may be restarting.
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
            let op = Op::pick(self.next_random());
            self.step(op);
        }
        self.outcomes
    }

    fn sign_in(&mut self, user: &str) -> Option<String> {
        let body = format!("{{\"user_id\":\"{user}\"}}");
        let (status, text) = self.send(Op::SignIn, "POST", "/login", None, Some(&body))?;
        (status == 200).then(|| json_string(&text, "token")).flatten()
    }

    fn step(&mut self, op: Op) {
        let user = self.user_token.clone();
        let admin = self.admin_token.clone();
        let user = user.as_deref();
        match op {
            Op::SignIn => {
                let _ = self.sign_in("alice");
            }
            Op::CreateProject => self.create_project(user),
            Op::RenameProject => match self.projects.last().copied() {
                Some(id) => {
                    let name = format!("{{\"name\":\"renamed {}\"}}", self.sequence);
                    let _ = self.send(op, "PATCH", &format!("/projects/{id}"), user, Some(&name));
                }
                None => self.create_project(user),
            },
            Op::DeleteProject => match self.projects.pop() {
                Some(id) => {
                    let _ = self.send(op, "DELETE", &format!("/projects/{id}"), user, None);
                }
                None => self.create_project(user),
            },
            Op::AdminAction => {
                let _ = self.send(op, "POST", "/admin/users/carol/revoke-sessions", admin.as_deref(), None);
            }
            Op::Newsletter => {
                let body = format!("{{\"email\":\"soak-{}-{}@example.com\"}}", self.index, self.sequence);
                let _ = self.send(op, "POST", "/newsletter", None, Some(&body));
            }
            Op::NewsletterDuplicate => {
                let body = format!("{{\"email\":\"soak-{}-duplicate@example.com\"}}", self.index);
                let _ = self.send(op, "POST", "/newsletter", None, Some(&body));
            }
            Op::Denial => {
                let _ = self.send(op, "POST", "/admin/users/carol/revoke-sessions", user, None);
            }
            Op::InvalidName => {
                let _ = self.send(op, "POST", "/projects", user, Some("{\"name\":\"\"}"));
            }
            Op::MissingProject => {
                let _ = self.send(op, "DELETE", "/projects/999999999999", user, None);
            }
            Op::UnknownRoute => {
                let _ = self.send(op, "GET", "/no-such-route", None, None);
            }
        }
    }

    fn create_project(&mut self, user: Option<&str>) {
        let body = format!("{{\"name\":\"soak {} {}\"}}", self.index, self.sequence);
        if let Some((201, text)) = self.send(Op::CreateProject, "POST", "/projects", user, Some(&body))
            && let Some(id) = json_number(&text, "id")
        {
            self.projects.push(id);
            // Keep the list short: old projects are left behind.
            if self.projects.len() > 50 {
                self.projects.remove(0);
            }
        }
    }

    /// Sends one request and records its outcome; the status and body, or
    /// `None` when no answer came.
    fn send(
        &mut self,
        op: Op,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Option<(u16, String)> {
        self.sequence += 1;
        let request_id = format!("soak-{}-{}", self.index, self.sequence);
        let at = self.started.elapsed();
        let sent = Instant::now();
        let answer = self.exchange(method, path, token, body.unwrap_or(""), &request_id);
        let latency = sent.elapsed();
        let stalled = answer.as_ref().is_err_and(|error| {
            matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        });
        if answer.is_err() {
            self.connection = None;
        }
        let answer = answer.ok();
        self.outcomes.push(Outcome {
            op,
            request_id,
            at,
            latency,
            status: answer.as_ref().map(|(status, _)| *status),
            stalled,
        });
        answer
    }

    /// One HTTP/1.1 exchange on the kept-alive connection.
    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
        request_id: &str,
    ) -> std::io::Result<(u16, String)> {
        if self.connection.is_none() {
            let stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(5))?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            stream.set_write_timeout(Some(Duration::from_secs(30)))?;
            stream.set_nodelay(true)?;
            self.connection = Some(BufReader::new(stream));
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: zt-soak\r\nX-Request-Id: {request_id}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            self.address,
            body.len()
        );
        if let Some(token) = token {
            let _ = write!(request, "Authorization: Bearer {token}\r\n");
        }
        request.push_str("\r\n");
        request.push_str(body);
        connection.get_mut().write_all(request.as_bytes())?;

        let mut line = String::new();
        connection.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut close) = (0usize, false);
        loop {
            line.clear();
            if connection.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("the connection closed in the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().map_err(std::io::Error::other)?;
                } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(std::io::Error::other("chunked answers are not expected"));
                }
            }
        }
        let mut text = vec![0; length];
        connection.read_exact(&mut text)?;
        if close {
            self.connection = None;
        }
        Ok((status, String::from_utf8_lossy(&text).into_owned()))
    }
}

/// The string value of `"key":"..."` in a flat JSON object.
fn json_string(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

/// The number value of `"key":123` in a flat JSON object.
fn json_number(text: &str, key: &str) -> Option<u64> {
    let start = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One minute of the run.
struct Minute {
    requests: usize,
    answered: usize,
    server_errors: usize,
    p50: Duration,
    p99: Duration,
}

/// What the soak found.
struct Report {
    minutes: Vec<Minute>,
    requests: usize,
    by_op: Vec<(Op, usize, usize)>,
    acknowledged: usize,
    stalled: usize,
    lost: Vec<String>,
    duplicated: usize,
    denials: usize,
    denial_rows: usize,
    rows: u64,
    rss: Vec<(Duration, Option<u64>)>,
    restarts: Vec<Duration>,
    verified: Result<(), String>,
}

impl Report {
    fn new(
        duration: Duration,
        outcomes: &[Outcome],
        rows: &HashMap<String, u64>,
        rss: Vec<(Duration, Option<u64>)>,
        restarts: Vec<Duration>,
        verified: Result<(), String>,
    ) -> Self {
        // Requests still in flight at the end count in the last minute.
        let last_minute = duration.as_secs().div_ceil(60).saturating_sub(1);
        let minute_of = |o: &Outcome| (o.at.as_secs() / 60).min(last_minute);
        let minutes = (0..=last_minute)
            .map(|minute| {
                let in_minute: Vec<&Outcome> = outcomes.iter().filter(|o| minute_of(o) == minute).collect();
                let mut latencies: Vec<Duration> = in_minute.iter().map(|o| o.latency).collect();
                latencies.sort();
                Minute {
                    requests: in_minute.len(),
                    answered: in_minute.iter().filter(|o| o.status.is_some()).count(),
                    server_errors: in_minute.iter().filter(|o| o.status.is_some_and(|s| s >= 500)).count(),
                    p50: percentile(&latencies, 0.50),
                    p99: percentile(&latencies, 0.99),
                }
            })
            .collect();
        let mut by_op: HashMap<Op, (usize, usize)> = HashMap::new();
        for outcome in outcomes {
            let entry = by_op.entry(outcome.op).or_default();
            entry.0 += 1;
            entry.1 += usize::from(outcome.acknowledged());
        }
        let mut by_op: Vec<(Op, usize, usize)> = by_op.into_iter().map(|(op, (n, acked))| (op, n, acked)).collect();
        by_op.sort();
        let acknowledged: Vec<&Outcome> = outcomes.iter().filter(|o| o.acknowledged()).collect();
        let lost = acknowledged
            .iter()
            .filter(|o| !rows.contains_key(&o.request_id))
            .map(|o| o.request_id.clone())
            .collect();
        let denials: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.op == Op::Denial && matches!(o.status, Some(401 | 403)))
            .collect();
        Self {
            minutes,
            requests: outcomes.len(),
            by_op,
            acknowledged: acknowledged.len(),
            stalled: outcomes.iter().filter(|o| o.stalled).count(),
            lost,
            duplicated: rows.values().filter(|&&count| count > 1).count(),
            denials: denials.len(),
            denial_rows: denials.iter().filter(|o| rows.contains_key(&o.request_id)).count(),
            rows: rows.values().sum(),
            rss,
            restarts,
            verified,
        }
    }

    fn markdown(&self, minutes: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Soak\n\nMeasured by `cargo xtask soak --minutes {minutes}` on this machine: the example HTTP \
             service (release build, 4 worker threads, a pool of 8) on a throwaway PostgreSQL with its \
             default durability, driven by {CLIENTS} client threads over kept-alive HTTP/1.1 connections \
             as fast as it answers. PostgreSQL was restarted (stopped cleanly, down for {} s) at {}.\n",
            DOWN_FOR.as_secs(),
            if self.restarts.is_empty() {
                "no point".to_owned()
            } else {
                self.restarts
                    .iter()
                    .map(|at| format!("{} s", at.as_secs()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        out.push_str("| minute | requests | answered | 5xx | p50 ms | p99 ms |\n|---|---|---|---|---|---|\n");
        for (index, minute) in self.minutes.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2} | {:.2} |",
                index + 1,
                minute.requests,
                minute.answered,
                minute.server_errors,
                minute.p50.as_secs_f64() * 1e3,
                minute.p99.as_secs_f64() * 1e3,
            );
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        let samples: Vec<(Duration, u64)> = self
            .rss
            .iter()
            .filter_map(|(at, kib)| kib.map(|kib| (*at, kib)))
            .collect();
        let _ = writeln!(out);
        match (samples.first(), samples.last()) {
            (Some(&(first_at, first)), Some(&(last_at, last))) => {
                let _ = writeln!(
                    out,
                    "Service memory (VmRSS): {:.1} MiB at {} s, {:.1} MiB at {} s: {:+.1} MiB ({:+.1}%). \
                     Samples: {}.",
                    mib(first),
                    first_at.as_secs(),
                    mib(last),
                    last_at.as_secs(),
                    mib(last) - mib(first),
                    (last as f64 / first.max(1) as f64 - 1.0) * 100.0,
                    samples
                        .iter()
                        .map(|(at, kib)| format!("{:.1} MiB at {} s", mib(*kib), at.as_secs()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            _ => {
                let _ = writeln!(out, "Service memory: not readable (no /proc).");
            }
        }
        let sign_ins = self
            .by_op
            .iter()
            .find(|(op, ..)| *op == Op::SignIn)
            .map_or(0, |(_, sent, _)| *sent);
        let _ = writeln!(
            out,
            "Each of the {sign_ins} sign-ins adds a session to the example's stand-in identity provider, an \
             in-memory map that never forgets one, so the service grows by that much by design."
        );
        let _ = writeln!(
            out,
            "\nAudit: {} requests, {} acknowledged with an audited status, {} without an answer within 30 s \
             (the service hung); **{} audit rows lost**, {} request ids with more than one row; {} soak rows \
             in all. Denials answered 401/403: {}, of which {} have their best-effort row. Chain verification \
             (`zt audit verify`): {}.\n",
            self.requests,
            self.acknowledged,
            self.stalled,
            self.lost.len(),
            self.duplicated,
            self.rows,
            self.denials,
            self.denial_rows,
            match &self.verified {
                Ok(()) => "valid".to_owned(),
                Err(e) => format!("**failed**: {e}"),
            }
        );
        out.push_str("| request | sent | acknowledged |\n|---|---|---|\n");
        for (op, sent, acked) in &self.by_op {
            let _ = writeln!(out, "| {op:?} | {sent} | {acked} |");
        }
        out
    }

    fn verdict(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if !self.lost.is_empty() {
            problems.push(format!(
                "{} acknowledged requests have no audit row, such as {:?}",
                self.lost.len(),
                &self.lost[..self.lost.len().min(5)]
            ));
        }
        if self.stalled > 0 {
            problems.push(format!(
                "{} requests got no answer within 30 s: the service hung (look for threads waiting on each other \
                 and on database locks)",
                self.stalled
            ));
        }
        if self.duplicated > 0 {
            problems.push(format!("{} requests have more than one audit row", self.duplicated));
        }
        if let Err(e) = &self.verified {
            problems.push(e.clone());
        }
        if self.acknowledged == 0 {
            problems.push("no request was acknowledged: the load did not run".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("soak failed: {}", problems.join("; ")))
        }
    }
}

/// The `q` quantile of sorted `values`.
fn percentile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_section_is_replaced_or_appended() {
        let appended = with_soak_section("# Benchmarks\n", "## Soak\n\nfirst\n");
        assert_eq!(
            appended,
            format!("# Benchmarks\n\n{SOAK_BEGIN}\n## Soak\n\nfirst\n{SOAK_END}\n")
        );
        let replaced = with_soak_section(&appended, "## Soak\n\nsecond\n");
        assert_eq!(
            replaced,
            format!("# Benchmarks\n\n{SOAK_BEGIN}\n## Soak\n\nsecond\n{SOAK_END}\n")
        );
    }

    #[test]
    fn json_values_are_found() {
        assert_eq!(
            json_string("{\"token\":\"sess_1\"}", "token").as_deref(),
            Some("sess_1")
        );
        assert_eq!(json_number("{\"id\":42,\"name\":\"x\"}", "id"), Some(42));
    }

    #[test]
    fn percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&values, 0.99), Duration::from_millis(99));
    }
}
