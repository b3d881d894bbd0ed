//! The seam between the audit log and its backends: what each backend does,
//! and the one place that picks the backend of a connection.

use uuid::Uuid;
use zt_db::AnyConnection;
use zt_types::AuditEvent;

use crate::chain::Chain;
use crate::error::{Error, ErrorKind, Result};
use crate::query::{AuditFilter, AuditRecord, Page, PageRequest};
use crate::verify::VerifyRow;

/// Where an event landed in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Its chain position, the row id.
    pub id: i64,
    /// Its MAC.
    pub mac: [u8; 32],
    /// Whether it was already stored, by an earlier write of the same event id;
    /// nothing was written this time.
    pub duplicate: bool,
}

/// The head of the chain: the last position and its MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
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

/// The audit operations each backend implements on its connection type.
pub(crate) trait Store {
    /// Appends one event. `cached` is the head as this process last wrote it;
    /// a backend may use it to skip reading the head.
    fn append(&mut self, chain: &Chain, event: &AuditEvent, cached: Option<Head>, scope: Scope) -> Result<Recorded>;
    /// Appends `events` in one transaction; with `dedupe`, events already
    /// stored are skipped and reported as duplicates.
    fn append_batch(&mut self, chain: &Chain, events: &[AuditEvent], dedupe: bool) -> Result<(Vec<Recorded>, Head)>;
    /// The row of an event already stored.
    fn find_event(&mut self, event_id: &Uuid) -> Result<Option<Recorded>>;
    /// The chain head.
    fn read_head(&mut self) -> Result<Head>;
    /// One page of rows matching `filter`.
    fn query_page(&mut self, filter: &AuditFilter, page: &PageRequest) -> Result<Page>;
    /// How many rows match `filter`.
    fn count(&mut self, filter: &AuditFilter) -> Result<u64>;
    /// The rows with `after_id < id <= last_id`, in id order.
    fn chain_range(&mut self, after_id: i64, last_id: i64) -> Result<Vec<VerifyRow>>;
    /// Up to `limit` rows with `id > after_id`, in id order.
    fn rows_after(&mut self, after_id: i64, limit: i64) -> Result<Vec<AuditRecord>>;
    /// The highest row id.
    fn max_id(&mut self) -> Result<Option<i64>>;
    /// The MAC of row `id`.
    fn mac_at(&mut self, id: i64) -> Result<Option<[u8; 32]>>;
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
