//! The `existing_app` example, run as a process on both backends: an app
//! that existed before zt adopts zt-audit, zt-session and zt-errors; each
//! step shows what it should, the client's problems hold no internals, and
//! a second run on the same database and data directory works too.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use zt_audit::{AuditFilter, AuditLog, ChainKey};
use zt_testkit::TestDatabase;

/// The example's output: stdout (the story) and stderr (the server log).
struct Run {
    story: String,
    log: String,
}

/// Runs the example with `args`, with `ZT_AUDIT_KEY` set to `key` or unset.
fn launch_with(args: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_existing-app"));
    command.args(args);
    match key {
        Some(key) => command.env(zt_audit::KEY_ENV, key),
        None => command.env_remove(zt_audit::KEY_ENV),
    };
    command.output().unwrap()
}

fn launch(args: &[&str]) -> Output {
    launch_with(args, None)
}

fn run(db: &TestDatabase, data_dir: &Path) -> Run {
    let output = launch(&["--database-url", db.url(), "--data-dir", data_dir.to_str().unwrap()]);
    let (story, log) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(output.status.success(), "{:?}\n{story}\n{log}", output.status);
    Run { story, log }
}

fn assert_contains(run: &Run, expected: &str) {
    assert!(run.story.contains(expected), "missing {expected:?}:\n{}", run.story);
}

/// Words of the server side that must never reach a client.
const INTERNALS: &[&str] = &[
    "UNIQUE",
    "unique",
    "constraint",
    "duplicate",
    "users",
    "email",
    "alice",
    "Record not found",
    "database",
    "statement",
    "diesel",
    "sqlite",
    "SQLite",
    "postgres",
    "RESOURCE_",
];

/// The problem the client got for `what`, checked for internals, and the
/// server log's cause line under it, which names `cause`.
fn assert_problem(run: &Run, what: &str, status: u16, cause: &[&str]) {
    let prefix = format!("{what}: the client gets HTTP {status} ");
    let mut lines = run.story.lines();
    let line = lines
        .by_ref()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line:\n{}", run.story));
    let body = &line[prefix.len()..];
    let problem: Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["status"], status, "{body}");
    let instance = problem["instance"].as_str().unwrap();
    let reference = instance.strip_prefix("urn:uuid:").unwrap();
    assert_eq!(reference.len(), 36, "{instance}");
    for word in INTERNALS {
        assert!(!body.contains(word), "the client saw {word:?}: {body}");
    }
    // The server log has the reference and the real cause.
    let server = lines.next().unwrap();
    assert!(
        server.contains(&format!("reference {reference} with the cause:")),
        "{server}"
    );
    assert!(cause.iter().any(|cause| server.contains(cause)), "{server}");
    let logged = run
        .log
        .lines()
        .find(|line| line.contains(reference))
        .unwrap_or_else(|| panic!("reference {reference} is not in the server log:\n{}", run.log));
    assert!(cause.iter().any(|cause| logged.contains(cause)), "{logged}");
}

/// The chain key id the run printed.
fn key_id(run: &Run) -> String {
    let line = run.story.lines().find(|line| line.starts_with("chain key: ")).unwrap();
    line.rsplit("id ").next().unwrap().to_owned()
}

