//! The monitor's own figures in the Prometheus text exposition format
//! (version 0.0.4), for apps that serve `/metrics` without installing a
//! metrics exporter.
//!
//! The text is metrics-exporter-prometheus's: each render fills a fresh
//! `PrometheusRecorder`, built with `PrometheusBuilder::build_recorder` and
//! never installed (no global recorder, no HTTP listener, no push gateway),
//! with the current figures, and asks its handle to render them, so names,
//! label escaping and number formatting are the exporter's, the same an app
//! with that exporter gets.
//!
//! The exporter builds a summary only from raw samples, which the monitor
//! does not keep: its latencies are HDR histograms. So the latency quantiles,
//! read from those histograms, are gauges with a `quantile` label, beside a
//! `_sum` gauge and a `_count` counter: the sample lines of a summary, the
//! same values, under `gauge` and `counter` types. Feeding the exporter the
//! histograms' samples instead would cost a pass over every recorded run at
//! each scrape.

use metrics::{Key, KeyName, Label, Metadata, Recorder as _, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use zt_error_codes::ErrorCode;

use crate::latency::LatencySummary;
use crate::sinks::queue::SinkStats;

/// The content type of [`crate::Monitor::render_prometheus`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// What a render shows, read from the monitor at one instant.
pub(crate) struct Figures<'a> {
    /// Reports per code, in `ErrorCode::ALL` order.
    pub(crate) totals: &'a [u64],
    pub(crate) sinks: &'a [SinkStats],
    pub(crate) firing: &'a [(String, usize)],
    pub(crate) notifications: &'a [((String, &'static str), u64)],
    pub(crate) latencies: &'a [LatencySummary],
}

/// A fresh, uninstalled recorder, and what to render from it.
struct Exposition {
    recorder: PrometheusRecorder,
}

impl Exposition {
    fn new() -> Self {
        Self {
            recorder: PrometheusBuilder::new().build_recorder(),
        }
    }

    fn counter(&self, name: &'static str, help: &'static str) {
        self.recorder
            .describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
    }

    fn gauge(&self, name: &'static str, help: &'static str) {
        self.recorder
            .describe_gauge(KeyName::from_const_str(name), None, SharedString::const_str(help));
    }

    fn count(&self, name: &'static str, labels: Vec<Label>, value: u64) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .absolute(value);
    }

    fn set(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    }

    fn render(self) -> String {
        self.recorder.handle().render()
    }
}

pub(crate) fn render(figures: &Figures<'_>) -> String {
    let out = Exposition::new();
    out.counter("zt_errors_total", "Error reports recorded, by code.");
    for (index, code) in ErrorCode::ALL.iter().enumerate() {
        let labels = vec![
            Label::from_static_parts("code", code.reason()),
            Label::from_static_parts("category", code.category().as_str()),
            Label::from_static_parts("severity", code.severity().as_str()),
        ];
        out.count(
            "zt_errors_total",
            labels,
            figures.totals.get(index).copied().unwrap_or(0),
        );
    }
    sinks(&out, figures.sinks);
    alerts(&out, figures);
    latencies(&out, figures.latencies);
    out.render()
}

fn sinks(out: &Exposition, sinks: &[SinkStats]) {
    out.counter(
        "zt_monitoring_dropped_total",
        "Reports and notifications dropped because a sink's queue was full or closed.",
    );
    out.counter(
        "zt_monitoring_delivered_total",
        "Reports and notifications a sink delivered.",
    );
    out.counter(
        "zt_monitoring_failed_total",
        "Reports and notifications a sink failed to deliver.",
    );
    out.gauge(
        "zt_monitoring_queue_depth",
        "Reports and notifications waiting in a sink's queues.",
    );
    for sink in sinks {
        let labels = || vec![Label::new("sink", sink.name.clone())];
        out.count(
            "zt_monitoring_dropped_total",
            labels(),
            sink.dropped_reports + sink.dropped_alerts,
        );
        out.count("zt_monitoring_delivered_total", labels(), sink.delivered);
        out.count("zt_monitoring_failed_total", labels(), sink.failed);
        out.set("zt_monitoring_queue_depth", labels(), as_f64(sink.queued));
    }
}

fn alerts(out: &Exposition, figures: &Figures<'_>) {
    out.gauge("zt_alerts_firing", "Alerts firing, by rule.");
    for (rule, count) in figures.firing {
        let count = u64::try_from(*count).unwrap_or(u64::MAX);
        out.set(
            "zt_alerts_firing",
            vec![Label::new("rule", rule.clone())],
            as_f64(count),
        );
    }
    out.counter(
        "zt_alert_notifications_total",
        "Alert notifications sent, by rule and status.",
    );
    for ((rule, status), count) in figures.notifications {
        let labels = vec![
            Label::new("rule", rule.clone()),
            Label::from_static_parts("status", status),
        ];
        out.count("zt_alert_notifications_total", labels, *count);
    }
}

