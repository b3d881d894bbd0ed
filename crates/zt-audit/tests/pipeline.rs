//! The pipeline loses nothing and accepts nothing forged: batching, spooling
//! through outages, replay after a crash, damaged and forged spool
//! segments, spool permissions and names, full queues and full disks.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{event, open, raw};
use uuid::Uuid;
use zt_audit::{AuditFilter, AuditLog, ErrorKind, Pipeline, PipelineConfig, SubmitMode, encode_spool_segment};
use zt_testkit::TestDatabase;

fn stored_event_ids(log: &AuditLog) -> HashSet<Uuid> {
    let mut ids = HashSet::new();
    log.for_each(&AuditFilter::new(), |record| {
        ids.insert(record.event_id);
        Ok(())
    })
    .unwrap();
    ids
}

fn spool_dir(db: &TestDatabase) -> PathBuf {
    db.scratch_dir().join("spool")
}

fn batches_from_four_threads(db: &TestDatabase) {
    let log = open(db);
    let pipeline = Pipeline::start(log.clone(), PipelineConfig::new(spool_dir(db)).batch_size(500)).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u32 {
            let pipeline = &pipeline;
            scope.spawn(move || {
                for i in 0..2_500 {
                    pipeline.submit(event(thread * 10_000 + i)).unwrap();
                }
            });
        }
    });
    pipeline.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(
        log.count(&AuditFilter::new()).unwrap(),
        10_000,
        "flush returns once everything is stored"
    );
    let stats = pipeline.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!((stats.submitted, stats.written, stats.rejected), (10_000, 10_000, 0));
    assert!(stats.batches >= 20, "{stats:?}");
    assert!(log.verify().unwrap().is_valid());
}

fn a_burst_fills_its_batches_and_a_lone_event_waits_for_company(db: &TestDatabase) {
    let log = open(db);
    let config = |interval| {
        PipelineConfig::new(spool_dir(db))
            .batch_size(100)
            .flush_interval(interval)
    };
    // The burst's first event waits for the rest instead of going alone; the
    // flush ends the wait for the last batch.
    let pipeline = Pipeline::start(log.clone(), config(Duration::from_secs(60))).unwrap();
    for i in 0..250 {
        pipeline.submit(event(i)).unwrap();
    }
    let flushing = std::time::Instant::now();
    pipeline.flush(Duration::from_secs(120)).unwrap();
    assert!(
        flushing.elapsed() < Duration::from_secs(30),
        "the flush ended the wait: {:?}",
        flushing.elapsed()
    );
    let stats = pipeline.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!((stats.written, stats.batches), (250, 3), "{stats:?}");

    // A lone event waits up to the interval for others, then goes alone.
    let interval = Duration::from_millis(300);
    let pipeline = Pipeline::start(log.clone(), config(interval)).unwrap();
    let submitted = std::time::Instant::now();
    pipeline.submit(event(300)).unwrap();
    while log.count(&AuditFilter::new()).unwrap() < 251 {
        assert!(
            submitted.elapsed() < Duration::from_secs(30),
            "the lone event was never written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        submitted.elapsed() >= interval,
        "written after {:?}",
        submitted.elapsed()
    );
    let stats = pipeline.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!((stats.written, stats.batches), (1, 1), "{stats:?}");

    // An interval too long to add to the clock waits for a flush.
    let pipeline = Pipeline::start(log.clone(), config(Duration::MAX)).unwrap();
    pipeline.submit(event(301)).unwrap();
    pipeline.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 252);
    pipeline.shutdown(Duration::from_secs(60)).unwrap();
}

