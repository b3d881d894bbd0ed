//! Sliding windows of counts: a ring of time buckets per series, lock-free.
//!
//! Each slot is one `AtomicU64` that packs the bucket's index (high 32 bits,
//! wrapping) with its count (low 32 bits). Recording is one load and one
//! `fetch_add` in the common case, or a compare-and-swap when a bucket is
//! reused. Readers sum the slots whose index falls inside the window, so stale
//! slots never need clearing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use zt_types::Timestamp;

const TAG_MASK: u64 = 0xFFFF_FFFF;
const COUNT_MASK: u64 = 0xFFFF_FFFF;
/// A bucket stops counting this far below its limit, so that racing
/// increments can never carry into the index bits.
const HEADROOM: u64 = 1 << 20;

/// `series` rings of `buckets` slots each, in `stripes` copies that writers
/// pick by thread and readers add up.
#[derive(Debug)]
pub(crate) struct Windows {
    stripes: usize,
    stripe_len: usize,
    buckets: u64,
    bucket_micros: i64,
    origin_micros: i64,
    slots: Box<[AtomicU64]>,
}

impl Windows {
    pub(crate) fn new(series: usize, buckets: usize, bucket: Duration, origin: Timestamp) -> Self {
        Self::striped(1, series, buckets, bucket, origin)
    }

    pub(crate) fn striped(stripes: usize, series: usize, buckets: usize, bucket: Duration, origin: Timestamp) -> Self {
        let stripes = stripes.max(1);
        let buckets = buckets.max(1);
        let bucket_micros = i64::try_from(bucket.as_micros()).unwrap_or(i64::MAX).max(1);
        let stripe_len = series.saturating_mul(buckets);
        let slots = (0..stripe_len.saturating_mul(stripes))
            .map(|_| AtomicU64::new(0))
            .collect();
        Self {
            stripes,
            stripe_len,
            buckets: u64::try_from(buckets).unwrap_or(u64::MAX),
            bucket_micros,
            origin_micros: origin.unix_micros(),
            slots,
        }
    }

    /// The bucket index of `at`, counted from the origin. Times before the
    /// origin fall into bucket 0.
    pub(crate) fn index(&self, at: Timestamp) -> u64 {
        let relative = at.unix_micros().saturating_sub(self.origin_micros).max(0);
        u64::try_from(relative / self.bucket_micros).unwrap_or(0)
    }

    /// How many buckets cover `span`, rounded up, at least one.
    pub(crate) fn buckets_for(&self, span: Duration) -> u64 {
        let micros = u64::try_from(span.as_micros()).unwrap_or(u64::MAX);
        let width = self.bucket_micros.unsigned_abs();
        micros.div_ceil(width).max(1)
    }

    /// The width of one bucket, in seconds.
    pub(crate) fn bucket_seconds(&self) -> f64 {
        self.bucket_micros as f64 / 1e6
    }

    /// The span the ring covers.
    pub(crate) fn span(&self) -> Duration {
        Duration::from_micros(self.bucket_micros.unsigned_abs().saturating_mul(self.buckets))
    }

    fn slot(&self, stripe: usize, series: usize, index: u64) -> Option<&AtomicU64> {
        let ring = usize::try_from(self.buckets).ok()?;
        let offset = usize::try_from(index % self.buckets).ok()?;
        let position = stripe
            .checked_mul(self.stripe_len)?
            .checked_add(series.checked_mul(ring)?.checked_add(offset)?)?;
        self.slots.get(position)
    }

    /// Counts one event in `series` at bucket `index`, in the caller's stripe.
    pub(crate) fn record(&self, series: usize, index: u64) {
        self.record_in(crate::stripe::current(self.stripes), series, index);
    }

