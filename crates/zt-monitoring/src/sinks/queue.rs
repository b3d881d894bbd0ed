//! Sinks and the machinery that keeps them off the caller's thread: each sink
//! runs on its own worker thread behind two bounded queues, one for reports
//! and a smaller one for alert notifications, so a report storm cannot crowd
//! out an alert.
//!
//! **Invariant:** offering to a sink never blocks. A full or closed queue
//! drops the item, counts it per sink, and increments the
//! `zt_monitoring_dropped_total` metric.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use serde::Serialize;
use zt_types::Neutralized;

use crate::error::{Chain, Error, ErrorKind};
use crate::evaluate::alerts::Notification;
use crate::report::Report;

/// Where reports and alert notifications go: a log, Sentry, a pager.
///
/// A sink runs on a worker thread of its own, so its methods may block on
/// I/O; the monitor's callers never wait for them. A method that returns an
/// error or panics counts as a failed delivery, which is logged (at most once
/// per 10 seconds per sink) and counted.
///
/// ```
/// use zt_monitoring::{Error, Monitor, Report, Sink};
///
/// #[derive(Debug)]
/// struct Stdout;
///
/// impl Sink for Stdout {
///     fn name(&self) -> &str {
///         "stdout"
///     }
///     fn send_report(&mut self, report: &Report) -> Result<(), Error> {
///         let _line = format!("{} {}", report.code(), report.reference());
///         Ok(())
///     }
/// }
///
/// let monitor = Monitor::builder().sink(Stdout).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Sink: Send + 'static {
    /// A short name for metrics and logs, such as `sentry`.
    fn name(&self) -> &str;

    /// Whether the sink wants error reports. Default: yes.
    fn accepts_reports(&self) -> bool {
        true
    }

    /// Whether the sink wants the reports that were already logged where they
    /// arose ([`Report::is_logged`]), such as every report from zt-errors'
    /// sanitizer. Default: yes. A sink that only logs says no, so that each
    /// event is logged once; it still gets the reports nobody logged.
    fn accepts_logged_reports(&self) -> bool {
        true
    }

    /// Whether the sink wants alert notifications. Default: yes.
    fn accepts_alerts(&self) -> bool {
        true
    }

    /// Delivers one report.
    fn send_report(&mut self, report: &Report) -> Result<(), Error>;

    /// Delivers one alert notification. Default: ignores it.
    fn send_notification(&mut self, notification: &Notification) -> Result<(), Error> {
        let _ = notification;
        Ok(())
    }

    /// Pushes out anything the sink buffers itself. Called by
    /// [`crate::Monitor::flush`] once the queues are drained. Default: nothing.
    fn flush(&mut self, timeout: Duration) -> Result<(), Error> {
        let _ = timeout;
        Ok(())
    }
}

/// Queue sizes and the worker's polling interval for one sink.
///
/// The worker sleeps between polls and is woken early when a queue is half
/// full, or on a flush, so a busy caller pays no wake-up per report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkOptions {
    report_capacity: usize,
    alert_capacity: usize,
    poll_interval: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            report_capacity: 4096,
            alert_capacity: 256,
            poll_interval: Duration::from_millis(50),
        }
    }
}

impl SinkOptions {
    /// 4096 reports, 256 notifications, polled every 50 ms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the report queue's capacity, split evenly across the monitor's
    /// stripes. Default: 4096. Each slot holds a report, about 200 bytes plus
    /// its chain.
    #[must_use]
    pub fn report_capacity(mut self, capacity: usize) -> Self {
        self.report_capacity = capacity.max(1);
        self
    }

    /// Sets the notification queue's capacity. Default: 256.
    #[must_use]
    pub fn alert_capacity(mut self, capacity: usize) -> Self {
        self.alert_capacity = capacity.max(1);
        self
    }

    /// Sets how long the worker sleeps when idle, which bounds delivery
    /// latency. Default: 50 ms.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }
}

/// One sink's delivery figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SinkStats {
    /// The sink's name.
    pub name: String,
    /// Reports and notifications waiting in its queues or being delivered.
    pub queued: u64,
    /// Delivered.
    pub delivered: u64,
    /// Handed to the sink, which failed or panicked.
    pub failed: u64,
    /// Reports dropped because the queue was full or closed.
    pub dropped_reports: u64,
    /// Notifications dropped because the queue was full or closed.
    pub dropped_alerts: u64,
}

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

#[derive(Default)]
struct Progress {
    processed: u64,
    flushed: u64,
    flush_ok: bool,
}

