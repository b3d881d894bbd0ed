//! Configuring and starting a monitor: [`MonitorBuilder`], whose `build`
//! runs named steps (check the figures, assemble the rules, set up the
//! operations, start the sinks, share the state, start the evaluator).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::Duration;

use zt_error_codes::ErrorCode;
use zt_types::{Clock, Severity, SystemClock, Timestamp};

use crate::error::{Error, ErrorKind};
use crate::evaluate::alerts::Engine;
use crate::latency::{Operations, OperationsConfig};
use crate::monitor::evaluator;
use crate::monitor::handle::{Exported, Inner, Monitor};
use crate::rules::model::{AlertConfig, AlertRule, Condition, InhibitRule, SpikeConfig};
use crate::sinks::queue::{Sink, SinkHandle, SinkOptions};
use crate::sinks::tracing_sink::TracingSink;
use crate::window::Windows;

impl Monitor {
    /// A monitor with the defaults: the tracing sink, the built-in critical
    /// and slow-operation rules, and evaluation every second.
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// Starts configuring a monitor.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }
}

/// Configures and starts a [`Monitor`].
///
/// Defaults: the [`TracingSink`], the built-in critical and slow-operation
/// rules, 1 s buckets over 1 h of history, spike detection with
/// [`SpikeConfig::default`], evaluation every second, histograms with two
/// significant figures (1 % precision), at most 500 operation names.
pub struct MonitorBuilder {
    clock: Arc<dyn Clock>,
    tracing: Option<(TracingSink, SinkOptions)>,
    sinks: Vec<(Box<dyn Sink>, SinkOptions)>,
    config: AlertConfig,
    critical: bool,
    slow: bool,
    bucket: Duration,
    history: Duration,
    spike: SpikeConfig,
    snapshot_window: Option<Duration>,
    evaluate_every: Option<Duration>,
    significant_figures: u8,
    max_operations: usize,
    stripes: usize,
}

impl fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field("clock", &self.clock)
            .field("tracing", &self.tracing)
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|(sink, _)| sink.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("rules", &self.config.rules().len())
            .field("evaluate_every", &self.evaluate_every)
            .finish_non_exhaustive()
    }
}

impl Default for MonitorBuilder {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            tracing: Some((TracingSink::new(), SinkOptions::default())),
            sinks: Vec::new(),
            config: AlertConfig::new(),
            critical: true,
            slow: true,
            bucket: Duration::from_secs(1),
            history: Duration::from_secs(3600),
            spike: SpikeConfig::default(),
            snapshot_window: None,
            evaluate_every: Some(Duration::from_secs(1)),
            significant_figures: 2,
            max_operations: 500,
            stripes: crate::stripe::default_count(),
        }
    }
}

impl MonitorBuilder {
    /// Sets the clock. Default: [`SystemClock`].
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Adds a sink with the default [`SinkOptions`].
    #[must_use]
    pub fn sink(self, sink: impl Sink) -> Self {
        self.sink_with_options(sink, SinkOptions::default())
    }

    /// Adds a sink with its own queue sizes.
    #[must_use]
    pub fn sink_with_options(mut self, sink: impl Sink, options: SinkOptions) -> Self {
        self.sinks.push((Box::new(sink), options));
        self
    }

    /// Configures the tracing sink, which is on by default.
    #[must_use]
    pub fn tracing_sink(mut self, sink: TracingSink, options: SinkOptions) -> Self {
        self.tracing = Some((sink, options));
        self
    }

    /// Removes the default tracing sink.
    #[must_use]
    pub fn without_tracing_sink(mut self) -> Self {
        self.tracing = None;
        self
    }

    /// Adds rules, inhibitions and slow thresholds, such as a file loaded with
    /// [`AlertConfig::from_path`]. Rules replace earlier ones of the same
    /// name, built-in ones included.
    #[must_use]
    pub fn rules(mut self, config: AlertConfig) -> Self {
        self.config = std::mem::take(&mut self.config).merge(config);
        self
    }

    /// Adds one rule.
    #[must_use]
    pub fn rule(self, rule: AlertRule) -> Self {
        self.rules(AlertConfig::new().rule(rule))
    }

    /// Adds one inhibition.
    #[must_use]
    pub fn inhibit(self, rule: InhibitRule) -> Self {
        self.rules(AlertConfig::new().inhibit(rule))
    }

    /// Sets the slow threshold of an operation; slower runs count toward the
    /// slow-operation rules.
    #[must_use]
    pub fn slow_operation(self, name: impl Into<String>, threshold: Duration) -> Self {
        self.rules(AlertConfig::new().slow_operation(name, threshold))
    }

    /// Whether the built-in [`AlertRule::critical`] rule is on. Default: on.
    #[must_use]
    pub fn critical_alerts(mut self, on: bool) -> Self {
        self.critical = on;
        self
    }

    /// Whether the built-in [`AlertRule::slow_operations`] rule is on. Default: on.
    #[must_use]
    pub fn slow_operation_alerts(mut self, on: bool) -> Self {
        self.slow = on;
        self
    }

