//! Fault injection on a PostgreSQL server of the test's own: the server stops
//! in the middle of a 100k-event run from 4 threads and comes back.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use zt_audit::{AuditFilter, AuditLog, Overflow, Pipeline, PipelineConfig};
use zt_db::{Pool, PoolConfig};
use zt_testkit::{Durability, PgCluster};

#[test]
fn postgres_restart_mid_run_loses_and_duplicates_nothing() {
    if zt_testkit::skip_postgres() {
        eprintln!("SKIPPED on PostgreSQL: ZT_SKIP_POSTGRES=1");
        return;
    }
    let mut cluster = PgCluster::start(Durability::Fast).expect("a private PostgreSQL server for fault injection");
    let config = PoolConfig::new()
        .max_size(4)
        .connection_timeout(Duration::from_millis(500));
    let log = AuditLog::new(
        Pool::connect_with(&cluster.url().parse().unwrap(), &config).unwrap(),
        &support::key(),
    );
    log.migrate().unwrap();
    let spool = std::env::temp_dir().join(format!("zt-fault-spool-{}", uuid::Uuid::new_v4().simple()));
    let pipeline = Pipeline::start(
        log.clone(),
        PipelineConfig::new(&spool)
            .overflow(Overflow::Block {
                timeout: Duration::from_secs(120),
            })
            .retry(Duration::from_millis(50), Duration::from_millis(400)),
    )
    .unwrap();

    let submitting = AtomicBool::new(true);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u32)
            .map(|thread| {
                let pipeline = &pipeline;
                scope.spawn(move || {
                    for i in 0..25_000 {
                        pipeline.submit(support::event(thread * 100_000 + i)).unwrap();
                    }
                })
            })
            .collect();
        // Stop the server once a fifth of the run is stored.
        let started = Instant::now();
        while pipeline.stats().written < 20_000 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the run stalled: {:?}",
                pipeline.stats()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        cluster.stop().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        cluster.start_server().unwrap();
        for writer in writers {
            writer.join().unwrap();
        }
        submitting.store(false, Ordering::Release);
    });
    pipeline.flush(Duration::from_secs(120)).unwrap();
    let stats = pipeline.shutdown(Duration::from_secs(120)).unwrap();
    assert!(
        stats.spooled > 0 && stats.replayed > 0,
        "the outage went through the spool: {stats:?}"
    );
    assert!(stats.retries > 0, "{stats:?}");
    assert_eq!(stats.submitted, 100_000);

    // Exactly 100k rows; event ids are unique in the table, so no duplicates.
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 100_000);
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.rows_checked, 100_000);
    let _ = std::fs::remove_dir_all(&spool);
}
