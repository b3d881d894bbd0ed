//! The checkpoints' life: taken without being asked and kept in a directory,
//! the newest used to catch a cut tail, and incremental verification from a
//! checkpoint that reads only the rows written since.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{disable_triggers, event, open, raw};
use zt_audit::{AuditLog, AutoCheckpoint, CheckpointDir, SignedCheckpoint, SigningKey, TamperKind};
use zt_testkit::TestDatabase;

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&(5..5 + 32).collect::<Vec<u8>>().try_into().unwrap())
}

/// Waits until `dir` holds `count` checkpoints or more; returns how many.
fn wait_for_checkpoints(dir: &CheckpointDir, count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir(dir.path()).unwrap().count();
        if found >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Cuts the newest rows of the log and moves their chain's head back onto
/// the last row kept, as an attacker with superuser access would.
fn cut_tail(db: &TestDatabase, keep: i64) {
    disable_triggers(db);
    raw(db, &format!("DELETE FROM audit_logs WHERE id > {keep}")).unwrap();
    raw(
        db,
        &format!(
            "UPDATE audit_chain_head SET seq = (SELECT chain_seq FROM audit_logs WHERE id = {keep}), \
             mac = (SELECT mac FROM audit_logs WHERE id = {keep}) \
             WHERE id = (SELECT chain_id FROM audit_logs WHERE id = {keep})"
        ),
    )
    .unwrap();
}

fn automatic_checkpoints_catch_a_cut_tail(db: &TestDatabase) {
    let dir = CheckpointDir::new(db.scratch_dir().join("checkpoints")).unwrap();
    let log = open(db).with_auto_checkpoints(
        AutoCheckpoint::new(signing_key(), dir.clone())
            .every_rows(5)
            .every(None),
    );
    for i in 0..10 {
        log.record(&event(i)).unwrap();
    }
    // One per 5 rows; when the thread is slower than the writes, one may
    // already state all 10 rows, and a checkpoint with nothing new is skipped.
    assert!(wait_for_checkpoints(&dir, 1) >= 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let newest = loop {
        let (_, newest) = dir.newest().unwrap().unwrap();
        if newest.checkpoint.row_count == 10 || Instant::now() > deadline {
            break newest;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(newest.checkpoint.row_count, 10);
    let trusted = signing_key().verifying_key();
    assert!(log.verify_with(Some((&newest, &trusted)), |_| {}).unwrap().is_valid());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let (file, _) = dir.newest().unwrap().unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    cut_tail(db, 8);
    assert!(
        log.verify().unwrap().is_valid(),
        "without a checkpoint the cut is invisible: the reason to keep them"
    );
    let finding = log
        .verify_with(Some((&newest, &trusted)), |_| {})
        .unwrap()
        .finding
        .unwrap();
    assert_eq!(finding.kind, TamperKind::TruncatedAfterCheckpoint, "{finding}");
}

fn a_failing_sink_is_retried_and_never_stops_writes(db: &TestDatabase) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let stored = Arc::new(std::sync::Mutex::new(Vec::<SignedCheckpoint>::new()));
    let sink = {
        let (attempts, stored) = (Arc::clone(&attempts), Arc::clone(&stored));
        move |checkpoint: &SignedCheckpoint| -> Result<(), zt_audit::SinkError> {
            // The webhook is down the first time.
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err("503 from the checkpoint webhook".into());
            }
            stored.lock().unwrap().push(checkpoint.clone());
            Ok(())
        }
    };
    let log = open(db).with_auto_checkpoints(AutoCheckpoint::new(signing_key(), sink).every_rows(3).every(None));
    // One trigger, then a quiet log: the failed checkpoint is tried again
    // all the same, with no new rows and no interval to wake it.
    for i in 0..3 {
        log.record(&event(i)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(attempts.load(Ordering::SeqCst) >= 2);
    for i in 3..9 {
        log.record(&event(i)).unwrap();
    }
    let stored = stored.lock().unwrap();
    let trusted = signing_key().verifying_key();
    assert!(stored[0].verify(&trusted).is_ok());
}

fn incremental_verification_reads_only_new_rows(db: &TestDatabase) {
    let log = open(db);
    for i in 0..20 {
        log.record(&event(i)).unwrap();
    }
    let checkpoint = log.checkpoint(&signing_key()).unwrap();
    for i in 20..25 {
        log.record(&event(i)).unwrap();
    }
    let trusted = signing_key().verifying_key();
    let report = log.verify_from(&checkpoint, &trusted, None, |_| {}).unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, 5, "only the rows after the checkpoint are read");
    assert!(report.from_checkpoint && report.checkpoint_checked);

    // Another key's signature is refused before a row is read.
    let stranger = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let refused = log.verify_from(&checkpoint, &stranger, None, |_| {}).unwrap();
    assert_eq!(refused.finding.unwrap().kind, TamperKind::BadCheckpointSignature);

    // A row after the checkpoint changed is found; one before it is the full
    // verification's to find.
    disable_triggers(db);
    raw(db, "UPDATE audit_logs SET action = action || 'X' WHERE id = 23").unwrap();
    let finding = log
        .verify_from(&checkpoint, &trusted, None, |_| {})
        .unwrap()
        .finding
        .unwrap();
    assert_eq!(
        (finding.position, finding.kind),
        (23, TamperKind::Modified),
        "{finding}"
    );
    raw(
        db,
        "UPDATE audit_logs SET action = substr(action, 1, length(action) - 1) WHERE id = 23",
    )
    .unwrap();
    let restored = log.verify_from(&checkpoint, &trusted, None, |_| {}).unwrap();
    assert!(restored.is_valid(), "{:?}", restored.finding);

    // The first new row rewritten with a forged link to a different past.
    raw(db, "UPDATE audit_logs SET prev_mac = mac WHERE id = 21").unwrap();
    let finding = log
        .verify_from(&checkpoint, &trusted, None, |_| {})
        .unwrap()
        .finding
        .unwrap();
    assert_eq!(finding.position, 21, "{finding}");
}

fn incremental_verification_sees_a_cut_behind_the_checkpoint(db: &TestDatabase) {
    let log = open(db);
    for i in 0..12 {
        log.record(&event(i)).unwrap();
    }
    let checkpoint = log.checkpoint(&signing_key()).unwrap();
    let trusted = signing_key().verifying_key();
    let nothing_new = log.verify_from(&checkpoint, &trusted, None, |_| {}).unwrap();
    assert!(nothing_new.is_valid() && nothing_new.rows_checked == 0);

    cut_tail(db, 9);
    let finding = log
        .verify_from(&checkpoint, &trusted, None, |_| {})
        .unwrap()
        .finding
        .unwrap();
    assert_eq!(finding.kind, TamperKind::TruncatedAfterCheckpoint, "{finding}");
}

fn checkpoint_directories_keep_every_file_and_find_the_newest(db: &TestDatabase) {
    let log: AuditLog = open(db);
    let dir = CheckpointDir::new(db.scratch_dir().join("kept")).unwrap();
    log.record(&event(0)).unwrap();
    let first = dir.write(&log.checkpoint(&signing_key()).unwrap()).unwrap();
    log.record(&event(1)).unwrap();
    let second = dir.write(&log.checkpoint(&signing_key()).unwrap()).unwrap();
    assert_ne!(first, second);
    // Clutter an attacker or an editor leaves is skipped, not trusted.
    std::fs::write(dir.path().join("checkpoint-99999999999999999999-1.json"), "{not json").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let (path, newest) = dir.newest().unwrap().unwrap();
    assert_eq!(path, second);
    assert_eq!(newest.checkpoint.row_count, 2);
    // Never replaced: the same checkpoint written twice is an error.
    assert!(dir.write(&newest).is_err());
}

fn checkpoints_come_on_time_too(db: &TestDatabase) {
    let dir = CheckpointDir::new(db.scratch_dir().join("hourly")).unwrap();
    // The sink holds a token, so the test sees when the thread lets go of it.
    let token = Arc::new(());
    let sink = {
        let (dir, token) = (dir.clone(), Arc::clone(&token));
        move |checkpoint: &SignedCheckpoint| -> Result<(), zt_audit::SinkError> {
            let _held = &token;
            zt_audit::CheckpointSink::store(&dir, checkpoint)
        }
    };
    // The interval, at its floor of one second, and no row count.
    let log =
        open(db).with_auto_checkpoints(AutoCheckpoint::new(signing_key(), sink).every(Some(Duration::from_millis(1))));
    for i in 0..3 {
        log.record(&event(i)).unwrap();
    }
    assert_eq!(wait_for_checkpoints(&dir, 1), 1);
    // Nothing written since: no new checkpoint after further intervals.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The thread ends with the log, and lets go of the sink.
    drop(log);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&token) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(Arc::strong_count(&token), 1, "the checkpoint thread outlived its log");
}

zt_testkit::backend_tests!(
    checkpoints_come_on_time_too,
    automatic_checkpoints_catch_a_cut_tail,
    a_failing_sink_is_retried_and_never_stops_writes,
    incremental_verification_reads_only_new_rows,
    incremental_verification_sees_a_cut_behind_the_checkpoint,
    checkpoint_directories_keep_every_file_and_find_the_newest,
);