    /// Sets the bucket width and the history kept per code. Default: 1 s
    /// buckets over 1 h. Memory is 8 bytes per bucket per code, about 0.8 MB
    /// by default; rule windows must fit in the history.
    #[must_use]
    pub fn window(mut self, bucket: Duration, history: Duration) -> Self {
        self.bucket = bucket;
        self.history = history;
        self
    }

    /// Sets spike detection for snapshots. Default: [`SpikeConfig::default`].
    #[must_use]
    pub fn spike_detection(mut self, spike: SpikeConfig) -> Self {
        self.spike = spike;
        self
    }

    /// Sets the span of a snapshot's `in_window` counts. Default: the whole history.
    #[must_use]
    pub fn snapshot_window(mut self, span: Duration) -> Self {
        self.snapshot_window = Some(span);
        self
    }

    /// Runs the evaluator thread every `interval`. Default: 1 s.
    #[must_use]
    pub fn evaluate_every(mut self, interval: Duration) -> Self {
        self.evaluate_every = Some(interval.max(Duration::from_millis(10)));
        self
    }

    /// Starts no evaluator thread; call [`Monitor::tick`] yourself.
    #[must_use]
    pub fn manual_evaluation(mut self) -> Self {
        self.evaluate_every = None;
        self
    }

    /// Sets the histograms' significant figures, 1 to 5. Default: 2, which
    /// keeps each histogram near 30 KB; 3 costs about 185 KB per operation.
    #[must_use]
    pub fn histogram_precision(mut self, significant_figures: u8) -> Self {
        self.significant_figures = significant_figures;
        self
    }

    /// Caps the number of operation names. Default: 500.
    #[must_use]
    pub fn max_operations(mut self, max: usize) -> Self {
        self.max_operations = max;
        self
    }

    /// Sets how many stripes of counters and queue lanes recording threads
    /// spread over. Default: one per CPU, at most 4. More stripes mean less
    /// contention between threads that record at once, and proportionally
    /// more memory for windows (0.8 MB per stripe by default) and more,
    /// smaller queue lanes.
    #[must_use]
    pub fn stripes(mut self, stripes: usize) -> Self {
        self.stripes = stripes.clamp(1, 64);
        self
    }

    /// Checks the configuration, starts the sinks' workers and the evaluator.
    pub fn build(self) -> Result<Monitor, Error> {
        let buckets = self.check()?;
        let origin = self.clock.now();
        let windows = Windows::striped(self.stripes, ErrorCode::ALL.len(), buckets, self.bucket, origin);
        let history = windows.span();
        let config = self.alert_config(history)?;
        let operations = self.operations(&config, buckets, origin)?;
        let evaluate_every = self.evaluate_every;
        let inner = Arc::new(self.share(windows, operations, &config)?);
        if let Some(interval) = evaluate_every {
            start_evaluator(&inner, interval)?;
        }
        Ok(Monitor { inner })
    }

    /// Step 1: the window, the histograms' precision and spike detection are
    /// sound. Returns the number of buckets per series.
    fn check(&self) -> Result<usize, Error> {
        if self.bucket < Duration::from_millis(1) || self.history < self.bucket {
            return Err(Error::config(
                "the window needs buckets of at least 1 ms and a history of at least one bucket",
            ));
        }
        let buckets =
            usize::try_from(self.history.as_micros().div_ceil(self.bucket.as_micros().max(1))).unwrap_or(usize::MAX);
        if buckets > 1_000_000 {
            return Err(Error::config(format!(
                "the window has {buckets} buckets; at most 1000000 are allowed"
            )));
        }
        if !(1..=5).contains(&self.significant_figures) {
            return Err(Error::config("histogram precision must be 1 to 5 significant figures"));
        }
        self.spike
            .check()
            .map_err(|why| Error::config(format!("spike detection: {why}")))?;
        Ok(buckets)
    }

    /// Step 2: the built-in rules that are on, then the configured ones
    /// (which replace built-in ones of the same name), checked, and each
    /// reading no more history than the monitor keeps.
    fn alert_config(&self, history: Duration) -> Result<AlertConfig, Error> {
        let config = self.builtin_rules(history).merge(self.config.clone());
        config.check()?;
        for rule in config.rules() {
            let span = rule.condition().span();
            if span > history {
                return Err(Error::config(format!(
                    "rule {:?} reads {} of history but the monitor keeps {}; widen MonitorBuilder::window",
                    rule.name(),
                    crate::duration::format(span),
                    crate::duration::format(history)
                )));
            }
        }
        let spike_span = self.spike.recent().saturating_add(self.spike.baseline());
        if spike_span > history {
            return Err(Error::config(format!(
                "spike detection reads {} of history but the monitor keeps {}",
                crate::duration::format(spike_span),
                crate::duration::format(history)
            )));
        }
        Ok(config)
    }

