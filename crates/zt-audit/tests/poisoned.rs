//! Rows an attacker with database access rewrote into forms zt never
//! writes: the same instant or address in another text form, a status in
//! another spelling, bytes that are not UTF-8, NULL where zt writes a value,
//! a time PostgreSQL holds but zt cannot, a MAC of the wrong length.
//! Verification names the row and the field; queries and exports show the
//! row with the field marked and carry on past it.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use support::{disable_triggers, event, open, raw_batch};
use zt_audit::{AuditFilter, AuditLog, PageRequest, TamperKind};
use zt_testkit::{Backend, TestDatabase};

const ROWS: u32 = 20;

fn seeded(db: &TestDatabase) -> AuditLog {
    let log = open(db);
    for i in 0..ROWS {
        log.record(&event(i)).unwrap();
    }
    assert!(log.verify().unwrap().is_valid());
    disable_triggers(db);
    log
}

/// Runs `sql` with SQLite's CHECK constraints off, as an attacker who
/// rebuilt the table without them could; on PostgreSQL, as it is.
fn unchecked(db: &TestDatabase, sql: &str) {
    match db.backend() {
        Backend::Sqlite => raw_batch(db, &format!("PRAGMA ignore_check_constraints = ON; {sql}")),
        Backend::Postgres => raw_batch(db, sql),
    }
}

/// Verification names `position`, as modified, and `field` in its detail.
fn assert_named(log: &AuditLog, position: i64, field: &str) {
    let report = log.verify().unwrap();
    let finding = report
        .finding
        .unwrap_or_else(|| panic!("the rewritten {field} at position {position} went unnoticed"));
    assert_eq!(
        (finding.position, finding.kind),
        (position, TamperKind::Modified),
        "{}",
        finding.detail
    );
    assert!(finding.detail.contains(field), "{}", finding.detail);
}

