//! No secret of a database URL is ever printed: a property test puts a
//! random secret in every place a connection string holds one (the user-info
//! password; the `password`, `sslpassword` and `sslkey` parameters; libpq
//! `key=value` strings, quoted and backslash-escaped; multi-host URIs; and
//! malformed strings that libpq or zt reject) and sends each through every
//! error path: `DatabaseUrl` parsing and display, `Pool::connect` to an
//! unreachable port, lazy pools, migrations, zt-audit's errors and their
//! sources, libpq itself through zt's connection manager, and the `zt`
//! command as a process.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use diesel::r2d2::ManageConnection;
use proptest::prelude::*;
use zt_audit::AuditLog;
use zt_db::{DatabaseUrl, Manager, Pool, PoolConfig};

/// A secret: two distinctive alphanumeric ends around a middle that may
/// hold anything a password can (spaces, quotes, '@', '%', non-ASCII).
#[derive(Debug, Clone)]
struct Secret {
    head: String,
    tail: String,
    whole: String,
}

impl Secret {
    fn new(head: &str, middle: &str, tail: &str) -> Self {
        let (head, tail) = (format!("Zq{head}"), format!("Zw{tail}"));
        let whole = format!("{head}{middle}{tail}");
        Self { head, tail, whole }
    }

    /// The forms that must never appear.
    fn forms(&self) -> Vec<String> {
        vec![
            self.head.clone(),
            self.tail.clone(),
            self.whole.clone(),
            percent_encoded(&self.whole),
        ]
    }
}

fn secret_strategy() -> impl Strategy<Value = Secret> {
    (
        "[a-zA-Z0-9]{6,10}",
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9._~-]{0,6}",
            "[ -~]{0,8}",
            "[ 'é@:/?#%&=\\\\\"a-z]{0,8}",
        ],
        "[a-zA-Z0-9]{6,10}",
    )
        .prop_map(|(head, middle, tail)| Secret::new(&head, &middle, &tail))
}

/// Every byte but RFC 3986's unreserved ones, percent-encoded.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A libpq value in single quotes, `'` and `\` escaped.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A libpq value unquoted, with spaces, quotes and backslashes escaped.
fn escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_whitespace() || c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    if out.is_empty() { "''".to_owned() } else { out }
}

/// The secret in every position, well-formed and not. Every host is an
/// unreachable loopback port.
fn urls(secret: &Secret) -> Vec<String> {
    let (s, enc) = (&secret.whole, percent_encoded(&secret.whole));
    let mut urls = vec![
        format!("postgres://app:{enc}@127.0.0.1:1/db"),
        format!("postgresql://app@127.0.0.1:1/db?password={enc}"),
        format!("postgres://app@127.0.0.1:1/db?sslmode=disable&sslpassword={enc}"),
        format!("postgres://app@127.0.0.1:1/db?sslkey={enc}&application_name=zt"),
        format!("postgres://app:{enc}@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write"),
        format!("postgres://app@127.0.0.1:1,[::1]:2/db?password={enc}&target_session_attrs=any"),
        format!("host=127.0.0.1 port=1 user=app password={} dbname=db", quoted(s)),
        format!("host=127.0.0.1 port=1 user=app password={} dbname=db", escaped(s)),
        format!("host=127.0.0.1,127.0.0.1 port=1,2 sslkey={} user=app", quoted(s)),
        format!("host=127.0.0.1 port=1 sslpassword={} sslmode=disable", escaped(s)),
    ];
    // Written carelessly: unencoded, unquoted. With an '=' in it, such a
    // secret can make a valid string of its own (`password=a&host=b`), which
    // no parser can tell from what was meant; without, the part after a
    // split is never a parameter, and is refused.
    if !s.contains('=') {
        urls.extend([
            format!("postgres://app:{s}@127.0.0.1:1/db"),
            format!("postgres://app@127.0.0.1:1/db?password={s}"),
            format!("host=127.0.0.1 port=1 user=app password={s} dbname=db"),
        ]);
    }
    urls
}

#[track_caller]
fn assert_hidden(secret: &Secret, url: &str, what: &str, text: &str) {
    for form in secret.forms() {
        assert!(
            !text.contains(&form),
            "{what} shows the secret {form:?} of {url:?}: {text}"
        );
    }
}

/// Every `Display` in an error's source chain, and its `Debug`.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error:?}");
    let mut next = Some(error);
    while let Some(error) = next {
        text.push_str(&format!(" / {error}"));
        next = error.source();
    }
    text
}

fn quick() -> PoolConfig {
    PoolConfig::new()
        .max_size(1)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_millis(40))
}

/// The library's error paths that cost no waiting.
fn check_library(secret: &Secret, url: &str) {
    match url.parse::<DatabaseUrl>() {
        Ok(parsed) => {
            assert_hidden(secret, url, "DatabaseUrl's Display", &parsed.to_string());
            assert_hidden(secret, url, "DatabaseUrl's Debug", &format!("{parsed:?}"));
            let error = Pool::connect_with(&parsed, &quick()).expect_err("port 1 is unreachable");
            assert_hidden(secret, url, "Pool::connect_with", &chain(&error));
        }
        Err(error) => assert_hidden(secret, url, "the parse error", &chain(&error)),
    }
    if let Err(error) = Pool::connect(url) {
        assert_hidden(secret, url, "Pool::connect", &chain(&error));
    }
    // libpq itself, with no parsing by zt first: it quotes what it rejects.
    let manager = Manager::<diesel::PgConnection>::new(url);
    assert_hidden(secret, url, "Manager's Debug", &format!("{manager:?}"));
    let error = manager.connect().map(drop).expect_err("port 1 is unreachable");
    assert_hidden(secret, url, "Manager::connect", &chain(&error));
}

