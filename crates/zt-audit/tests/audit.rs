//! The audit log on real SQLite files and a real PostgreSQL server: writes,
//! transactions, append-only triggers, concurrency, filters and pagination.
// Every test here needs a database: without a backend feature the suite is
// empty. `backend_tests!` runs each backend this crate was built with.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::net::IpAddr;

use support::{event, open, raw, start};
use zt_audit::{AuditFilter, AuditLog, ErrorKind, Order, PageRequest};
use zt_testkit::Backend;
use zt_testkit::TestDatabase;
use zt_types::{Actor, AuditEvent, AuditStatus, RequestContext, Timestamp, UserId};

fn writes_and_reads_back_every_field(db: &TestDatabase) {
    let log = open(db);
    let context = RequestContext::new()
        .with_resolved_ip(
            "10.0.0.2".parse().unwrap(),
            zt_types::ClientIpResolver::from_cidrs(["10.0.0.0/8"])
                .unwrap()
                .resolve("10.0.0.2".parse().unwrap(), ["2001:db8::7"]),
        )
        .with_user_agent("curl/8.5\r\nInjected: yes")
        .with_request_id(zt_types::RequestId::parse("req-1").unwrap());
    let event = AuditEvent::builder(
        Actor::user(
            UserId::parse("user_2abc").unwrap(),
            Some(zt_types::Email::parse_address("a@example.com").unwrap()),
        ),
        "UPDATE_ROLE",
        "users",
    )
    .resource_id("7")
    .metadata(&serde_json::json!({"from": "user", "to": "admin", "token": "secret", "n": [1, 2.5, 1e-7, "é\u{1}"]}))
    .context(&context)
    .status(AuditStatus::Failed)
    .error_code("DB_TIMEOUT")
    .build()
    .unwrap();
    let recorded = log.record(&event).unwrap();
    assert_eq!(recorded.id, 1);
    assert!(!recorded.duplicate);

    let page = log.query(&AuditFilter::new(), &PageRequest::first(10)).unwrap();
    assert_eq!(page.records.len(), 1);
    assert!(page.next.is_none());
    let row = &page.records[0];
    assert_eq!(row.event_id, *event.event_id().as_uuid());
    assert_eq!(row.created_at, event.created_at());
    assert_eq!(row.user_id.as_deref(), Some("user_2abc"));
    assert_eq!(row.user_email.as_deref(), Some("a@example.com"));
    assert_eq!(
        (row.action.as_str(), row.resource.as_str(), row.resource_id.as_deref()),
        ("UPDATE_ROLE", "users", Some("7"))
    );
    assert_eq!(
        row.metadata,
        event.metadata().as_str(),
        "stored metadata is the canonical text"
    );
    assert_eq!(row.metadata_value()["token"], "[REDACTED]");
    assert_eq!(row.client_ip, Some("2001:db8::7".parse::<IpAddr>().unwrap()));
    assert_eq!(row.peer_ip, Some("10.0.0.2".parse::<IpAddr>().unwrap()));
    assert_eq!(
        row.user_agent.as_deref(),
        Some("curl/8.5\r\nInjected: yes"),
        "stored as given"
    );
    assert_eq!(row.status, AuditStatus::Failed);
    assert_eq!(row.error_code.as_deref(), Some("DB_TIMEOUT"));
    assert_eq!(row.request_id.as_deref(), Some("req-1"));
    assert_eq!(row.mac, recorded.mac);
    assert!(log.verify().unwrap().is_valid());
}

fn same_event_twice_is_stored_once(db: &TestDatabase) {
    let log = open(db);
    let (one, two) = (event(1), event(2));
    let first = log.record(&one).unwrap();
    let again = log.record(&one).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.id, again.mac), (first.id, first.mac));
    let batch = log.record_batch(&[one.clone(), two.clone(), two]).unwrap();
    assert_eq!(
        batch.iter().map(|r| r.duplicate).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 2);
    assert!(log.verify().unwrap().is_valid());
}

