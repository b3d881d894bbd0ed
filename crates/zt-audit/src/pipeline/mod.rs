//! The pipeline: submit returns quickly, a background writer batches events
//! into the database, and a durable spool keeps what the database cannot take
//! yet. Nothing is dropped silently, and nothing is replayed from the spool
//! that this log's key did not authenticate.

mod spool;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use zt_types::{AuditEvent, EventPolicy};

use crate::error::{Error, ErrorKind, Result};
use crate::log::AuditLog;
use spool::{Spool, SpoolKey};
pub use spool::{SpoolDamage, SpoolDamageKind, SpoolSegment, encode_spool_segment, read_spool_segment};

/// When `submit` may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitMode {
    /// Once the event is in the in-memory queue. Fastest; a process crash
    /// loses what is queued. The spool is used only while the database is
    /// unreachable, or on overflow with [`Overflow::Spill`].
    Memory,
    /// Once the event is appended to the spool, like a write-ahead log, and
    /// with `fsync` once it is on disk. A crash loses nothing that `submit`
    /// accepted: the next start replays the spool.
    Spooled {
        /// Sync each append (shared between concurrent submitters).
        fsync: bool,
    },
}

/// What `submit` does when the queue is full. It never drops the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Wait up to `timeout` for room, then fail with [`ErrorKind::QueueFull`].
    Block {
        /// How long to wait.
        timeout: Duration,
    },
    /// Append the event to the spool instead; the writer replays it later.
    Spill,
}

/// How a [`Pipeline`] runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    spool_dir: PathBuf,
    mode: SubmitMode,
    overflow: Overflow,
    queue_capacity: usize,
    batch_size: usize,
    flush_interval: Duration,
    segment_bytes: u64,
    retry_initial: Duration,
    retry_max: Duration,
    replay_policy: EventPolicy,
}

impl PipelineConfig {
    /// The defaults, with the spool in `spool_dir`.
    pub fn new(spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            spool_dir: spool_dir.into(),
            mode: SubmitMode::Memory,
            overflow: Overflow::Block {
                timeout: Duration::from_secs(5),
            },
            queue_capacity: 10_000,
            batch_size: 1_000,
            flush_interval: Duration::from_millis(20),
            segment_bytes: 8 * 1024 * 1024,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            replay_policy: EventPolicy::new(),
        }
    }

    /// When `submit` returns. Default: [`SubmitMode::Memory`].
    pub fn mode(mut self, mode: SubmitMode) -> Self {
        self.mode = mode;
        self
    }

    /// What a full queue does. Default: block for up to 5 s.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The queue's capacity in events. Default: 10 000, a few MiB. Memory use
    /// is bounded by it and a few batches in flight: one being written,
    /// one gathered and waiting, one being gathered, and written ones
    /// waiting to be freed.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The most events per database batch. Default: 1 000.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }

    /// How long a batch waits, from its first event, for more to fill it; a
    /// flush request ends the wait, and zero writes whatever is queued at
    /// once. Default: 20 ms, the most an event waits in a quiet period.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// The size at which a spool segment is closed. Default: 8 MiB.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1024);
        self
    }

    /// The first and longest wait between retries while the database is
    /// unreachable. Default: 100 ms doubling up to 5 s.
    pub fn retry(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max.max(initial);
        self
    }

    /// The policy applied again to the metadata of every event replayed
    /// from the spool, before it is written. Default: the default
    /// [`EventPolicy`], the one [`AuditEvent::builder`] applies.
    pub fn replay_policy(mut self, policy: EventPolicy) -> Self {
        self.replay_policy = policy;
        self
    }
}

