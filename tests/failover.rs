//! A PostgreSQL failover under load: a primary with a synchronous standby,
//! writers on the multi-host URL (`target_session_attrs=read-write`), the
//! primary stopped at once mid-load and the standby promoted. Every event
//! whose write was acknowledged (`record` returned, or a spooled and synced
//! pipeline `submit` returned) is on the new primary, none twice, and the
//! chain verifies. See `docs/failover.md`.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;
use zt_audit::{AuditFilter, AuditLog, Overflow, Pipeline, PipelineConfig, SubmitMode};
use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_testkit::PgReplicaPair;
use zt_types::{Actor, AuditEvent, EventId};

/// The whole test stays well inside this.
const BUDGET: Duration = Duration::from_secs(60);
/// Writers threads calling `record`.
const RECORD_WRITERS: u32 = 3;
/// Acknowledged writes wanted before the primary goes.
const BEFORE_CRASH: u64 = 150;
/// Acknowledged writes wanted from each writer on the new primary.
const AFTER_PROMOTION: u64 = 20;
/// How long the primary is gone before the standby is promoted: longer than
/// the pool's connection timeout, so writers see their writes fail.
const GAP: Duration = Duration::from_millis(2500);

/// What the writers did, shared between them.
#[derive(Default)]
struct Ledger {
    /// Events whose write was acknowledged.
    acked: Mutex<Vec<Uuid>>,
    /// Every event any writer tried to write, acknowledged or not.
    attempted: Mutex<HashSet<Uuid>>,
    /// Writes that failed (and were retried, or given up at the end).
    errors: AtomicU64,
    /// Acknowledged writes since the standby was promoted, per writer.
    after_promotion: Vec<AtomicU64>,
}

impl Ledger {
    fn new(writers: usize) -> Self {
        Self {
            after_promotion: (0..writers).map(|_| AtomicU64::new(0)).collect(),
            ..Self::default()
        }
    }

    fn attempt(&self, id: Uuid) {
        self.attempted.lock().unwrap().insert(id);
    }

