//! Spike measurement: the rate over a recent span against the baseline rate
//! just before it, over one or more series of counts.

use crate::rules::model::SpikeConfig;
use crate::window::Windows;

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
    let recent_buckets = windows.buckets_for(config.recent());
    let recent: u64 = series.iter().map(|&one| windows.recent(one, now, recent_buckets)).sum();
    let bucket_minutes = windows.bucket_seconds() / 60.0;
    let recent_per_minute = recent as f64 / (recent_buckets as f64 * bucket_minutes);
    // Only history since the monitor started counts as baseline.
    let history = (now + 1).saturating_sub(recent_buckets);
    let baseline_buckets = windows.buckets_for(config.baseline()).min(history);
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
        spike: recent >= config.min_count() && ratio >= config.factor(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use zt_types::Timestamp;

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
}