/// Counters of a running pipeline. Each is also exported through the
/// `metrics` facade as `zt_audit_pipeline_<name>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Events accepted by `submit`.
    pub submitted: u64,
    /// Events written to the database by the writer.
    pub written: u64,
    /// Events found already stored (replays), not written again.
    pub duplicates: u64,
    /// Batches written.
    pub batches: u64,
    /// The size of the last batch.
    pub last_batch_size: u64,
    /// Events appended to the spool.
    pub spooled: u64,
    /// Events written from the spool.
    pub replayed: u64,
    /// Failed attempts to reach the database.
    pub retries: u64,
    /// Events the database refused for good; they are in `rejected.jsonl`.
    pub rejected: u64,
    /// Damaged stretches of spool segments found and skipped: a torn tail, a
    /// flipped byte, a record forged or written under another key. Each
    /// usually costs one record; every intact record around it is replayed.
    pub corrupt_tails: u64,
    /// Spool files moved to the spool's `quarantine/` folder: segments that
    /// held damage (after their intact records were replayed), segments of
    /// the earlier unauthenticated format, and files named like segments
    /// with names the spool never hands out. They are kept for inspection
    /// ([`read_spool_segment`]) and never deleted by the pipeline.
    pub quarantined: u64,
    /// Events in the queue now. Up to two gathered batches and the one being
    /// written are accepted but no longer in the queue.
    pub queue_depth: u64,
    /// Bytes in the spool now.
    pub spool_bytes: u64,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    batches: AtomicU64,
    last_batch_size: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    retries: AtomicU64,
    rejected: AtomicU64,
    corrupt_tails: AtomicU64,
    quarantined: AtomicU64,
}

// Events are the common case; boxing them would allocate on every submit.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event {
        event: AuditEvent,
        segment: Option<u64>,
    },
    /// Everything before it must reach the database by the deadline.
    Flush(Sender<Result<()>>, Instant),
}

struct Shared {
    log: AuditLog,
    spool: Spool,
    config: PipelineConfig,
    counters: Counters,
    /// Set when events are in the spool but not in the queue.
    needs_replay: AtomicBool,
    /// The spool failure that makes `submit` refuse events, in memory mode.
    failure: Mutex<Option<String>>,
}

