//! Retention: archive the oldest rows with a signed checkpoint at the cut,
//! verify the archive alone, prune exactly those rows through the one path
//! the triggers allow, and keep verifying what is left.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{disable_triggers, event, key, open, raw, start};
use zt_audit::{AuditFilter, AuditLog, SigningKey, TamperKind, verify_archive};
use zt_testkit::TestDatabase;

const ROWS: u32 = 30;
const ARCHIVED: u32 = 20;

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&(9..9 + 32).collect::<Vec<u8>>().try_into().unwrap())
}

fn seeded(db: &TestDatabase) -> AuditLog {
    let log = open(db);
    for i in 0..ROWS {
        log.record(&event(i)).unwrap();
    }
    log
}

/// The cut: rows `0..ARCHIVED` were written before it.
fn cut() -> zt_types::Timestamp {
    start().saturating_add(Duration::from_secs(u64::from(ARCHIVED)))
}

fn archive(log: &AuditLog) -> (Vec<u8>, zt_audit::ArchiveSummary) {
    let mut out = Vec::new();
    let summary = log.archive(cut(), &signing_key(), &mut out).unwrap();
    (out, summary)
}

fn archive_prune_and_keep_verifying(db: &TestDatabase) {
    let log = seeded(db);
    let (bytes, summary) = archive(&log);
    assert_eq!(summary.rows, u64::from(ARCHIVED));
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), ARCHIVED as usize + 1);
    let trusted = signing_key().verifying_key();
    let (header, report) = verify_archive(bytes.as_slice(), &key(), &trusted).unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, u64::from(ARCHIVED));

    // A plain DELETE is still refused, pruned range or not.
    assert!(raw(db, "DELETE FROM audit_logs WHERE id = 3").is_err());
    assert!(raw(db, "DELETE FROM audit_logs WHERE id = 25").is_err());

    let pruned = log.prune(&header, &trusted).unwrap();
    assert_eq!(pruned.rows, u64::from(ARCHIVED));
    let left = log.count(&AuditFilter::new()).unwrap();
    assert_eq!(
        left,
        u64::from(ROWS - ARCHIVED) + 1,
        "the rest, and the prune's own event"
    );
    let prune_event = log
        .query(
            &AuditFilter::new().action("AUDIT_PRUNE"),
            &zt_audit::PageRequest::first(10),
        )
        .unwrap()
        .records;
    assert_eq!(prune_event.len(), 1);
    assert_eq!(prune_event[0].metadata_value()["rows"], u64::from(ARCHIVED));

    // Verification starts after the cut, and finds tampering in what is left.
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, left);
    // Rows after the prune point are still append-only.
    assert!(raw(db, "DELETE FROM audit_logs WHERE id = 25").is_err());
    disable_triggers(db);
    raw(db, "UPDATE audit_logs SET action = action || 'X' WHERE id = 25").unwrap();
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (25, TamperKind::Modified),
        "{finding}"
    );

    // Pruning the same archive again deletes nothing more.
    raw(
        db,
        "UPDATE audit_logs SET action = substr(action, 1, length(action) - 1) WHERE id = 25",
    )
    .unwrap();
    assert_eq!(log.prune(&header, &trusted).unwrap().rows, 0);
}

fn a_second_archive_starts_at_the_prune(db: &TestDatabase) {
    let log = seeded(db);
    let (_, first) = archive(&log);
    let trusted = signing_key().verifying_key();
    log.prune(&first.header, &trusted).unwrap();
    let mut out = Vec::new();
    let later = start().saturating_add(Duration::from_secs(u64::from(ROWS) - 5));
    let second = log.archive(later, &signing_key(), &mut out).unwrap();
    assert_eq!(second.rows, u64::from(ROWS - ARCHIVED - 5));
    assert_eq!(second.header.start[0].seq, i64::from(ARCHIVED));
    let (header, report) = verify_archive(out.as_slice(), &key(), &trusted).unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    log.prune(&header, &trusted).unwrap();
    assert!(log.verify().unwrap().is_valid());
}

fn tampered_archives_are_named(db: &TestDatabase) {
    let log = seeded(db);
    let (bytes, _) = archive(&log);
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let trusted = signing_key().verifying_key();
    let check = |lines: &[String]| verify_archive(lines.join("\n").as_bytes(), &key(), &trusted).unwrap().1;

    let mut edited: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    edited[5] = edited[5]
        .replace("UPDATE_PROJECT", "DELETE_PROJECT")
        .replace("CREATE_PROJECT", "DELETE_PROJECT");
    let finding = check(&edited).finding.unwrap();
    assert_eq!((finding.position, finding.kind), (5, TamperKind::Modified), "{finding}");

    let mut dropped: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    dropped.remove(7);
    assert_eq!(check(&dropped).finding.unwrap().kind, TamperKind::Deleted);

    let mut cut_short: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    cut_short.pop();
    assert_eq!(
        check(&cut_short).finding.unwrap().kind,
        TamperKind::TruncatedAfterCheckpoint
    );

    let stranger = SigningKey::from_bytes(&[3; 32]).verifying_key();
    let whole = lines.join("\n");
    let (_, report) = verify_archive(whole.as_bytes(), &key(), &stranger).unwrap();
    assert_eq!(report.finding.unwrap().kind, TamperKind::BadCheckpointSignature);
    // Nor does a stranger's archive prune anything.
    let (header, _) = verify_archive(whole.as_bytes(), &key(), &trusted).unwrap();
    assert!(log.prune(&header, &stranger).is_err());
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), u64::from(ROWS));

    assert!(verify_archive(&b"not an archive\n"[..], &key(), &trusted).is_err());
}