#[derive(Default)]
struct Shared {
    alerts_accepted: AtomicU64,
    processed: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    dropped_alerts: AtomicU64,
    woken: AtomicBool,
    stop: AtomicBool,
    flush_requested: AtomicU64,
    flush_target: AtomicU64,
    flush_timeout_micros: AtomicU64,
    progress: Mutex<Progress>,
    changed: Condvar,
}

/// One stripe's report queue, on a cache line of its own so that threads on
/// different stripes never write to the same line.
#[repr(align(64))]
struct Lane {
    queue: SyncSender<Report>,
    accepted: AtomicU64,
    dropped: AtomicU64,
}

/// The monitor's side of one sink.
pub(crate) struct SinkHandle {
    name: Arc<str>,
    lanes: Box<[Lane]>,
    alerts: Option<SyncSender<Arc<Notification>>>,
    shared: Arc<Shared>,
    thread: Thread,
    join: Mutex<Option<JoinHandle<()>>>,
    wake_every: u64,
    logged_reports: bool,
    dropped_key: metrics::Key,
}

impl SinkHandle {
    /// Starts the sink's worker. The report capacity is split across
    /// `stripes` lanes, one per stripe of recording threads.
    pub(crate) fn spawn(sink: Box<dyn Sink>, options: SinkOptions, stripes: usize) -> Result<Self, Error> {
        let name: Arc<str> = Arc::from(sink.name());
        let logged_reports = sink.accepts_logged_reports();
        let lane_capacity = options.report_capacity.div_ceil(stripes.max(1)).max(1);
        let (lanes, report_rx): (Vec<Lane>, Vec<Receiver<Report>>) = if sink.accepts_reports() {
            (0..stripes.max(1))
                .map(|_| {
                    let (queue, rx) = sync_channel(lane_capacity);
                    (
                        Lane {
                            queue,
                            accepted: AtomicU64::new(0),
                            dropped: AtomicU64::new(0),
                        },
                        rx,
                    )
                })
                .unzip()
        } else {
            (Vec::new(), Vec::new())
        };
        let (alerts, alert_rx) = if sink.accepts_alerts() {
            let (tx, rx) = sync_channel(options.alert_capacity);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            sink,
            name: name.clone(),
            reports: report_rx,
            alerts: alert_rx,
            shared: shared.clone(),
            poll: options.poll_interval,
            flushed: 0,
            last_warning: None,
            unreported_failures: 0,
        };
        let join = thread::Builder::new()
            .name(format!("zt-sink-{}", short(&name)))
            .spawn(move || worker.run())
            .map_err(|error| {
                Error::new(ErrorKind::Spawn, format!("cannot start the worker of sink {name:?}")).with_source(error)
            })?;
        Ok(Self {
            dropped_key: metrics::Key::from_parts(
                "zt_monitoring_dropped_total",
                vec![metrics::Label::new("sink", name.to_string())],
            ),
            name,
            lanes: lanes.into_boxed_slice(),
            alerts,
            thread: join.thread().clone(),
            join: Mutex::new(Some(join)),
            shared,
            wake_every: u64::try_from(lane_capacity / 2).unwrap_or(u64::MAX).max(1),
            logged_reports,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn accepts_reports(&self) -> bool {
        !self.lanes.is_empty()
    }

    /// Whether the sink wants reports already logged where they arose.
    pub(crate) fn accepts_logged_reports(&self) -> bool {
        self.accepts_reports() && self.logged_reports
    }

    /// Queues a report on the caller's stripe without blocking, or counts it
    /// as dropped.
    pub(crate) fn offer_report(&self, stripe: usize, report: Report) {
        let Some(lane) = self.lanes.get(stripe % self.lanes.len().max(1)) else {
            return;
        };
        match lane.queue.try_send(report) {
            Ok(()) => {
                let accepted = lane.accepted.fetch_add(1, Ordering::Relaxed) + 1;
                // One wake-up per half lane of reports, not one per report; an
                // idle worker otherwise polls.
                if accepted % self.wake_every == 0 && !self.shared.woken.swap(true, Ordering::AcqRel) {
                    self.thread.unpark();
                }
            }
            Err(_) => {
                lane.dropped.fetch_add(1, Ordering::Relaxed);
                self.count_drop();
            }
        }
    }

    fn accepted(&self) -> u64 {
        self.lanes
            .iter()
            .map(|lane| lane.accepted.load(Ordering::Acquire))
            .sum::<u64>()
            + self.shared.alerts_accepted.load(Ordering::Acquire)
    }

    /// Queues a notification without blocking, or counts it as dropped.
    pub(crate) fn offer_notification(&self, notification: &Arc<Notification>) {
        let Some(queue) = &self.alerts else {
            return;
        };
        match queue.try_send(notification.clone()) {
            Ok(()) => {
                self.shared.alerts_accepted.fetch_add(1, Ordering::AcqRel);
                // Alerts are rare and urgent: wake the worker now.
                self.thread.unpark();
            }
            Err(_) => {
                self.shared.dropped_alerts.fetch_add(1, Ordering::Relaxed);
                self.count_drop();
            }
        }
    }

    fn count_drop(&self) {
        metrics::with_recorder(|recorder| {
            recorder.register_counter(&self.dropped_key, &METADATA).increment(1);
        });
    }

    /// Asks the worker to drain and flush; returns what to wait for.
    pub(crate) fn request_flush(&self, timeout: Duration) -> FlushTicket {
        let target = self.accepted();
        self.shared.flush_target.fetch_max(target, Ordering::AcqRel);
        self.shared.flush_timeout_micros.store(
            u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let sequence = self.shared.flush_requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.thread.unpark();
        FlushTicket { target, sequence }
    }

    /// Waits until the ticket's work is done or `deadline` passes.
    pub(crate) fn wait(&self, ticket: FlushTicket, deadline: Instant) -> bool {
        let mut progress = self.shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if progress.processed >= ticket.target && progress.flushed >= ticket.sequence {
                return progress.flush_ok;
            }
            if self.is_finished() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Wake at least every 50 ms to notice a worker that died.
            let wait = (deadline - now).min(Duration::from_millis(50));
            progress = self
                .shared
                .changed
                .wait_timeout(progress, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn is_finished(&self) -> bool {
        self.join
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_none_or(JoinHandle::is_finished)
    }

    /// Tells the worker to finish once its queues are empty, and waits for it.
    pub(crate) fn stop(&self, deadline: Instant) -> bool {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
        loop {
            if self.is_finished() {
                if let Some(join) = self.join.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    // A panic inside the worker loop itself is already counted; nothing to add.
                    let _ = join.join();
                }
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    pub(crate) fn stats(&self) -> SinkStats {
        let shared = &self.shared;
        let processed = shared.processed.load(Ordering::Acquire);
        let lost = shared.lost.load(Ordering::Relaxed);
        SinkStats {
            name: self.name.to_string(),
            queued: self.accepted().saturating_sub(processed + lost),
            delivered: shared.delivered.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            dropped_reports: self
                .lanes
                .iter()
                .map(|lane| lane.dropped.load(Ordering::Relaxed))
                .sum::<u64>()
                + lost,
            dropped_alerts: shared.dropped_alerts.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FlushTicket {
    target: u64,
    sequence: u64,
}

fn short(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).take(8).collect()
}

struct Worker {
    sink: Box<dyn Sink>,
    name: Arc<str>,
    reports: Vec<Receiver<Report>>,
    alerts: Option<Receiver<Arc<Notification>>>,
    shared: Arc<Shared>,
    poll: Duration,
    flushed: u64,
    last_warning: Option<Instant>,
    unreported_failures: u64,
}

/// How many reports the worker takes before looking for alerts again.
const BATCH: usize = 64;

impl Worker {
    fn run(mut self) {
        loop {
            self.shared.woken.store(false, Ordering::Release);
            let (handled, open) = self.drain();
            if handled > 0 {
                let processed = self.shared.processed.fetch_add(handled, Ordering::AcqRel) + handled;
                let mut progress = self.shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
                progress.processed = processed;
                drop(progress);
                self.shared.changed.notify_all();
            }
            let stopping = self.shared.stop.load(Ordering::Acquire) || !open;
            let waiting = self.serve_flush() || stopping;
            if stopping && handled == 0 {
                self.finish();
                return;
            }
            if handled == 0 && !waiting {
                thread::park_timeout(self.poll);
            } else if handled == 0 {
                // A flush waits for reports still on their way into the queue.
                thread::park_timeout(Duration::from_millis(1));
            }
        }
    }

    /// Takes everything queued, alerts first. Returns how many were handled,
    /// and whether any queue is still open.
    fn drain(&mut self) -> (u64, bool) {
        // The receivers are taken out for the loop so that `self` stays free
        // for the sink calls.
        let alerts = self.alerts.take();
        let reports = std::mem::take(&mut self.reports);
        let mut handled = 0;
        let mut open = false;
        loop {
            let mut progressed = false;
            if let Some(alerts) = &alerts {
                let (sent, empty) = self.hand_over(alerts, usize::MAX, |sink, alert| sink.send_notification(alert));
                (handled, progressed, open) = (handled + sent, progressed || sent > 0, open || empty);
            }
            for lane in &reports {
                let (sent, empty) = self.hand_over(lane, BATCH, Sink::send_report);
                (handled, progressed, open) = (handled + sent, progressed || sent > 0, open || empty);
            }
            if !progressed {
                self.alerts = alerts;
                self.reports = reports;
                return (handled, open);
            }
        }
    }

    /// Hands up to `limit` items of `queue` to the sink through `send`, each
    /// guarded against a panic and counted. Returns how many, and whether
    /// the queue was found empty (still open).
    fn hand_over<T>(
        &mut self,
        queue: &Receiver<T>,
        limit: usize,
        send: impl Fn(&mut dyn Sink, &T) -> Result<(), Error>,
    ) -> (u64, bool) {
        let mut sent = 0;
        for _ in 0..limit {
            match queue.try_recv() {
                Ok(item) => {
                    let result = catch_unwind(AssertUnwindSafe(|| send(self.sink.as_mut(), &item)));
                    self.account(result);
                    sent += 1;
                }
                Err(TryRecvError::Empty) => return (sent, true),
                Err(TryRecvError::Disconnected) => return (sent, false),
            }
        }
        (sent, false)
    }

    fn account(&mut self, result: std::thread::Result<Result<(), Error>>) {
        let failure = match result {
            Ok(Ok(())) => {
                self.shared.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Err(error)) => Chain(&error).to_string(),
            Err(_) => "the sink panicked".to_owned(),
        };
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        self.unreported_failures += 1;
        let due = self
            .last_warning
            .is_none_or(|last| last.elapsed() >= Duration::from_secs(10));
        if due {
            tracing::warn!(
                target: "zt::monitoring",
                sink = %self.name,
                failures = self.unreported_failures,
                error = %Neutralized(&failure),
                "sink failed to deliver"
            );
            self.last_warning = Some(Instant::now());
            self.unreported_failures = 0;
        }
    }

    /// Flushes the sink when asked and everything asked for is processed.
    /// Returns whether a flush is still pending.
    fn serve_flush(&mut self) -> bool {
        let requested = self.shared.flush_requested.load(Ordering::Acquire);
        if requested <= self.flushed {
            return false;
        }
        let target = self.shared.flush_target.load(Ordering::Acquire);
        if self.shared.processed.load(Ordering::Acquire) < target {
            return true;
        }
        let timeout = Duration::from_micros(self.shared.flush_timeout_micros.load(Ordering::Relaxed));
        let result = catch_unwind(AssertUnwindSafe(|| self.sink.flush(timeout)));
        let ok = matches!(result, Ok(Ok(())));
        if let Ok(Err(error)) = &result {
            tracing::warn!(target: "zt::monitoring", sink = %self.name, error = %Chain(error), "sink flush failed");
        }
        self.flushed = requested;
        let mut progress = self.shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress.flushed = requested;
        progress.flush_ok = ok;
        drop(progress);
        self.shared.changed.notify_all();
        false
    }

    fn finish(mut self) {
        let timeout = Duration::from_micros(self.shared.flush_timeout_micros.load(Ordering::Relaxed).max(1_000_000));
        let _ = catch_unwind(AssertUnwindSafe(|| self.sink.flush(timeout)));
        // Whatever is still queued goes with the queues: count it as dropped.
        let mut lost = 0;
        for lane in std::mem::take(&mut self.reports) {
            lost += u64::try_from(lane.try_iter().count()).unwrap_or(u64::MAX);
        }
        if let Some(alerts) = self.alerts.take() {
            lost += u64::try_from(alerts.try_iter().count()).unwrap_or(u64::MAX);
        }
        self.shared.lost.fetch_add(lost, Ordering::AcqRel);
        let mut progress = self.shared.progress.lock().unwrap_or_else(PoisonError::into_inner);
        progress.processed = self.shared.processed.load(Ordering::Acquire) + self.shared.lost.load(Ordering::Acquire);
        progress.flushed = self.shared.flush_requested.load(Ordering::Acquire);
        drop(progress);
        self.shared.changed.notify_all();
    }
}