fn outage_spools_and_replays_in_order(db: &TestDatabase) {
    // The tables do not exist yet: every write fails as an outage would.
    let log = AuditLog::new(support::pool(db), &support::key());
    let config = PipelineConfig::new(spool_dir(db)).retry(Duration::from_millis(20), Duration::from_millis(100));
    let pipeline = Pipeline::start(log.clone(), config.clone()).unwrap();
    let events: Vec<_> = (0..300).map(event).collect();
    for event in &events {
        pipeline.submit(event.clone()).unwrap();
    }
    // The caller is told why the events are not in the database yet.
    let error = pipeline.flush(Duration::from_millis(500)).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Database | ErrorKind::Unavailable),
        "{error}"
    );
    assert!(error.to_string().contains("audit"), "{error}");
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(stats.spooled, 300, "{stats:?}");
    assert!(stats.retries > 0);

    log.migrate().unwrap();
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(stats.replayed, 300);
    let page = log
        .query(&AuditFilter::new(), &zt_audit::PageRequest::first(300))
        .unwrap();
    let stored: Vec<Uuid> = page.records.iter().map(|r| r.event_id).collect();
    let submitted: Vec<Uuid> = events.iter().map(|e| e.event_id().uuid()).collect();
    assert_eq!(stored, submitted, "replayed in submission order");
    assert!(log.verify().unwrap().is_valid());
    assert_eq!(
        std::fs::read_dir(spool_dir(db)).unwrap().count(),
        0,
        "the replayed spool is removed"
    );
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

fn torn_tail_keeps_the_good_records(db: &TestDatabase) {
    let log = AuditLog::new(support::pool(db), &support::key());
    let config = PipelineConfig::new(spool_dir(db)).mode(SubmitMode::Spooled { fsync: true });
    let pipeline = Pipeline::start(log.clone(), config.clone()).unwrap();
    for i in 0..50 {
        pipeline.submit(event(i)).unwrap();
    }
    drop(pipeline);
    // A torn write: half of a record header, then nothing.
    let last = segments(&spool_dir(db)).pop().unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap()
        .write_all(&[0x40, 0x01, 0x00])
        .unwrap();

    log.migrate().unwrap();
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.corrupt_tails, stats.quarantined), (1, 1), "{stats:?}");
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 50);
    assert!(log.verify().unwrap().is_valid());
    assert_eq!(quarantined(db).len(), 1, "the torn segment is kept for inspection");
}

/// The files in the spool's quarantine folder.
fn quarantined(db: &TestDatabase) -> Vec<PathBuf> {
    let dir = spool_dir(db).join("quarantine");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|entry| entry.path()).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Where each record of a spool segment starts: at its marker.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    (8..bytes.len().saturating_sub(3))
        .filter(|&i| bytes[i..i + 4] == [0xff, b'Z', b'T', b'R'])
        .collect()
}

/// Spools `count` events while the tables do not exist, then stops.
fn spool_while_down(db: &TestDatabase, count: u32) -> (AuditLog, PipelineConfig) {
    let log = AuditLog::new(support::pool(db), &support::key());
    let config = PipelineConfig::new(spool_dir(db)).mode(SubmitMode::Spooled { fsync: false });
    let pipeline = Pipeline::start(log.clone(), config.clone()).unwrap();
    for i in 0..count {
        pipeline.submit(event(i)).unwrap();
    }
    drop(pipeline);
    (log, config)
}

fn flipped_byte_loses_only_its_record(db: &TestDatabase) {
    let (log, config) = spool_while_down(db, 10);
    // Flip one byte inside the first record's payload: before, this lost
    // the whole segment.
    let segment = segments(&spool_dir(db)).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let starts = record_starts(&bytes);
    assert_eq!(starts.len(), 10);
    bytes[starts[0] + 44 + 20] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();

    log.migrate().unwrap();
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.corrupt_tails, stats.quarantined), (1, 1), "{stats:?}");
    assert_eq!(stats.replayed, 9, "{stats:?}");
    let stored = stored_event_ids(&log);
    assert_eq!(stored.len(), 9, "every intact record is replayed");
    assert!(
        !stored.contains(&event(0).event_id().uuid()),
        "only the damaged record is lost"
    );
    assert!(log.verify().unwrap().is_valid());
    assert!(segments(&spool_dir(db)).is_empty());
    let kept = quarantined(db);
    assert_eq!(kept.len(), 1, "the damaged segment is kept aside, not deleted");
    assert_eq!(kept[0].file_name(), segment.file_name());
    let inspected = zt_audit::read_spool_segment(&support::key(), std::fs::File::open(&kept[0]).unwrap()).unwrap();
    assert_eq!((inspected.events.len(), inspected.damage.len()), (9, 1));
    assert_eq!(inspected.damage[0].kind, zt_audit::SpoolDamageKind::FailsAuthentication);
}