fn rows_deleted_outside_prune_are_found(db: &TestDatabase) {
    let log = seeded(db);
    // An attacker who owns the tables records a prune of their own, with no
    // valid tag, and deletes the oldest rows through the triggers' way out.
    raw(
        db,
        "INSERT INTO audit_prunes (chain_id, upto_seq, upto_mac, pruned_at, tag) \
         SELECT chain_id, chain_seq, mac, created_at, mac FROM audit_logs WHERE id = 10",
    )
    .unwrap();
    raw(db, "DELETE FROM audit_logs WHERE id <= 10").unwrap();
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (10, TamperKind::Inserted),
        "{finding}"
    );
    assert!(finding.detail.contains("prune record"), "{finding}");
    // And prune records cannot be taken back.
    assert!(raw(db, "DELETE FROM audit_prunes").is_err());
}

fn a_changed_log_is_not_pruned(db: &TestDatabase) {
    let log = seeded(db);
    let (bytes, _) = archive(&log);
    let trusted = signing_key().verifying_key();
    let (header, _) = verify_archive(bytes.as_slice(), &key(), &trusted).unwrap();
    // The row at the cut is rewritten after the archive was taken.
    disable_triggers(db);
    raw(
        db,
        &format!("UPDATE audit_logs SET mac = prev_mac WHERE id = {ARCHIVED}"),
    )
    .unwrap();
    let error = log.prune(&header, &trusted).unwrap_err();
    assert!(error.to_string().contains("is not the row"), "{error}");
    assert_eq!(
        log.count(&AuditFilter::new()).unwrap(),
        u64::from(ROWS),
        "nothing deleted"
    );
    // Nor is a log that does not verify archived.
    let mut out = Vec::new();
    let refused = log.archive(cut(), &signing_key(), &mut out).unwrap_err();
    assert_eq!(refused.kind(), zt_audit::ErrorKind::Tampered, "{refused}");
}

/// Write, checkpoint, archive, prune, erase and tamper, with a verification
/// after each step giving what it should.
fn the_whole_life_cycle(db: &TestDatabase) {
    let log = seeded(db);
    let trusted = signing_key().verifying_key();
    let dir = zt_audit::CheckpointDir::new(db.scratch_dir().join("checkpoints")).unwrap();
    dir.write(&log.checkpoint(&signing_key()).unwrap()).unwrap();
    let (_, newest) = dir.newest().unwrap().unwrap();
    assert!(log.verify_with(Some((&newest, &trusted)), |_| {}).unwrap().is_valid());

    let (bytes, _) = archive(&log);
    let (header, archived) = verify_archive(bytes.as_slice(), &key(), &trusted).unwrap();
    assert!(archived.is_valid());
    log.prune(&header, &trusted).unwrap();
    let after_prune = log.verify().unwrap();
    assert!(after_prune.is_valid(), "{:?}", after_prune.finding);
    // The checkpoint from before the prune still holds for what is left.
    assert!(log.verify_with(Some((&newest, &trusted)), |_| {}).unwrap().is_valid());

    let erased = log.erase_personal_data("2").unwrap();
    assert!(erased.erased > 0);
    let since = log.checkpoint(&signing_key()).unwrap();
    assert!(log.verify().unwrap().is_valid());
    for i in ROWS..ROWS + 3 {
        log.record(&event(i)).unwrap();
    }
    let incremental = log.verify_from(&since, &trusted, None, |_| {}).unwrap();
    assert!(
        incremental.is_valid() && incremental.rows_checked == 3,
        "{incremental:?}"
    );

    disable_triggers(db);
    raw(db, "UPDATE audit_logs SET resource = 'tampered' WHERE id = 27").unwrap();
    let finding = log.verify().unwrap().finding.unwrap();
    assert_eq!(finding.kind, TamperKind::Modified, "{finding}");
}

/// On PostgreSQL the log can be partitioned by month; a prune then drops
/// whole months. On SQLite partitioning is a clear refusal.
#[cfg(feature = "sqlite")]
#[test]
fn partitions_are_postgresql_only() {
    let db = TestDatabase::sqlite();
    let log = open(&db);
    assert_eq!(
        log.partition_by_month(2).unwrap_err().kind(),
        zt_audit::ErrorKind::InvalidInput
    );
}

