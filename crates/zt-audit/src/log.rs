//! The audit-log handle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::{SigningKey, VerifyingKey};
use zt_db::{AsConnection, Pool};
use zt_types::{AuditEvent, Timestamp};

use crate::auto_checkpoint::{AutoCheckpoint, AutoHandle};
use crate::backend::{Head, Recorded, Scope, Store, Target, store};
use crate::chain::Chain;
use crate::checkpoint::{CHECKPOINT_VERSION, ChainState, Checkpoint, SignedCheckpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::key::ChainKey;
use crate::query::{AuditFilter, AuditRecord, Page, PageRequest};
use crate::verify::{Context, Finding, TamperKind, VerifyReport, VerifyRow, self_consistent, verify_chain};

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
///
/// Writers spread over several hash chains ([`AuditLog::with_chains`]): an
/// append takes the head of a chain that no other open transaction holds, so
/// a caller's long transaction delays no one. [`AuditLog::on_chain`] pins
/// writes to one chain of the app's choosing, such as a tenant's.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
    /// The chain every write of this handle goes to, if pinned.
    pinned: Option<i16>,
}

struct Inner {
    pool: Pool,
    /// `None` for a read-only handle, which can query but not write or verify.
    chain: Option<Chain>,
    key_id: String,
    /// Whether the newest row was found to be written with this key; see
    /// [`AuditLog::check_key`].
    key_checked: AtomicBool,
    /// How many chains unpinned writers share: 1, 2, ... `chains`.
    chains: i16,
    /// Whether those chains' heads are known to exist.
    chains_ready: AtomicBool,
    /// Each shared chain's head as this process last wrote it, by chain
    /// index. PostgreSQL appends compare-and-swap against it, so that the
    /// common case is one round trip.
    heads: Vec<Mutex<Option<Head>>>,
    /// Automatic checkpoints, if asked for.
    auto: Option<AutoHandle>,
}

/// How many chains unpinned writers share on PostgreSQL unless configured:
/// enough that 16 concurrent transactions rarely wait for one another.
pub const DEFAULT_CHAINS: i16 = 16;

/// Spreads threads over the chains: each thread prefers its own, and each
/// process starts at its own offset, so that processes rarely prefer the
/// same chain.
static NEXT_SLOT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    static SLOT: usize = NEXT_SLOT
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(usize::try_from(std::process::id()).unwrap_or(0).wrapping_mul(7));
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("pool", &self.inner.pool)
            .field("key_id", &self.inner.key_id)
            .field("chains", &self.inner.chains)
            .field("pinned", &self.pinned)
            .finish()
    }
}

/// How many rows export reads per round trip, and verification hands from
/// its reader to its checkers at a time.
const STREAM_BATCH: usize = 5_000;

/// Positions the verifier's reader reads in one go.
const STREAM_SPAN: i64 = 100_000;

impl AuditLog {
    /// An audit log on `pool`, chaining rows with `key`. `pool` is the app's
    /// own r2d2 pool of `PgConnection` or `SqliteConnection`, as it is, or a
    /// [`zt_db::Pool`]; the log shares it.
    ///
    /// Unpinned writes share [`DEFAULT_CHAINS`] chains on PostgreSQL and one
    /// on SQLite, which lets one writer in at a time anyway.
    pub fn new(pool: impl Into<Pool>, key: &ChainKey) -> Self {
        let pool = pool.into();
        let chains = match pool.backend() {
            zt_db::Backend::Postgres => DEFAULT_CHAINS,
            _ => 1,
        };
        Self::build(pool, Some(Chain::new(key)), key.id(), chains)
    }

    fn build(pool: Pool, chain: Option<Chain>, key_id: String, chains: i16) -> Self {
        Self::build_with(pool, chain, key_id, chains, None)
    }

