//! Error patterns: rates per code, the top codes, spikes against a baseline,
//! and the snapshot that dashboards read.

use std::time::Duration;

use serde::Serialize;
use zt_error_codes::{Category, ErrorCode};
use zt_types::{Severity, Timestamp};

use crate::alerts::Alert;
use crate::duration;
use crate::window::Windows;

/// How spikes are detected: the rate over the `recent` span against the rate
/// over the `baseline` span just before it.
///
/// A spike needs at least `min_count` recent events and a recent rate at
/// least `factor` times the baseline rate. An empty baseline counts as one
/// event, so a code that was silent spikes on `min_count` events. Until the
/// monitor has seen at least one `recent` span of baseline, nothing spikes.
///
/// Defaults: factor 3, recent 1 min, baseline 30 min, min count 10.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeConfig {
    factor: f64,
    recent: Duration,
    baseline: Duration,
    min_count: u64,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        Self::new(3.0)
    }
}

impl SpikeConfig {
    /// A recent rate `factor` times the baseline's, with the other defaults.
    pub fn new(factor: f64) -> Self {
        Self {
            factor,
            recent: Duration::from_secs(60),
            baseline: Duration::from_secs(1800),
            min_count: 10,
        }
    }

    /// Sets the recent span. Default: 1 min.
    #[must_use]
    pub fn with_recent(mut self, span: Duration) -> Self {
        self.recent = span;
        self
    }

    /// Sets the baseline span. Default: 30 min.
    #[must_use]
    pub fn with_baseline(mut self, span: Duration) -> Self {
        self.baseline = span;
        self
    }

    /// Sets the fewest recent events that can spike. Default: 10.
    #[must_use]
    pub fn with_min_count(mut self, count: u64) -> Self {
        self.min_count = count;
        self
    }

    /// The factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The recent span.
    pub fn recent(&self) -> Duration {
        self.recent
    }

    /// The baseline span.
    pub fn baseline(&self) -> Duration {
        self.baseline
    }

    /// The fewest recent events that can spike.
    pub fn min_count(&self) -> u64 {
        self.min_count
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if !self.factor.is_finite() || self.factor < 1.0 {
            return Err(format!("spike factor {} must be a number of at least 1", self.factor));
        }
        if self.recent.is_zero() || self.baseline < self.recent {
            return Err("spike spans need recent above zero and a baseline at least as long".into());
        }
        Ok(())
    }
}

/// A spike measurement over one or more series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SpikeMeasure {
    pub(crate) recent: u64,
    pub(crate) recent_per_minute: f64,
    pub(crate) baseline_per_minute: f64,
    pub(crate) ratio: f64,
    pub(crate) spike: bool,
}

pub(crate) fn measure_spike(windows: &Windows, series: &[usize], now: u64, config: &SpikeConfig) -> SpikeMeasure {
    let recent_buckets = windows.buckets_for(config.recent);
    let recent: u64 = series.iter().map(|&one| windows.recent(one, now, recent_buckets)).sum();
    let bucket_minutes = windows.bucket_seconds() / 60.0;
    let recent_per_minute = recent as f64 / (recent_buckets as f64 * bucket_minutes);
    // Only history since the monitor started counts as baseline.
    let history = (now + 1).saturating_sub(recent_buckets);
    let baseline_buckets = windows.buckets_for(config.baseline).min(history);
    if baseline_buckets < recent_buckets || baseline_buckets == 0 {
        return SpikeMeasure {
            recent,
            recent_per_minute,
            baseline_per_minute: 0.0,
            ratio: 0.0,
            spike: false,
        };
    }
    let end = now - recent_buckets;
    let start = end + 1 - baseline_buckets;
    let baseline: u64 = series.iter().map(|&one| windows.sum(one, start, end)).sum();
    let baseline_minutes = baseline_buckets as f64 * bucket_minutes;
    let baseline_per_minute = baseline as f64 / baseline_minutes;
    let floor = 1.0 / baseline_minutes;
    let ratio = recent_per_minute / baseline_per_minute.max(floor);
    SpikeMeasure {
        recent,
        recent_per_minute,
        baseline_per_minute,
        ratio,
        spike: recent >= config.min_count && ratio >= config.factor,
    }
}

/// One code's figures in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CodeSnapshot {
    /// The code.
    pub code: ErrorCode,
    /// Its category.
    pub category: Category,
    /// Its catalog severity.
    pub severity: Severity,
    /// Reports recorded since the monitor started.
    pub total: u64,
    /// Reports within the snapshot's window.
    pub in_window: u64,
    /// Reports within the spike detector's recent span.
    pub recent: u64,
    /// The recent rate, per minute.
    pub recent_per_minute: f64,
    /// The baseline rate, per minute.
    pub baseline_per_minute: f64,
    /// Whether the recent rate is a spike against the baseline.
    pub spike: bool,
}