    /// Counts one event in `series` at bucket `index`, in `stripe`.
    pub(crate) fn record_in(&self, stripe: usize, series: usize, index: u64) {
        let Some(slot) = self.slot(stripe % self.stripes, series, index) else {
            return;
        };
        let tag = index & TAG_MASK;
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let slot_tag = current >> 32;
            // The slot is ours, or up to one ring newer than ours because the
            // clock went back: count into it rather than erase newer counts.
            let ahead = slot_tag.wrapping_sub(tag) & TAG_MASK;
            if ahead <= self.buckets {
                if current & COUNT_MASK < COUNT_MASK - HEADROOM {
                    slot.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            match slot.compare_exchange_weak(current, (tag << 32) | 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn bucket(&self, series: usize, index: u64) -> u64 {
        (0..self.stripes)
            .filter_map(|stripe| self.slot(stripe, series, index))
            .map(|slot| {
                let value = slot.load(Ordering::Relaxed);
                if value >> 32 == index & TAG_MASK {
                    value & COUNT_MASK
                } else {
                    0
                }
            })
            .sum()
    }

    /// The sum of buckets `from..=to`, limited to what the ring still holds
    /// relative to `to`.
    pub(crate) fn sum(&self, series: usize, from: u64, to: u64) -> u64 {
        let oldest = to.saturating_sub(self.buckets - 1);
        (from.max(oldest)..=to).map(|index| self.bucket(series, index)).sum()
    }

    /// The sum of the `last` buckets that end at `now`.
    pub(crate) fn recent(&self, series: usize, now: u64, last: u64) -> u64 {
        self.sum(series, now.saturating_sub(last.saturating_sub(1)), now)
    }

    /// The `last` buckets that end at `now`, oldest first.
    pub(crate) fn series(&self, series: usize, now: u64, last: u64) -> Vec<u64> {
        let last = last.min(self.buckets);
        let from = now.saturating_sub(last.saturating_sub(1));
        (from..=now)
            .map(|index| {
                if now - index < self.buckets {
                    self.bucket(series, index)
                } else {
                    0
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_700_000_000_000_000 + seconds * 1_000_000).unwrap()
    }

    #[test]
    fn counts_slide_out_of_the_window() {
        let windows = Windows::new(2, 60, Duration::from_secs(1), at(0));
        for second in 0..120 {
            let index = windows.index(at(second));
            windows.record(0, index);
            windows.record(0, index);
        }
        let now = windows.index(at(119));
        assert_eq!(now, 119);
        assert_eq!(windows.recent(0, now, 60), 120);
        assert_eq!(windows.recent(0, now, 10), 20);
        // A window wider than the ring is cut to the ring.
        assert_eq!(windows.recent(0, now, 1000), 120);
        assert_eq!(windows.recent(1, now, 60), 0);
        // Later, the old buckets no longer count even though nobody cleared them.
        assert_eq!(windows.recent(0, windows.index(at(200)), 60), 0);
        assert_eq!(windows.series(0, now, 3), vec![2, 2, 2]);
    }

    #[test]
    fn clock_going_back_does_not_erase_newer_counts() {
        let windows = Windows::new(1, 10, Duration::from_secs(1), at(0));
        windows.record(0, windows.index(at(15)));
        windows.record(0, windows.index(at(5)));
        assert_eq!(windows.recent(0, 15, 10), 2);
        // Times before the origin land in bucket 0.
        assert_eq!(windows.index(at(-100)), 0);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let windows = std::sync::Arc::new(Windows::new(1, 10, Duration::from_secs(1), at(0)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let windows = windows.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| windows.record(0, 3)))
            })
            .collect();
        threads.into_iter().for_each(|thread| thread.join().unwrap());
        assert_eq!(windows.recent(0, 3, 1), 40_000);
    }

    #[test]
    fn stripes_add_up() {
        let windows = Windows::striped(3, 2, 10, Duration::from_secs(1), at(0));
        for stripe in 0..3 {
            windows.record_in(stripe, 1, 4);
        }
        windows.record_in(4, 1, 4);
        assert_eq!(windows.recent(1, 4, 1), 4);
        assert_eq!(windows.recent(0, 4, 10), 0);
    }

    #[test]
    fn buckets_for_rounds_up() {
        let windows = Windows::new(1, 10, Duration::from_millis(500), at(0));
        assert_eq!(windows.buckets_for(Duration::from_secs(1)), 2);
        assert_eq!(windows.buckets_for(Duration::from_millis(600)), 2);
        assert_eq!(windows.buckets_for(Duration::ZERO), 1);
    }
}