    fn build_with(pool: Pool, chain: Option<Chain>, key_id: String, chains: i16, auto: Option<AutoCheckpoint>) -> Self {
        Self {
            inner: Arc::new_cyclic(|weak| Inner {
                pool,
                chain,
                key_id,
                key_checked: AtomicBool::new(false),
                chains,
                chains_ready: AtomicBool::new(false),
                heads: (0..chains).map(|_| Mutex::new(None)).collect(),
                auto: auto.map(|config| AutoHandle::start(config, weak.clone(), take_checkpoint)),
            }),
            pinned: None,
        }
    }

    /// Signs checkpoints without being asked, as `auto` says: every hour by
    /// default, or every N rows this process writes, whichever comes first,
    /// and hands each to its sink, such as a [`crate::CheckpointDir`] on a
    /// volume the database's writers cannot reach. A background thread
    /// takes them, and ends with the last handle of this log.
    ///
    /// `zt audit verify --checkpoints DIR` then checks the log against the
    /// newest, so that rows cut from the end of a chain show.
    #[must_use]
    pub fn with_auto_checkpoints(self, auto: AutoCheckpoint) -> Self {
        self.rebuilt(self.inner.chains, Some(auto))
    }

    /// Spreads unpinned writes over `chains` hash chains, 1 to 1024.
    /// Default: [`DEFAULT_CHAINS`] on PostgreSQL, 1 on SQLite.
    ///
    /// More chains let more transactions that audit stay open at once
    /// without waiting for one another; each costs one head row, one entry
    /// in every checkpoint, and one index probe when verifying. Lowering it
    /// later is safe: rows on higher chains keep verifying.
    #[must_use]
    pub fn with_chains(self, chains: u16) -> Self {
        let chains = i16::try_from(chains.clamp(1, 1024)).unwrap_or(1);
        let auto = self.inner.auto.as_ref().map(|auto| auto.config.clone());
        self.rebuilt(chains, auto)
    }

    /// A new handle on the same pool and key, pinned as this one is, with
    /// `chains` chains and `auto` checkpoints.
    fn rebuilt(&self, chains: i16, auto: Option<AutoCheckpoint>) -> Self {
        let inner = &self.inner;
        let mut log = Self::build_with(
            inner.pool.clone(),
            inner.chain.clone(),
            inner.key_id.clone(),
            chains,
            auto,
        );
        log.pinned = self.pinned;
        log
    }