/// The paths that wait for a lazy pool's connection timeout.
fn check_lazy(secret: &Secret, url: &str) {
    let Ok(parsed) = url.parse::<DatabaseUrl>() else {
        return;
    };
    let pool = Pool::connect_lazy(&parsed, &quick()).unwrap();
    assert_hidden(secret, url, "Pool's Debug", &format!("{pool:?}"));
    let error = pool.get().map(drop).expect_err("port 1 is unreachable");
    assert_hidden(secret, url, "Pool::get", &chain(&error));
    let error = pool.run_migrations(&zt_audit::MIGRATIONS).expect_err("unreachable");
    assert_hidden(secret, url, "migrations", &chain(&error));
    let log = AuditLog::read_only(pool);
    assert_hidden(secret, url, "AuditLog's Debug", &format!("{log:?}"));
    let error = log.heads().expect_err("unreachable");
    assert_hidden(secret, url, "zt-audit's error", &chain(&error));
}

/// `zt` as a process: exit 2, and the secret on neither stream.
fn check_command(secret: &Secret, url: &str) {
    let runs: [(&[&str], bool); 3] = [
        (&["audit", "query", "--database-url", url], false),
        (&["audit", "tail", "--from-id", "0"], true),
        (&["migrate"], true),
    ];
    for (args, through_env) in runs {
        let mut command = assert_cmd::Command::cargo_bin("zt").unwrap();
        command.args(args).timeout(Duration::from_secs(60));
        if through_env {
            command.env("DATABASE_URL", url);
        } else {
            command.env_remove("DATABASE_URL");
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {url:?}: {stderr}");
        assert!(stderr.starts_with("zt: error: "), "{stderr}");
        assert_hidden(secret, url, "zt's stderr", &stderr);
        assert_hidden(secret, url, "zt's stdout", &stdout);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_library_error_shows_a_secret(secret in secret_strategy(), lazy in 0usize..16) {
        let urls = urls(&secret);
        for url in &urls {
            check_library(&secret, url);
        }
        check_lazy(&secret, &urls[lazy % urls.len()]);
    }
}

proptest! {
    // Each case starts three processes.
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn the_command_never_shows_a_generated_secret(secret in secret_strategy(), position in 0usize..16) {
        let urls = urls(&secret);
        check_command(&secret, &urls[position % urls.len()]);
    }
}

/// Every position once, with a fixed secret, through the library's slow
/// paths and the command.
#[test]
fn the_command_never_shows_a_secret_in_any_position() {
    let secret = Secret::new("hunter", "2 '@x%y", "swordfish");
    for url in urls(&secret) {
        check_library(&secret, &url);
        check_lazy(&secret, &url);
        check_command(&secret, &url);
    }
}

/// The examples: the query-parameter and key=value passwords.
#[test]
fn the_reported_leaks_are_closed() {
    for url in [
        "postgres://app@127.0.0.1:1/db?password=hunter2",
        "host=127.0.0.1 port=1 user=app password=hunter2 dbname=db",
        "host=127.0.0.1 port=1 user=app password='hunter2 x' dbname=db",
    ] {
        let output = assert_cmd::Command::cargo_bin("zt")
            .unwrap()
            .args(["audit", "query", "--database-url", url])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(stderr.contains("Connection refused"), "{stderr}");
    }
}

/// libpq's key=value strings are accepted as PostgreSQL URLs: the command
/// works against the real server, given as key=value pairs.
#[test]
fn key_value_connection_strings_connect() {
    let Some(db) = zt_testkit::TestDatabase::postgres() else {
        return;
    };
    let parsed = url::Url::parse(db.url()).unwrap();
    let mut conninfo = format!(
        "host={} port={} dbname={}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432),
        parsed.path().trim_start_matches('/')
    );
    if !parsed.username().is_empty() {
        conninfo.push_str(&format!(" user={}", parsed.username()));
    }
    if let Some(password) = parsed.password() {
        conninfo.push_str(&format!(" password={}", quoted(password)));
    }
    conninfo.push_str(" application_name='zt key=value test'");
    let migrate = assert_cmd::Command::cargo_bin("zt")
        .unwrap()
        .arg("migrate")
        .env("DATABASE_URL", &conninfo)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&migrate.stdout);
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(stdout.contains("audit: applied"), "{stdout}");
    assert!(stdout.starts_with("host="), "the redacted form is shown: {stdout}");
    let query = assert_cmd::Command::cargo_bin("zt")
        .unwrap()
        .args(["audit", "query", "--format", "jsonl"])
        .env("DATABASE_URL", &conninfo)
        .output()
        .unwrap();
    assert!(query.status.success(), "{}", String::from_utf8_lossy(&query.stderr));
}
