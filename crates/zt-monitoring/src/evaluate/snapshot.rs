//! Error patterns at one instant: rates per code, the top codes, spikes,
//! and the active alerts, as dashboards read them.

use std::time::Duration;

use serde::Serialize;
use zt_error_codes::{Category, ErrorCode};
use zt_types::{Severity, Timestamp};

use crate::duration;
use crate::evaluate::alerts::Alert;
use crate::evaluate::spike::measure_spike;
use crate::rules::model::SpikeConfig;
use crate::window::Windows;

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