/// What a dashboard shows: rates per code, the top codes, spikes and the
/// active alerts, at one instant. Serializes to JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// When it was taken.
    pub at: Timestamp,
    /// The span that `in_window` counts cover.
    #[serde(serialize_with = "duration::serialize")]
    pub window: Duration,
    /// Reports recorded since the monitor started.
    pub total: u64,
    /// Reports within the window.
    pub in_window: u64,
    /// Every code seen since start, busiest in the window first.
    pub codes: Vec<CodeSnapshot>,
    /// Alerts that fire, or resolved but not yet notified.
    pub alerts: Vec<Alert>,
}

impl Snapshot {
    /// The `n` busiest codes in the window.
    pub fn top(&self, n: usize) -> &[CodeSnapshot] {
        let busy = self.codes.iter().take_while(|code| code.in_window > 0).count();
        &self.codes[..busy.min(n)]
    }

    /// The codes that spike now.
    pub fn spikes(&self) -> impl Iterator<Item = &CodeSnapshot> {
        self.codes.iter().filter(|code| code.spike)
    }

    /// The figures of one code, if it was seen.
    pub fn code(&self, code: ErrorCode) -> Option<&CodeSnapshot> {
        self.codes.iter().find(|entry| entry.code == code)
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        // Every field serializes infallibly: strings, numbers and timestamps.
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub(crate) struct SnapshotInput<'a> {
    pub(crate) windows: &'a Windows,
    pub(crate) totals: &'a [u64],
    pub(crate) now: u64,
    pub(crate) at: Timestamp,
    pub(crate) window: Duration,
    pub(crate) spike: &'a SpikeConfig,
    pub(crate) alerts: Vec<Alert>,
}

pub(crate) fn snapshot(input: SnapshotInput<'_>) -> Snapshot {
    let window_buckets = input.windows.buckets_for(input.window);
    let mut codes: Vec<CodeSnapshot> = ErrorCode::ALL
        .iter()
        .enumerate()
        .filter_map(|(index, &code)| {
            let total = input.totals.get(index).copied().unwrap_or(0);
            if total == 0 {
                return None;
            }
            let spike = measure_spike(input.windows, &[index], input.now, input.spike);
            Some(CodeSnapshot {
                code,
                category: code.category(),
                severity: code.severity(),
                total,
                in_window: input.windows.recent(index, input.now, window_buckets),
                recent: spike.recent,
                recent_per_minute: spike.recent_per_minute,
                baseline_per_minute: spike.baseline_per_minute,
                spike: spike.spike,
            })
        })
        .collect();
    codes.sort_by(|a, b| {
        b.in_window
            .cmp(&a.in_window)
            .then(b.total.cmp(&a.total))
            .then(a.code.cmp(&b.code))
    });
    Snapshot {
        at: input.at,
        window: input.window,
        total: codes.iter().map(|code| code.total).sum(),
        in_window: codes.iter().map(|code| code.in_window).sum(),
        codes,
        alerts: input.alerts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows() -> Windows {
        Windows::new(1, 3600, Duration::from_secs(1), Timestamp::from_unix_micros(0).unwrap())
    }

    #[test]
    fn steady_rate_is_not_a_spike() {
        let windows = windows();
        for second in 0..1900 {
            windows.record(0, second);
        }
        let measure = measure_spike(&windows, &[0], 1899, &SpikeConfig::new(3.0));
        assert_eq!(measure.recent, 60);
        assert!((measure.ratio - 1.0).abs() < 1e-9, "{measure:?}");
        assert!(!measure.spike);
    }

    #[test]
    fn a_burst_over_a_quiet_baseline_spikes() {
        let windows = windows();
        for second in (0..1800).step_by(60) {
            windows.record(0, second);
        }
        for _ in 0..50 {
            windows.record(0, 1850);
        }
        let measure = measure_spike(&windows, &[0], 1859, &SpikeConfig::new(3.0));
        assert_eq!(measure.recent, 50);
        assert!(measure.spike, "{measure:?}");
        // Below the minimum count nothing spikes.
        let measure = measure_spike(&windows, &[0], 1859, &SpikeConfig::new(3.0).with_min_count(51));
        assert!(!measure.spike);
    }

    #[test]
    fn no_baseline_yet_means_no_spike() {
        let windows = windows();
        for _ in 0..100 {
            windows.record(0, 30);
        }
        assert!(!measure_spike(&windows, &[0], 30, &SpikeConfig::new(2.0)).spike);
    }

    #[test]
    fn spike_config_is_checked() {
        assert!(SpikeConfig::new(0.5).check().is_err());
        assert!(SpikeConfig::new(f64::NAN).check().is_err());
        assert!(
            SpikeConfig::new(2.0)
                .with_baseline(Duration::from_secs(1))
                .check()
                .is_err()
        );
        assert!(SpikeConfig::default().check().is_ok());
    }
}
