//! Erasure of personal data: a user's email, metadata, IPs and user agent
//! leave the log, the rows still verify, and an erasure by anyone but zt is
//! found.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{disable_triggers, event, key, open, raw, start};
use zt_audit::{AuditFilter, AuditLog, PageRequest, SigningKey, TamperKind, verify_archive};
use zt_testkit::TestDatabase;

const ROWS: u32 = 21;

fn seeded(db: &TestDatabase) -> AuditLog {
    let log = open(db);
    for i in 0..ROWS {
        log.record(&event(i)).unwrap();
    }
    log
}

fn rows_of(log: &AuditLog, user: &str) -> Vec<zt_audit::AuditRecord> {
    log.query(&AuditFilter::new().user(user), &PageRequest::first(100))
        .unwrap()
        .records
}

fn a_users_personal_data_leaves_and_the_log_still_verifies(db: &TestDatabase) {
    let log = seeded(db);
    let before = rows_of(&log, "3");
    assert_eq!(before.len(), 3);
    assert!(
        before
            .iter()
            .all(|row| row.user_email.is_some() && row.user_agent.is_some())
    );

    let summary = log.erase_personal_data("3").unwrap();
    assert_eq!((summary.erased, summary.already_erased, summary.legacy), (3, 0, 0));
    for (row, was) in rows_of(&log, "3").iter().zip(&before) {
        assert_eq!((row.user_email.as_deref(), row.metadata.as_str()), (None, "{}"));
        assert_eq!(
            (row.client_ip, row.peer_ip, row.user_agent.as_deref()),
            (None, None, None)
        );
        // What the investigator still has: who, what, when, how it ended.
        assert_eq!(
            (&row.user_id, &row.action, row.created_at, row.status),
            (&was.user_id, &was.action, was.created_at, was.status)
        );
    }
    // Other users keep theirs.
    assert!(rows_of(&log, "4").iter().all(|row| row.user_email.is_some()));
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    let erase_events = log
        .query(&AuditFilter::new().action("AUDIT_ERASE"), &PageRequest::first(10))
        .unwrap()
        .records;
    assert_eq!(erase_events.len(), 1);
    assert_eq!(erase_events[0].resource_id.as_deref(), Some("3"));

    let again = log.erase_personal_data("3").unwrap();
    assert_eq!((again.erased, again.already_erased), (0, 3));
    assert!(log.verify().unwrap().is_valid());

    // An archive of erased rows holds no personal data and still verifies.
    let signing = SigningKey::from_bytes(&(1..33).collect::<Vec<u8>>().try_into().unwrap());
    let mut archive = Vec::new();
    log.archive(start().saturating_add(Duration::from_secs(100)), &signing, &mut archive)
        .unwrap();
    let text = String::from_utf8(archive.clone()).unwrap();
    assert!(!text.contains("user3@example.com"));
    let (_, report) = verify_archive(archive.as_slice(), &key(), &signing.verifying_key()).unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
}

fn erasure_outside_zt_is_found(db: &TestDatabase) {
    let log = seeded(db);
    log.erase_personal_data("3").unwrap();
    // With the triggers on, no one empties or changes a row by hand.
    assert!(raw(db, "UPDATE audit_logs SET user_email = NULL WHERE user_id = '4'").is_err());
    assert!(raw(db, "UPDATE audit_logs SET action = 'X' WHERE user_id = '3'").is_err());

    // With them off, a row emptied by hand fails verification.
    disable_triggers(db);
    let id = rows_of(&log, "4")[0].id;
    raw(db, &format!("UPDATE audit_logs SET user_email = NULL WHERE id = {id}")).unwrap();
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (id, TamperKind::Modified),
        "{finding}"
    );
}

fn a_forged_erasure_record_is_found(db: &TestDatabase) {
    let log = seeded(db);
    let row = rows_of(&log, "5").remove(0);
    // An erasure record with a made-up commitment, and the fields emptied.
    raw(
        db,
        &format!(
            "INSERT INTO audit_erasures (chain_id, chain_seq, commitment, erased_at) \
             SELECT chain_id, chain_seq, mac, created_at FROM audit_logs WHERE id = {}",
            row.id
        ),
    )
    .unwrap();
    disable_triggers(db);
    raw(
        db,
        &format!(
            "UPDATE audit_logs SET user_email = NULL, user_agent = NULL, client_ip = NULL, peer_ip = NULL \
             WHERE id = {}",
            row.id
        ),
    )
    .unwrap();
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (row.chain_seq, TamperKind::Modified),
        "{finding}"
    );
}

fn erased_data_cannot_come_back(db: &TestDatabase) {
    let log = seeded(db);
    log.erase_personal_data("6").unwrap();
    let row = rows_of(&log, "6").remove(0);
    disable_triggers(db);
    raw(
        db,
        &format!(
            "UPDATE audit_logs SET user_email = 'forged@example.com' WHERE id = {}",
            row.id
        ),
    )
    .unwrap();
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (row.chain_seq, TamperKind::Modified),
        "{finding}"
    );
}

/// Verification reads a long chain in batches (and on PostgreSQL in one
/// COPY per span), checking MACs on other threads: erased rows in later
/// batches still verify, and a change far in is found at its position.
fn a_long_chain_verifies_across_batches(db: &TestDatabase) {
    let log = open(db);
    let events: Vec<_> = (0..12_000).map(event).collect();
    for batch in events.chunks(4_000) {
        log.record_batch(batch).unwrap();
    }
    // User 3's rows are spread over every batch.
    assert!(log.erase_personal_data("3").unwrap().erased > 1_500);
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, 12_001, "the rows and the erasure's own row");

    disable_triggers(db);
    let changed = log
        .query(&AuditFilter::new().user("4"), &PageRequest::first(5_000))
        .unwrap()
        .records
        .into_iter()
        .max_by_key(|row| row.chain_seq)
        .unwrap();
    assert!(changed.chain_seq > 10_000, "the newest of user 4's rows, far in");
    raw(
        db,
        &format!("UPDATE audit_logs SET action = 'X' WHERE id = {}", changed.id),
    )
    .unwrap();
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (changed.chain_seq, TamperKind::Modified),
        "{finding}"
    );
}

zt_testkit::backend_tests!(
    a_long_chain_verifies_across_batches,
    a_users_personal_data_leaves_and_the_log_still_verifies,
    erasure_outside_zt_is_found,
    a_forged_erasure_record_is_found,
    erased_data_cannot_come_back,
);
