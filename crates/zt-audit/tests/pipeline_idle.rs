//! An idle pipeline sleeps: with a zero flush interval it writes what is
//! queued at once and does not spin. A test binary of its own, so that no
//! other test's pipeline threads share the process whose CPU time it reads.
#![cfg(feature = "sqlite")]
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{event, open};
use zt_audit::{AuditFilter, Pipeline, PipelineConfig};
use zt_testkit::TestDatabase;

/// CPU time used so far by this process's pipeline threads (Linux; zero
/// elsewhere, where the test then checks only the writing).
fn pipeline_cpu_time() -> Duration {
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.starts_with("zt-audit-"))
        })
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // utime and stime, fields 14 and 15, come 12 and 13 after the name.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    // Linux counts them in ticks of 10 ms (USER_HZ is 100).
    Duration::from_millis(ticks * 10)
}

#[test]
fn a_zero_flush_interval_writes_at_once_and_idles_without_spinning() {
    let db = &TestDatabase::sqlite();
    let log = open(db);
    let config = PipelineConfig::new(db.scratch_dir().join("spool")).flush_interval(Duration::ZERO);
    let pipeline = Pipeline::start(log.clone(), config).unwrap();
    pipeline.submit(event(1)).unwrap();
    pipeline.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(log.count(&AuditFilter::new()).unwrap(), 1);
    let before = pipeline_cpu_time();
    std::thread::sleep(Duration::from_millis(500));
    let spent = pipeline_cpu_time().saturating_sub(before);
    assert!(
        spent < Duration::from_millis(100),
        "the idle pipeline used {spent:?} of CPU in 500 ms"
    );
    pipeline.shutdown(Duration::from_secs(60)).unwrap();
}
