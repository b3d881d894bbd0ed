//! Performance monitoring: timers that record into HDR histograms, with a
//! slow-run threshold per operation.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};
use zt_types::Neutralized;

use crate::error::Error;
use crate::window::Windows;
use zt_types::Clock;

/// Histograms track 1 µs to 1 h; longer runs are recorded as 1 h.
const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Operation names are cut to this many bytes.
const MAX_NAME: usize = 128;
/// Where operations beyond the cap are recorded.
pub(crate) const OVERFLOW: &str = "_other";

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The latency figures of one operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// The operation's name.
    pub operation: String,
    /// Runs recorded.
    pub count: u64,
    /// The median.
    #[serde(rename = "p50_us", serialize_with = "micros")]
    pub p50: Duration,
    /// The 95th percentile.
    #[serde(rename = "p95_us", serialize_with = "micros")]
    pub p95: Duration,
    /// The 99th percentile.
    #[serde(rename = "p99_us", serialize_with = "micros")]
    pub p99: Duration,
    /// The longest run.
    #[serde(rename = "max_us", serialize_with = "micros")]
    pub max: Duration,
    /// The mean.
    #[serde(rename = "mean_us", serialize_with = "micros")]
    pub mean: Duration,
    /// The sum of all runs.
    #[serde(rename = "sum_us", serialize_with = "micros")]
    pub sum: Duration,
    /// Runs at or above the slow threshold.
    pub slow: u64,
    /// The slow threshold, if set.
    #[serde(rename = "slow_threshold_us", serialize_with = "optional_micros")]
    pub slow_threshold: Option<Duration>,
}

fn micros<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

fn optional_micros<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => micros(duration, serializer),
        None => serializer.serialize_none(),
    }
}

pub(crate) struct OperationStats {
    name: Arc<str>,
    histogram: Mutex<Histogram<u64>>,
    sum_micros: AtomicU64,
    slow_threshold_micros: Option<u64>,
    slow_total: AtomicU64,
    slow: Windows,
    metric: metrics::Key,
    clock: Arc<dyn Clock>,
}

impl OperationStats {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn slow_windows(&self) -> &Windows {
        &self.slow
    }

    fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros.min(HIGHEST_MICROS));
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        if self.slow_threshold_micros.is_some_and(|threshold| micros >= threshold) {
            self.slow_total.fetch_add(1, Ordering::Relaxed);
            self.slow.record(0, self.slow.index(self.clock.now()));
        }
        metrics::with_recorder(|recorder| {
            recorder
                .register_histogram(&self.metric, &METADATA)
                .record(elapsed.as_secs_f64());
        });
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        let histogram = self.histogram.lock().unwrap_or_else(PoisonError::into_inner);
        let quantile = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
        let count = histogram.len();
        LatencySummary {
            operation: self.name.to_string(),
            count,
            p50: quantile(0.5),
            p95: quantile(0.95),
            p99: quantile(0.99),
            max: Duration::from_micros(histogram.max()),
            mean: Duration::from_secs_f64(histogram.mean().max(0.0) / 1e6),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
            slow: self.slow_total.load(Ordering::Relaxed),
            slow_threshold: self.slow_threshold_micros.map(Duration::from_micros),
        }
    }
}

/// A named operation whose runs are timed, such as `db.query`. Cheap to
/// clone; keep one instead of looking the name up for every run.
///
/// ```
/// use std::time::Duration;
/// use zt_monitoring::Monitor;
///
/// let monitor = Monitor::builder().without_tracing_sink().manual_evaluation().build()?;
/// let query = monitor.operation("db.query");
/// let rows = query.time(|| 42);
/// query.record(Duration::from_millis(3));
/// {
///     let _timer = query.start(); // records when dropped
/// }
/// assert_eq!(rows, 42);
/// assert_eq!(query.summary().count, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Operation {
    stats: Arc<OperationStats>,
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.stats.name)
            .finish_non_exhaustive()
    }
}

impl Operation {
    /// The name.
    pub fn name(&self) -> &str {
        &self.stats.name
    }

    /// Starts a timer that records when it is dropped or stopped.
    pub fn start(&self) -> Timer {
        Timer {
            operation: self.clone(),
            started: Instant::now(),
            armed: true,
        }
    }

    /// Times `work`.
    pub fn time<T>(&self, work: impl FnOnce() -> T) -> T {
        let _timer = self.start();
        work()
    }

    /// Records a run measured elsewhere.
    pub fn record(&self, elapsed: Duration) {
        self.stats.record(elapsed);
    }

    /// The figures so far.
    pub fn summary(&self) -> LatencySummary {
        self.stats.summary()
    }

    /// The slow threshold, if set.
    pub fn slow_threshold(&self) -> Option<Duration> {
        self.stats.slow_threshold_micros.map(Duration::from_micros)
    }
}

/// Times one run of an [`Operation`]; records when dropped, unless discarded.
#[derive(Debug)]
#[must_use = "a timer records when it is dropped; bind it with `let _timer = ...`"]
pub struct Timer {
    operation: Operation,
    started: Instant,
    armed: bool,
}

impl Timer {
    /// Stops and records now, returning the elapsed time.
    pub fn stop(mut self) -> Duration {
        let elapsed = self.started.elapsed();
        self.armed = false;
        self.operation.record(elapsed);
        elapsed
    }

    /// Stops without recording, for a run that should not count.
    pub fn discard(mut self) {
        self.armed = false;
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if self.armed {
            self.operation.record(self.started.elapsed());
        }
    }
}