/// A background audit writer with a durable spool.
///
/// # The spool
///
/// Each spooled event is one record, authenticated with an HMAC-SHA256
/// under a key derived from the log's chain key, so someone who can write
/// the spool directory but does not hold the chain key cannot plant an
/// event: a record that fails authentication is never replayed. A damaged
/// record (a flipped byte, a torn write, a forgery) is skipped alone; every
/// intact record of its segment is replayed, and the segment is then moved
/// to the `quarantine/` folder of the spool directory, counted in
/// [`PipelineStats::corrupt_tails`] and [`PipelineStats::quarantined`], and
/// logged. [`read_spool_segment`] reads a quarantined segment for
/// inspection. Replayed events have their metadata redacted again
/// ([`PipelineConfig::replay_policy`]).
///
/// The directory is created with mode 0700 and its files 0600; an existing
/// directory open to others is tightened, or refused if others may write it
/// and it cannot be. Segments of the earlier, unauthenticated format and
/// files named like segments with names the spool never hands out are
/// quarantined unread: drain the spool (shut down with the database
/// reachable) before upgrading from a version that wrote them.
///
/// ```
/// use zt_audit::{AuditLog, ChainKey, Pipeline, PipelineConfig, SubmitMode};
/// use zt_types::{Actor, AuditEvent};
/// # let dir = std::env::temp_dir().join(format!("zt-pipeline-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # let pool = zt_db::Pool::connect(&format!("sqlite://{}", dir.join("audit.db").display()))?;
/// let log = AuditLog::new(pool, &ChainKey::load_or_create(&dir.join("chain.key"))?);
/// log.migrate()?;
/// let pipeline = Pipeline::start(log.clone(), PipelineConfig::new(dir.join("spool")).mode(SubmitMode::Spooled { fsync: true }))?;
/// for _ in 0..100 {
///     pipeline.submit(AuditEvent::builder(Actor::System, "NIGHTLY_SYNC", "jobs").build()?)?;
/// }
/// let stats = pipeline.shutdown(std::time::Duration::from_secs(10))?;
/// assert_eq!(stats.written, 100);
/// # let _ = std::fs::remove_dir_all(&dir); // Best effort: pool threads may still be closing files.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pipeline {
    sender: Option<Sender<Item>>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    done: Receiver<()>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Opens the spool and starts the writer. Events left in the spool by an
    /// earlier run are replayed first, in order, skipping any the database
    /// already has.
    ///
    /// Spool records are authenticated with a key derived from the log's
    /// chain key, so `log` must hold the key ([`ErrorKind::InvalidKey`] for a
    /// read-only handle), and a spool left by a run under another key is
    /// quarantined, not replayed. The spool directory is created, or
    /// tightened, to mode 0700; one that others may write and that cannot be
    /// tightened is refused with [`ErrorKind::Spool`].
    pub fn start(log: AuditLog, config: PipelineConfig) -> Result<Self> {
        let fsync = matches!(config.mode, SubmitMode::Spooled { fsync: true });
        let key = SpoolKey::derive(log.chain()?);
        let (spool, quarantined) = Spool::open(&config.spool_dir, key, fsync, config.segment_bytes)?;
        let (sender, queue) = crossbeam_channel::bounded(config.queue_capacity);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let needs_replay = AtomicBool::new(spool.has_sealed());
        let counters = Counters::default();
        counters.quarantined.store(quarantined, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            log,
            spool,
            config,
            counters,
            needs_replay,
            failure: Mutex::new(None),
        });
        // One batch waits, gathered, while the writer writes the one before.
        let (batch_tx, batches) = crossbeam_channel::bounded::<Batch>(1);
        let collector_shared = Arc::clone(&shared);
        let collector = std::thread::Builder::new()
            .name("zt-audit-collect".to_owned())
            .spawn(move || collect(&collector_shared, &queue, &batch_tx))
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start the pipeline thread: {e}")))?;
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("zt-audit-pipeline".to_owned())
            .spawn(move || {
                let (spent, freer) = start_freer();
                Writer::new(&worker_shared, spent).run(&batches);
                let _ = collector.join();
                if let Some(freer) = freer {
                    let _ = freer.join();
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start the pipeline thread: {e}")))?;
        Ok(Self {
            sender: Some(sender),
            shared,
            worker: Some(worker),
            done,
        })
    }

    /// Accepts an event. See [`SubmitMode`] for what has happened when this
    /// returns, and [`Overflow`] for a full queue. An error means the event
    /// was not accepted: nothing is dropped without the caller knowing.
    pub fn submit(&self, event: AuditEvent) -> Result<()> {
        let Some(sender) = &self.sender else {
            return Err(Error::new(ErrorKind::Shutdown, "the audit pipeline is shut down"));
        };
        let shared = &self.shared;
        if let Some(failure) = shared.failure.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return Err(Error::new(
                ErrorKind::Spool,
                format!("the audit pipeline cannot persist events: {failure}"),
            ));
        }
        let segment = match shared.config.mode {
            SubmitMode::Spooled { .. } => {
                let segment = shared.spool.append(&[&event])?;
                shared.counters.spooled.fetch_add(1, Ordering::Relaxed);
                Some(segment)
            }
            SubmitMode::Memory => None,
        };
        let item = Item::Event { event, segment };
        let sent = match shared.config.overflow {
            Overflow::Block { timeout } => match sender.send_timeout(item, timeout) {
                Ok(()) => Ok(()),
                Err(SendTimeoutError::Timeout(item)) => Err(item),
                Err(SendTimeoutError::Disconnected(_)) => {
                    return Err(Error::new(ErrorKind::Shutdown, "the audit pipeline writer stopped"));
                }
            },
            Overflow::Spill => match sender.try_send(item) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(item)) => Err(item),
                Err(TrySendError::Disconnected(_)) => {
                    return Err(Error::new(ErrorKind::Shutdown, "the audit pipeline writer stopped"));
                }
            },
        };
        if let Err(Item::Event { event, segment }) = sent {
            if segment.is_some() {
                // Already durable in the spool: the writer replays it.
                shared.needs_replay.store(true, Ordering::Release);
            } else if shared.config.overflow == Overflow::Spill {
                shared.spool.append(&[&event])?;
                shared.counters.spooled.fetch_add(1, Ordering::Relaxed);
                shared.needs_replay.store(true, Ordering::Release);
            } else {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    "the audit pipeline queue stayed full for the whole overflow timeout; the event was not accepted",
                ));
            }
        }
        shared.counters.submitted.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("zt_audit_pipeline_submitted_total").increment(1);
        Ok(())
    }

    /// Waits until every event submitted before this call is in the
    /// database, for up to `timeout`. Fails while the database is unreachable.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let Some(sender) = &self.sender else {
            return Err(Error::new(ErrorKind::Shutdown, "the audit pipeline is shut down"));
        };
        let deadline = Instant::now() + timeout;
        let (ack, acked) = crossbeam_channel::bounded(1);
        sender.send_timeout(Item::Flush(ack, deadline), timeout).map_err(|_| {
            Error::new(
                ErrorKind::QueueFull,
                "the audit pipeline did not take the flush in time",
            )
        })?;
        match acked.recv_deadline(deadline) {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "the audit pipeline did not reach the database within {timeout:?}; events wait in the queue or spool"
                ),
            )),
        }
    }

    /// Stops accepting events, writes what is queued, and stops the writer.
    /// What the database cannot take is left in the spool for the next start.
    pub fn shutdown(mut self, timeout: Duration) -> Result<PipelineStats> {
        self.sender.take();
        match self.done.recv_timeout(timeout) {
            Ok(()) => {
                if let Some(worker) = self.worker.take() {
                    let _ = worker.join();
                }
                Ok(self.stats())
            }
            Err(_) => Err(Error::new(
                ErrorKind::Unavailable,
                format!("the audit pipeline writer did not finish within {timeout:?}"),
            )),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> PipelineStats {
        let c = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PipelineStats {
            submitted: load(&c.submitted),
            written: load(&c.written),
            duplicates: load(&c.duplicates),
            batches: load(&c.batches),
            last_batch_size: load(&c.last_batch_size),
            spooled: load(&c.spooled),
            replayed: load(&c.replayed),
            retries: load(&c.retries),
            rejected: load(&c.rejected),
            corrupt_tails: load(&c.corrupt_tails),
            quarantined: load(&c.quarantined),
            queue_depth: self.sender.as_ref().map_or(0, Sender::len) as u64,
            spool_bytes: self.shared.spool.bytes(),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Whether retrying later may succeed: not when a constraint refused the rows.
fn is_transient(error: &Error) -> bool {
    match error.kind() {
        ErrorKind::Unavailable => true,
        ErrorKind::Database => !matches!(
            error.database_class(),
            Some(zt_db::ErrorClass::ConstraintViolation | zt_db::ErrorClass::UniqueViolation)
        ),
        _ => false,
    }
}

/// How often the idle collector and writer wake: to refresh their gauges,
/// and for the writer to retry a lost database when its backoff says so.
/// Fixed, not the flush interval, so that a zero interval does not spin.
const IDLE_TICK: Duration = Duration::from_millis(20);

/// How many written batches may wait to be freed before the writer frees
/// one itself.
const SPENT_BATCHES: usize = 2;

/// Starts the thread that frees written batches, and returns where to send
/// them; without that thread, the writer frees them itself.
fn start_freer() -> (Option<Sender<Vec<AuditEvent>>>, Option<JoinHandle<()>>) {
    let (spent, batches) = crossbeam_channel::bounded::<Vec<AuditEvent>>(SPENT_BATCHES);
    match std::thread::Builder::new()
        .name("zt-audit-free".to_owned())
        .spawn(move || batches.iter().for_each(drop))
    {
        Ok(freer) => (Some(spent), Some(freer)),
        Err(_) => (None, None),
    }
}

/// The writer thread's state.
struct Writer<'a> {
    shared: &'a Shared,
    /// Where written batches go to be freed: freeing a batch's thousands of
    /// small allocations takes about a tenth as long as its COPY, and a
    /// second thread does it while the next batch streams.
    spent: Option<Sender<Vec<AuditEvent>>>,
    degraded: bool,
    backoff: Duration,
    next_attempt: Instant,
    /// Events that neither the database nor the spool took (memory mode).
    held: Vec<AuditEvent>,
}

impl<'a> Writer<'a> {
    fn new(shared: &'a Shared, spent: Option<Sender<Vec<AuditEvent>>>) -> Self {
        Self {
            shared,
            spent,
            degraded: shared.needs_replay.load(Ordering::Acquire),
            backoff: shared.config.retry_initial,
            next_attempt: Instant::now(),
            held: Vec::new(),
        }
    }

    /// Writes the collector's batches until it ends, and retries on the
    /// backoff schedule in between.
    fn run(mut self, batches: &Receiver<Batch>) {
        loop {
            self.recover_if_due();
            match batches.recv_timeout(IDLE_TICK) {
                Ok(batch) => {
                    if !batch.events.is_empty() {
                        self.write(batch.events, batch.segments);
                    }
                    for (ack, deadline) in batch.flushes {
                        let _ = ack.send(self.settle(deadline));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.finish();
                    return;
                }
            }
            metrics::gauge!("zt_audit_pipeline_spool_bytes").set(self.shared.spool.bytes() as f64);
        }
    }

    /// Writes a batch, or spools it while the database is unreachable.
    fn write(&mut self, events: Vec<AuditEvent>, segments: Vec<Option<u64>>) {
        if self.degraded {
            self.defer(events.into_iter().zip(segments).collect());
            return;
        }
        match self.shared.log.record_batch(&events) {
            Ok(recorded) => {
                self.count_written(&recorded, false);
                for segment in segments.into_iter().flatten() {
                    self.shared.spool.committed(segment, 1);
                }
                self.release(events);
            }
            Err(error) if is_transient(&error) => {
                self.enter_degraded(&error);
                self.defer(events.into_iter().zip(segments).collect());
            }
            Err(error) => {
                // An outage meanwhile leaves the writer degraded, to retry.
                let _ = self.reject_individually(events, segments, &error);
            }
        }
    }

    /// Frees a written batch on the freeing thread, or here when that thread
    /// is busy or gone.
    fn release(&self, events: Vec<AuditEvent>) {
        if let Some(spent) = &self.spent
            && let Err(TrySendError::Full(events) | TrySendError::Disconnected(events)) = spent.try_send(events)
        {
            drop(events);
        }
    }

    /// Keeps a batch for later: spooled events are already on disk; others go
    /// to the spool, or are held if even that fails.
    fn defer(&mut self, batch: Vec<(AuditEvent, Option<u64>)>) {
        let unspooled: Vec<AuditEvent> = batch
            .into_iter()
            .filter(|(_, segment)| segment.is_none())
            .map(|(event, _)| event)
            .collect();
        if unspooled.is_empty() {
            return;
        }
        let refs: Vec<&AuditEvent> = unspooled.iter().collect();
        match self.shared.spool.append(&refs) {
            Ok(_) => {
                self.shared
                    .counters
                    .spooled
                    .fetch_add(refs.len() as u64, Ordering::Relaxed);
                metrics::counter!("zt_audit_pipeline_spooled_total").increment(refs.len() as u64);
            }
            Err(error) => {
                tracing::error!(target: "zt::audit", error = %error, held = unspooled.len(),
                    "audit events can reach neither the database nor the spool; new events are refused");
                *self.shared.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
                self.held.extend(unspooled);
            }
        }
    }

    fn enter_degraded(&mut self, error: &Error) {
        if !self.degraded {
            tracing::warn!(target: "zt::audit", error = %error, "audit database unreachable; spooling events until it is back");
        }
        self.degraded = true;
        self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("zt_audit_pipeline_retries_total").increment(1);
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.shared.config.retry_max);
    }

    /// While degraded, or when events sit only in the spool, retries on the
    /// backoff schedule.
    fn recover_if_due(&mut self) {
        let pending = self.degraded || self.shared.needs_replay.load(Ordering::Acquire) || !self.held.is_empty();
        if pending
            && Instant::now() >= self.next_attempt
            && let Err(error) = self.recover()
        {
            self.enter_degraded(&error);
        }
    }

    /// Writes held events, then replays the whole spool in order.
    fn recover(&mut self) -> Result<()> {
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            for chunk in held.chunks(self.shared.config.batch_size) {
                match self.shared.log.record_batch(chunk) {
                    Ok(recorded) => self.count_written(&recorded, false),
                    Err(error) => {
                        self.held = held;
                        return Err(error);
                    }
                }
            }
            *self.shared.failure.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        self.shared.needs_replay.store(false, Ordering::Release);
        self.shared.spool.rotate()?;
        for segment in self.shared.spool.sealed() {
            let read = self.shared.spool.read(segment)?;
            // A refused event that `rejected.jsonl` did not take keeps its
            // segment, to be read again at the next start.
            let mut unsaved = false;
            // Redacted again: the spool is outside the process, and the
            // event may have been built under fewer rules.
            let mut events = Vec::with_capacity(read.events.len());
            for event in read.events {
                match event.clone().reapply_policy(&self.shared.config.replay_policy) {
                    Ok(redacted) => events.push(redacted),
                    Err(error) => unsaved |= !self.reject(&event, &Error::from(error), None, "the replay policy"),
                }
            }
            for chunk in events.chunks(self.shared.config.batch_size) {
                match self.shared.log.record_batch(chunk) {
                    Ok(recorded) => self.count_written(&recorded, true),
                    Err(error) if is_transient(&error) => {
                        self.shared.needs_replay.store(true, Ordering::Release);
                        return Err(error);
                    }
                    // The segment goes as a whole once replayed, so an event
                    // deferred by an outage meanwhile means replaying it again.
                    Err(error) => {
                        let leftovers = self.reject_individually(chunk.to_vec(), vec![None; chunk.len()], &error);
                        if let Some(outage) = leftovers.outage {
                            self.shared.needs_replay.store(true, Ordering::Release);
                            return Err(outage);
                        }
                        unsaved |= leftovers.unsaved;
                    }
                }
            }
            if unsaved {
                tracing::error!(target: "zt::audit", segment,
                    "a replayed spool segment holds refused events that could not be set aside; it stays in the spool");
            } else if read.damage.is_empty() {
                self.shared.spool.remove(segment);
            } else {
                self.quarantine(segment, &read.damage, events.len());
            }
        }
        if self.degraded {
            tracing::info!(target: "zt::audit", "audit database reachable again; spool replayed");
        }
        self.degraded = false;
        self.backoff = self.shared.config.retry_initial;
        Ok(())
    }

    /// Sets a replayed segment that held damage aside, and reports each
    /// damaged stretch.
    fn quarantine(&self, segment: u64, damage: &[SpoolDamage], kept: usize) {
        let counters = &self.shared.counters;
        counters.corrupt_tails.fetch_add(damage.len() as u64, Ordering::Relaxed);
        metrics::counter!("zt_audit_pipeline_corrupt_tails_total").increment(damage.len() as u64);
        counters.quarantined.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("zt_audit_pipeline_quarantined_total").increment(1);
        let moved = self.shared.spool.quarantine(segment);
        let to = moved
            .as_ref()
            .map_or_else(ToString::to_string, |path| path.display().to_string());
        for stretch in damage {
            tracing::warn!(target: "zt::audit", segment, offset = stretch.offset, length = stretch.length,
                reason = %stretch.kind, kept, quarantined_to = %to,
                "damaged spool records skipped; every intact record of the segment was replayed, and the segment set aside");
        }
        if let Err(error) = moved {
            tracing::error!(target: "zt::audit", segment, error = %error,
                "a damaged spool segment could not be set aside; it stays in the spool and is read again at the next start");
        }
    }

    fn count_written(&self, recorded: &[crate::backend::Recorded], replayed: bool) {
        let duplicates = recorded.iter().filter(|r| r.duplicate).count() as u64;
        let written = recorded.len() as u64 - duplicates;
        let counters = &self.shared.counters;
        counters.written.fetch_add(written, Ordering::Relaxed);
        counters.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.last_batch_size.store(recorded.len() as u64, Ordering::Relaxed);
        metrics::counter!("zt_audit_pipeline_written_total").increment(written);
        metrics::histogram!("zt_audit_pipeline_batch_size").record(recorded.len() as f64);
        if replayed {
            counters.replayed.fetch_add(written, Ordering::Relaxed);
            metrics::counter!("zt_audit_pipeline_replayed_total").increment(written);
        }
    }

    /// A batch failed for good: writes its events one by one and sets aside
    /// only those the database refuses, in `rejected.jsonl` beside the spool.
    ///
    /// `segments` are the events' spool segments, when they were spooled on
    /// submit: an event written or saved aside is done with there too, and
    /// one deferred or not saved stays there instead of being spooled
    /// again.
    fn reject_individually(
        &mut self,
        events: Vec<AuditEvent>,
        segments: Vec<Option<u64>>,
        batch_error: &Error,
    ) -> Leftovers {
        let mut leftovers = Leftovers::default();
        for (event, segment) in events.into_iter().zip(segments) {
            let done = match self.shared.log.record_batch(std::slice::from_ref(&event)) {
                Ok(recorded) => {
                    self.count_written(&recorded, false);
                    true
                }
                Err(error) if is_transient(&error) => {
                    self.enter_degraded(&error);
                    self.defer(vec![(event, segment)]);
                    leftovers.outage = Some(error);
                    false
                }
                Err(error) => {
                    let saved = self.reject(&event, &error, Some(batch_error), "the audit database");
                    leftovers.unsaved |= !saved;
                    saved
                }
            };
            if done && let Some(segment) = segment {
                self.shared.spool.committed(segment, 1);
            }
        }
        leftovers
    }

    /// Sets aside an event that `by` refused for good, in `rejected.jsonl`
    /// beside the spool (readable by its owner only).
    /// Returns whether the event was saved there.
    fn reject(&self, event: &AuditEvent, error: &Error, batch_error: Option<&Error>, by: &str) -> bool {
        self.shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("zt_audit_pipeline_rejected_total").increment(1);
        let path = self.shared.config.spool_dir.join("rejected.jsonl");
        let line = serde_json::json!({ "error": error.to_string(), "event": event });
        let saved = spool::private_file(&path, false)
            .and_then(|mut file| std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes()));
        let batch_error = batch_error.map(ToString::to_string).unwrap_or_default();
        tracing::error!(target: "zt::audit", event_id = %event.event_id(), error = %error,
            batch_error = %batch_error, saved_to = %path.display(), saved = saved.is_ok(),
            refused_by = by, "an audit event was refused and set aside");
        saved.is_ok()
    }

    /// Brings everything accepted so far into the database, retrying until
    /// `deadline`.
    fn settle(&mut self, deadline: Instant) -> Result<()> {
        loop {
            let pending = self.degraded || self.shared.needs_replay.load(Ordering::Acquire) || !self.held.is_empty();
            if !pending {
                return Ok(());
            }
            match self.recover() {
                Ok(()) => return Ok(()),
                Err(error) => {
                    self.enter_degraded(&error);
                    if Instant::now() + self.backoff > deadline {
                        return Err(error);
                    }
                    std::thread::sleep(self.backoff);
                }
            }
        }
    }

    /// On shutdown: one last attempt to write everything; what remains stays
    /// in the spool, or is reported if it cannot be kept.
    fn finish(&mut self) {
        if (self.degraded || self.shared.needs_replay.load(Ordering::Acquire) || !self.held.is_empty())
            && let Err(error) = self.recover()
        {
            tracing::warn!(target: "zt::audit", error = %error, spool_bytes = self.shared.spool.bytes(),
                "audit pipeline stopped with events in the spool; they are replayed at the next start");
        }
        if !self.held.is_empty() {
            tracing::error!(target: "zt::audit", lost = self.held.len(),
                "audit pipeline stopped holding events that neither the database nor the spool would take");
        }
        // Seal the active segment: if the queue committed all of it, it goes.
        let _ = self.shared.spool.rotate();
    }
}

type Flush = (Sender<Result<()>>, Instant);

/// What writing a failed batch's events one by one left undone.
#[derive(Default)]
struct Leftovers {
    /// The outage that deferred events to the spool, if one did.
    outage: Option<Error>,
    /// Whether a refused event could not be saved in `rejected.jsonl`.
    unsaved: bool,
}

/// Events taken off the queue for one database batch, with the flush
/// requests that came with them: each is answered once they are written.
struct Batch {
    events: Vec<AuditEvent>,
    /// Each event's spool segment, when it was spooled on submit.
    segments: Vec<Option<u64>>,
    flushes: Vec<Flush>,
}

impl Batch {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            events: Vec::with_capacity(capacity),
            segments: Vec::with_capacity(capacity),
            flushes: Vec::new(),
        }
    }

    fn push(&mut self, item: Item) {
        match item {
            Item::Event { event, segment } => {
                self.events.push(event);
                self.segments.push(segment);
            }
            Item::Flush(ack, deadline) => self.flushes.push((ack, deadline)),
        }
    }
}