/// Every page of one row, and every export, still reach all rows; the
/// damaged one says which field is damaged.
fn assert_readable(log: &AuditLog, id: i64, field: &str) {
    let mut seen = HashSet::new();
    let mut page = PageRequest::first(1);
    let mut pages = 0;
    loop {
        let batch = log.query(&AuditFilter::new(), &page).unwrap();
        pages += 1;
        assert!(pages <= 100, "paging does not end");
        for record in &batch.records {
            assert!(seen.insert(record.id), "row {} came twice", record.id);
        }
        match batch.next {
            Some(cursor) => page = page.after(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), ROWS as usize, "every row is listed");

    let mut damaged = Vec::new();
    let exported = log
        .for_each(&AuditFilter::new(), |record| {
            if record.is_damaged() {
                damaged.push((record.id, record.damaged.clone()));
                let json = serde_json::to_value(record).unwrap();
                assert_eq!(json["damaged"][0]["field"], field, "{json}");
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(exported, u64::from(ROWS), "the export continues past the damaged row");
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].0, id);
    assert_eq!(damaged[0].1[0].field, field, "{damaged:?}");
    // A query shows the row with its damage named (the `zt` table prints it).
    let shown = log
        .query(&AuditFilter::new(), &PageRequest::first(100))
        .unwrap()
        .records;
    let row = shown.iter().find(|row| row.id == id).unwrap();
    assert_eq!(row.damaged[0].field, field);
}

fn time_in_another_text_form(db: &TestDatabase) {
    let log = seeded(db);
    match db.backend() {
        // The same instant, and the same length, so the CHECK lets it in:
        // it would sort before every other row and drop out of `--since`.
        Backend::Sqlite => raw_batch(
            db,
            "UPDATE audit_logs SET created_at = replace(created_at, 'T', ' ') WHERE id = 6",
        ),
        // PostgreSQL holds times zt cannot: `infinity`, years past 9999.
        Backend::Postgres => raw_batch(db, "UPDATE audit_logs SET created_at = 'infinity' WHERE id = 6"),
    }
    assert_named(&log, 6, "created_at");
    assert_readable(&log, 6, "created_at");
}

fn time_without_its_fraction(db: &TestDatabase) {
    if db.backend() != Backend::Sqlite {
        return;
    }
    let log = seeded(db);
    unchecked(
        db,
        "UPDATE audit_logs SET created_at = substr(created_at, 1, 19) || 'Z' WHERE id = 3; \
         UPDATE audit_logs SET created_at = substr(created_at, 1, 19) || '+00:00' WHERE id = 11",
    );
    assert_named(&log, 3, "created_at");
    let since = log.query(
        &AuditFilter::new().since(support::start().saturating_add(std::time::Duration::from_secs(2))),
        &PageRequest::first(100),
    );
    assert_eq!(since.unwrap().records.len(), 18, "both rewritten rows are still listed");
}

fn uppercase_event_id(db: &TestDatabase) {
    if db.backend() != Backend::Sqlite {
        return;
    }
    let log = seeded(db);
    raw_batch(db, "UPDATE audit_logs SET event_id = upper(event_id) WHERE id = 4");
    assert_named(&log, 4, "event_id");
}

fn address_in_another_form(db: &TestDatabase) {
    let log = seeded(db);
    match db.backend() {
        // Row 4 holds an IPv6 client.
        Backend::Sqlite => raw_batch(db, "UPDATE audit_logs SET client_ip = upper(client_ip) WHERE id = 4"),
        // Row 5 holds an IPv4 client; as a /8 it drops out of host filters.
        Backend::Postgres => raw_batch(
            db,
            "UPDATE audit_logs SET client_ip = set_masklen(client_ip, 8) WHERE id = 5",
        ),
    }
    let position = if db.backend() == Backend::Sqlite { 4 } else { 5 };
    assert_named(&log, position, "client_ip");
    assert_readable(&log, position, "client_ip");
}

fn status_in_another_spelling(db: &TestDatabase) {
    let log = seeded(db);
    match db.backend() {
        Backend::Sqlite => unchecked(db, "UPDATE audit_logs SET status = upper(status) WHERE id = 7"),
        Backend::Postgres => raw_batch(
            db,
            "ALTER TABLE audit_logs DROP CONSTRAINT audit_logs_status_check; \
             UPDATE audit_logs SET status = upper(status) WHERE id = 7",
        ),
    }
    assert_named(&log, 7, "status");
    assert_readable(&log, 7, "status");
}

fn user_agent_not_utf8(db: &TestDatabase) {
    if db.backend() != Backend::Sqlite {
        // PostgreSQL text in a UTF-8 database is always valid UTF-8.
        return;
    }
    let log = seeded(db);
    raw_batch(
        db,
        "UPDATE audit_logs SET user_agent = CAST(X'4D6F7A696C6C61FF2F35' AS TEXT) WHERE id = 9",
    );
    assert_named(&log, 9, "user_agent");
    assert_readable(&log, 9, "user_agent");
    let page = log.query(&AuditFilter::new(), &PageRequest::first(100)).unwrap();
    let poisoned = page.records.iter().find(|record| record.id == 9).unwrap();
    assert_eq!(poisoned.user_agent.as_deref(), Some("Mozilla\u{fffd}/5"));
}

fn metadata_not_utf8(db: &TestDatabase) {
    if db.backend() != Backend::Sqlite {
        return;
    }
    let log = seeded(db);
    unchecked(
        db,
        "UPDATE audit_logs SET metadata = CAST(X'7B2261223A202261FE227D' AS TEXT) WHERE id = 12",
    );
    assert_named(&log, 12, "metadata");
    assert_readable(&log, 12, "metadata");
}

fn null_where_zt_writes_a_value(db: &TestDatabase) {
    if db.backend() != Backend::Postgres {
        // SQLite cannot drop a NOT NULL without rebuilding the table.
        return;
    }
    let log = seeded(db);
    raw_batch(
        db,
        "ALTER TABLE audit_logs ALTER COLUMN action DROP NOT NULL; \
         UPDATE audit_logs SET action = NULL WHERE id = 13",
    );
    assert_named(&log, 13, "action");
    assert_readable(&log, 13, "action");
}

fn mac_of_the_wrong_length(db: &TestDatabase) {
    let log = seeded(db);
    match db.backend() {
        Backend::Sqlite => unchecked(db, "UPDATE audit_logs SET mac = X'00' WHERE id = 15"),
        Backend::Postgres => raw_batch(
            db,
            "ALTER TABLE audit_logs DROP CONSTRAINT audit_logs_mac_check; \
             UPDATE audit_logs SET mac = '\\x00' WHERE id = 15",
        ),
    }
    assert_named(&log, 15, "mac");
    assert_readable(&log, 15, "mac");
}

fn many_damaged_times_still_page(db: &TestDatabase) {
    let log = seeded(db);
    match db.backend() {
        Backend::Sqlite => unchecked(
            db,
            "UPDATE audit_logs SET created_at = 'garbage-' || id WHERE id IN (2, 3, 4, 10, 17)",
        ),
        Backend::Postgres => raw_batch(
            db,
            "UPDATE audit_logs SET created_at = 'infinity' WHERE id IN (2, 3, 4, 10, 17)",
        ),
    }
    for limit in [1, 2, 3, 7] {
        let mut seen = HashSet::new();
        let mut page = PageRequest::first(limit);
        for _ in 0..100 {
            let batch = log.query(&AuditFilter::new(), &page).unwrap();
            seen.extend(batch.records.iter().map(|record| record.id));
            match batch.next {
                Some(cursor) => page = page.after(cursor),
                None => break,
            }
        }
        assert_eq!(seen.len(), ROWS as usize, "pages of {limit} reach every row");
    }
    assert_eq!(log.for_each(&AuditFilter::new(), |_| Ok(())).unwrap(), u64::from(ROWS));
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!((finding.position, finding.kind), (2, TamperKind::Modified));
}

zt_testkit::backend_tests!(
    time_in_another_text_form,
    time_without_its_fraction,
    uppercase_event_id,
    address_in_another_form,
    status_in_another_spelling,
    user_agent_not_utf8,
    metadata_not_utf8,
    null_where_zt_writes_a_value,
    mac_of_the_wrong_length,
    many_damaged_times_still_page,
);