fn in_transaction_write_is_atomic_with_the_business_change(db: &TestDatabase) {
    use diesel::RunQueryDsl;
    let log = open(db);
    raw(db, "CREATE TABLE projects (id BIGINT PRIMARY KEY, name TEXT NOT NULL)").unwrap();

    // The app's own pool, built with diesel's manager: zt writes inside the
    // app's transactions on the app's connections, passed as they are.
    macro_rules! business_transactions {
        ($conn:ty, $url:expr, $begin:path) => {{
            let app_pool = diesel::r2d2::Pool::builder()
                .max_size(2)
                .build(diesel::r2d2::ConnectionManager::<$conn>::new($url))
                .unwrap();
            let mut conn = app_pool.get().unwrap();
            // Committed: both the project and its audit row.
            $begin(&mut *conn, |conn| {
                diesel::sql_query("INSERT INTO projects (id, name) VALUES (1, 'kept')").execute(conn)?;
                log.record_in(conn, &event(1))
            })
            .unwrap();
            // Rolled back after the audit write: neither remains.
            let rolled_back: Result<(), zt_audit::Error> = $begin(&mut *conn, |conn| {
                diesel::sql_query("INSERT INTO projects (id, name) VALUES (2, 'lost')").execute(conn)?;
                log.record_in(conn, &event(2))?;
                Err(diesel::result::Error::RollbackTransaction.into())
            });
            assert!(rolled_back.is_err());
            // The pooled connection itself, as it is, outside a transaction.
            log.record_in(&mut conn, &event(4)).unwrap();
        }};
    }
    match db.backend() {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => business_transactions!(
            diesel::SqliteConnection,
            db.url().trim_start_matches("sqlite://"),
            diesel::SqliteConnection::immediate_transaction
        ),
        #[cfg(feature = "postgres")]
        Backend::Postgres => business_transactions!(diesel::PgConnection, db.url(), diesel::Connection::transaction),
        #[allow(unreachable_patterns)]
        other => unreachable!("backend_tests! runs {other:?} only with its feature"),
    }

    assert_eq!(
        log.count(&AuditFilter::new()).unwrap(),
        2,
        "the rolled-back audit row is gone"
    );
    assert_eq!(support::raw_count(db, "SELECT COUNT(*) AS n FROM projects"), 1);
    // The chain is intact, and the next write continues it without a gap.
    let next = log.record(&event(3)).unwrap();
    assert_eq!(next.seq, 3, "the rolled-back write left no hole in the chain");
    assert!(log.verify().unwrap().is_valid());
}

