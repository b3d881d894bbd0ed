//! Signed checkpoints taken without being asked, every N rows or every T,
//! and handed to a store outside the database.
//!
//! Without a checkpoint, someone who can write the database can cut rows off
//! the end of a chain and move its head back: every remaining row still
//! verifies. A checkpoint kept elsewhere states how far each chain reached,
//! so the cut shows.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ed25519_dalek::SigningKey;

use crate::checkpoint::SignedCheckpoint;
use crate::error::{Error, ErrorKind, Result};

/// The error a [`CheckpointSink`] reports.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where automatic checkpoints go: somewhere the database's writers cannot
/// reach, such as [`CheckpointDir`] on another volume, or a webhook (a
/// closure that posts the JSON with the app's own HTTP client).
pub trait CheckpointSink: Send + Sync {
    /// Keeps `checkpoint`. An error is logged and counted
    /// (`zt_audit_checkpoints_failed_total`), and a fresh checkpoint is tried
    /// again after 1 s, then after twice as long each time up to a minute
    /// (or the interval, if shorter), whether or not rows were written since.
    fn store(&self, checkpoint: &SignedCheckpoint) -> std::result::Result<(), SinkError>;
}

impl<F> CheckpointSink for F
where
    F: Fn(&SignedCheckpoint) -> std::result::Result<(), SinkError> + Send + Sync,
{
    fn store(&self, checkpoint: &SignedCheckpoint) -> std::result::Result<(), SinkError> {
        self(checkpoint)
    }
}

/// A directory of checkpoint files, `checkpoint-<micros>-<rows>.json`, each
/// created once (never replaced), readable by its owner only, and synced.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    path: PathBuf,
}

impl CheckpointDir {
    /// The directory `path`, created (mode 0700) if missing.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|e| {
            Error::new(
                ErrorKind::Checkpoint,
                format!("cannot create the checkpoint directory {}", path.display()),
            )
            .with_source(e)
        })?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `checkpoint` as a new file; returns its path.
    pub fn write(&self, checkpoint: &SignedCheckpoint) -> Result<PathBuf> {
        let statement = &checkpoint.checkpoint;
        let name = format!(
            "checkpoint-{:020}-{}.json",
            statement.created_at.unix_micros().max(0),
            statement.row_count
        );
        let path = self.path.join(name);
        let failed = |e: std::io::Error| {
            Error::new(ErrorKind::Checkpoint, format!("cannot write {}", path.display())).with_source(e)
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(failed)?;
        writeln!(file, "{}", checkpoint.to_json()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        // The new name survives a crash only once the directory is synced.
        if let Ok(dir) = std::fs::File::open(&self.path) {
            let _ = dir.sync_all();
        }
        Ok(path)
    }

    /// The newest checkpoint in the directory, by the time it states, with
    /// its file; files that are not checkpoints are skipped. Check its
    /// signature before trusting it ([`SignedCheckpoint::verify`]).
    pub fn newest(&self) -> Result<Option<(PathBuf, SignedCheckpoint)>> {
        let entries = std::fs::read_dir(&self.path).map_err(|e| {
            Error::new(
                ErrorKind::Checkpoint,
                format!("cannot read the checkpoint directory {}", self.path.display()),
            )
            .with_source(e)
        })?;
        let mut newest: Option<(PathBuf, SignedCheckpoint)> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_checkpoint = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("checkpoint-") && name.ends_with(".json"));
            // A checkpoint is a few KiB; anything far larger is not one.
            let small = entry
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.len() <= 1 << 20);
            if !is_checkpoint || !small {
                continue;
            }
            let Some(checkpoint) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| SignedCheckpoint::from_json(&text).ok())
            else {
                continue;
            };
            if newest
                .as_ref()
                .is_none_or(|(_, best)| best.checkpoint.created_at < checkpoint.checkpoint.created_at)
            {
                newest = Some((path, checkpoint));
            }
        }
        Ok(newest)
    }
}

impl CheckpointSink for CheckpointDir {
    fn store(&self, checkpoint: &SignedCheckpoint) -> std::result::Result<(), SinkError> {
        self.write(checkpoint).map(|_| ()).map_err(Into::into)
    }
}

/// When to take checkpoints, with which key, and where to put them; see
/// [`crate::AuditLog::with_auto_checkpoints`].
#[derive(Clone)]
pub struct AutoCheckpoint {
    key: SigningKey,
    sink: Arc<dyn CheckpointSink>,
    every_rows: Option<u64>,
    every: Option<Duration>,
}

