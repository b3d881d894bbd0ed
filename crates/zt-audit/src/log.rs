//! The audit-log handle.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::{SigningKey, VerifyingKey};
use zt_db::{AsConnection, Pool};
use zt_types::{AuditEvent, Timestamp};

use crate::backend::{Head, Recorded, Scope, Store, store};
use crate::chain::{Chain, GENESIS_MAC};
use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, SignedCheckpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::key::ChainKey;
use crate::query::{AuditFilter, AuditRecord, Page, PageRequest};
use crate::verify::{Context, Finding, RowVerifier, TamperKind, VerifyReport, VerifyRow, self_consistent, verify_rows};

/// The audit log on one database. Cloning shares it.
///
/// Writes:
/// - [`AuditLog::record`]: durable. The event is committed when it returns.
///   On PostgreSQL this is one statement, one round trip, while this process
///   knows the chain head; on SQLite, one immediate transaction.
/// - [`AuditLog::record_in`]: inside the caller's open transaction, atomic
///   with the business change: if the transaction rolls back, so does the event.
/// - [`AuditLog::record_batch`]: many events in one transaction (the
///   pipeline's writer).
///
/// Every write is idempotent by event id: writing an event that is already
/// stored returns its row with [`Recorded::duplicate`] set.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `None` for a read-only handle, which can query but not write or verify.
    chain: Option<Chain>,
    key_id: String,
    /// Whether the newest row was found to be written with this key; see
    /// [`AuditLog::check_key`].
    key_checked: AtomicBool,
    /// The chain head as this process last wrote it. PostgreSQL appends
    /// compare-and-swap against it, so that the common case is one round trip.
    head: Mutex<Option<Head>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("pool", &self.inner.pool)
            .field("key_id", &self.inner.key_id)
            .finish()
    }
}

/// How many rows verification and export read per round trip.
const STREAM_BATCH: i64 = 5_000;

