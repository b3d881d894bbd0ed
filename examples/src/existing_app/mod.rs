//! An existing diesel app adopts zt, one crate at a time: what
//! `cargo run --example existing_app` runs. docs/adopting.md walks through it.
//!
//! The app ([`app`]) existed before zt: a `users` table with integer ids,
//! its own embedded migrations, its own r2d2 pool and transactions. Then:
//!
//! 1. **zt-audit**: zt's audit migrations run beside the app's; an
//!    [`AuditLog`] shares the app's pool; the role change records its audit
//!    event inside the app's own transaction; a rolled-back transaction leaves
//!    no audit row; the log is queried and verified.
//! 2. **zt-session**: a [`UserDirectory`](zt_session::UserDirectory) over the
//!    app's `users` table ([`directory`]) answers zt's session checks in one
//!    query; a role change ends the sessions issued before it, and so does
//!    sign-out-everywhere through zt's [`RevocationList`].
//! 3. **zt-errors**: a failing action's error goes through the [`Sanitizer`]:
//!    the client gets a generic problem with a reference id, the server log
//!    the cause.
//!
//! It runs on SQLite (by default a fresh file in a new temporary directory)
//! or PostgreSQL, and again on the same database: the second run applies no
//! migration, reads the same key and finds the chain valid.

pub mod app;
pub mod directory;
pub mod key;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use diesel::r2d2::{ConnectionManager, Pool};
use zt_audit::{Actor, AuditEvent, AuditFilter, AuditLog, AuditStatus, Order, PageRequest, RequestContext};
use zt_errors::Sanitizer;
use zt_session::{
    Denial, Requirement, RevocationList, Role, SessionClaims, SessionId, Timestamp, ValidatedSession, Validator,
};

use self::app::{AppError, AppPool, Db, User, chain, change_role, change_role_in, now, zt_user_id};
use self::directory::AppDirectory;

/// The app's administrator, seeded on the first run.
pub const ADMIN_EMAIL: &str = "ada@example.com";
/// The user whose role changes, seeded on the first run.
pub const USER_EMAIL: &str = "alice@example.com";

/// What to run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Where the chain key file lives.
    pub data_dir: PathBuf,
}

const USAGE: &str = "usage: existing_app [--database-url sqlite://FILE | postgres://...] [--data-dir DIR]";

impl Options {
    /// Parses the command line. Without `--database-url`: a fresh SQLite
    /// file in a new temporary directory, which is also the data directory.
    /// Without `--data-dir`: the SQLite file's directory, or for PostgreSQL
    /// `zt-existing-app` in the temporary directory.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, AppError> {
        let (mut url, mut data_dir) = (None, None);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| AppError::Setup(USAGE.to_owned()))?;
            match flag.as_str() {
                "--database-url" => url = Some(value),
                "--data-dir" => data_dir = Some(PathBuf::from(value)),
                _ => return Err(AppError::Setup(USAGE.to_owned())),
            }
        }
        let database_url = match url {
            Some(url) => url,
            None => {
                let dir = std::env::temp_dir().join(format!("zt-existing-app-{}", uuid::Uuid::new_v4().simple()));
                format!("sqlite://{}", dir.join("app.db").display())
            }
        };
        let data_dir = data_dir.unwrap_or_else(|| match sqlite_path(&database_url) {
            Some(path) => path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), PathBuf::from),
            None => std::env::temp_dir().join("zt-existing-app"),
        });
        Ok(Self { database_url, data_dir })
    }
}

/// The file of an SQLite URL; `None` for PostgreSQL.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    (!postgres).then(|| PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
}

/// The example's `main`: parses the command line, logs to stderr (the
/// server log), tells the story on stdout. Exit status 0 when every step
/// showed what it should, 1 otherwise, 2 for a usage error.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    let options = match Options::from_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    match run(&options, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %chain(&error), "existing_app failed");
            ExitCode::FAILURE
        }
    }
}

