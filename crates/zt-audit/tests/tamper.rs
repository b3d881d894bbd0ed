//! The tamper matrix: an attacker with superuser access turns the triggers
//! off and changes the log through raw SQL; verification must name the first
//! bad row and what happened to it.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{disable_triggers, event, open, raw};
use zt_audit::{AuditLog, Checkpoint, SignedCheckpoint, SigningKey, TamperKind};
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

fn assert_finding(log: &AuditLog, position: i64, kind: TamperKind) {
    let report = log.verify().unwrap();
    let finding = report
        .finding
        .unwrap_or_else(|| panic!("tampering at position {position} went unnoticed"));
    assert_eq!((finding.position, finding.kind), (position, kind), "{}", finding.detail);
}

/// Moves every row from `from` on by `by` positions, ids and chain
/// positions alike, through a far-away range so that no key collides. The
/// seeded log is one chain whose positions equal its ids.
fn shift_ids(db: &TestDatabase, from: i64, by: i64) {
    raw(
        db,
        &format!("UPDATE audit_logs SET id = id + 1000000, chain_seq = chain_seq + 1000000 WHERE id >= {from}"),
    )
    .unwrap();
    raw(
        db,
        &format!(
            "UPDATE audit_logs SET id = id - 1000000 + ({by}), chain_seq = chain_seq - 1000000 + ({by}) \
             WHERE id >= 1000000"
        ),
    )
    .unwrap();
}

/// Inserts a forged copy of row `source` at position `id`, with a garbage MAC
/// and the MAC of row `link_to` as its predecessor.
fn insert_forged(db: &TestDatabase, id: i64, source: i64, link_to: i64) {
    let garbage = "abababababababababababababababababababababababababababababababab";
    let columns = "event_id, created_at, actor_kind, user_id, user_email, action, resource, resource_id, metadata, \
                   client_ip, peer_ip, user_agent, status, error_code, request_id, chain_version, chain_id";
    let (columns, garbage_mac) = match db.backend() {
        Backend::Sqlite => (format!("{columns}, client_ip_bin"), format!("X'{garbage}'")),
        Backend::Postgres => (columns.to_owned(), format!("decode('{garbage}', 'hex')")),
    };
    let selected = columns
        .replace("event_id,", "'00000000-0000-4000-8000-000000000007',")
        .replace("action,", "'GRANT_ADMIN',");
    raw(
        db,
        &format!(
            "INSERT INTO audit_logs (id, chain_seq, {columns}, prev_mac, mac) \
             SELECT {id}, {id}, {selected}, (SELECT mac FROM audit_logs WHERE id = {link_to}), {garbage_mac} \
             FROM audit_logs WHERE id = {source}"
        ),
    )
    .unwrap();
}

fn modified_field_is_named(db: &TestDatabase) {
    let log = seeded(db);
    raw(
        db,
        "UPDATE audit_logs SET status = 'success', error_code = NULL WHERE id = 8",
    )
    .unwrap();
    assert_finding(&log, 8, TamperKind::Modified);
}

fn modified_metadata_is_named(db: &TestDatabase) {
    let log = seeded(db);
    raw(
        db,
        r#"UPDATE audit_logs SET metadata = '{"i": 999, "name": "project 999"}' WHERE id = 12"#,
    )
    .unwrap();
    assert_finding(&log, 12, TamperKind::Modified);
}

fn modified_time_and_address_are_named(db: &TestDatabase) {
    let log = seeded(db);
    match db.backend() {
        Backend::Sqlite => {
            raw(
                db,
                "UPDATE audit_logs SET created_at = '2020-01-01T00:00:00.000000Z' WHERE id = 3",
            )
            .unwrap();
        }
        Backend::Postgres => {
            raw(
                db,
                "UPDATE audit_logs SET created_at = created_at - interval '1 day' WHERE id = 3",
            )
            .unwrap();
        }
    }
    assert_finding(&log, 3, TamperKind::Modified);
}

fn modified_address_is_named(db: &TestDatabase) {
    let log = seeded(db);
    match db.backend() {
        // On SQLite the derived range key alone is enough to notice.
        Backend::Sqlite => raw(db, "UPDATE audit_logs SET client_ip_bin = zeroblob(16) WHERE id = 5").unwrap(),
        Backend::Postgres => raw(db, "UPDATE audit_logs SET client_ip = '192.0.2.1' WHERE id = 5").unwrap(),
    };
    assert_finding(&log, 5, TamperKind::Modified);
}

fn deleted_row_is_a_gap(db: &TestDatabase) {
    let log = seeded(db);
    raw(db, "DELETE FROM audit_logs WHERE id IN (9, 10)").unwrap();
    assert_finding(&log, 9, TamperKind::Deleted);
}

fn deleted_and_renumbered_is_still_a_deletion(db: &TestDatabase) {
    let log = seeded(db);
    raw(db, "DELETE FROM audit_logs WHERE id = 9").unwrap();
    shift_ids(db, 10, -1);
    assert_finding(&log, 9, TamperKind::Deleted);
}

fn deleted_first_row_is_named(db: &TestDatabase) {
    let log = seeded(db);
    raw(db, "DELETE FROM audit_logs WHERE id = 1").unwrap();
    assert_finding(&log, 1, TamperKind::Deleted);
}

