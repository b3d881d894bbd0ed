//! Four processes write to one PostgreSQL audit log at once, each with two
//! threads: through a pipeline, through `record`, and through `record_in`
//! inside their own transactions beside a business insert. The log then holds
//! exactly the events they wrote, once each, and verifies as one log.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use zt_audit::{AuditFilter, AuditLog};
use zt_db::Pool;
use zt_testkit::TestDatabase;
use zt_types::Timestamp;

/// Every writer must be done by then.
const BUDGET: Duration = Duration::from_secs(90);

/// (prefix, mode, events).
const WRITERS: [(&str, &str, u64); 4] = [
    ("p0-pipeline", "pipeline", 3000),
    ("p1-record", "record", 500),
    ("p2-in-transaction", "in-transaction", 500),
    ("p3-in-transaction", "in-transaction", 400),
];

fn spawn(db: &TestDatabase, key_file: &std::path::Path, (prefix, mode, count): (&str, &str, u64)) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zt-audit-writer"))
        .args(["--database-url", db.url(), "--key-file"])
        .arg(key_file)
        .args(["--count", &count.to_string(), "--mode", mode, "--prefix", prefix])
        .args(["--threads", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every child until the deadline, killing what is left after it.
fn wait_all(children: Vec<(&str, Child)>, deadline: Instant) {
    let mut running = children;
    let mut failures = Vec::new();
    while !running.is_empty() {
        let mut still = Vec::new();
        for (prefix, mut child) in running {
            match child.try_wait().unwrap() {
                Some(status) => {
                    if !status.success() {
                        let mut stderr = String::new();
                        if let Some(mut pipe) = child.stderr.take() {
                            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                        }
                        failures.push(format!("{prefix} exited with {status}: {stderr}"));
                    }
                }
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(format!("{prefix} did not finish in time"));
                }
                None => still.push((prefix, child)),
            }
        }
        running = still;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn four_processes_write_one_log() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let started = Instant::now();
    let log = AuditLog::new(Pool::connect(db.url()).unwrap(), &zt_e2e::key());
    log.migrate().unwrap();
    let mut conn = PgConnection::establish(db.url()).unwrap();
    diesel::sql_query("CREATE TABLE writer_orders (prefix text NOT NULL, n bigint NOT NULL, PRIMARY KEY (prefix, n))")
        .execute(&mut conn)
        .unwrap();
    let key_file = db.scratch_dir().join("chain.key");
    std::fs::write(&key_file, zt_e2e::key().to_hex()).unwrap();

    let children = WRITERS
        .iter()
        .map(|&writer| (writer.0, spawn(&db, &key_file, writer)))
        .collect();
    wait_all(children, started + BUDGET);

    let mut stored = Vec::new();
    let mut spans: HashMap<String, (Timestamp, Timestamp)> = HashMap::new();
    log.for_each(&AuditFilter::new(), |record| {
        stored.push(record.event_id);
        let prefix = record.request_id.clone().unwrap_or_default();
        let span = spans.entry(prefix).or_insert((record.created_at, record.created_at));
        span.0 = span.0.min(record.created_at);
        span.1 = span.1.max(record.created_at);
        Ok(())
    })
    .unwrap();
    // The processes did write at the same time.
    let overlapping = WRITERS.iter().any(|a| {
        WRITERS.iter().any(|b| {
            a.0 != b.0
                && spans
                    .get(a.0)
                    .zip(spans.get(b.0))
                    .is_some_and(|(x, y)| x.0 < y.1 && y.0 < x.1)
        })
    });
    assert!(overlapping, "no two writers overlapped in time: {spans:?}");
    let stored_set: HashSet<_> = stored.iter().copied().collect();
    assert_eq!(stored.len(), stored_set.len(), "an event is stored twice");
    let expected: HashSet<_> = WRITERS
        .iter()
        .flat_map(|&(prefix, _, count)| (1..=count).map(move |n| zt_e2e::writer_event_id(prefix, n)))
        .collect();
    assert_eq!(
        stored_set.len(),
        expected.len(),
        "{} rows for {} events",
        stored.len(),
        expected.len()
    );
    assert!(stored_set == expected, "the stored events are not the ones written");
    for (prefix, mode, count) in WRITERS {
        assert_eq!(
            log.count(&AuditFilter::new().request_id(prefix)).unwrap(),
            count,
            "{prefix} ({mode})"
        );
        if mode == "in-transaction" {
            #[derive(diesel::QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let orders: Count = diesel::sql_query("SELECT count(*) AS n FROM writer_orders WHERE prefix = $1")
                .bind::<diesel::sql_types::Text, _>(prefix)
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(orders.n, i64::try_from(count).unwrap(), "{prefix}'s business rows");
        }
    }
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, expected.len() as u64);
}
