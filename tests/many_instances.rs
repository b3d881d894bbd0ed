//! Many writers on one PostgreSQL audit log.
//!
//! - Four processes at once, each with two threads: through a pipeline,
//!   through `record`, and through `record_in` inside their own transactions
//!   beside a business insert. The log then holds exactly the events they
//!   wrote, once each, and verifies as one log.
//! - Within one process, a transaction that audited and a durable write that
//!   waits for it in the database do not wait on each other in the process.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::r2d2::{ConnectionManager, Pool as R2d2Pool};
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
    // A key file others can read is refused.
    std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

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

/// Within one process: a transaction that wrote an audit event
/// (`record_in`) and so holds the chain head until it commits, and a durable
/// write (`record`) from another thread that waits for it in the database.
/// The transaction must be able to audit again and commit; the durable write
/// then finishes. A handle that kept an in-process lock while waiting in the
/// database would deadlock here, as the example HTTP service did under load
/// when a denial (`record`) met actions (`record_in`).
#[test]
fn an_open_audited_transaction_is_not_blocked_by_a_waiting_durable_write() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let pool: R2d2Pool<ConnectionManager<PgConnection>> = R2d2Pool::builder()
        .max_size(4)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager::new(db.url()))
        .unwrap();
    let log = AuditLog::new(pool.clone(), &zt_e2e::key());
    log.migrate().unwrap();
    let event = |n| zt_e2e::writer_event("side-by-side", "SIDE_BY_SIDE", n);
    let (done, finished) = std::sync::mpsc::channel();
    let (audited, first_written) = std::sync::mpsc::channel();
    // Detached threads: if they deadlock, the test fails instead of hanging.
    {
        let (log, pool, done) = (log.clone(), pool.clone(), done.clone());
        std::thread::spawn(move || {
            let mut conn = pool.get().unwrap();
            conn.transaction(|conn| {
                log.record_in(conn, &event(1))?;
                let _ = audited.send(());
                // Long enough for the durable write to start waiting on this
                // transaction; if it has not yet, the test passes trivially.
                std::thread::sleep(Duration::from_millis(500));
                log.record_in(conn, &event(2)).map(drop)
            })
            .unwrap();
            let _ = done.send("the transaction");
        });
    }
    std::thread::spawn(move || {
        first_written.recv().unwrap();
        log.record(&event(3)).unwrap();
        let _ = done.send("the durable write");
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            finished.recv_timeout(left).is_ok(),
            "deadlock: the open transaction waits for the durable write in the process, which waits for the \
             transaction in the database"
        );
    }
    let log = AuditLog::new(Pool::connect(db.url()).unwrap(), &zt_e2e::key());
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 3);
    assert!(log.verify().unwrap().is_valid());
}
