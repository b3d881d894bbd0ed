//! Following the log as rows commit: `rows_after` reads each chain in order
//! from a cursor, and `RowVerifier` checks each row as it streams, on both
//! backends.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{disable_triggers, event, open, raw};
use zt_audit::{AuditLog, ChainKey, FollowCursor, TamperKind};
use zt_testkit::TestDatabase;

fn ids(records: &[zt_audit::AuditRecord]) -> Vec<i64> {
    records.iter().map(|record| record.id).collect()
}

/// The cursor after row `id` of the test's one chain.
fn after(log: &AuditLog, id: i64) -> FollowCursor {
    log.cursor_after_id(id).unwrap()
}

fn rows_after_reads_in_chain_order(db: &TestDatabase) {
    let log = open(db);
    assert!(log.rows_after(&after(&log, 0), 10).unwrap().is_empty());
    let events: Vec<_> = (0..25).map(event).collect();
    log.record_batch(&events).unwrap();
    assert_eq!(
        ids(&log.rows_after(&after(&log, 0), 10).unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&log.rows_after(&after(&log, 20), 10).unwrap()),
        (21..=25).collect::<Vec<_>>()
    );
    assert!(log.rows_after(&after(&log, 25), 10).unwrap().is_empty());
    // The rows are the ones `query` returns, field for field.
    let page = log
        .query(&zt_audit::AuditFilter::new(), &zt_audit::PageRequest::first(25))
        .unwrap();
    assert_eq!(log.rows_after(&after(&log, 0), 100).unwrap(), page.records);
    // A read-only handle follows too.
    let reader = AuditLog::read_only(log.pool().clone());
    assert_eq!(
        reader.rows_after(&after(&log, 24), 0).unwrap().len(),
        1,
        "a limit of 0 reads one row"
    );
}

fn row_verifier_streams_and_names_the_first_bad_row(db: &TestDatabase) {
    let log = open(db);
    for i in 0..12 {
        log.record(&event(i)).unwrap();
    }
    let mut verifier = log.row_verifier(&after(&log, 0)).unwrap();
    for record in log.rows_after(&after(&log, 0), 100).unwrap() {
        verifier.check(&record).unwrap();
    }
    assert_eq!(verifier.cursor(), log.cursor_at_end().unwrap());
    // Resuming in the middle links to the stored MAC of the resume point.
    let mut resumed = log.row_verifier(&after(&log, 5)).unwrap();
    for record in log.rows_after(&after(&log, 5), 100).unwrap() {
        resumed.check(&record).unwrap();
    }
    // A row skipped is a gap.
    let mut gap = log.row_verifier(&after(&log, 0)).unwrap();
    let rows = log.rows_after(&after(&log, 0), 3).unwrap();
    gap.check(&rows[0]).unwrap();
    let finding = gap.check(&rows[2]).unwrap_err();
    assert_eq!((finding.position, finding.kind), (2, TamperKind::Deleted));
    // Another key did not write this log.
    let other = AuditLog::new(
        log.pool().clone(),
        &ChainKey::from_bytes(&(7..7 + 32).collect::<Vec<u8>>()).unwrap(),
    );
    let finding = other
        .row_verifier(&after(&log, 0))
        .unwrap()
        .check(&rows[0])
        .unwrap_err();
    assert_eq!((finding.position, finding.kind), (1, TamperKind::Modified));
    // A read-only handle has no key to verify with.
    assert!(
        AuditLog::read_only(log.pool().clone())
            .row_verifier(&after(&log, 0))
            .is_err()
    );

    disable_triggers(db);
    raw(db, "UPDATE audit_logs SET action = 'GRANT_ADMIN' WHERE id = 8").unwrap();
    let mut verifier = log.row_verifier(&after(&log, 5)).unwrap();
    let mut finding = None;
    for record in log.rows_after(&after(&log, 5), 100).unwrap() {
        if let Err(found) = verifier.check(&record) {
            finding = Some(found);
            break;
        }
    }
    let finding = finding.expect("the modified row is caught");
    assert_eq!((finding.position, finding.kind), (8, TamperKind::Modified), "{finding}");
    assert_eq!(verifier.cursor().to_string(), format!("{}:7", finding.chain));

    let at_three = after(&log, 3);
    raw(db, "DELETE FROM audit_logs WHERE id = 3").unwrap();
    let finding = log
        .row_verifier(&at_three)
        .unwrap()
        .check(&log.rows_after(&at_three, 1).unwrap()[0])
        .unwrap_err();
    assert_eq!((finding.position, finding.kind), (3, TamperKind::Deleted), "{finding}");
}

zt_testkit::backend_tests!(
    rows_after_reads_in_chain_order,
    row_verifier_streams_and_names_the_first_bad_row,
);
