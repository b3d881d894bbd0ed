//! The seam between the audit log and its backends: what each backend does,
//! and the one place that picks the backend of a connection.

use uuid::Uuid;
use zt_db::AnyConnection;
use zt_types::AuditEvent;

use crate::chain::Chain;
use crate::error::{Error, ErrorKind, Result};
use crate::query::{AuditFilter, Page, PageRequest};
use crate::verify::VerifyRow;

/// Where an event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The row id.
    pub id: i64,
    /// The chain it was appended to.
    pub chain: i16,
    /// Its position in that chain.
    pub seq: i64,
    /// Its MAC.
    pub mac: [u8; 32],
    /// Whether it was already stored, by an earlier write of the same event id;
    /// nothing was written this time.
    pub duplicate: bool,
}

/// The head of one chain: its last position and that row's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The chain.
    pub chain: i16,
    /// The last position; 0 when the chain is empty.
    pub seq: i64,
    /// The MAC at that position, or the genesis MAC.
    pub mac: [u8; 32],
}

/// Whether an append runs in a transaction of its own or joins the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// A transaction of its own: the event is committed when the call returns.
    Own,
    /// The caller's open transaction (a savepoint of it), or autocommit if none.
    Caller,
}

/// Which chain an append goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Any of chains `1..=chains` that no other transaction holds, `preferred`
    /// first; when all are held, wait for `preferred`.
    Any {
        /// How many chains writers share.
        chains: i16,
        /// The chain tried first, and waited for when all are held.
        preferred: i16,
    },
    /// This chain, such as a tenant's, waiting for it if it is held.
    Chain(i16),
}

/// The audit operations each backend implements on its connection type.
pub(crate) trait Store {
    /// Appends one event to a chain of `target`. `hint` is a head this
    /// process last wrote; a backend may append on top of it in one
    /// statement, falling back to locking a head when another writer moved it.
    fn append(
        &mut self,
        chain: &Chain,
        event: &AuditEvent,
        hint: Option<Head>,
        scope: Scope,
        target: Target,
    ) -> Result<Recorded>;
    /// Appends `events` to one chain of `target` in one transaction; with
    /// `dedupe`, events already stored are skipped and reported as duplicates.
    fn append_batch(
        &mut self,
        chain: &Chain,
        events: &[AuditEvent],
        dedupe: bool,
        target: Target,
    ) -> Result<(Vec<Recorded>, Head)>;
    /// The row of an event already stored.
    fn find_event(&mut self, event_id: &Uuid) -> Result<Option<Recorded>>;
    /// Every chain's head, by chain id.
    fn read_heads(&mut self) -> Result<Vec<Head>>;
    /// The chain ids that have rows, ascending.
    fn chain_ids(&mut self) -> Result<Vec<i16>>;
    /// One page of rows matching `filter`.
    fn query_page(&mut self, filter: &AuditFilter, page: &PageRequest) -> Result<Page>;
    /// How many rows match `filter`.
    fn count(&mut self, filter: &AuditFilter) -> Result<u64>;
    /// The rows of `chain_id` at positions `after < seq <= last`, in order.
    fn chain_range(&mut self, chain_id: i16, after: i64, last: i64) -> Result<Vec<VerifyRow>>;
    /// The highest position stored in `chain_id`.
    fn max_seq(&mut self, chain_id: i16) -> Result<Option<i64>>;
    /// The MAC stored at position `seq` of `chain_id`.
    fn mac_at(&mut self, chain_id: i16, seq: i64) -> Result<Option<[u8; 32]>>;
    /// The row with the highest id.
    fn newest_row(&mut self) -> Result<Option<VerifyRow>>;
    /// Each chain's last position among the rows with an id up to `id`.
    fn positions_at_id(&mut self, id: i64) -> Result<Vec<(i16, i64)>>;
    /// Creates the heads of the chains unpinned writers share, in a
    /// transaction of their own, before writers need them.
    fn ensure_chains(&mut self, chains: i16) -> Result<()>;
    /// Every prune record, by chain and position.
    fn prune_records(&mut self) -> Result<Vec<PruneRecord>>;
    /// The last position of `chain_id` before its first row at or after `before`.
    fn cut_seq(&mut self, chain_id: i16, before: zt_types::Timestamp) -> Result<Option<i64>>;
    /// Records a prune (once).
    fn record_prune(&mut self, record: &PruneRecord, at: zt_types::Timestamp) -> Result<()>;
    /// Drops the whole partitions (PostgreSQL, partitioned log) that hold
    /// only rows that recorded prunes cover and lie before `before`;
    /// returns the rows they held. Zero elsewhere.
    fn drop_pruned_partitions(&mut self, before: zt_types::Timestamp) -> Result<u64>;
    /// Deletes the rows of a chain up to a position a recorded prune covers.
    fn delete_pruned(&mut self, chain_id: i16, seq: i64) -> Result<u64>;
    /// Partitions the log by month (PostgreSQL), creating this month's and
    /// `months_ahead` more; returns the partitions created.
    fn partition_by_month(&mut self, months_ahead: u32) -> Result<Vec<String>>;
    /// The erasures of `chain_id` at positions `after < seq <= last`.
    fn erasures(&mut self, chain_id: i16, after: i64, last: i64) -> Result<Vec<(i64, Vec<u8>)>>;
    /// Hands the rows of `chain_id` at positions `after < seq <= last` to
    /// `deliver` in order, in batches of at most `batch` rows, as
    /// verification sees them ([`Erasures`]); stops early when
    /// `deliver` returns false. By default one range read per batch;
    /// PostgreSQL streams the whole span through one COPY.
    fn chain_batches(
        &mut self,
        chain_id: i16,
        after: i64,
        last: i64,
        batch: usize,
        deliver: &mut dyn FnMut(Vec<VerifyRow>) -> bool,
    ) -> Result<()> {
        let step = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let mut from = after;
        while from < last {
            let upto = from.saturating_add(step).min(last);
            if !deliver(verified_range(self, chain_id, from, upto)?) {
                break;
            }
            from = upto;
        }
        Ok(())
    }
    /// Records an erasure and empties the row's personal fields, in one transaction.
    fn erase(&mut self, chain_id: i16, seq: i64, commitment: &[u8; 32], at: zt_types::Timestamp) -> Result<()>;
}