    /// The built-in critical and slow-operation rules that are on, their
    /// windows cut to the history when it is shorter than five minutes.
    fn builtin_rules(&self, history: Duration) -> AlertConfig {
        let five_minutes = Duration::from_secs(300).min(history);
        let mut builtins = AlertConfig::new();
        if self.critical {
            let rule = AlertRule::critical();
            builtins = builtins.rule(
                AlertRule::new(
                    rule.name(),
                    rule.selector().clone(),
                    Condition::threshold(1, five_minutes),
                )
                .with_split_by_code(true)
                .with_group_by(rule.group_by().iter().copied())
                .with_timing(rule.timing()),
            );
        }
        if self.slow {
            let rule = AlertRule::slow_operations();
            builtins = builtins.rule(
                AlertRule::new(
                    rule.name(),
                    rule.selector().clone(),
                    Condition::threshold(1, five_minutes),
                )
                .with_severity(Severity::Warning)
                .with_group_by(rule.group_by().iter().copied())
                .with_timing(rule.timing()),
            );
        }
        builtins
    }

    /// Step 3: the operations' histograms, with the configured slow thresholds.
    fn operations(&self, config: &AlertConfig, buckets: usize, origin: Timestamp) -> Result<Operations, Error> {
        let thresholds: HashMap<String, Duration> = config
            .operations()
            .iter()
            .map(|slow| (slow.name.clone(), slow.threshold))
            .collect();
        Operations::new(OperationsConfig {
            thresholds,
            significant_figures: self.significant_figures,
            max: self.max_operations,
            bucket: self.bucket,
            buckets,
            clock: self.clock.clone(),
            origin,
        })
    }

    /// Step 4: starts each sink's worker, and lays out the state that every
    /// clone of the monitor shares.
    fn share(self, windows: Windows, operations: Operations, config: &AlertConfig) -> Result<Inner, Error> {
        let history = windows.span();
        let sinks = start_sinks(self.tracing, self.sinks, self.stripes)?;
        let takes = |wants: fn(&SinkHandle) -> bool| -> Vec<usize> {
            sinks
                .iter()
                .enumerate()
                .filter(|(_, sink)| wants(sink))
                .map(|(index, _)| index)
                .collect()
        };
        let report_sinks = takes(SinkHandle::accepts_reports);
        let logged_report_sinks = takes(SinkHandle::accepts_logged_reports);
        // A spare cache line of padding between stripe rows.
        let stride = ErrorCode::ALL.len().div_ceil(8) * 8 + 8;
        Ok(Inner {
            clock: self.clock,
            stripes: self.stripes,
            totals: (0..stride * self.stripes).map(|_| AtomicU64::new(0)).collect(),
            stride,
            windows,
            report_sinks,
            logged_report_sinks,
            sinks,
            critical_firing: ErrorCode::ALL.iter().map(|_| AtomicBool::new(false)).collect(),
            critical_pending: AtomicBool::new(false),
            engine: Mutex::new(Engine::new(config.rules().to_vec(), config.inhibitions().to_vec())),
            operations,
            spike: self.spike,
            snapshot_window: self.snapshot_window.unwrap_or(history).min(history),
            exported: Mutex::new(Exported::default()),
            evaluator: Mutex::new(None),
            evaluator_thread: OnceLock::new(),
            stop: AtomicBool::new(false),
            error_keys: error_keys(),
        })
    }
}

/// Starts the worker of the tracing sink, when it is on, and of each other sink.
fn start_sinks(
    tracing: Option<(TracingSink, SinkOptions)>,
    others: Vec<(Box<dyn Sink>, SinkOptions)>,
    stripes: usize,
) -> Result<Vec<SinkHandle>, Error> {
    let tracing = tracing.map(|(sink, options)| (Box::new(sink) as Box<dyn Sink>, options));
    tracing
        .into_iter()
        .chain(others)
        .map(|(sink, options)| SinkHandle::spawn(sink, options, stripes))
        .collect()
}

/// The `zt_errors_total` key of each code, built once.
fn error_keys() -> Vec<metrics::Key> {
    ErrorCode::ALL
        .iter()
        .map(|code| {
            metrics::Key::from_parts(
                "zt_errors_total",
                vec![
                    metrics::Label::from_static_parts("code", code.reason()),
                    metrics::Label::from_static_parts("category", code.category().as_str()),
                    metrics::Label::from_static_parts("severity", code.severity().as_str()),
                ],
            )
        })
        .collect()
}

/// Step 5: starts the evaluator thread, which holds the state weakly, so
/// that dropping the last monitor stops it.
fn start_evaluator(inner: &Arc<Inner>, interval: Duration) -> Result<(), Error> {
    let weak = Arc::downgrade(inner);
    let handle = thread::Builder::new()
        .name("zt-monitoring".into())
        .spawn(move || evaluator::run(&weak, interval))
        .map_err(|error| Error::new(ErrorKind::Spawn, "cannot start the evaluator thread").with_source(error))?;
    // The cell is fresh and set only here.
    let _ = inner.evaluator_thread.set(handle.thread().clone());
    *inner.evaluator.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    Ok(())
}