/// Runs the app and the three steps on `options`, writing the story to `out`.
pub fn run(options: &Options, out: &mut dyn Write) -> Result<(), AppError> {
    if let Some(path) = sqlite_path(&options.database_url)
        && let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::create_dir_all(&options.data_dir)?;
    let shown = match sqlite_path(&options.database_url) {
        Some(path) => format!("SQLite {}", path.display()),
        None => "PostgreSQL".to_owned(),
    };
    writeln!(out, "existing app on {shown}; data dir {}", options.data_dir.display())?;
    // The app picks its connection type once, here; everything below is
    // written once for both.
    match AppPool::connect(&options.database_url)? {
        AppPool::Sqlite(pool) => run_on(&pool, options, out)?,
        AppPool::Postgres(pool) => run_on(&pool, options, out)?,
    }
    if let Some(path) = sqlite_path(&options.database_url) {
        writeln!(
            out,
            "\nrun it again on the same database: cargo run --example existing_app -- --database-url sqlite://{}",
            path.display()
        )?;
    }
    Ok(())
}

/// The migrations a step applied, in one line.
fn migrations_line(what: &str, applied: &[String]) -> String {
    if applied.is_empty() {
        format!("{what} migrations: nothing to apply")
    } else {
        format!("{what} migrations: applied {}", applied.join(", "))
    }
}

/// Verifies the whole chain; a broken one fails the run with its first bad row.
fn verify(audit: &AuditLog, what: &str) -> Result<u64, AppError> {
    let report = audit.verify()?;
    match report.finding {
        None => Ok(report.rows_checked),
        Some(finding) => Err(AppError::Setup(format!("{what}: {finding}"))),
    }
}

/// `1 row`, `2 rows`.
fn rows(count: u64) -> String {
    format!("{count} row{}", if count == 1 { "" } else { "s" })
}

/// `user` becomes `admin` and back.
fn other_role(role: &str) -> &'static str {
    if role == "admin" { "user" } else { "admin" }
}

/// The steps, on the app's own pool of connections of type `C`.
fn run_on<C: Db + zt_db::DbConnection>(
    pool: &Pool<ConnectionManager<C>>,
    options: &Options,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    // The app as it was: its migrations, its users.
    let mut conn = pool.get()?;
    writeln!(out, "{}", migrations_line("app", &conn.run_app_migrations()?))?;
    if conn.count_users()? == 0 {
        conn.app_transaction(|conn| {
            conn.insert_user(ADMIN_EMAIL, "admin", now())?;
            conn.insert_user(USER_EMAIL, "user", now())
        })?;
    }
    let admin = conn.find_by_email(ADMIN_EMAIL)?;
    let user = conn.find_by_email(USER_EMAIL)?;
    writeln!(
        out,
        "app users: {} (id {}, {}), {} (id {}, {})",
        admin.email, admin.id, admin.role, user.email, user.id, user.role
    )?;
    drop(conn);

    let audit = step_1_audit(pool, options, &admin, out)?;
    step_2_sessions(pool, &audit, &admin, out)?;
    step_3_errors(pool, &audit, &admin, out)?;

    let checked = verify(&audit, "the audit chain is broken")?;
    writeln!(out, "\ndone: audit chain valid, {} checked", rows(checked))?;
    Ok(())
}

