//! The pipeline loses nothing: batching, spooling through outages, replay
//! after a crash, damaged spool tails, full queues and full disks.
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
use zt_audit::{AuditFilter, AuditLog, ErrorKind, Overflow, Pipeline, PipelineConfig, SubmitMode};
use zt_testkit::{Backend, TestDatabase};

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
    assert_eq!(stats.corrupt_tails, 1, "{stats:?}");
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 50);
    assert!(log.verify().unwrap().is_valid());
}

fn corrupt_record_is_reported_not_stored(db: &TestDatabase) {
    let log = AuditLog::new(support::pool(db), &support::key());
    let config = PipelineConfig::new(spool_dir(db)).mode(SubmitMode::Spooled { fsync: false });
    let pipeline = Pipeline::start(log.clone(), config.clone()).unwrap();
    for i in 0..10 {
        pipeline.submit(event(i)).unwrap();
    }
    drop(pipeline);
    // Flip one byte inside the last record: its checksum no longer matches.
    let last = segments(&spool_dir(db)).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let position = bytes.len() - 5;
    bytes[position] ^= 0xff;
    std::fs::write(&last, bytes).unwrap();

    log.migrate().unwrap();
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.flush(Duration::from_secs(30)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(30)).unwrap();
    assert_eq!(stats.corrupt_tails, 1);
    assert_eq!(
        log.count(&AuditFilter::new()).unwrap(),
        9,
        "the records before the damage are kept"
    );
}

fn full_queue_blocks_then_tells_the_caller(db: &TestDatabase) {
    if db.backend() != Backend::Sqlite {
        // The write lock trick below is SQLite's; PostgreSQL is covered by the outage test.
        return;
    }
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
        assert!(error.to_string().contains("No space left"), "{error}");
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
    outage_spools_and_replays_in_order,
    torn_tail_keeps_the_good_records,
    corrupt_record_is_reported_not_stored,
    full_queue_blocks_then_tells_the_caller,
    unwritable_spool_is_a_clear_error,
    full_disk_is_reported_to_the_caller,
    killed_writer_loses_nothing,
);
