//! The Prometheus text exposition format (version 0.0.4) of the monitor's own
//! figures, for apps that serve `/metrics` without a metrics exporter.

use std::fmt::Write as _;

use zt_error_codes::ErrorCode;

use crate::latency::LatencySummary;
use crate::sink::SinkStats;

/// The content type of [`crate::Monitor::render_prometheus`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) struct Figures<'a> {
    pub(crate) totals: &'a [u64],
    pub(crate) sinks: &'a [SinkStats],
    pub(crate) firing: &'a [(String, usize)],
    pub(crate) notifications: &'a [((String, &'static str), u64)],
    pub(crate) latencies: &'a [LatencySummary],
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn render(figures: &Figures<'_>) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "zt_errors_total",
        "counter",
        "Error reports recorded, by code.",
    );
    for (index, code) in ErrorCode::ALL.iter().enumerate() {
        let _ = writeln!(
            out,
            "zt_errors_total{{code=\"{}\",category=\"{}\",severity=\"{}\"}} {}",
            code.reason(),
            code.category(),
            code.severity(),
            figures.totals.get(index).copied().unwrap_or(0)
        );
    }
    type SinkMetric = (&'static str, &'static str, &'static str, fn(&SinkStats) -> u64);
    let sink_metrics: [SinkMetric; 4] = [
        (
            "zt_monitoring_dropped_total",
            "counter",
            "Reports and notifications dropped because a sink's queue was full or closed.",
            |s| s.dropped_reports + s.dropped_alerts,
        ),
        (
            "zt_monitoring_delivered_total",
            "counter",
            "Reports and notifications a sink delivered.",
            |s| s.delivered,
        ),
        (
            "zt_monitoring_failed_total",
            "counter",
            "Reports and notifications a sink failed to deliver.",
            |s| s.failed,
        ),
        (
            "zt_monitoring_queue_depth",
            "gauge",
            "Reports and notifications waiting in a sink's queues.",
            |s| s.queued,
        ),
    ];
    for (name, kind, help, value) in sink_metrics {
        header(&mut out, name, kind, help);
        for sink in figures.sinks {
            let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", escape(&sink.name), value(sink));
        }
    }
    header(&mut out, "zt_alerts_firing", "gauge", "Alerts firing, by rule.");
    for (rule, count) in figures.firing {
        let _ = writeln!(out, "zt_alerts_firing{{rule=\"{}\"}} {count}", escape(rule));
    }
    header(
        &mut out,
        "zt_alert_notifications_total",
        "counter",
        "Alert notifications sent, by rule and status.",
    );
    for ((rule, status), count) in figures.notifications {
        let _ = writeln!(
            out,
            "zt_alert_notifications_total{{rule=\"{}\",status=\"{status}\"}} {count}",
            escape(rule)
        );
    }
    header(
        &mut out,
        "zt_operation_duration_seconds",
        "summary",
        "Operation latency, from HDR histograms.",
    );
    for latency in figures.latencies {
        let operation = escape(&latency.operation);
        for (quantile, value) in [("0.5", latency.p50), ("0.95", latency.p95), ("0.99", latency.p99)] {
            let _ = writeln!(
                out,
                "zt_operation_duration_seconds{{operation=\"{operation}\",quantile=\"{quantile}\"}} {}",
                value.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "zt_operation_duration_seconds_sum{{operation=\"{operation}\"}} {}",
            latency.sum.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "zt_operation_duration_seconds_count{{operation=\"{operation}\"}} {}",
            latency.count
        );
    }
    header(
        &mut out,
        "zt_operation_duration_max_seconds",
        "gauge",
        "The longest run of each operation.",
    );
    for latency in figures.latencies {
        let _ = writeln!(
            out,
            "zt_operation_duration_max_seconds{{operation=\"{}\"}} {}",
            escape(&latency.operation),
            latency.max.as_secs_f64()
        );
    }
    header(
        &mut out,
        "zt_operation_slow_total",
        "counter",
        "Runs at or above the operation's slow threshold.",
    );
    for latency in figures.latencies {
        let _ = writeln!(
            out,
            "zt_operation_slow_total{{operation=\"{}\"}} {}",
            escape(&latency.operation),
            latency.slow
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