/// Step 1, zt-audit: the app's role change, audited in its own transaction.
fn step_1_audit<C: Db + zt_db::DbConnection>(
    pool: &Pool<ConnectionManager<C>>,
    options: &Options,
    admin: &User,
    out: &mut dyn Write,
) -> Result<AuditLog, AppError> {
    writeln!(out, "\n== Step 1: zt-audit ==")?;
    let mut conn = pool.get()?;
    // zt's tables beside the app's, on the app's connection.
    writeln!(
        out,
        "{}",
        migrations_line("zt-audit", &zt_audit::run_migrations(&mut conn).map_err(AppError::zt)?)
    )?;
    let (key, source) = key::load_or_create(&options.data_dir)?;
    writeln!(out, "chain key: {source}, id {}", key.id())?;
    // The log shares the app's own pool.
    let audit = AuditLog::new(pool.clone(), &key);
    // Before writing: the rows of earlier runs verify with this key.
    let checked = verify(
        &audit,
        "the audit chain does not verify with this key; is it the key of the earlier runs?",
    )?;
    writeln!(
        out,
        "key check: the existing chain verifies with this key ({})",
        rows(checked)
    )?;

    // The app's role change, now with its audit row in the same transaction.
    let user = conn.find_by_email(USER_EMAIL)?;
    let (changed, recorded) = change_role(&mut *conn, &audit, admin, user.id, other_role(&user.role))?;
    writeln!(
        out,
        "role change in the app's transaction: {} {} -> {}, audit row #{} UPDATE_ROLE committed with it",
        changed.email, user.role, changed.role, recorded.id
    )?;

    // The same change and a second one that fails: both roll back, and the
    // audit row with them.
    let rows_before = audit.count(&AuditFilter::new())?;
    let failed = conn.app_transaction(|conn| -> Result<(), AppError> {
        change_role_in(conn, &audit, admin, changed.id, other_role(&changed.role))?;
        conn.set_email(changed.id, ADMIN_EMAIL, now())?;
        Ok(())
    });
    let Err(error) = failed else {
        return Err(AppError::Setup(
            "taking another user's email should have failed".to_owned(),
        ));
    };
    let rows_after = audit.count(&AuditFilter::new())?;
    let role_now = conn.find_user(changed.id)?.role;
    if rows_after != rows_before || role_now != changed.role {
        return Err(AppError::Setup(
            "the rolled-back transaction left changes behind".to_owned(),
        ));
    }
    writeln!(
        out,
        "rolled back: role change + audit row + taking {ADMIN_EMAIL} ({}); audit log {} before, {} after; role still {role_now}",
        chain(&error),
        rows(rows_before),
        rows(rows_after)
    )?;

    // Investigations query the log; verification proves it unaltered.
    let filter = AuditFilter::new()
        .action("UPDATE_ROLE")
        .resource("users")
        .resource_id(&changed.id.to_string());
    let newest = audit.query(&filter, &PageRequest::first(1).order(Order::NewestFirst))?;
    if let Some(row) = newest.records.first() {
        writeln!(
            out,
            "audit query: UPDATE_ROLE on users/{}: {}; newest #{} by user {} {} {}",
            changed.id,
            rows(audit.count(&filter)?),
            row.id,
            row.user_id.as_deref().unwrap_or("-"),
            row.metadata,
            row.status.as_str()
        )?;
    }
    let checked = verify(&audit, "the audit chain is broken")?;
    writeln!(out, "chain verification: OK, {} checked", rows(checked))?;
    Ok(audit)
}

/// What a session check said, in one line.
fn verdict(result: &Result<ValidatedSession, Denial>) -> String {
    match result {
        Ok(session) => format!("allowed (role {})", session.role()),
        Err(denial) => format!("denied {}: {}", denial.code().reason(), denial.reason()),
    }
}

/// The app's sign-in: a new session with the user's role of this moment.
fn sign_in(user: &User) -> Result<SessionClaims, AppError> {
    let session = SessionId::parse(format!("sess_{}", uuid::Uuid::new_v4().simple())).map_err(AppError::zt)?;
    // No session version: the directory compares issue times with `updated_at`.
    Ok(SessionClaims::new(
        session,
        zt_user_id(user.id)?,
        Role::parse(&user.role).map_err(AppError::zt)?,
        0,
        Timestamp::now(),
    ))
}