impl AuditLog {
    /// An audit log on `pool`, chaining rows with `key`. `pool` is the app's
    /// own r2d2 pool of `PgConnection` or `SqliteConnection`, as it is, or a
    /// [`zt_db::Pool`]; the log shares it.
    pub fn new(pool: impl Into<Pool>, key: &ChainKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: pool.into(),
                chain: Some(Chain::new(key)),
                key_id: key.id(),
                key_checked: AtomicBool::new(false),
                head: Mutex::new(None),
            }),
        }
    }

    /// A handle without the chain key, for investigators who only query and
    /// export. Writing, verifying and checkpointing fail with
    /// [`ErrorKind::InvalidKey`].
    pub fn read_only(pool: impl Into<Pool>) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: pool.into(),
                chain: None,
                key_id: String::new(),
                key_checked: AtomicBool::new(false),
                head: Mutex::new(None),
            }),
        }
    }

    fn chain(&self) -> Result<&Chain> {
        self.inner.chain.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidKey,
                "this audit log handle has no chain key; it can only query",
            )
        })
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Applies this crate's pending migrations.
    pub fn migrate(&self) -> Result<Vec<String>> {
        self.inner
            .pool
            .run_migrations(&crate::MIGRATIONS)
            .map_err(|e| Error::new(ErrorKind::Database, e.to_string()))
    }

    /// Runs `op` on a pooled connection's store.
    fn with_store<T>(&self, op: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        let mut conn = self.inner.pool.get()?;
        op(store(conn.connection())?)
    }

    fn cached_head(&self) -> std::sync::MutexGuard<'_, Option<Head>> {
        self.inner
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks that the configured chain key wrote this log: the newest row's
    /// MAC must match its content under the key. An empty log passes.
    ///
    /// Every handle runs this once, before its first write, so a key that
    /// changed (a fresh `ChainKey::generate()` on each start, a wrong
    /// `ZT_AUDIT_KEY`) fails with [`ErrorKind::InvalidKey`], naming the key
    /// id, before anything is written under it. Call it at start-up to fail
    /// even earlier.
    pub fn check_key(&self) -> Result<()> {
        self.with_store(|store| self.check_key_on(store))
    }

    fn check_key_on(&self, store: &mut dyn Store) -> Result<()> {
        if self.inner.key_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let chain = self.chain()?;
        if let Some(last) = store.max_id()? {
            let rows = store.chain_range(last.saturating_sub(1), last)?;
            let Some(row) = rows.last() else {
                return Ok(());
            };
            if !self_consistent(chain, row, 0) {
                return Err(Error::new(
                    ErrorKind::InvalidKey,
                    format!(
                        "the configured chain key (id {}) did not write this log's newest row {}: \
                         the key changed, or the row was altered; nothing was written. \
                         Configure the key that wrote the log, or run `zt audit verify`",
                        self.inner.key_id, row.id
                    ),
                ));
            }
        }
        self.inner.key_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes one event durably: it is in the database when this returns.
    ///
    /// A connection that the server closed (a restart, a failover) or that
    /// landed on a read-only standby fails once, then the write is retried on
    /// a fresh connection; the event id makes the retry safe.
    pub fn record(&self, event: &AuditEvent) -> Result<Recorded> {
        let chain = self.chain()?;
        let mut head = self.cached_head();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.with_store(|store| {
                self.check_key_on(store)?;
                match store.append(chain, event, *head, Scope::Own) {
                    Err(error) if error.is_unique_violation() => {
                        store.find_event(event.event_id().as_uuid())?.ok_or(error)
                    }
                    other => other,
                }
            });
            match result {
                Ok(recorded) => {
                    if !recorded.duplicate {
                        *head = Some(Head {
                            seq: recorded.id,
                            mac: recorded.mac,
                        });
                    }
                    return Ok(recorded);
                }
                Err(error) => {
                    *head = None;
                    if error.kind() != ErrorKind::Unavailable || attempts > 1 {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// Writes one event inside the caller's open transaction on `conn`, so it
    /// commits or rolls back with the business change. Without an open
    /// transaction it commits at once.
    ///
    /// `conn` is what the app has: `&mut PgConnection` or `&mut
    /// SqliteConnection` inside its `conn.transaction(|conn| …)`, or its
    /// pooled connection, as it is.
    ///
    /// On SQLite, open the transaction with `immediate_transaction`: a
    /// deferred transaction that has read may fail with "database is locked"
    /// when it first writes. On PostgreSQL the chain head stays locked until
    /// the caller commits, so keep such transactions short.
    pub fn record_in(&self, conn: &mut impl AsConnection, event: &AuditEvent) -> Result<Recorded> {
        let chain = self.chain()?;
        let cached = *self.cached_head();
        let store = store(conn.as_connection())?;
        self.check_key_on(store)?;
        let recorded = store.append(chain, event, cached, Scope::Caller)?;
        // Optimistic: if the caller rolls back, the next append's
        // compare-and-swap fails once and reads the head again.
        *self.cached_head() = Some(Head {
            seq: recorded.id,
            mac: recorded.mac,
        });
        Ok(recorded)
    }

    /// Writes many events in one transaction, in order. Events already stored
    /// are skipped and reported as duplicates.
    pub fn record_batch(&self, events: &[AuditEvent]) -> Result<Vec<Recorded>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let chain = self.chain()?;
        // Optimistic: most batches hold only new events, so the lookup of
        // stored event ids runs only when a unique violation says it must.
        let attempt = |dedupe: bool| -> Result<Vec<Recorded>> {
            let mut cache = self.cached_head();
            *cache = None;
            let (recorded, head) = self.with_store(|store| {
                self.check_key_on(store)?;
                store.append_batch(chain, events, dedupe)
            })?;
            *cache = Some(head);
            Ok(recorded)
        };
        match attempt(false) {
            Err(error) if error.is_unique_violation() => attempt(true),
            other => other,
        }
    }

    /// One page of rows matching `filter`, in time order.
    pub fn query(&self, filter: &AuditFilter, page: &PageRequest) -> Result<Page> {
        filter.check()?;
        self.with_store(|store| store.query_page(filter, page))
    }

    /// How many rows match `filter`.
    pub fn count(&self, filter: &AuditFilter) -> Result<u64> {
        filter.check()?;
        self.with_store(|store| store.count(filter))
    }

    /// Calls `visit` for every row matching `filter`, oldest first, reading
    /// pages of a few thousand rows so memory stays bounded. Returns the
    /// number of rows visited.
    pub fn for_each(&self, filter: &AuditFilter, mut visit: impl FnMut(&AuditRecord) -> Result<()>) -> Result<u64> {
        let mut page = PageRequest::first(u32::try_from(STREAM_BATCH).unwrap_or(1000));
        let mut visited = 0u64;
        loop {
            let batch = self.query(filter, &page)?;
            for record in &batch.records {
                visit(record)?;
                visited += 1;
            }
            match batch.next {
                Some(cursor) => page = page.after(cursor),
                None => return Ok(visited),
            }
        }
    }

    /// Up to `limit` rows after row `after_id`, in chain order: what a
    /// follower such as `zt audit tail` reads next, a keyset read on the id.
    /// `limit` is clamped to 1..=10 000.
    ///
    /// Reading by id never skips a row that commits later: ids are chain
    /// positions, taken under the chain head's lock (PostgreSQL) or SQLite's
    /// write lock, which the writer holds until it commits, so row `n + 1`
    /// can only commit after row `n` did, and is never visible before it.
    pub fn rows_after(&self, after_id: i64, limit: u32) -> Result<Vec<AuditRecord>> {
        let limit = i64::from(limit.clamp(1, PageRequest::MAX_LIMIT));
        self.with_store(|store| store.rows_after(after_id, limit))
    }

    /// A [`RowVerifier`] for the rows after row `after_id` (0: from the
    /// start), under this handle's chain key. It reads row `after_id`'s MAC
    /// now; if that row is missing, the verifier's first check says so.
    pub fn row_verifier(&self, after_id: i64) -> Result<RowVerifier> {
        let chain = self.chain()?.clone();
        let last_mac = if after_id <= 0 {
            Some(GENESIS_MAC)
        } else {
            self.mac_at(after_id)?
        };
        Ok(RowVerifier::new(chain, after_id.max(0), last_mac))
    }

    /// The chain head.
    pub fn head(&self) -> Result<Head> {
        self.with_store(|store| store.read_head())
    }

    /// Verifies the whole chain.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(None, |_| {})
    }

    /// Verifies the whole chain and, if given, a signed checkpoint against a
    /// trusted public key. `progress` gets the number of rows read so far.
    ///
    /// It reads the chain in order in batches, with one row of lookahead, so
    /// memory stays bounded whatever the log's size. The report names the
    /// first row that fails and how.
    pub fn verify_with(
        &self,
        checkpoint: Option<(&SignedCheckpoint, &VerifyingKey)>,
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        let checkpoint = match checkpoint {
            Some((signed, trusted)) => match signed.verify(trusted) {
                Ok(statement) => Some(statement),
                Err(error) => {
                    let finding = Finding {
                        row_id: signed.checkpoint.seq,
                        kind: TamperKind::BadCheckpointSignature,
                        detail: error.to_string(),
                    };
                    return Ok(VerifyReport {
                        rows_checked: 0,
                        last_id: 0,
                        checkpoint_checked: true,
                        finding: Some(finding),
                    });
                }
            },
            None => None,
        };
        let head = self.head().ok().map(|head| (head.seq, head.mac));
        let context = Context {
            chain: self.chain()?,
            head,
            checkpoint,
        };
        let rows = ChainStream::start(self);
        verify_rows(rows, &context, progress)
    }

    /// Takes a checkpoint of the chain as it is now and signs it. Keep the
    /// JSON file ([`SignedCheckpoint::to_json`]) outside the database.
    pub fn checkpoint(&self, signing_key: &SigningKey) -> Result<SignedCheckpoint> {
        self.chain()?;
        let head = self.head()?;
        if head.seq > 0 {
            let stored = self.mac_at(head.seq)?;
            if stored != Some(head.mac) {
                return Err(Error::new(
                    ErrorKind::Database,
                    "the chain head does not match the last row; run verification before taking a checkpoint",
                ));
            }
        }
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            seq: head.seq,
            last_mac: head.mac,
            row_count: u64::try_from(head.seq).unwrap_or(0),
            created_at: Timestamp::now(),
            chain_key_id: self.inner.key_id.clone(),
        };
        Ok(checkpoint.sign(signing_key))
    }

    fn mac_at(&self, id: i64) -> Result<Option<[u8; 32]>> {
        self.with_store(|store| store.mac_at(id))
    }

    fn chain_range(&self, after_id: i64, last_id: i64) -> Result<Vec<VerifyRow>> {
        self.with_store(|store| store.chain_range(after_id, last_id))
    }

    fn max_id(&self) -> Result<Option<i64>> {
        self.with_store(|store| store.max_id())
    }
}

/// The chain in id order. A reader thread fetches and decodes the next
/// batches while the caller verifies the current one; at most two batches
/// wait, so memory stays bounded.
struct ChainStream {
    batches: std::sync::mpsc::Receiver<Result<Vec<VerifyRow>>>,
    buffer: VecDeque<VerifyRow>,
    done: bool,
}

impl ChainStream {
    fn start(log: &AuditLog) -> Self {
        let (sender, batches) = std::sync::mpsc::sync_channel(2);
        let log = log.clone();
        std::thread::spawn(move || {
            let last = match log.max_id() {
                Ok(Some(last)) => last,
                Ok(None) => return,
                Err(error) => {
                    let _ = sender.send(Err(error));
                    return;
                }
            };
            let mut after = 0;
            while after < last {
                let upto = after.saturating_add(STREAM_BATCH).min(last);
                let batch = log.chain_range(after, upto);
                let failed = batch.is_err();
                // The verifier stops reading at its first finding; then this
                // thread stops too.
                if sender.send(batch).is_err() || failed {
                    return;
                }
                after = upto;
            }
        });
        Self {
            batches,
            buffer: VecDeque::new(),
            done: false,
        }
    }
}

impl Iterator for ChainStream {
    type Item = Result<VerifyRow>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buffer.is_empty() && !self.done {
            match self.batches.recv() {
                Ok(Ok(rows)) => self.buffer.extend(rows),
                Ok(Err(error)) => {
                    self.done = true;
                    return Some(Err(error));
                }
                Err(_) => self.done = true,
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}
