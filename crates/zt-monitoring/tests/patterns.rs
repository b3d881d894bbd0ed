//! Pattern tracking, latency figures and the metrics they export.
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{TestRecorder, deterministic, run_for};
use zt_error_codes::ErrorCode;
use zt_monitoring::{Monitor, PROMETHEUS_CONTENT_TYPE, SpikeConfig};

#[test]
fn snapshot_ranks_codes_and_flags_spikes() {
    let spike = SpikeConfig::new(3.0)
        .with_recent(Duration::from_secs(60))
        .with_baseline(Duration::from_secs(600));
    let (monitor, clock, _records) =
        deterministic(|builder| builder.spike_detection(spike).snapshot_window(Duration::from_secs(300)));
    // Twenty minutes of a steady trickle, then a burst of another code.
    for _ in 0..20 {
        monitor.record_code(ErrorCode::ResourceNotFound);
        run_for(&monitor, &clock, 60);
    }
    for _ in 0..40 {
        monitor.record_code(ErrorCode::RateLimited);
    }
    monitor.record_code(ErrorCode::ResourceNotFound);

    let snapshot = monitor.snapshot();
    assert_eq!(snapshot.total, 61);
    let top: Vec<ErrorCode> = snapshot.top(5).iter().map(|code| code.code).collect();
    assert_eq!(top, [ErrorCode::RateLimited, ErrorCode::ResourceNotFound]);
    let rate_limited = snapshot.code(ErrorCode::RateLimited).unwrap();
    assert_eq!(
        (rate_limited.total, rate_limited.in_window, rate_limited.recent),
        (40, 40, 40)
    );
    assert!(rate_limited.spike);
    let steady = snapshot.code(ErrorCode::ResourceNotFound).unwrap();
    assert_eq!(steady.in_window, 5);
    assert!(!steady.spike);
    assert!((steady.baseline_per_minute - 1.0).abs() < 1e-9, "{steady:?}");
    assert_eq!(snapshot.spikes().count(), 1);

    let json: serde_json::Value = serde_json::from_str(&snapshot.to_json()).unwrap();
    assert_eq!(json["window"], "5m");
    assert_eq!(json["codes"][0]["code"], "RATE_LIMITED");
    assert_eq!(json["at"], "2026-03-01T12:20:00.000000Z");

    assert_eq!(monitor.count(ErrorCode::ResourceNotFound, Duration::from_secs(600)), 10);
    let series = monitor.series(ErrorCode::ResourceNotFound, Duration::from_secs(120));
    assert_eq!(series.len(), 120);
    assert_eq!(series.iter().sum::<u64>(), 2);
    assert_eq!(series.last(), Some(&1));
}

#[test]
fn latency_percentiles_and_metrics() {
    let recorder = TestRecorder::default();
    let (monitor, _clock, _records) = deterministic(|builder| {
        builder
            .slow_operation("db.query", Duration::from_millis(90))
            .histogram_precision(3)
    });
    let query = monitor.operation("db.query");
    metrics::with_local_recorder(&recorder, || {
        for millis in 1..=100 {
            query.record(Duration::from_millis(millis));
        }
        monitor.record_code(ErrorCode::DbTimeout);
        monitor.record_code(ErrorCode::DbTimeout);
        monitor.tick();
        monitor.record_code(ErrorCode::DbTimeout);
        monitor.tick();
    });

    let summary = query.summary();
    assert_eq!(summary.count, 100);
    assert_eq!(summary.p50.as_millis(), 50);
    assert_eq!(summary.p95.as_millis(), 95);
    assert_eq!(summary.p99.as_millis(), 99);
    assert_eq!(summary.max.as_millis(), 100);
    assert_eq!(summary.slow, 11);
    assert_eq!(monitor.latencies(), std::slice::from_ref(&summary));

    // Through the metrics facade: error counters as deltas, latency samples, alert gauges.
    assert_eq!(
        recorder.counter("zt_errors_total{category=database,code=DB_TIMEOUT,severity=error}"),
        3
    );
    let samples = recorder.histogram("zt_operation_duration_seconds{operation=db.query}");
    assert_eq!(samples.len(), 100);
    assert!((samples[0] - 0.001).abs() < 1e-9);
    assert_eq!(recorder.gauge("zt_alerts_firing{rule=critical}"), Some(0.0));

    // The same figures in the Prometheus text format.
    assert!(PROMETHEUS_CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    let text = monitor.render_prometheus();
    for line in [
        "# TYPE zt_errors_total counter",
        "zt_errors_total{code=\"DB_TIMEOUT\",category=\"database\",severity=\"error\"} 3",
        "zt_errors_total{code=\"INTERNAL\",category=\"internal\",severity=\"error\"} 0",
        // The exporter renders summaries only from raw samples; the HDR
        // quantiles are gauges, beside a `_sum` gauge and a `_count` counter.
        "# TYPE zt_operation_duration_seconds gauge",
        "zt_operation_duration_seconds_sum{operation=\"db.query\"} 5.05",
        "# TYPE zt_operation_duration_seconds_count counter",
        "zt_operation_duration_seconds_sum{operation=\"db.query\"} 5.05",
        "zt_operation_duration_seconds_count{operation=\"db.query\"} 100",
        "zt_operation_slow_total{operation=\"db.query\"} 11",
        "zt_alerts_firing{rule=\"slow-operations\"} 1",
        "zt_monitoring_dropped_total{sink=\"memory\"} 0",
    ] {
        assert!(
            text.lines().any(|candidate| candidate == line),
            "missing {line:?} in\n{text}"
        );
    }
    // HDR values are within the histogram's precision (three figures here).
    for (prefix, expected) in [
        (
            "zt_operation_duration_seconds{operation=\"db.query\",quantile=\"0.5\"} ",
            0.05,
        ),
        (
            "zt_operation_duration_seconds{operation=\"db.query\",quantile=\"0.99\"} ",
            0.099,
        ),
        ("zt_operation_duration_max_seconds{operation=\"db.query\"} ", 0.1),
    ] {
        let line = text
            .lines()
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("missing {prefix}"));
        let value: f64 = line[prefix.len()..].parse().unwrap();
        assert!((value - expected).abs() <= expected * 0.001, "{line}");
    }
    // Every sample line is `name{labels} value` or `name value`; the exporter
    // separates families with an empty line, which the format ignores.
    for line in text.lines().filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

#[test]
fn operation_names_are_escaped_in_prometheus_output() {
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .build()
        .unwrap();
    monitor.operation("say \"hi\"\nnow").record(Duration::from_millis(1));
    let text = monitor.render_prometheus();
    assert!(
        text.contains("zt_operation_slow_total{operation=\"say \\\"hi\\\"\\nnow\"} 0"),
        "{text}"
    );
}