/// The collector thread: gathers batches off the queue while the writer
/// writes the one before, so the database does not wait for a batch to be
/// gathered. It owns the queue's receiving end: should it end early, the
/// queue closes and `submit` refuses events instead of queueing them for
/// nobody. Ends when the queue ends, after handing over what it held.
fn collect(shared: &Shared, queue: &Receiver<Item>, batches: &Sender<Batch>) {
    let config = &shared.config;
    loop {
        let first = match queue.recv_timeout(IDLE_TICK) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => {
                metrics::gauge!("zt_audit_pipeline_queue_depth").set(queue.len() as f64);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = Batch::with_capacity(config.batch_size);
        batch.push(first);
        // Wait up to the flush interval from the first event to fill the
        // batch: each batch is a transaction, so a burst's first events
        // should not go alone. A flush request ends the wait.
        let deadline = Instant::now().checked_add(config.flush_interval);
        let mut ended = false;
        while batch.events.len() < config.batch_size && batch.flushes.is_empty() {
            let next = match deadline {
                Some(deadline) => queue.recv_deadline(deadline),
                None => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(item) => batch.push(item),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    ended = true;
                    break;
                }
            }
        }
        metrics::gauge!("zt_audit_pipeline_queue_depth").set(queue.len() as f64);
        if batches.send(batch).is_err() || ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zt_types::{Actor, AuditStatus};

    #[test]
    fn the_freeing_thread_takes_every_batch_and_ends_with_the_writer() {
        let (spent, freer) = start_freer();
        let (spent, freer) = (spent.expect("a freeing thread"), freer.expect("a freeing thread"));
        let event = AuditEvent::builder(Actor::System, "EXPORT", "reports")
            .status(AuditStatus::Success)
            .build()
            .unwrap();
        // More batches than the channel holds: each send returns only once
        // the thread has taken an earlier batch.
        for _ in 0..SPENT_BATCHES * 4 {
            spent
                .send_timeout(vec![event.clone(); 100], Duration::from_secs(10))
                .expect("the thread takes batches");
        }
        drop(spent);
        freer.join().expect("the freeing thread ends once the writer is gone");
    }
}