fn latencies(out: &Exposition, latencies: &[LatencySummary]) {
    out.gauge(
        "zt_operation_duration_seconds",
        "Operation latency quantiles since start, from HDR histograms.",
    );
    out.gauge(
        "zt_operation_duration_seconds_sum",
        "The total time of an operation's runs, in seconds.",
    );
    out.counter("zt_operation_duration_seconds_count", "An operation's runs.");
    out.gauge(
        "zt_operation_duration_max_seconds",
        "The longest run of each operation.",
    );
    out.counter(
        "zt_operation_slow_total",
        "Runs at or above the operation's slow threshold.",
    );
    for latency in latencies {
        let operation = || Label::new("operation", latency.operation.clone());
        for (quantile, value) in [("0.5", latency.p50), ("0.95", latency.p95), ("0.99", latency.p99)] {
            let labels = vec![operation(), Label::from_static_parts("quantile", quantile)];
            out.set("zt_operation_duration_seconds", labels, value.as_secs_f64());
        }
        out.set(
            "zt_operation_duration_seconds_sum",
            vec![operation()],
            latency.sum.as_secs_f64(),
        );
        out.count("zt_operation_duration_seconds_count", vec![operation()], latency.count);
        out.set(
            "zt_operation_duration_max_seconds",
            vec![operation()],
            latency.max.as_secs_f64(),
        );
        out.count("zt_operation_slow_total", vec![operation()], latency.slow);
    }
}

/// A count as a gauge's value; exact below 2^53, which every count here is.
#[allow(clippy::cast_precision_loss)]
fn as_f64(count: u64) -> f64 {
    count as f64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn figures_with(operation: &str, sink: &str, rule: &str) -> String {
        let latency = LatencySummary {
            operation: operation.to_owned(),
            count: 2,
            p50: Duration::from_millis(10),
            p95: Duration::from_millis(20),
            p99: Duration::from_millis(20),
            max: Duration::from_millis(20),
            mean: Duration::from_millis(15),
            sum: Duration::from_millis(30),
            slow: 1,
            slow_threshold: None,
        };
        let sinks = [SinkStats {
            name: sink.to_owned(),
            queued: 3,
            delivered: 4,
            failed: 0,
            dropped_reports: 1,
            dropped_alerts: 1,
        }];
        render(&Figures {
            totals: &[5],
            sinks: &sinks,
            firing: &[(rule.to_owned(), 1)],
            notifications: &[((rule.to_owned(), "firing"), 2)],
            latencies: &[latency],
        })
    }

    #[test]
    fn every_family_is_described_typed_and_valued() {
        let text = figures_with("db.query", "memory", "critical");
        let first = ErrorCode::ALL[0];
        for line in [
            "# HELP zt_errors_total Error reports recorded, by code.".to_owned(),
            "# TYPE zt_errors_total counter".to_owned(),
            format!(
                "zt_errors_total{{code=\"{}\",category=\"{}\",severity=\"{}\"}} 5",
                first.reason(),
                first.category(),
                first.severity()
            ),
            "zt_monitoring_dropped_total{sink=\"memory\"} 2".to_owned(),
            "# TYPE zt_monitoring_queue_depth gauge".to_owned(),
            "zt_monitoring_queue_depth{sink=\"memory\"} 3".to_owned(),
            "zt_alerts_firing{rule=\"critical\"} 1".to_owned(),
            "zt_alert_notifications_total{rule=\"critical\",status=\"firing\"} 2".to_owned(),
            "zt_operation_duration_seconds{operation=\"db.query\",quantile=\"0.95\"} 0.02".to_owned(),
            "zt_operation_duration_seconds_sum{operation=\"db.query\"} 0.03".to_owned(),
            "# TYPE zt_operation_duration_seconds_count counter".to_owned(),
            "zt_operation_duration_seconds_count{operation=\"db.query\"} 2".to_owned(),
            "zt_operation_duration_max_seconds{operation=\"db.query\"} 0.02".to_owned(),
            "zt_operation_slow_total{operation=\"db.query\"} 1".to_owned(),
        ] {
            assert!(
                text.lines().any(|candidate| candidate == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let text = figures_with("say \"hi\"\nnow", "a\nb", "r\"");
        for line in [
            "zt_operation_slow_total{operation=\"say \\\"hi\\\"\\nnow\"} 1",
            "zt_monitoring_delivered_total{sink=\"a\\nb\"} 4",
            "zt_alerts_firing{rule=\"r\\\"\"} 1",
        ] {
            assert!(
                text.lines().any(|candidate| candidate == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.lines().any(|line| line == "now\"} 1"), "{text}");
    }
}