/// Every operation by name, with a cap on how many names there can be.
pub(crate) struct Operations {
    map: RwLock<HashMap<Arc<str>, Arc<OperationStats>>>,
    thresholds: HashMap<String, Duration>,
    prototype: Histogram<u64>,
    max: usize,
    overflowed: AtomicBool,
    bucket: Duration,
    buckets: usize,
    clock: Arc<dyn Clock>,
    origin: zt_types::Timestamp,
}

pub(crate) struct OperationsConfig {
    pub(crate) thresholds: HashMap<String, Duration>,
    pub(crate) significant_figures: u8,
    pub(crate) max: usize,
    pub(crate) bucket: Duration,
    pub(crate) buckets: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) origin: zt_types::Timestamp,
}

impl Operations {
    pub(crate) fn new(config: OperationsConfig) -> Result<Self, Error> {
        let prototype = Histogram::new_with_bounds(1, HIGHEST_MICROS, config.significant_figures).map_err(|error| {
            Error::config(format!("histogram precision {} is invalid", config.significant_figures)).with_source(error)
        })?;
        Ok(Self {
            map: RwLock::new(HashMap::new()),
            thresholds: config.thresholds,
            prototype,
            max: config.max.max(1),
            overflowed: AtomicBool::new(false),
            bucket: config.bucket,
            buckets: config.buckets,
            clock: config.clock,
            origin: config.origin,
        })
    }

    pub(crate) fn get(&self, name: &str) -> Operation {
        let name = cut(name);
        if let Some(stats) = self.map.read().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Operation { stats: stats.clone() };
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(stats) = map.get(name) {
            return Operation { stats: stats.clone() };
        }
        let name = if map.len() + 1 >= self.max && name != OVERFLOW {
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "zt::monitoring",
                    operation = %Neutralized(name),
                    max = self.max,
                    "too many operation names; further operations are recorded as {OVERFLOW}"
                );
            }
            OVERFLOW
        } else {
            name
        };
        let stats = map.entry(Arc::from(name)).or_insert_with_key(|name| {
            let threshold = self
                .thresholds
                .get(&**name)
                .map(|threshold| u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX));
            Arc::new(OperationStats {
                name: name.clone(),
                histogram: Mutex::new(self.prototype.clone()),
                sum_micros: AtomicU64::new(0),
                slow_threshold_micros: threshold,
                slow_total: AtomicU64::new(0),
                slow: Windows::new(1, self.buckets, self.bucket, self.origin),
                metric: metrics::Key::from_parts(
                    "zt_operation_duration_seconds",
                    vec![metrics::Label::new("operation", name.to_string())],
                ),
                clock: self.clock.clone(),
            })
        });
        Operation { stats: stats.clone() }
    }

    /// Every operation, sorted by name.
    pub(crate) fn all(&self) -> Vec<Arc<OperationStats>> {
        let mut all: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

fn cut(name: &str) -> &str {
    if name.len() <= MAX_NAME {
        return name;
    }
    let mut end = MAX_NAME;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use zt_types::SystemClock;

    fn operations(max: usize) -> Operations {
        Operations::new(OperationsConfig {
            thresholds: HashMap::from([("slow.op".to_owned(), Duration::from_millis(100))]),
            significant_figures: 3,
            max,
            bucket: Duration::from_secs(1),
            buckets: 60,
            clock: Arc::new(SystemClock),
            origin: zt_types::Timestamp::now(),
        })
        .unwrap()
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let operations = operations(10);
        let op = operations.get("db.query");
        for millis in 1..=100 {
            op.record(Duration::from_millis(millis));
        }
        let summary = op.summary();
        assert_eq!(summary.count, 100);
        let close = |actual: Duration, expected_ms: u64| {
            let expected = Duration::from_millis(expected_ms).as_secs_f64();
            (actual.as_secs_f64() - expected).abs() <= expected * 0.01
        };
        assert!(close(summary.p50, 50), "{summary:?}");
        assert!(close(summary.p95, 95), "{summary:?}");
        assert!(close(summary.p99, 99), "{summary:?}");
        assert!(close(summary.max, 100), "{summary:?}");
        assert_eq!(summary.sum, Duration::from_millis(5050));
        assert_eq!(summary.slow, 0);
    }

    #[test]
    fn slow_runs_are_counted() {
        let operations = operations(10);
        let op = operations.get("slow.op");
        op.record(Duration::from_millis(99));
        op.record(Duration::from_millis(100));
        op.record(Duration::from_secs(7200));
        assert_eq!(op.summary().slow, 2);
        assert_eq!(op.slow_threshold(), Some(Duration::from_millis(100)));
        // Runs beyond the range are recorded at its top.
        assert_eq!(op.summary().max.as_secs(), 3600);
    }

    #[test]
    fn names_are_capped() {
        let operations = operations(3);
        let a = operations.get("a");
        let b = operations.get("b");
        let c = operations.get("c");
        assert_eq!((a.name(), b.name(), c.name()), ("a", "b", OVERFLOW));
        assert_eq!(operations.get("a").name(), "a");
        assert_eq!(operations.all().len(), 3);
        assert_eq!(operations.get(&"x".repeat(500)).name(), OVERFLOW);
    }

    #[test]
    fn timers_record_unless_discarded() {
        let operations = operations(10);
        let op = operations.get("t");
        drop(op.start());
        let elapsed = op.start().stop();
        op.start().discard();
        assert_eq!(op.summary().count, 2);
        assert!(elapsed < Duration::from_secs(60));
    }
}