/// An event as an attacker who writes JSON by hand would spool it: backdated,
/// and with a clear-text password, which `AuditEvent::builder` would redact.
fn planted_event() -> zt_audit::AuditEvent {
    let genuine = event(999);
    let mut json = serde_json::to_value(&genuine).unwrap();
    json["created_at"] = "2020-01-01T00:00:00.000000Z".into();
    json["action"] = "GRANT_ADMIN".into();
    json["metadata"] = r#"{"password": "hunter2"}"#.into();
    serde_json::from_value(json).unwrap()
}

/// A segment in the earlier format: records with a CRC and nothing else.
fn legacy_segment(events: &[&zt_audit::AuditEvent]) -> Vec<u8> {
    let mut bytes = b"ZTSPOOL1".to_vec();
    for event in events {
        let payload = serde_json::to_vec(event).unwrap();
        bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&crc32(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
    }
    bytes
}

/// CRC-32 (IEEE), as the earlier spool format used.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn forged_segments_are_quarantined_not_replayed(db: &TestDatabase) {
    let log = open(db);
    for i in 0..5 {
        log.record(&event(i)).unwrap();
    }
    let planted = planted_event();
    assert!(planted.metadata().as_str().contains("hunter2"));
    let dir = spool_dir(db);
    std::fs::create_dir_all(&dir).unwrap();
    // Written under a key the attacker made up, and in the old CRC-only format.
    let stranger = zt_audit::ChainKey::from_bytes(&(7..7 + 32).collect::<Vec<u8>>()).unwrap();
    std::fs::write(
        dir.join("zt-audit-spool-00000000000000000001.log"),
        encode_spool_segment(&stranger, std::slice::from_ref(&planted)).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("zt-audit-spool-00000000000000000002.log"),
        legacy_segment(&[&planted]),
    )
    .unwrap();

    let pipeline = Pipeline::start(log.clone(), PipelineConfig::new(&dir)).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.replayed, stats.written), (0, 0), "{stats:?}");
    assert_eq!((stats.corrupt_tails, stats.quarantined), (2, 2), "{stats:?}");
    assert!(!stored_event_ids(&log).contains(&planted.event_id().uuid()));
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 5);
    assert!(
        log.verify().unwrap().is_valid(),
        "the chain verifies without the forgery"
    );
    assert_eq!(quarantined(db).len(), 2);
    assert!(segments(&dir).is_empty());
}

fn replay_redacts_again(db: &TestDatabase) {
    let log = open(db);
    let planted = planted_event();
    let dir = spool_dir(db);
    std::fs::create_dir_all(&dir).unwrap();
    // Authentic (written under the log's own key), but built without redaction.
    std::fs::write(
        dir.join("zt-audit-spool-00000000000000000001.log"),
        encode_spool_segment(&support::key(), std::slice::from_ref(&planted)).unwrap(),
    )
    .unwrap();
    let pipeline = Pipeline::start(log.clone(), PipelineConfig::new(&dir)).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.replayed, stats.quarantined), (1, 0), "{stats:?}");
    let page = log
        .query(&AuditFilter::new(), &zt_audit::PageRequest::first(10))
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].metadata, r#"{"password": "[REDACTED]"}"#);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn spool_files_are_private(db: &TestDatabase) {
    use std::os::unix::fs::PermissionsExt as _;
    // A fresh spool: the directory 0700, segments 0600.
    let (_, _) = spool_while_down(db, 3);
    let dir = spool_dir(db);
    assert_eq!(mode(&dir), 0o700);
    let segment = segments(&dir).pop().unwrap();
    assert_eq!(mode(&segment), 0o600);

    // An existing directory and segment open to everyone are tightened.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&segment, std::fs::Permissions::from_mode(0o666)).unwrap();
    // (The tables still do not exist, so nothing replays the segment away.)
    let down = AuditLog::new(support::pool(db), &support::key());
    let pipeline = Pipeline::start(down, PipelineConfig::new(&dir)).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&segment), 0o600);
    drop(pipeline);

    // A replay policy these events fail, so that they are set aside in
    // rejected.jsonl: kept, and private too.
    let log = open(db);
    let strict = zt_types::EventPolicy::new().max_metadata_bytes(8);
    let pipeline = Pipeline::start(log.clone(), PipelineConfig::new(&dir).replay_policy(strict)).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.replayed, stats.rejected), (0, 3), "{stats:?}");
    let rejected = dir.join("rejected.jsonl");
    assert_eq!(mode(&rejected), 0o600);
    assert_eq!(std::fs::read_to_string(&rejected).unwrap().lines().count(), 3);
}