    fn ack(&self, writer: usize, id: Uuid, promoted: &AtomicBool) {
        self.acked.lock().unwrap().push(id);
        if promoted.load(Ordering::Acquire) {
            self.after_promotion[writer].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn acked_count(&self) -> u64 {
        self.acked.lock().unwrap().len() as u64
    }
}

fn event(action: &str, writer: usize, n: u64) -> AuditEvent {
    AuditEvent::builder(Actor::System, action, "failover")
        .event_id(EventId::from_uuid(Uuid::new_v4()))
        .resource_id(format!("{writer}-{n}"))
        .build()
        .unwrap()
}

#[test]
fn acknowledged_events_survive_a_failover() {
    if zt_testkit::skip_postgres() {
        eprintln!("SKIPPED on PostgreSQL: ZT_SKIP_POSTGRES=1");
        return;
    }
    let started = Instant::now();
    let mut pair = PgReplicaPair::start().expect("a primary with a synchronous standby");
    pair.create_database("zt_failover").unwrap();
    let url = pair.multi_host_url("zt_failover");
    // zt's own URL type takes libpq's multi-host form as it is.
    let parsed: DatabaseUrl = url.parse().unwrap();
    let config = PoolConfig::new()
        .max_size(8)
        .connection_timeout(Duration::from_millis(1000));
    let log = AuditLog::new(Pool::connect_with(&parsed, &config).unwrap(), &zt_e2e::key());
    log.migrate().unwrap();

    let spool = std::env::temp_dir().join(format!("zt-failover-spool-{}", Uuid::new_v4().simple()));
    let pipeline = Pipeline::start(
        log.clone(),
        PipelineConfig::new(&spool)
            .mode(SubmitMode::Spooled { fsync: true })
            .overflow(Overflow::Block {
                timeout: Duration::from_secs(20),
            })
            .retry(Duration::from_millis(50), Duration::from_millis(400)),
    )
    .unwrap();

    let writers = RECORD_WRITERS as usize + 1;
    let ledger = Ledger::new(writers);
    let (stop, promoted) = (AtomicBool::new(false), AtomicBool::new(false));
    let mut acked_before_crash = 0;
    std::thread::scope(|scope| {
        for writer in 0..RECORD_WRITERS as usize {
            let (log, ledger, stop, promoted) = (&log, &ledger, &stop, &promoted);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    // The same event until it is acknowledged: its id makes a
                    // retry of a write that did land harmless.
                    let event = event("FAILOVER_RECORD", writer, n);
                    ledger.attempt(event.event_id().uuid());
                    loop {
                        match log.record(&event) {
                            Ok(_) => {
                                ledger.ack(writer, event.event_id().uuid(), promoted);
                                break;
                            }
                            Err(_) => {
                                ledger.errors.fetch_add(1, Ordering::Relaxed);
                                if stop.load(Ordering::Acquire) {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                }
            });
        }
        {
            let writer = RECORD_WRITERS as usize;
            let (pipeline, ledger, stop, promoted) = (&pipeline, &ledger, &stop, &promoted);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let event = event("FAILOVER_PIPELINE", writer, n);
                    let id = event.event_id().uuid();
                    ledger.attempt(id);
                    match pipeline.submit(event) {
                        Ok(()) => ledger.ack(writer, id, promoted),
                        Err(_) => {
                            ledger.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            });
        }

        // Load first, then the crash mid-load.
        while ledger.acked_count() < BEFORE_CRASH {
            assert!(started.elapsed() < BUDGET / 2, "the writers stalled before the crash");
            std::thread::sleep(Duration::from_millis(10));
        }
        pair.stop_primary_immediately().unwrap();
        acked_before_crash = ledger.acked_count();
        eprintln!("primary stopped after {acked_before_crash} acknowledged writes");
        std::thread::sleep(GAP);
        promoted.store(true, Ordering::Release);
        pair.promote_standby().unwrap();
        eprintln!("standby promoted at {:?}", started.elapsed());

        // The writers find the new primary by themselves.
        let enough = || {
            ledger
                .after_promotion
                .iter()
                .all(|count| count.load(Ordering::Relaxed) >= AFTER_PROMOTION)
        };
        while !enough() && started.elapsed() < BUDGET * 3 / 4 {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Release);
    });
    let after: Vec<u64> = ledger
        .after_promotion
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect();
    assert!(
        after.iter().all(|&count| count >= AFTER_PROMOTION),
        "every writer reaches the new primary within the budget: {after:?} acknowledged after promotion"
    );
    assert!(
        ledger.errors.load(Ordering::Relaxed) > 0,
        "the writers saw the primary go"
    );

    pipeline.flush(Duration::from_secs(20)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(20)).unwrap();
    let _ = std::fs::remove_dir_all(&spool);
    eprintln!("pipeline: {stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");

    // Read the new primary directly, not through the multi-host URL.
    let new_primary = AuditLog::new(
        Pool::connect_with(
            &pair.standby_url_for("zt_failover").parse().unwrap(),
            &PoolConfig::new(),
        )
        .unwrap(),
        &zt_e2e::key(),
    );
    let mut stored = Vec::new();
    new_primary
        .for_each(&AuditFilter::new(), |record| {
            stored.push(record.event_id);
            Ok(())
        })
        .unwrap();
    let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
    let acked = ledger.acked.lock().unwrap().clone();
    let attempted = ledger.attempted.lock().unwrap().clone();
    let missing: Vec<&Uuid> = acked.iter().filter(|id| !stored_set.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events are not on the new primary: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(stored.len(), stored_set.len(), "an event is stored twice");
    let unknown = stored_set.iter().filter(|id| !attempted.contains(id)).count();
    assert_eq!(unknown, 0, "rows that no writer wrote");
    assert_eq!(new_primary.count(&AuditFilter::new()).unwrap(), stored.len() as u64);
    let landed_unacked = stored.len() - acked.iter().collect::<HashSet<_>>().len();
    eprintln!(
        "{} acknowledged ({acked_before_crash} before the crash), {landed_unacked} more landed without an acknowledgement, \
         {} attempted, {} write errors, {:?} after promotion, in {:?}",
        acked.len(),
        attempted.len(),
        ledger.errors.load(Ordering::Relaxed),
        after,
        started.elapsed()
    );
    let report = new_primary.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, stored.len() as u64);
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
}