fn deleted_tail_is_caught_by_the_chain_head(db: &TestDatabase) {
    let log = seeded(db);
    raw(db, "DELETE FROM audit_logs WHERE id > 15").unwrap();
    assert_finding(&log, 16, TamperKind::Deleted);
}

fn inserted_row_in_the_middle_is_named(db: &TestDatabase) {
    let log = seeded(db);
    shift_ids(db, 7, 1);
    insert_forged(db, 7, 6, 6);
    assert_finding(&log, 7, TamperKind::Inserted);
}

fn inserted_row_at_the_end_is_named(db: &TestDatabase) {
    let log = seeded(db);
    insert_forged(db, 21, 20, 20);
    assert_finding(&log, 21, TamperKind::Inserted);
}

fn reordered_rows_are_named(db: &TestDatabase) {
    let log = seeded(db);
    raw(
        db,
        "UPDATE audit_logs SET id = 1000011, chain_seq = 1000011 WHERE id = 11",
    )
    .unwrap();
    raw(db, "UPDATE audit_logs SET id = 11, chain_seq = 11 WHERE id = 12").unwrap();
    raw(db, "UPDATE audit_logs SET id = 12, chain_seq = 12 WHERE id = 1000011").unwrap();
    assert_finding(&log, 11, TamperKind::Reordered);
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn truncation_after_a_checkpoint_is_detected(db: &TestDatabase) {
    let log = seeded(db);
    let checkpoint = SignedCheckpoint::from_json(&log.checkpoint(&signing_key()).unwrap().to_json()).unwrap();
    assert_eq!(checkpoint.checkpoint.row_count, u64::from(ROWS));
    let trusted = signing_key().verifying_key();
    assert!(
        log.verify_with(Some((&checkpoint, &trusted)), |_| {})
            .unwrap()
            .is_valid()
    );

    // A careful attacker deletes the newest rows and rewinds the head to match.
    raw(db, "DELETE FROM audit_logs WHERE id > 15").unwrap();
    raw(
        db,
        "UPDATE audit_chain_head SET seq = 15, mac = (SELECT mac FROM audit_logs WHERE id = 15) \
         WHERE id = (SELECT chain_id FROM audit_logs WHERE id = 15)",
    )
    .unwrap();
    assert!(
        log.verify().unwrap().is_valid(),
        "without a checkpoint the truncation is invisible"
    );

    let report = log.verify_with(Some((&checkpoint, &trusted)), |_| {}).unwrap();
    let finding = report.finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (16, TamperKind::TruncatedAfterCheckpoint),
        "{}",
        finding.detail
    );
}

fn bad_checkpoint_signature_is_named(db: &TestDatabase) {
    let log = seeded(db);
    let mut checkpoint = log.checkpoint(&signing_key()).unwrap();
    checkpoint.checkpoint.row_count = 10;
    let trusted = signing_key().verifying_key();
    let report = log.verify_with(Some((&checkpoint, &trusted)), |_| {}).unwrap();
    assert_eq!(report.finding.unwrap().kind, TamperKind::BadCheckpointSignature);

    let genuine = log.checkpoint(&signing_key()).unwrap();
    let stranger = SigningKey::from_bytes(&[6; 32]).verifying_key();
    let report = log.verify_with(Some((&genuine, &stranger)), |_| {}).unwrap();
    assert_eq!(report.finding.unwrap().kind, TamperKind::BadCheckpointSignature);
}

fn rewritten_chain_misses_its_checkpoint(db: &TestDatabase) {
    let log = seeded(db);
    let genuine = log.checkpoint(&signing_key()).unwrap();
    // A checkpoint of some other chain state, validly signed.
    let mut other: Checkpoint = genuine.checkpoint.clone();
    for state in &mut other.chains {
        if state.seq > 0 {
            state.last_mac = [1; 32];
        }
    }
    let other = other.sign(&signing_key());
    let report = log
        .verify_with(Some((&other, &signing_key().verifying_key())), |_| {})
        .unwrap();
    let finding = report.finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (i64::from(ROWS), TamperKind::CheckpointMismatch)
    );
}

fn wrong_key_fails_every_row(db: &TestDatabase) {
    let log = seeded(db);
    let stranger = AuditLog::new(
        log.pool().clone(),
        &zt_audit::ChainKey::from_bytes(&(7..7 + 32).collect::<Vec<u8>>()).unwrap(),
    );
    let report = stranger.verify().unwrap();
    assert_eq!(report.finding.unwrap().position, 1);
}

zt_testkit::backend_tests!(
    modified_field_is_named,
    modified_metadata_is_named,
    modified_time_and_address_are_named,
    modified_address_is_named,
    deleted_row_is_a_gap,
    deleted_and_renumbered_is_still_a_deletion,
    deleted_first_row_is_named,
    deleted_tail_is_caught_by_the_chain_head,
    inserted_row_in_the_middle_is_named,
    inserted_row_at_the_end_is_named,
    reordered_rows_are_named,
    truncation_after_a_checkpoint_is_detected,
    bad_checkpoint_signature_is_named,
    rewritten_chain_misses_its_checkpoint,
    wrong_key_fails_every_row,
);