#[cfg(feature = "postgres")]
#[test]
fn partitioned_logs_drop_whole_months() {
    use zt_types::{Actor, AuditEvent};
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let db = &db;
    let log = open(db);
    let at = |month: u32, i: u32| -> zt_types::Timestamp {
        format!("2026-{month:02}-{:02}T12:00:00Z", i + 1).parse().unwrap()
    };
    for month in [9, 10, 11] {
        for i in 0..5 {
            let event = AuditEvent::builder(Actor::System, "STEP", "months")
                .metadata(&serde_json::json!({ "month": month, "i": i }))
                .created_at(at(month, i))
                .build()
                .unwrap();
            log.record(&event).unwrap();
        }
    }
    // The app's runtime role keeps its grants through the conversion.
    let role = format!(
        "rt_{}",
        db.url().rsplit('/').next().unwrap().trim_start_matches("zt_test_")
    );
    {
        let mut conn = log.pool().get().unwrap();
        zt_db::RuntimeRole::new(&role)
            .unwrap()
            .apply(&mut conn, &[&zt_audit::MIGRATIONS])
            .unwrap();
    }
    let created = log.partition_by_month(2).unwrap();
    for name in [
        "audit_logs_default",
        "audit_logs_y2026m09",
        "audit_logs_y2026m10",
        "audit_logs_y2026m11",
    ] {
        assert!(created.iter().any(|created| created == name), "{name}: {created:?}");
    }
    assert!(
        log.partition_by_month(2).unwrap().len() <= 1,
        "a second run creates at most a new month"
    );
    let report = log.verify().unwrap();
    assert!(report.is_valid() && report.rows_checked == 15, "{report:?}");
    // Writes go on, replays are still recognized, and the role may still write.
    let again = AuditEvent::builder(Actor::System, "STEP", "months")
        .created_at(at(11, 20))
        .build()
        .unwrap();
    log.record(&again).unwrap();
    assert!(log.record(&again).unwrap().duplicate);
    // A batch goes in through COPY, its rows numbered by the id column's
    // default on the partitioned table; its replay is recognized.
    let batch: Vec<AuditEvent> = [26, 27]
        .into_iter()
        .map(|day| {
            AuditEvent::builder(Actor::System, "BATCH", "months")
                .created_at(at(11, day))
                .build()
                .unwrap()
        })
        .collect();
    let written = log.record_batch(&batch).unwrap();
    assert!(
        !written[0].duplicate && !written[1].duplicate && written[1].id > written[0].id,
        "{written:?}"
    );
    assert!(log.record_batch(&batch).unwrap().iter().all(|r| r.duplicate));
    {
        use diesel::RunQueryDsl;
        let mut conn = diesel::Connection::establish(db.url())
            .map(|c: diesel::PgConnection| c)
            .unwrap();
        diesel::sql_query(format!("SET ROLE {role}"))
            .execute(&mut conn)
            .unwrap();
        log.record_in(
            &mut conn,
            &AuditEvent::builder(Actor::System, "AS_ROLE", "months").build().unwrap(),
        )
        .unwrap();
        assert!(
            diesel::sql_query("TRUNCATE audit_logs_y2026m09")
                .execute(&mut conn)
                .is_err()
        );
        diesel::sql_query("RESET ROLE").execute(&mut conn).unwrap();
        assert!(
            diesel::sql_query("TRUNCATE audit_logs_y2026m09")
                .execute(&mut conn)
                .is_err(),
            "nor its owner"
        );
        assert!(
            diesel::sql_query("DELETE FROM audit_logs_y2026m10")
                .execute(&mut conn)
                .is_err()
        );
    }

    let mut out = Vec::new();
    let cut: zt_types::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let archived = log.archive(cut, &signing_key(), &mut out).unwrap();
    assert_eq!(archived.rows, 10);
    let pruned = log.prune(&archived.header, &signing_key().verifying_key()).unwrap();
    assert_eq!(pruned.rows, 10);
    assert!(
        raw(db, "SELECT 1 FROM audit_logs_y2026m09").is_err(),
        "September's partition is gone"
    );
    assert!(raw(db, "SELECT 1 FROM audit_logs_y2026m10").is_err(), "and October's");
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(
        report.rows_checked,
        5 + 4 + 1,
        "November's, the four written since, and the prune's event"
    );
    use diesel::RunQueryDsl;
    let mut conn: diesel::PgConnection = diesel::Connection::establish(db.url()).unwrap();
    diesel::sql_query(format!("DROP OWNED BY {role}"))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("DROP ROLE {role}"))
        .execute(&mut conn)
        .unwrap();
}

zt_testkit::backend_tests!(
    the_whole_life_cycle,
    archive_prune_and_keep_verifying,
    a_second_archive_starts_at_the_prune,
    tampered_archives_are_named,
    rows_deleted_outside_prune_are_found,
    a_changed_log_is_not_pruned,
);
