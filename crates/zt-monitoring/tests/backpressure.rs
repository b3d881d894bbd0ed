//! The caller is never blocked and nothing is dropped silently: full queues,
//! stalled, failing and panicking sinks.
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::Duration;

use support::TestRecorder;
use zt_error_codes::ErrorCode;
use zt_monitoring::{Error, MemorySink, Monitor, Report, Sink, SinkOptions};

/// Blocks inside its first delivery until released.
struct Stalled {
    entered: Sender<()>,
    release: Option<Receiver<()>>,
}

impl Sink for Stalled {
    fn name(&self) -> &str {
        "stalled"
    }

    fn send_report(&mut self, _report: &Report) -> Result<(), Error> {
        if let Some(release) = self.release.take() {
            self.entered.send(()).unwrap();
            release.recv().ok();
        }
        Ok(())
    }
}

#[test]
fn a_stalled_sink_never_blocks_the_caller_and_drops_are_counted() {
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let sink = Stalled {
        entered: entered_tx,
        release: Some(release_rx),
    };
    // One stripe, so the whole capacity of 100 is one lane and the counts are exact.
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .stripes(1)
        .sink_with_options(sink, SinkOptions::new().report_capacity(100))
        .build()
        .unwrap();
    monitor.record_code(ErrorCode::Internal);
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker took the first report and stalled");

    // Record 10 000 more on another thread; if recording blocked, this would time out.
    let recorder = std::sync::Arc::new(TestRecorder::default());
    let (done_tx, done) = channel();
    let worker_monitor = monitor.clone();
    let worker_recorder = recorder.clone();
    thread::spawn(move || {
        metrics::with_local_recorder(&*worker_recorder, || {
            for _ in 0..10_000 {
                worker_monitor.record_code(ErrorCode::Internal);
            }
        });
        done_tx.send(()).unwrap();
    });
    done.recv_timeout(Duration::from_secs(30))
        .expect("recording returned while the sink was stalled");

    let stats = monitor.stats();
    let sink = stats.sink("stalled").unwrap();
    assert_eq!(stats.recorded, 10_001);
    // The stalled report counts as queued until its delivery returns.
    assert_eq!(sink.queued, 101);
    assert_eq!(sink.dropped_reports, 9_900);
    assert_eq!(sink.delivered, 0);
    assert_eq!(recorder.counter("zt_monitoring_dropped_total{sink=stalled}"), 9_900);
    assert!(
        monitor
            .render_prometheus()
            .contains("zt_monitoring_dropped_total{sink=\"stalled\"} 9900")
    );

    // Once it recovers, everything that was queued is delivered.
    release.send(()).unwrap();
    assert!(monitor.flush(Duration::from_secs(10)));
    let sink = monitor.stats().sink("stalled").cloned().unwrap();
    assert_eq!((sink.delivered, sink.dropped_reports, sink.queued), (101, 9_900, 0));
    assert_eq!(sink.delivered + sink.dropped_reports, 10_001);
}

#[test]
fn flush_gives_up_at_its_timeout_on_a_stalled_sink() {
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let sink = Stalled {
        entered: entered_tx,
        release: Some(release_rx),
    };
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(sink)
        .build()
        .unwrap();
    monitor.record_code(ErrorCode::Internal);
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(!monitor.flush(Duration::from_millis(50)));
    release.send(()).unwrap();
    assert!(monitor.flush(Duration::from_secs(10)));
}

struct Flaky {
    calls: u64,
}

impl Sink for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    fn send_report(&mut self, _report: &Report) -> Result<(), Error> {
        self.calls += 1;
        match self.calls % 3 {
            0 => panic!("the sink panicked on purpose"),
            1 => Err(Error::delivery("upstream said no", std::io::Error::other("503"))),
            _ => Ok(()),
        }
    }
}

#[test]
fn failing_and_panicking_sinks_are_counted_and_keep_running() {
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(Flaky { calls: 0 })
        .build()
        .unwrap();
    for _ in 0..30 {
        monitor.record_code(ErrorCode::DbTimeout);
    }
    assert!(monitor.flush(Duration::from_secs(10)));
    let sink = monitor.stats().sink("flaky").cloned().unwrap();
    assert_eq!((sink.delivered, sink.failed, sink.dropped_reports), (10, 20, 0));
}

#[test]
fn two_threads_recording_lose_nothing_uncounted() {
    let sink = MemorySink::new();
    let records = sink.records();
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink_with_options(sink, SinkOptions::new().report_capacity(1000))
        .build()
        .unwrap();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let monitor = monitor.clone();
            thread::spawn(move || {
                for _ in 0..50_000 {
                    monitor.record_code(ErrorCode::RateLimited);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|thread| thread.join().unwrap());
    assert!(monitor.flush(Duration::from_secs(30)));
    let stats = monitor.stats();
    let sink = stats.sink("memory").unwrap();
    assert_eq!(stats.recorded, 100_000);
    assert_eq!(
        monitor.count(ErrorCode::RateLimited, Duration::from_secs(3600)),
        100_000
    );
    assert_eq!(sink.delivered + sink.dropped_reports, 100_000);
    assert_eq!(u64::try_from(records.reports().len()).unwrap(), sink.delivered);
}

#[test]
fn reports_after_shutdown_are_counted_as_dropped() {
    let sink = MemorySink::new();
    let records = sink.records();
    let monitor = Monitor::builder().without_tracing_sink().sink(sink).build().unwrap();
    monitor.record_code(ErrorCode::Internal);
    assert!(monitor.shutdown(Duration::from_secs(10)));
    assert_eq!(records.reports().len(), 1);
    monitor.record_code(ErrorCode::Internal);
    let stats = monitor.stats();
    assert_eq!(stats.recorded, 2);
    assert_eq!(stats.sink("memory").unwrap().dropped_reports, 1);
    assert_eq!(stats.dropped(), 1);
}
