//! The evaluator thread: it ticks the monitor every interval, and sooner
//! after a critical report, at most every 50 ms.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crate::monitor::handle::{Inner, Monitor};

/// The least time between two evaluations triggered by critical reports.
const URGENT_SPACING: Duration = Duration::from_millis(50);

/// The evaluator thread: ticks every `interval`, sooner after a critical report.
pub(super) fn run(weak: &Weak<Inner>, interval: Duration) {
    let mut next = Instant::now() + interval;
    let mut last = Instant::now();
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let pending = inner.critical_pending.load(Ordering::Acquire);
        let urgent = pending && now.duration_since(last) >= URGENT_SPACING;
        if now >= next || urgent {
            Monitor { inner: inner.clone() }.tick();
            last = now;
            if now >= next {
                next = now + interval;
            }
        }
        let pending = inner.critical_pending.load(Ordering::Acquire);
        drop(inner);
        let mut wait = next.saturating_duration_since(Instant::now());
        if pending {
            wait = wait.min(URGENT_SPACING.saturating_sub(last.elapsed()));
        }
        thread::park_timeout(wait);
    }
}