/// A prune as stored: the chain, the last position deleted, that row's MAC,
/// and the tag that authenticates the record (see `retention`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PruneRecord {
    pub(crate) chain: i16,
    pub(crate) seq: i64,
    pub(crate) mac: Vec<u8>,
    pub(crate) tag: Vec<u8>,
}

/// The audit store of `conn`'s backend: the one place zt-audit dispatches on
/// the backend. A connection of a backend this crate was built without is a
/// clear error, not a missing match arm.
pub(crate) fn store(conn: AnyConnection<'_>) -> Result<&mut dyn Store> {
    match conn {
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(conn) => Ok(conn),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(conn) => Ok(conn),
        other => Err(Error::new(
            ErrorKind::BackendDisabled,
            format!(
                "zt-audit was built without its `{0}` feature; enable it to audit on {0}",
                other.backend()
            ),
        )),
    }
}

/// The rows of `chain_id` at positions `after < seq <= last`, in order,
/// with erased rows' commitments filled in: rows as verification sees them.
pub(crate) fn verified_range(
    store: &mut (impl Store + ?Sized),
    chain_id: i16,
    after: i64,
    last: i64,
) -> Result<Vec<VerifyRow>> {
    let mut rows = store.chain_range(chain_id, after, last)?;
    let mut erasures = Erasures::read(store, chain_id, after, last)?;
    rows.iter_mut().for_each(|row| erasures.fill(row));
    Ok(rows)
}

/// The erasures of a span of one chain, by position, filled into its rows
/// as they come in position order: rows as verification sees them.
pub(crate) struct Erasures(std::iter::Peekable<std::vec::IntoIter<(i64, [u8; 32])>>);

impl Erasures {
    /// The erasures of `chain_id` at positions `after < seq <= last`; none
    /// on a log migrated before erasure existed.
    pub(crate) fn read(store: &mut (impl Store + ?Sized), chain_id: i16, after: i64, last: i64) -> Result<Self> {
        let mut erasures = match store.erasures(chain_id, after, last) {
            Ok(erasures) => erasures,
            Err(error) if crate::retention::is_missing_table(&error, "audit_erasures") => Vec::new(),
            Err(error) => return Err(error),
        };
        erasures.sort_unstable_by_key(|(seq, _)| *seq);
        // A commitment of another length commits to nothing: the row then
        // fails verification as it stands.
        let erasures: Vec<(i64, [u8; 32])> = erasures
            .into_iter()
            .filter_map(|(seq, commitment)| Some((seq, <[u8; 32]>::try_from(commitment.as_slice()).ok()?)))
            .collect();
        Ok(Self(erasures.into_iter().peekable()))
    }

    /// Fills in the commitment kept when `row` was erased, if it was. Rows
    /// must come in position order.
    pub(crate) fn fill(&mut self, row: &mut VerifyRow) {
        while self.0.next_if(|(seq, _)| *seq < row.seq).is_some() {}
        if let Some((_, commitment)) = self.0.next_if(|(seq, _)| *seq == row.seq) {
            row.record.erasure = Some(commitment);
        }
    }
}