#[cfg(not(unix))]
fn spool_files_are_private(_db: &TestDatabase) {}

/// A log whose database refuses one event for good, as a rule of the app's
/// own (a CHECK constraint) would, and that event.
#[cfg(feature = "postgres")]
fn refusing_log(db: &TestDatabase) -> (AuditLog, zt_audit::AuditEvent) {
    let log = open(db);
    raw(
        db,
        "ALTER TABLE audit_logs ADD CONSTRAINT no_forbidden CHECK (action <> 'FORBIDDEN')",
    )
    .unwrap();
    let forbidden = zt_audit::AuditEvent::builder(zt_types::Actor::System, "FORBIDDEN", "projects")
        .build()
        .unwrap();
    (log, forbidden)
}

#[cfg(feature = "postgres")]
#[test]
fn a_refused_event_is_set_aside_once_and_its_spool_segment_goes() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let db = &db;
    let (log, forbidden) = refusing_log(db);
    let dir = spool_dir(db);
    let config = PipelineConfig::new(&dir).mode(SubmitMode::Spooled { fsync: false });
    let pipeline = Pipeline::start(log.clone(), config.clone()).unwrap();
    for i in 0..5 {
        pipeline.submit(event(i)).unwrap();
    }
    pipeline.submit(forbidden).unwrap();
    for i in 5..9 {
        pipeline.submit(event(i)).unwrap();
    }
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.written, stats.rejected), (9, 1), "{stats:?}");
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 9);
    let rejected = dir.join("rejected.jsonl");
    assert_eq!(std::fs::read_to_string(&rejected).unwrap().lines().count(), 1);
    assert!(
        segments(&dir).is_empty(),
        "every spooled event is done with: {:?}",
        segments(&dir)
    );

    // The next start has nothing to replay, and reports nothing twice.
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(
        (stats.replayed, stats.duplicates, stats.rejected),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(std::fs::read_to_string(&rejected).unwrap().lines().count(), 1);
    assert!(log.verify().unwrap().is_valid());
}

#[cfg(feature = "postgres")]
#[test]
fn a_refused_event_that_cannot_be_set_aside_stays_in_the_spool() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let db = &db;
    let (log, forbidden) = refusing_log(db);
    let dir = spool_dir(db);
    std::fs::create_dir_all(&dir).unwrap();
    // A careless operator's directory where the file should be.
    let rejected = dir.join("rejected.jsonl");
    std::fs::create_dir(&rejected).unwrap();
    let config = PipelineConfig::new(&dir).mode(SubmitMode::Spooled { fsync: false });
    let pipeline = Pipeline::start(log.clone(), config.clone()).unwrap();
    pipeline.submit(event(1)).unwrap();
    pipeline.submit(forbidden).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.written, stats.rejected), (1, 1), "{stats:?}");
    assert_eq!(segments(&dir).len(), 1, "the spool keeps the only copy");

    // Once the file can be written, the next start sets the event aside.
    std::fs::remove_dir(&rejected).unwrap();
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!((stats.duplicates, stats.rejected), (1, 1), "{stats:?}");
    assert_eq!(std::fs::read_to_string(&rejected).unwrap().lines().count(), 1);
    assert!(segments(&dir).is_empty(), "{:?}", segments(&dir));
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 1);
}