/// Step 2, zt-session: the app's users answer zt's session checks.
fn step_2_sessions<C: Db + zt_db::DbConnection>(
    pool: &Pool<ConnectionManager<C>>,
    audit: &AuditLog,
    admin: &User,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    writeln!(out, "\n== Step 2: zt-session ==")?;
    let mut conn = pool.get()?;
    // Only zt's revocation tables are used; the app keeps its own users.
    writeln!(
        out,
        "{}",
        migrations_line(
            "zt-session",
            &zt_session::run_migrations(&mut conn).map_err(AppError::zt)?
        )
    )?;
    let validator = Validator::new(AppDirectory::new(pool.clone()));
    let revocations = RevocationList::new(pool.clone());
    let request = RequestContext::new().with_ip([198, 51, 100, 7].into());
    let requirement = Requirement::new().operation("VIEW_ACCOUNT");
    let check = |claims: &SessionClaims| validator.validate(claims, &requirement, &request);

    let user = conn.find_by_email(USER_EMAIL)?;
    let first = sign_in(&user)?;
    let result = check(&first);
    writeln!(
        out,
        "{} signs in as {} (session A): {}",
        user.email,
        user.role,
        verdict(&result)
    )?;
    expect(result.is_ok(), "session A should pass")?;

    let (changed, recorded) = change_role(&mut *conn, audit, admin, user.id, other_role(&user.role))?;
    writeln!(
        out,
        "role change {} -> {} (audit row #{}), updated_at moved to {}",
        user.role, changed.role, recorded.id, changed.updated_at
    )?;
    let result = check(&first);
    writeln!(out, "session A after the role change: {}", verdict(&result))?;
    expect(result.is_err(), "session A should be denied")?;

    let second = sign_in(&changed)?;
    let result = check(&second);
    writeln!(
        out,
        "signs in again as {} (session B): {}",
        changed.role,
        verdict(&result)
    )?;
    expect(result.is_ok(), "session B should pass")?;

    // Sign out everywhere: zt's list, in the app's transaction, audited.
    let uid = zt_user_id(changed.id)?;
    let recorded = conn.app_transaction(|conn| -> Result<_, AppError> {
        revocations.revoke_all_sessions_in(conn, &uid)?;
        let event = AuditEvent::builder(Actor::user(zt_user_id(admin.id)?, None), "REVOKE_ALL_SESSIONS", "users")
            .resource_id(changed.id)
            .status(AuditStatus::Success)
            .build()
            .map_err(AppError::zt)?;
        Ok(audit.record_in(conn, &event)?)
    })?;
    let result = check(&second);
    writeln!(
        out,
        "sign-out-everywhere (audit row #{}): session B {}",
        recorded.id,
        verdict(&result)
    )?;
    expect(result.is_err(), "session B should be denied")?;

    let third = sign_in(&changed)?;
    let result = check(&third);
    writeln!(out, "signs in again (session C): {}", verdict(&result))?;
    expect(result.is_ok(), "session C should pass")
}

/// Fails the run when a step did not show what it should.
fn expect(condition: bool, what: &str) -> Result<(), AppError> {
    if condition {
        Ok(())
    } else {
        Err(AppError::Setup(format!("unexpected: {what}")))
    }
}

/// Step 3, zt-errors: failing actions, as the client and the server log see them.
fn step_3_errors<C: Db + zt_db::DbConnection>(
    pool: &Pool<ConnectionManager<C>>,
    audit: &AuditLog,
    admin: &User,
    out: &mut dyn Write,
) -> Result<(), AppError> {
    writeln!(out, "\n== Step 3: zt-errors ==")?;
    let mut conn = pool.get()?;
    let sanitizer = Sanitizer::new();
    let request = RequestContext::new().with_ip([198, 51, 100, 7].into());

    // A sign-up with a taken email: a unique violation.
    let taken: Result<User, AppError> = conn.insert_user(USER_EMAIL, "user", now()).map_err(AppError::from);
    // A role change for a user that does not exist: no row.
    let missing = change_role(&mut *conn, audit, admin, i64::MAX, "admin");
    for (what, result) in [
        ("sign-up with a taken email", taken.map(|_| ())),
        ("role change of a missing user", missing.map(|_| ())),
    ] {
        let Err(error) = result else {
            return Err(AppError::Setup(format!("{what} should have failed")));
        };
        let problem = sanitizer.sanitize_for(&error, &request);
        writeln!(
            out,
            "{what}: the client gets HTTP {} {}",
            problem.status(),
            problem.to_json()
        )?;
        writeln!(
            out,
            "  the server log (stderr) has reference {} with the cause: {}",
            problem.reference(),
            chain(&error)
        )?;
    }
    Ok(())
}