    /// A handle whose writes all go to chain `chain`, such as a tenant's, so
    /// that each tenant's log verifies on its own (`zt audit verify --chain`).
    /// Writes to one pinned chain wait for one another. Pick ids above the
    /// shared chains' count, or a tenant's chain also takes unpinned writes.
    pub fn on_chain(&self, chain: u16) -> Result<Self> {
        let chain = i16::try_from(chain)
            .ok()
            .filter(|chain| *chain > 0)
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, format!("chain {chain} is not in 1..=32767")))?;
        Ok(Self {
            inner: Arc::clone(&self.inner),
            pinned: Some(chain),
        })
    }

    /// Where this handle's next write goes.
    fn target(&self) -> Target {
        match self.pinned {
            Some(chain) => Target::Chain(chain),
            None => {
                let chains = self.inner.chains;
                let slot = SLOT.with(|slot| *slot) % usize::try_from(chains).unwrap_or(1).max(1);
                Target::Any {
                    chains,
                    preferred: i16::try_from(slot).unwrap_or(0) + 1,
                }
            }
        }
    }

    /// The head this process last wrote on the chain a write would prefer.
    fn hint(&self, target: Target) -> Option<Head> {
        let index = match target {
            Target::Any { preferred, .. } => preferred,
            Target::Chain(chain) => chain,
        };
        let slot = self.inner.heads.get(usize::try_from(index - 1).ok()?)?;
        *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts rows written, for automatic checkpoints.
    fn written(&self, rows: u64) {
        if let Some(auto) = &self.inner.auto {
            auto.written(rows);
        }
    }

    /// Remembers the head a write left, for the next write's hint.
    fn remember(&self, head: Head) {
        let Some(slot) = usize::try_from(head.chain - 1)
            .ok()
            .and_then(|i| self.inner.heads.get(i))
        else {
            return;
        };
        let mut cached = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cached.is_none_or(|cached| cached.seq < head.seq) {
            *cached = Some(head);
        }
    }

    fn forget(&self, target: Target) {
        let index = match target {
            Target::Any { preferred, .. } => preferred,
            Target::Chain(chain) => chain,
        };
        if let Some(slot) = usize::try_from(index - 1).ok().and_then(|i| self.inner.heads.get(i)) {
            *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }

    /// A handle without the chain key, for investigators who only query and
    /// export. Writing, verifying and checkpointing fail with
    /// [`ErrorKind::InvalidKey`].
    pub fn read_only(pool: impl Into<Pool>) -> Self {
        Self::build(pool.into(), None, String::new(), 1)
    }

    pub(crate) fn chain(&self) -> Result<&Chain> {
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

    /// Applies this crate's pending migrations, and creates the heads of the
    /// chains this handle's writers share.
    pub fn migrate(&self) -> Result<Vec<String>> {
        let applied = self
            .inner
            .pool
            .run_migrations(&crate::MIGRATIONS)
            .map_err(|e| Error::new(ErrorKind::Database, e.to_string()))?;
        self.inner.chains_ready.store(false, Ordering::Release);
        self.ensure_chains()?;
        Ok(applied)
    }

    /// Creates the shared chains' heads once per handle, on a connection of
    /// its own: created inside a caller's transaction, a head would make
    /// other writers wait until that transaction ends.
    fn ensure_chains(&self) -> Result<()> {
        self.with_store(|store| self.ensure_chains_on(store))
    }

    /// [`Self::ensure_chains`] on a connection that is in no transaction.
    fn ensure_chains_on(&self, store: &mut dyn Store) -> Result<()> {
        if self.inner.chains_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        store.ensure_chains(self.inner.chains)?;
        self.inner.chains_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The id of the chain key, as checkpoints state it.
    pub(crate) fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// Runs `op` on a pooled connection's store.
    pub(crate) fn with_store<T>(&self, op: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        let mut conn = self.inner.pool.get()?;
        op(store(conn.connection())?)
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
        if let Some(row) = store.newest_row()?
            && !self_consistent(chain, &row, 0)
        {
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
        let target = self.target();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let hint = self.hint(target);
            let result = self.with_store(|store| {
                self.check_key_on(store)?;
                self.ensure_chains_on(store)?;
                match store.append(chain, event, hint, Scope::Own, target) {
                    Err(error) if error.is_unique_violation() => {
                        store.find_event(event.event_id().as_uuid())?.ok_or(error)
                    }
                    other => other,
                }
            });
            match result {
                Ok(recorded) => {
                    self.remember_recorded(&recorded);
                    return Ok(recorded);
                }
                Err(error) => {
                    self.forget(target);
                    if error.kind() != ErrorKind::Unavailable || attempts > 1 {
                        return Err(error);
                    }
                }
            }
        }
    }

    fn remember_recorded(&self, recorded: &Recorded) {
        if !recorded.duplicate {
            self.written(1);
            self.remember(Head {
                chain: recorded.chain,
                seq: recorded.seq,
                mac: recorded.mac,
            });
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
    /// On PostgreSQL the event takes the head of a chain that no other open
    /// transaction holds and keeps it until the caller commits; with more
    /// concurrent transactions than chains, the extra ones wait for a chain
    /// ([`AuditLog::with_chains`]). On SQLite, open the transaction with
    /// `immediate_transaction`: a deferred transaction that has read may fail
    /// with "database is locked" when it first writes.
    pub fn record_in(&self, conn: &mut impl AsConnection, event: &AuditEvent) -> Result<Recorded> {
        let chain = self.chain()?;
        let target = self.target();
        let store = store(conn.as_connection())?;
        self.check_key_on(store)?;
        match store.append(chain, event, self.hint(target), Scope::Caller, target) {
            Ok(recorded) => {
                // Optimistic: if the caller rolls back, the next append's
                // compare-and-swap fails once and locks a head instead.
                self.remember_recorded(&recorded);
                Ok(recorded)
            }
            Err(error) => {
                self.forget(target);
                Err(error)
            }
        }
    }

    /// Writes many events in one transaction, in order, on one chain. Events
    /// already stored are skipped and reported as duplicates.
    pub fn record_batch(&self, events: &[AuditEvent]) -> Result<Vec<Recorded>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let chain = self.chain()?;
        let target = self.target();
        // Optimistic: most batches hold only new events, so the lookup of
        // stored event ids runs only when a unique violation says it must.
        let attempt = |dedupe: bool| -> Result<Vec<Recorded>> {
            let (recorded, head) = self.with_store(|store| {
                self.check_key_on(store)?;
                self.ensure_chains_on(store)?;
                store.append_batch(chain, events, dedupe, target)
            })?;
            self.remember(head);
            self.written(
                u64::try_from(recorded.iter().filter(|recorded| !recorded.duplicate).count()).unwrap_or(u64::MAX),
            );
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

    /// Every chain's head, by chain id.
    pub fn heads(&self) -> Result<Vec<Head>> {
        self.with_store(|store| store.read_heads())
    }

    /// Verifies every chain.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(None, |_| {})
    }

    /// Verifies every chain and, if given, a signed checkpoint against a
    /// trusted public key. `progress` gets the number of rows read since its
    /// last call.
    ///
    /// It reads each chain in order in batches, with one row of lookahead,
    /// so memory stays bounded whatever the log's size. The report names the
    /// first row that fails, its chain and how. A chain the checkpoint
    /// states, or whose head exists, must be there; rows of a chain without
    /// a head were not written by zt.
    pub fn verify_with(
        &self,
        checkpoint: Option<(&SignedCheckpoint, &VerifyingKey)>,
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        self.verify_chains(None, checkpoint, false, progress)
    }

    /// Incremental verification: checks the checkpoint's signature with
    /// `trusted`, then verifies only the rows written after it, each chain
    /// from the position and MAC the checkpoint states (chains it does not
    /// state, from their start). Its cost grows with the new rows, not with
    /// the log. The rows it covers are not read again: verify the whole log
    /// now and then, or keep them in a verified archive once pruned.
    ///
    /// A chain whose head went back behind the checkpoint is reported as
    /// [`TamperKind::TruncatedAfterCheckpoint`]; a first new row that is not
    /// chained to the checkpoint's MAC, as whatever broke the link.
    pub fn verify_from(
        &self,
        checkpoint: &SignedCheckpoint,
        trusted: &VerifyingKey,
        only: Option<i16>,
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        self.verify_chains(only, Some((checkpoint, trusted)), true, progress)
    }

    /// [`AuditLog::verify_with`] for one chain only, such as a tenant's.
    pub fn verify_chain(
        &self,
        chain: i16,
        checkpoint: Option<(&SignedCheckpoint, &VerifyingKey)>,
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        self.verify_chains(Some(chain), checkpoint, false, progress)
    }

    /// Verifies the chains (or `only` one) against `checkpoint`: as the
    /// chains' end when `incremental` is false, as their start when true.
    fn verify_chains(
        &self,
        only: Option<i16>,
        checkpoint: Option<(&SignedCheckpoint, &VerifyingKey)>,
        incremental: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<VerifyReport> {
        let key = self.chain()?;
        let checkpoint = match checkpoint {
            Some((signed, trusted)) => match signed.verify(trusted) {
                Ok(statement) => Some(statement.heads()),
                Err(error) => {
                    let first = signed
                        .checkpoint
                        .heads()
                        .first()
                        .map_or((1, 0), |head| (head.chain, head.seq));
                    let finding = Finding {
                        chain: first.0,
                        position: first.1,
                        kind: TamperKind::BadCheckpointSignature,
                        detail: error.to_string(),
                    };
                    return Ok(VerifyReport {
                        rows_checked: 0,
                        chains_checked: 0,
                        checkpoint_checked: true,
                        from_checkpoint: incremental,
                        finding: Some(finding),
                    });
                }
            },
            None => None,
        };
        // Chains pruned start after their newest genuine prune.
        let pruned = match self.verified_prune_points()? {
            Ok(points) => points,
            Err(finding) => {
                return Ok(VerifyReport {
                    rows_checked: 0,
                    chains_checked: 0,
                    checkpoint_checked: checkpoint.is_some(),
                    from_checkpoint: incremental,
                    finding: Some(finding),
                });
            }
        };
        let heads = self.heads()?;
        let mut chains: std::collections::BTreeSet<i16> =
            self.with_store(|store| store.chain_ids())?.into_iter().collect();
        chains.extend(heads.iter().map(|head| head.chain));
        chains.extend(checkpoint.iter().flatten().map(|state| state.chain));
        if let Some(only) = only {
            chains.retain(|chain| *chain == only);
        }
        let mut report = VerifyReport {
            rows_checked: 0,
            chains_checked: 0,
            checkpoint_checked: checkpoint.is_some(),
            from_checkpoint: incremental,
            finding: None,
        };
        for chain_id in chains {
            let stated = checkpoint
                .iter()
                .flatten()
                .find(|state| state.chain == chain_id)
                .map(|state| (state.seq, state.last_mac));
            let (end, start) = if incremental { (None, stated) } else { (stated, None) };
            let prune_point = pruned
                .iter()
                .find(|point| point.chain == chain_id)
                .map(|point| (point.seq, point.last_mac));
            // The later of the two: rows before a prune are gone by design.
            let start = match (start, prune_point) {
                (Some(start), Some(point)) if point.0 > start.0 => Some(point),
                (None, point) => point,
                (start, _) => start,
            };
            // A checkpoint older than the prune states positions that are gone.
            let end = end.filter(|(seq, _)| prune_point.is_none_or(|(pruned, _)| *seq > pruned));
            let context = Context {
                chain: key,
                chain_id,
                head: heads
                    .iter()
                    .find(|head| head.chain == chain_id)
                    .map(|head| (head.seq, head.mac)),
                checkpoint: end,
                start,
            };
            let after = start.map_or(0, |(seq, _)| seq);
            let outcome = verify_chain(ChainStream::start(self, chain_id, after), &context, &mut progress)?;
            report.rows_checked += outcome.rows_checked;
            if outcome.rows_checked > 0 {
                report.chains_checked += 1;
            }
            if outcome.finding.is_some() {
                report.finding = outcome.finding;
                return Ok(report);
            }
        }
        Ok(report)
    }

    /// Takes a checkpoint of every chain as it is now and signs it. Keep the
    /// JSON file ([`SignedCheckpoint::to_json`]) outside the database.
    pub fn checkpoint(&self, signing_key: &SigningKey) -> Result<SignedCheckpoint> {
        self.chain()?;
        let heads = self.heads()?;
        let mut states = Vec::with_capacity(heads.len());
        for head in heads {
            if head.seq > 0 && self.with_store(|store| store.mac_at(head.chain, head.seq))? != Some(head.mac) {
                return Err(Error::new(
                    ErrorKind::Database,
                    format!(
                        "chain {}'s head does not match its last row; run verification before taking a checkpoint",
                        head.chain
                    ),
                ));
            }
            states.push(ChainState {
                chain: head.chain,
                seq: head.seq,
                last_mac: head.mac,
            });
        }
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            seq: 0,
            last_mac: [0; 32],
            row_count: states.iter().map(|state| u64::try_from(state.seq).unwrap_or(0)).sum(),
            chains: states,
            created_at: Timestamp::now(),
            chain_key_id: self.inner.key_id.clone(),
        };
        Ok(checkpoint.sign(signing_key))
    }

    /// The rows of `chain_id` at positions `after + 1 ..= last`, with the
    /// commitments of erased rows filled in: rows as verification sees them.
    pub(crate) fn chain_range(&self, chain_id: i16, after: i64, last: i64) -> Result<Vec<VerifyRow>> {
        self.with_store(|store| crate::backend::verified_range(store, chain_id, after, last))
    }

    fn max_seq(&self, chain_id: i16) -> Result<Option<i64>> {
        self.with_store(|store| store.max_seq(chain_id))
    }
}

/// One chain in position order, in three stages that overlap: a reader
/// thread fetches and decodes the next batches, checker threads check each
/// row against its own MAC, and the caller follows the links between rows.
/// At most two batches wait between stages, so memory stays bounded.
struct ChainStream {
    batches: std::sync::mpsc::Receiver<Result<Vec<VerifyRow>>>,
    /// The batch being handed out, taken as it came: not copied again.
    buffer: std::vec::IntoIter<VerifyRow>,
    done: bool,
}

impl ChainStream {
    /// Streams the chain's rows after position `after`.
    fn start(log: &AuditLog, chain_id: i16, after: i64) -> Self {
        let (checked, batches) = std::sync::mpsc::sync_channel(2);
        if let Err(error) = Self::spawn_stages(log, chain_id, after, checked.clone()) {
            // Fail closed: the stream yields the error, never an empty chain.
            let _ = checked.try_send(Err(error));
        }
        Self {
            batches,
            buffer: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Starts the reader and the checker, which hands batches to `checked`.
    fn spawn_stages(
        log: &AuditLog,
        chain_id: i16,
        after: i64,
        checked: std::sync::mpsc::SyncSender<Result<Vec<VerifyRow>>>,
    ) -> Result<()> {
        let (sender, read) = std::sync::mpsc::sync_channel::<Result<Vec<VerifyRow>>>(2);
        let checker = log.clone();
        std::thread::Builder::new()
            .name("zt-audit-verify-check".to_owned())
            .spawn(move || {
                let threads = std::thread::available_parallelism()
                    .map_or(1, std::num::NonZero::get)
                    .min(4);
                for mut batch in read {
                    if let (Ok(rows), Ok(chain)) = (&mut batch, checker.chain()) {
                        crate::verify::check_in_parallel(chain, rows, threads);
                    }
                    if checked.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        let log = log.clone();
        std::thread::Builder::new()
            .name("zt-audit-verify-read".to_owned())
            .spawn(move || {
                let last = match log.max_seq(chain_id) {
                    Ok(Some(last)) => last,
                    Ok(None) => return,
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        return;
                    }
                };
                // Spans of many batches, each read in one go on one pooled
                // connection (one COPY on PostgreSQL), so the database
                // streams rows without waiting between batches.
                let mut after = after;
                while after < last {
                    let upto = after.saturating_add(STREAM_SPAN).min(last);
                    let mut listening = true;
                    let read = log.with_store(|store| {
                        store.chain_batches(chain_id, after, upto, STREAM_BATCH, &mut |rows| {
                            listening = sender.send(Ok(rows)).is_ok();
                            listening
                        })
                    });
                    // The verifier stops reading at its first finding; then
                    // this thread stops too.
                    if let Err(error) = read {
                        let _ = sender.send(Err(error));
                        return;
                    }
                    if !listening {
                        return;
                    }
                    after = upto;
                }
            })?;
        Ok(())
    }
}

impl Iterator for ChainStream {
    type Item = Result<VerifyRow>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buffer.len() == 0 && !self.done {
            match self.batches.recv() {
                Ok(Ok(rows)) => self.buffer = rows.into_iter(),
                Ok(Err(error)) => {
                    self.done = true;
                    return Some(Err(error));
                }
                Err(_) => self.done = true,
            }
        }
        self.buffer.next().map(Ok)
    }
}

/// How the checkpoint thread takes one: as [`AuditLog::checkpoint`] does.
fn take_checkpoint(inner: &Arc<Inner>, key: &SigningKey) -> Result<SignedCheckpoint> {
    AuditLog {
        inner: Arc::clone(inner),
        pinned: None,
    }
    .checkpoint(key)
}