fn malformed_segment_names_are_set_aside(db: &TestDatabase) {
    let log = open(db);
    let dir = spool_dir(db);
    std::fs::create_dir_all(&dir).unwrap();
    let segment = encode_spool_segment(&support::key(), &[event(1)]).unwrap();
    // The largest id: the next segment's id would overflow.
    std::fs::write(dir.join("zt-audit-spool-18446744073709551615.log"), &segment).unwrap();
    // Too large for a u64, too short, and not digits.
    std::fs::write(dir.join("zt-audit-spool-99999999999999999999.log"), &segment).unwrap();
    std::fs::write(dir.join("zt-audit-spool-7.log"), &segment).unwrap();
    std::fs::write(dir.join("zt-audit-spool-0000000000000000000x.log"), &segment).unwrap();
    // Not named like a segment at all: left alone.
    std::fs::write(dir.join("notes.txt"), b"operator notes").unwrap();

    let config = PipelineConfig::new(&dir).mode(SubmitMode::Spooled { fsync: true });
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.submit(event(2)).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(stats.quarantined, 4, "{stats:?}");
    assert_eq!(stats.written, 1, "the pipeline runs on: {stats:?}");
    assert_eq!(quarantined(db).len(), 4);
    assert!(dir.join("notes.txt").exists());
    assert!(log.verify().unwrap().is_valid());
}

/// SQLite only: the write lock trick below is SQLite's; PostgreSQL is
/// covered by the outage test.
#[cfg(feature = "sqlite")]
#[test]
fn full_queue_blocks_then_tells_the_caller() {
    use zt_audit::Overflow;
    let db = &TestDatabase::sqlite();
    let log = open(db);
    let config = PipelineConfig::new(spool_dir(db))
        .queue_capacity(2)
        .batch_size(1)
        .overflow(Overflow::Block {
            timeout: Duration::from_millis(200),
        });
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    // Another connection holds SQLite's write lock, so the writer stalls.
    let path = db.url().trim_start_matches("sqlite://").to_owned();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        use diesel::{Connection, RunQueryDsl};
        let mut conn = diesel::SqliteConnection::establish(&path).unwrap();
        diesel::sql_query("BEGIN EXCLUSIVE").execute(&mut conn).unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        diesel::sql_query("COMMIT").execute(&mut conn).unwrap();
    });
    locked_rx.recv().unwrap();
    let mut refused = None;
    for i in 0..20 {
        let started = std::time::Instant::now();
        match pipeline.submit(event(i)) {
            Ok(()) => {}
            Err(error) => {
                assert!(
                    started.elapsed() >= Duration::from_millis(200),
                    "it waited for the timeout first"
                );
                refused = Some(error);
                break;
            }
        }
    }
    let refused = refused.expect("a stalled writer fills the queue");
    assert_eq!(refused.kind(), ErrorKind::QueueFull, "{refused}");
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(
        stats.written, stats.submitted,
        "every accepted event is stored: {stats:?}"
    );
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), stats.submitted);
}

fn unwritable_spool_is_a_clear_error(db: &TestDatabase) {
    let blocker = db.scratch_dir().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let log = open(db);
    let error = Pipeline::start(log, PipelineConfig::new(blocker.join("spool"))).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Spool);
    assert!(
        error.to_string().contains("cannot create the spool directory"),
        "{error}"
    );
}

/// A tiny tmpfs, to fill up for real. `None` when mounting is not allowed.
struct TinyDisk(PathBuf);