impl fmt::Debug for AutoCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoCheckpoint")
            .field("every_rows", &self.every_rows)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl AutoCheckpoint {
    /// The default interval: an hour, as CloudTrail signs its digests.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

    /// Checkpoints signed with `key`, handed to `sink`, every hour; add
    /// [`AutoCheckpoint::every_rows`] for a row count as well.
    pub fn new(key: SigningKey, sink: impl CheckpointSink + 'static) -> Self {
        Self {
            key,
            sink: Arc::new(sink),
            every_rows: None,
            every: Some(Self::DEFAULT_INTERVAL),
        }
    }

    /// Also takes one once `rows` rows were written since the last (by this
    /// process). At least 1.
    #[must_use]
    pub fn every_rows(mut self, rows: u64) -> Self {
        self.every_rows = Some(rows.max(1));
        self
    }

    /// Takes one every `interval` in which rows were written (at least a
    /// second); `None` for row counts only.
    #[must_use]
    pub fn every(mut self, interval: Option<Duration>) -> Self {
        self.every = interval.map(|interval| interval.max(Duration::from_secs(1)));
        self
    }
}

/// What a log with automatic checkpoints keeps: the count of rows since the
/// last one, and the line to its checkpointing thread, which ends when this
/// is dropped with the log.
pub(crate) struct AutoHandle {
    pub(crate) config: AutoCheckpoint,
    rows: AtomicU64,
    wake: Sender<()>,
}

impl AutoHandle {
    /// Starts the thread that checkpoints `log`, which it holds weakly.
    pub(crate) fn start<L>(
        config: AutoCheckpoint,
        log: Weak<L>,
        take: fn(&Arc<L>, &SigningKey) -> Result<SignedCheckpoint>,
    ) -> Self
    where
        L: Send + Sync + 'static,
    {
        let (wake, woken) = crossbeam_channel::bounded(1);
        let thread_config = config.clone();
        let spawned = std::thread::Builder::new()
            .name("zt-audit-checkpoints".to_owned())
            .spawn(move || run(&thread_config, &log, take, &woken));
        if let Err(error) = spawned {
            tracing::error!(target: "zt::audit", error = %error, "cannot start the checkpoint thread; no automatic checkpoints");
        }
        Self {
            config,
            rows: AtomicU64::new(0),
            wake,
        }
    }

    /// Counts `rows` written; wakes the thread when a checkpoint is due.
    pub(crate) fn written(&self, rows: u64) {
        let total = self.rows.fetch_add(rows, Ordering::Relaxed).saturating_add(rows);
        if self.config.every_rows.is_some_and(|every| total >= every) {
            self.rows.store(0, Ordering::Relaxed);
            // Already woken is as good as woken again.
            if let Err(TrySendError::Disconnected(())) = self.wake.try_send(()) {
                tracing::warn!(target: "zt::audit", "the checkpoint thread has ended");
            }
        }
    }
}

/// The first wait before a failed checkpoint is tried again; each failure
/// after it doubles the wait, up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

fn run<L>(
    config: &AutoCheckpoint,
    log: &Weak<L>,
    take: fn(&Arc<L>, &SigningKey) -> Result<SignedCheckpoint>,
    woken: &Receiver<()>,
) {
    let mut last_rows = None;
    // After a failure the thread tries again on its own, backing off, rather
    // than wait for the next interval or the next rows: a quiet log with a
    // row trigger would otherwise never get its checkpoint.
    let mut retry_in: Option<Duration> = None;
    loop {
        let interval = config.every.unwrap_or(Duration::from_secs(u64::from(u32::MAX)));
        let wait = retry_in.map_or(interval, |retry| retry.min(interval));
        match woken.recv_timeout(wait) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            // The log is gone.
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        let Some(log) = log.upgrade() else { return };
        match take(&log, &config.key) {
            // Nothing written since the last one: nothing new to state.
            Ok(checkpoint) if last_rows == Some(checkpoint.checkpoint.row_count) => {}
            Ok(checkpoint) => match config.sink.store(&checkpoint) {
                Ok(()) => {
                    retry_in = None;
                    last_rows = Some(checkpoint.checkpoint.row_count);
                    metrics::counter!("zt_audit_checkpoints_total").increment(1);
                    tracing::info!(
                        target: "zt::audit",
                        rows = checkpoint.checkpoint.row_count,
                        "signed checkpoint stored"
                    );
                }
                Err(error) => {
                    retry_in = Some(retry_in.map_or(FIRST_RETRY, |retry| (retry * 2).min(LAST_RETRY)));
                    metrics::counter!("zt_audit_checkpoints_failed_total").increment(1);
                    tracing::warn!(
                        target: "zt::audit",
                        error = %zt_types::neutralize(&error.to_string()),
                        retry_in = ?retry_in,
                        "cannot store the signed checkpoint; retrying"
                    );
                }
            },
            Err(error) => {
                retry_in = Some(retry_in.map_or(FIRST_RETRY, |retry| (retry * 2).min(LAST_RETRY)));
                metrics::counter!("zt_audit_checkpoints_failed_total").increment(1);
                tracing::warn!(target: "zt::audit", error = %error, retry_in = ?retry_in, "cannot take a signed checkpoint; retrying");
            }
        }
    }
}