fn append_only_triggers_refuse_update_and_delete(db: &TestDatabase) {
    let log = open(db);
    log.record(&event(1)).unwrap();
    for sql in [
        "UPDATE audit_logs SET action = 'FORGED' WHERE id = 1",
        "UPDATE audit_logs SET status = 'success'",
        "DELETE FROM audit_logs WHERE id = 1",
        "DELETE FROM audit_logs",
    ] {
        let error = raw(db, sql).unwrap_err();
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    if db.backend() == zt_testkit::Backend::Postgres {
        let error = raw(db, "TRUNCATE audit_logs").unwrap_err();
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 1);
    assert!(log.verify().unwrap().is_valid());
}

fn eight_threads_write_exactly_the_expected_rows(db: &TestDatabase) {
    let log = open(db);
    let threads: Vec<_> = (0..8u32)
        .map(|thread| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..40u32 {
                    let event = event(thread * 1000 + i);
                    if i % 4 == 0 {
                        log.record_batch(std::slice::from_ref(&event)).unwrap();
                    } else {
                        log.record(&event).unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 320);
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, 320);
    let heads = log.heads().unwrap();
    assert_eq!(heads.iter().map(|head| head.seq).sum::<i64>(), 320);
    if db.backend() == zt_testkit::Backend::Postgres {
        // Eight writers spread over the chains instead of queueing on one.
        assert!(heads.iter().filter(|head| head.seq > 0).count() > 1, "{heads:?}");
    }
}

fn batch_results_name_the_rows_stored(db: &TestDatabase) {
    let log = open(db);
    let events: Vec<AuditEvent> = (0..3000).map(event).collect();
    // Alone, a batch's rows get consecutive ids.
    let mut recorded = log.record_batch(&events[..1000]).unwrap();
    if db.backend() == Backend::Postgres {
        // Another taker of ids between rows, as a concurrent session would
        // be: COPY's rows then get ids that are not consecutive.
        support::raw_batch(
            db,
            "CREATE FUNCTION take_an_id() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM nextval('audit_logs_id_seq'); RETURN NEW; END $$; \
             CREATE TRIGGER take_an_id BEFORE INSERT ON audit_logs FOR EACH ROW EXECUTE FUNCTION take_an_id();",
        );
    }
    // A batch that repeats a stored event and one of its own.
    let mut mixed = events[1000..].to_vec();
    mixed.push(events[0].clone());
    mixed.push(events[1500].clone());
    let mixed_results = log.record_batch(&mixed).unwrap();
    assert!(mixed_results[2000].duplicate && mixed_results[2001].duplicate);
    recorded.extend_from_slice(&mixed_results[..2000]);
    // A batch of new events, one of them given twice.
    let (x, y) = (event(5000), event(5001));
    let repeated = log.record_batch(&[x.clone(), y, x]).unwrap();
    assert_eq!(
        repeated.iter().map(|r| r.duplicate).collect::<Vec<_>>(),
        [false, false, true]
    );
    assert_eq!((repeated[2].id, repeated[2].mac), (repeated[0].id, repeated[0].mac));

    let mut stored = std::collections::HashMap::new();
    log.for_each(&AuditFilter::new(), |row| {
        stored.insert(row.event_id, (row.id, row.mac));
        Ok(())
    })
    .unwrap();
    assert_eq!(stored.len(), events.len() + 2);
    for (event, result) in events.iter().zip(&recorded) {
        assert!(!result.duplicate);
        assert_eq!(
            stored[event.event_id().as_uuid()],
            (result.id, result.mac),
            "{result:?}"
        );
    }
    let ids: HashSet<i64> = recorded.iter().map(|result| result.id).collect();
    assert_eq!(ids.len(), events.len(), "every row has its own id");
    assert!(recorded[..1000].windows(2).all(|pair| pair[1].id == pair[0].id + 1));
    if db.backend() == Backend::Postgres {
        assert!(
            recorded[1000..].windows(2).all(|pair| pair[1].id > pair[0].id + 1),
            "the ids were not consecutive"
        );
    }
    assert!(log.verify().unwrap().is_valid());
}

fn two_handles_share_one_chain(db: &TestDatabase) {
    // Two handles stand for two processes: neither knows the other's head.
    let first = open(db);
    let second = AuditLog::new(support::pool(db), &support::key());
    for i in 0..10 {
        first.record(&event(i)).unwrap();
        second.record(&event(100 + i)).unwrap();
    }
    assert_eq!(first.count(&AuditFilter::new()).unwrap(), 20);
    assert!(second.verify().unwrap().is_valid());
}

const SEEDED: u32 = 10_000;

fn filters_and_pagination_on_a_seeded_log(db: &TestDatabase) {
    let log = open(db);
    let events: Vec<AuditEvent> = (0..SEEDED).map(event).collect();
    for chunk in events.chunks(1000) {
        log.record_batch(chunk).unwrap();
    }
    let expect = |predicate: &dyn Fn(&AuditEvent) -> bool| events.iter().filter(|e| predicate(e)).count() as u64;
    let at = |seconds: u64| start().saturating_add(std::time::Duration::from_secs(seconds));

    let cases: Vec<(AuditFilter, u64)> = vec![
        (AuditFilter::new(), u64::from(SEEDED)),
        (
            AuditFilter::new().user("3"),
            expect(&|e| e.actor().user_id().unwrap().as_str() == "3"),
        ),
        (
            AuditFilter::new().email("user5@example.com"),
            expect(&|e| e.actor().email().unwrap().as_str() == "user5@example.com"),
        ),
        (
            AuditFilter::new().action("UPDATE_ROLE"),
            expect(&|e| e.action().as_str() == "UPDATE_ROLE"),
        ),
        (
            AuditFilter::new().action("UPDATE_ROLE").action("DELETE_PROJECT"),
            expect(&|e| matches!(e.action().as_str(), "UPDATE_ROLE" | "DELETE_PROJECT")),
        ),
        (
            AuditFilter::new().resource("projects").resource_id("7"),
            expect(&|e| e.resource_id().unwrap().as_str() == "7"),
        ),
        (
            AuditFilter::new().status(AuditStatus::Denied),
            expect(&|e| e.status() == AuditStatus::Denied),
        ),
        (
            AuditFilter::new().since(at(100)).until(at(2100)),
            expect(&|e| e.created_at() >= at(100) && e.created_at() < at(2100)),
        ),
        (
            AuditFilter::new().ip("10.0.8.0/24").unwrap(),
            expect(&|e| e.context().client_ip().unwrap().to_string().starts_with("10.0.8.")),
        ),
        (
            AuditFilter::new().ip("2001:db8::/32").unwrap(),
            expect(&|e| e.context().client_ip().unwrap().is_ipv6()),
        ),
        (
            AuditFilter::new().ip("10.0.4.4").unwrap(),
            expect(&|e| e.context().client_ip().unwrap().to_string() == "10.0.4.4"),
        ),
        (AuditFilter::new().request_id("req-4242"), 1),
        (
            AuditFilter::new()
                .user("2")
                .action("CREATE_PROJECT")
                .status(AuditStatus::Failed)
                .since(at(5000)),
            expect(&|e| {
                e.actor().user_id().unwrap().as_str() == "2"
                    && e.action().as_str() == "CREATE_PROJECT"
                    && e.status() == AuditStatus::Failed
                    && e.created_at() >= at(5000)
            }),
        ),
    ];
    for (filter, expected) in &cases {
        assert!(*expected > 0, "a case that matches nothing proves little: {filter:?}");
        assert_eq!(log.count(filter).unwrap(), *expected, "{filter:?}");
    }

    // Paging through a filter in both orders visits every row once, in time order.
    for order in [Order::OldestFirst, Order::NewestFirst] {
        let filter = AuditFilter::new().action("UPDATE_ROLE");
        let mut page = PageRequest::first(333).order(order);
        let mut seen = Vec::new();
        loop {
            let batch = log.query(&filter, &page).unwrap();
            assert!(batch.records.len() <= 333);
            seen.extend(batch.records.iter().map(|r| (r.created_at, r.id)));
            match batch.next {
                Some(cursor) => page = page.after(cursor),
                None => break,
            }
        }
        assert_eq!(seen.len() as u64, expect(&|e| e.action().as_str() == "UPDATE_ROLE"));
        let mut sorted = seen.clone();
        sorted.sort();
        if order == Order::NewestFirst {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{order:?}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "no row twice");
    }

    // Streaming visits everything with bounded pages.
    let mut streamed = 0;
    log.for_each(&AuditFilter::new().user("1"), |_| {
        streamed += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(streamed, expect(&|e| e.actor().user_id().unwrap().as_str() == "1"));
    assert!(log.verify().unwrap().is_valid());
}

fn bad_filters_get_typed_errors(db: &TestDatabase) {
    let log = open(db);
    let too_long = AuditFilter::new().user(&"9".repeat(200));
    assert_eq!(log.count(&too_long).unwrap_err().kind(), ErrorKind::InvalidInput);
    let orphan_id = AuditFilter::new().resource_id("1");
    assert_eq!(
        log.query(&orphan_id, &PageRequest::first(1)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let later: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let backwards = AuditFilter::new().since(later).until(start());
    assert_eq!(log.count(&backwards).unwrap_err().kind(), ErrorKind::InvalidInput);
}

fn migrations_are_idempotent(db: &TestDatabase) {
    let log = open(db);
    assert!(log.migrate().unwrap().is_empty(), "nothing left to apply");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pool = support::pool(db);
            std::thread::spawn(move || pool.run_migrations(&zt_audit::MIGRATIONS).unwrap())
        })
        .collect();
    for thread in threads {
        assert!(thread.join().unwrap().is_empty());
    }
}

/// A log written with one key refuses writes under another, naming the
/// configured key's id, before anything is written; the right key writes on.
fn a_changed_key_is_refused_before_anything_is_written(db: &TestDatabase) {
    use diesel::Connection;
    let log = open(db);
    log.record(&event(1)).unwrap();
    let other = zt_audit::ChainKey::from_bytes(&(7..7 + 32).collect::<Vec<u8>>()).unwrap();
    let wrong = AuditLog::new(support::pool(db), &other);
    let error = wrong.check_key().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidKey);
    assert!(error.to_string().contains(&other.id()), "{error}");
    assert!(!error.to_string().contains(&support::key().id()), "{error}");
    // Every write path refuses, and nothing lands.
    assert_eq!(wrong.record(&event(2)).unwrap_err().kind(), ErrorKind::InvalidKey);
    assert_eq!(
        wrong.record_batch(&[event(3)]).unwrap_err().kind(),
        ErrorKind::InvalidKey
    );
    let mut conn = wrong.pool().get().unwrap();
    let in_tx = match conn.connection() {
        #[cfg(feature = "sqlite")]
        zt_db::AnyConnection::Sqlite(conn) => conn.transaction(|conn| wrong.record_in(conn, &event(4))),
        #[cfg(feature = "postgres")]
        zt_db::AnyConnection::Postgres(conn) => conn.transaction(|conn| wrong.record_in(conn, &event(4))),
        _ => unreachable!("backend_tests! runs only the backends this crate was built with"),
    };
    assert_eq!(in_tx.unwrap_err().kind(), ErrorKind::InvalidKey);
    drop(conn);
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 1);
    // The key that wrote the log passes, on a new handle too.
    let again = AuditLog::new(support::pool(db), &support::key());
    again.check_key().unwrap();
    again.record(&event(5)).unwrap();
    assert!(again.verify().unwrap().is_valid());
    // An empty log accepts any key.
    let empty = TestDatabase::new(db.backend()).unwrap();
    let fresh = AuditLog::new(support::pool(&empty), &other);
    fresh.migrate().unwrap();
    fresh.check_key().unwrap();
}

zt_testkit::backend_tests!(
    a_changed_key_is_refused_before_anything_is_written,
    writes_and_reads_back_every_field,
    same_event_twice_is_stored_once,
    in_transaction_write_is_atomic_with_the_business_change,
    append_only_triggers_refuse_update_and_delete,
    eight_threads_write_exactly_the_expected_rows,
    two_handles_share_one_chain,
    batch_results_name_the_rows_stored,
    filters_and_pagination_on_a_seeded_log,
    bad_filters_get_typed_errors,
    migrations_are_idempotent,
);