impl TinyDisk {
    fn mount(dir: &Path) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=48k", "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(dir.to_owned()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn full_disk_is_reported_to_the_caller(db: &TestDatabase) {
    let log = AuditLog::new(support::pool(db), &support::key());
    let dir = db.scratch_dir().join("tiny");
    let disk = TinyDisk::mount(&dir);
    let spool = match &disk {
        Some(_) => dir.join("spool"),
        None => {
            // Without mount rights, an unwritable spool stands in: its directory
            // is replaced by a file while the pipeline runs.
            eprintln!("mount is not permitted here: simulating an unwritable spool instead of a full disk");
            dir.join("spool")
        }
    };
    let config = PipelineConfig::new(&spool).mode(SubmitMode::Spooled { fsync: true });
    let pipeline = Pipeline::start(log, config).unwrap();
    if disk.is_none() {
        std::fs::remove_dir_all(&spool).unwrap();
        std::fs::write(&spool, b"in the way").unwrap();
    }
    let mut accepted = 0;
    let error = loop {
        match pipeline.submit(event(accepted)) {
            Ok(()) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 10_000, "48 KiB cannot hold this many events");
    };
    assert_eq!(error.kind(), ErrorKind::Spool, "{error}");
    assert!(error.to_string().contains("spool"), "{error}");
    if disk.is_some() {
        assert!(accepted > 0, "some events fit before the disk filled");
        // The file system's words are the source, never repeated in Display.
        let source = std::error::Error::source(&error)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(source.contains("No space left"), "{error}: {source}");
        assert!(!error.to_string().contains("No space left"), "{error}");
    }
    drop(pipeline);
}

/// Run as a child process by `killed_writer_loses_nothing`: submits events
/// forever and prints each event id once `submit` has returned.
#[test]
fn child_writer() {
    let Ok(setup) = std::env::var("ZT_PIPELINE_CHILD") else {
        return;
    };
    let (url, spool) = setup.split_once('|').unwrap();
    let log = AuditLog::new(
        zt_db::Pool::connect_with(&url.parse().unwrap(), &zt_db::PoolConfig::new()).unwrap(),
        &support::key(),
    );
    let config = PipelineConfig::new(spool)
        .mode(SubmitMode::Spooled { fsync: true })
        .batch_size(5_000);
    let pipeline = Pipeline::start(log, config).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let event = event(i);
        let id = event.event_id();
        pipeline.submit(event).unwrap();
        writeln!(out, "{id}").unwrap();
        out.flush().unwrap();
    }
}

fn killed_writer_loses_nothing(db: &TestDatabase) {
    let log = open(db);
    let spool = spool_dir(db);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads", "1"])
        .env("ZT_PIPELINE_CHILD", format!("{}|{}", db.url(), spool.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 3_000 {
        let line = lines.next().expect("the child keeps writing").unwrap();
        if let Ok(id) = line.parse::<Uuid>() {
            acknowledged.push(id);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Ids printed before the kill landed are acknowledged too.
    acknowledged.extend(lines.map_while(Result::ok).filter_map(|line| line.parse::<Uuid>().ok()));

    let pipeline = Pipeline::start(log.clone(), PipelineConfig::new(&spool)).unwrap();
    pipeline.flush(Duration::from_secs(60)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(60)).unwrap();
    assert!(
        stats.replayed + stats.duplicates > 0,
        "the spool held the child's events: {stats:?}"
    );
    let stored = stored_event_ids(&log);
    let missing: Vec<_> = acknowledged.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events are missing, first {:?}",
        missing.len(),
        missing.first()
    );
    assert!(log.verify().unwrap().is_valid());
    let _ = raw;
}

zt_testkit::backend_tests!(
    batches_from_four_threads,
    a_burst_fills_its_batches_and_a_lone_event_waits_for_company,
    outage_spools_and_replays_in_order,
    torn_tail_keeps_the_good_records,
    flipped_byte_loses_only_its_record,
    forged_segments_are_quarantined_not_replayed,
    replay_redacts_again,
    spool_files_are_private,
    malformed_segment_names_are_set_aside,
    unwritable_spool_is_a_clear_error,
    full_disk_is_reported_to_the_caller,
    killed_writer_loses_nothing,
);
