//! The demo's story: every zt crate at work on one database.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;
use zt_audit::{AuditFilter, ChainKey, PageRequest};
use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_errors::Problem;
use zt_types::{RequestContext, RequestId, Role, Timestamp, UserId};

use crate::app::App;
use crate::idp::SignIn;

/// The demo's default database: a SQLite file in the current folder.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://zt-demo.db";

/// What the server logged, captured so that the demo can show it beside what
/// the client saw.
#[derive(Debug, Clone, Default)]
pub struct ServerLog(Arc<Mutex<Vec<u8>>>);

impl ServerLog {
    /// Takes the lines logged since the last call.
    pub fn take(&self) -> String {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl ServerLog {
    /// A tracing subscriber that writes plain lines into this log.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish()
    }
}

impl Write for ServerLog {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ServerLog {
    type Writer = ServerLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The `--database-url` argument of an example, or a SQLite file named
/// `default_file` in the current folder.
pub fn url_from_args(default_file: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => Ok(format!("sqlite://{default_file}")),
        (Some("--database-url"), Some(url)) => Ok(url),
        _ => Err("usage: [--database-url sqlite://FILE | postgres://...]".into()),
    }
}

/// The chain key for the demo: `ZT_AUDIT_KEY` if set, otherwise a key file
/// beside the SQLite database (or `zt-demo.key` in the current folder),
/// created on the first run, so that later runs can verify earlier rows.
pub fn demo_key(url: &DatabaseUrl) -> Result<ChainKey, Box<dyn std::error::Error + Send + Sync>> {
    if std::env::var_os(zt_audit::KEY_ENV).is_some() {
        return Ok(ChainKey::from_env()?);
    }
    let path = match url.sqlite_path() {
        Some(db) => db.with_extension("key"),
        None => PathBuf::from("zt-demo.key"),
    };
    Ok(ChainKey::load_or_create(&path)?)
}

/// Tells the story on `url` with the chain `key`, writing it to `out`; `log`
/// is the server log the demo's tracing subscriber writes to.
pub fn run(
    url: &str,
    key: &ChainKey,
    out: &mut dyn Write,
    log: &ServerLog,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let parsed: DatabaseUrl = url.parse()?;
    let started = Timestamp::now();
    writeln!(out, "zt demo on {parsed}\n")?;

    writeln!(out, "1. Migrate the database")?;
    let app = App::open(url, key)?;
    writeln!(
        out,
        "   audit log, users and session revocations, and the app's tables are in place\n"
    )?;

    let (alice, bob) = (UserId::parse("alice")?, UserId::parse("bob")?);
    for (user, role) in [(&alice, Role::user()), (&bob, Role::admin())] {
        if app.users.user_state(user)?.is_none() {
            app.users.create_user(user, None, &role)?;
        }
        app.users.change_role(user, &role)?;
    }
    let request = |n: u32| {
        RequestContext::new()
            .with_ip("203.0.113.7".parse().unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])))
            .with_user_agent("zt-demo/1.0")
            .with_request_id(RequestId::parse(format!("demo-{n}")).unwrap_or_else(|_| RequestId::generate()))
    };
    log.take();

    writeln!(out, "2. alice (a user) signs in and creates a project")?;
    let (_, alice_session) = app.idp.sign_in(&alice, SignIn::default())?;
    let project = app
        .create_project(Some(&alice_session), &request(1), "Apollo")
        .map_err(|p| p.to_string())?;
    writeln!(
        out,
        "   201 Created: project #{} \"{}\" owned by {}\n",
        project.id, project.name, project.owner_id
    )?;

    writeln!(out, "3. bob (an admin) promotes alice, then demotes her")?;
    let (_, bob_session) = app.idp.sign_in(
        &bob,
        SignIn {
            mfa: true,
            minutes_ago: 0,
        },
    )?;
    app.set_user_role(Some(&bob_session), &request(2), &alice, &Role::admin())
        .map_err(|p| p.to_string())?;
    let (_, alice_admin_session) = app.idp.sign_in(&alice, SignIn::default())?;
    writeln!(
        out,
        "   204: alice is an admin; she signs in again and her new session says so"
    )?;
    app.set_user_role(Some(&bob_session), &request(3), &alice, &Role::user())
        .map_err(|p| p.to_string())?;
    writeln!(out, "   204: alice is a user again\n")?;

    writeln!(
        out,
        "4. alice's admin session, issued before the demotion, tries an admin action"
    )?;
    let denied = app
        .disable_user(Some(&alice_admin_session), &request(4), &bob)
        .err()
        .ok_or("the demoted session was not denied")?;
    show_problem(out, &denied, log)?;

    writeln!(out, "5. alice, signed in two hours ago, tries to delete her project")?;
    let (_, stale) = app.idp.sign_in(
        &alice,
        SignIn {
            mfa: false,
            minutes_ago: 120,
        },
    )?;
    let step_up = app
        .delete_project(Some(&stale), &request(5), project.id)
        .err()
        .ok_or("the stale login was not denied")?;
    show_problem(out, &step_up, log)?;
    let (_, fresh) = app.idp.sign_in(&alice, SignIn::default())?;
    app.delete_project(Some(&fresh), &request(6), project.id)
        .map_err(|p| p.to_string())?;
    writeln!(out, "   after signing in again: 204, project #{} deleted\n", project.id)?;

    writeln!(out, "6. Database errors, sanitized")?;
    let email = format!("reader-{}@example.com", uuid::Uuid::new_v4().simple());
    app.subscribe(&request(7), &email).map_err(|p| p.to_string())?;
    writeln!(out, "   newsletter signup: 201")?;
    let duplicate = app
        .subscribe(&request(8), &email)
        .err()
        .ok_or("the duplicate signup was accepted")?;
    writeln!(out, "   the same signup again:")?;
    show_problem(out, &duplicate, log)?;
    let down = App::with_pool(
        Pool::connect_lazy(
            &"postgres://app:s3cret@127.0.0.1:1/zt".parse()?,
            &PoolConfig::new().connection_timeout(Duration::from_millis(300)),
        )?,
        key,
    )?;
    writeln!(out, "   the same signup with the database down:")?;
    let unavailable = down
        .subscribe(&request(9), &email)
        .err()
        .ok_or("the signup with the database down succeeded")?;
    show_problem(out, &unavailable, log)?;

    writeln!(out, "7. Monitoring raises an alert")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let alert = loop {
        if let Some(alert) = down.monitor.active_alerts().into_iter().next() {
            break alert;
        }
        if Instant::now() > deadline {
            return Err("no alert within 5 seconds".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    writeln!(
        out,
        "   ALERT {}: rule {}: {}\n",
        alert.status.as_str(),
        alert.rule,
        alert.summary
    )?;
    down.monitor.shutdown(Duration::from_secs(2));
    log.take();

    writeln!(out, "8. The audit trail of this run")?;
    let page = app
        .audit
        .query(&AuditFilter::new().since(started), &PageRequest::first(100))?;
    write!(out, "{}", indent(&crate::audit_lines(&page.records)))?;
    let report = app.audit.verify()?;
    match &report.finding {
        None => writeln!(
            out,
            "\n   verification: OK, {} rows verified, every chain is intact",
            report.rows_checked
        )?,
        Some(finding) => writeln!(out, "\n   verification: TAMPERED: {finding}")?,
    }
    app.monitor.shutdown(Duration::from_secs(2));
    if report.is_valid() {
        Ok(())
    } else {
        Err("the audit log failed verification".into())
    }
}

fn show_problem(out: &mut dyn Write, problem: &Problem, log: &ServerLog) -> io::Result<()> {
    writeln!(
        out,
        "   the client sees: HTTP {} {}",
        problem.status(),
        zt_errors::PROBLEM_CONTENT_TYPE
    )?;
    writeln!(out, "     {}", problem.to_json())?;
    let logged = log.take();
    let reference = problem.reference().to_string();
    writeln!(out, "   the server logged:")?;
    for line in logged.lines().filter(|line| line.contains(&reference)) {
        writeln!(out, "     {}", line.trim())?;
    }
    writeln!(out)
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("   {line}\n")).collect()
}