fn the_existing_app_adopts_zt_and_runs_again(db: &TestDatabase) {
    let data_dir = db.scratch_dir();
    let first = run(db, &data_dir);
    for expected in [
        "app migrations: applied 20240301000000",
        "app users: ada@example.com (id 1, admin), alice@example.com (id 2, user)",
        "== Step 1: zt-audit ==",
        "zt-audit migrations: applied",
        "chain key: created",
        "key check: the existing chain verifies with this key (0 rows)",
        // The audited role change, committed with its audit row.
        // Row ids are handles: on PostgreSQL a rolled-back write uses one up.
        "role change in the app's transaction: alice@example.com user -> admin, audit row #",
        " UPDATE_ROLE committed with it",
        // The rolled-back transaction left no audit row.
        "audit log 1 row before, 1 row after; role still admin",
        "audit query: UPDATE_ROLE on users/2: 1 row; newest #",
        "chain verification: OK, 1 row checked",
        "== Step 2: zt-session ==",
        "zt-session migrations: applied",
        "(session A): allowed (role admin)",
        "role change admin -> user (audit row #",
        // The old session is denied after the role change; a new one passes.
        "session A after the role change: denied SESSION_ROLE_CHANGED",
        "signs in again as user (session B): allowed (role user)",
        // Sign-out-everywhere, through zt's revocation list, ends session B.
        "): session B denied SESSION_REVOKED",
        "(session C): allowed (role user)",
        "== Step 3: zt-errors ==",
        "done: audit chain valid, 3 rows checked",
    ] {
        assert_contains(&first, expected);
    }
    let taken = [
        "UNIQUE constraint failed: users.email",
        "duplicate key value violates unique constraint",
    ];
    assert_problem(&first, "sign-up with a taken email", 409, &taken);
    assert_problem(&first, "role change of a missing user", 404, &["Record not found"]);

    // The key file: created once, readable by its owner only.
    let key_file = data_dir.join("audit.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");

    // The second run: nothing to migrate, the same key, the chain still valid.
    let second = run(db, &data_dir);
    for expected in [
        "app migrations: nothing to apply",
        "zt-audit migrations: nothing to apply",
        "zt-session migrations: nothing to apply",
        "chain key: loaded from",
        "key check: the existing chain verifies with this key (3 rows)",
        "alice@example.com user -> admin, audit row #",
        "audit log 4 rows before, 4 rows after",
        "chain verification: OK, 4 rows checked",
        "session A after the role change: denied SESSION_ROLE_CHANGED",
        "session B denied SESSION_REVOKED",
        "done: audit chain valid, 6 rows checked",
    ] {
        assert_contains(&second, expected);
    }
    assert_problem(&second, "sign-up with a taken email", 409, &taken);
    assert_eq!(key_id(&first), key_id(&second));

    // The rows are zt's ordinary audit log, verifiable with the key file.
    let audit = AuditLog::new(
        zt_db::Pool::connect(db.url()).unwrap(),
        &ChainKey::from_file(&key_file).unwrap(),
    );
    assert!(audit.verify().unwrap().is_valid());
    assert_eq!(audit.count(&AuditFilter::new().action("UPDATE_ROLE")).unwrap(), 4);
    assert_eq!(
        audit.count(&AuditFilter::new().action("REVOKE_ALL_SESSIONS")).unwrap(),
        2
    );
}

zt_testkit::backend_tests!(always: the_existing_app_adopts_zt_and_runs_again);

#[test]
fn without_arguments_it_runs_on_a_fresh_sqlite_file() {
    let output = launch(&[]);
    let story = String::from_utf8(output.stdout).unwrap();
    let data_dir = story
        .lines()
        .next()
        .and_then(|line| line.split("; data dir ").nth(1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("no data dir:\n{story}"));
    let fresh = data_dir.starts_with(std::env::temp_dir())
        && data_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("zt-existing-app-");
    if fresh {
        std::fs::remove_dir_all(&data_dir).unwrap();
    }
    assert!(fresh, "{}", data_dir.display());
    assert!(output.status.success(), "{story}");
    assert!(story.starts_with("existing app on SQLite "), "{story}");
    assert!(story.contains("chain key: created"), "{story}");
    assert!(story.contains("done: audit chain valid, 3 rows checked"), "{story}");
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let db = TestDatabase::sqlite();
    let data_dir = db.scratch_dir();
    run(&db, &data_dir);
    let key_file = data_dir.join("audit.key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = launch(&["--database-url", db.url(), "--data-dir", data_dir.to_str().unwrap()]);
    let log = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("chmod 600"), "{log}");
}

#[test]
fn another_key_is_refused_before_anything_is_written() {
    let db = TestDatabase::sqlite();
    let data_dir = db.scratch_dir();
    run(&db, &data_dir);
    let args = ["--database-url", db.url(), "--data-dir", data_dir.to_str().unwrap()];
    let other = "ab12".repeat(16);
    let output = launch_with(&args, Some(&other));
    let log = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("does not verify with this key"), "{log}");
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .contains("chain key: from ZT_AUDIT_KEY")
    );
    // Nothing was written under the other key: the key file's runs carry on.
    let again = run(&db, &data_dir);
    assert!(
        again.story.contains("done: audit chain valid, 6 rows checked"),
        "{}",
        again.story
    );
}
