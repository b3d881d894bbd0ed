//! Tamper-evident audit logging on SQLite and PostgreSQL.
//!
//! Record who did what, when, from where, and whether it succeeded, failed or
//! was denied; query it for investigations; prove it was not altered.
//!
//! - [`AuditLog`]: the handle, on a [`zt_db::Pool`] and a [`ChainKey`]. It
//!   writes [`zt_types::AuditEvent`]s durably ([`AuditLog::record`]) or inside
//!   the caller's transaction ([`AuditLog::record_in`]), queries them with an
//!   [`AuditFilter`] and keyset [`PageRequest`]s, and verifies the chain.
//! - [`VerifyReport`] names the first row that fails and its [`TamperKind`].
//! - [`AuditLog::rows_after`] with a [`FollowCursor`], and [`RowVerifier`],
//!   follow the log as rows commit, checking each one (`zt audit tail`).
//! - [`SignedCheckpoint`]: an Ed25519-signed statement about the chain, kept
//!   outside the database, which makes deleting the newest rows detectable.
//! - [`Pipeline`]: a background batched writer with a durable local spool,
//!   for throughput; it replays the spool after an outage or a crash. Spool
//!   records are authenticated with a key derived from the chain key, and a
//!   damaged segment loses only its damaged records and is kept aside.
//! - [`MIGRATIONS`] and [`run_migrations`] create the tables; the SQL is in
//!   the workspace's `migrations/` and is embedded here.
//!
//! ```
//! use zt_audit::{AuditFilter, AuditLog, ChainKey, PageRequest};
//! use zt_types::{Actor, AuditEvent, AuditStatus, UserId};
//!
//! let dir = std::env::temp_dir().join(format!("zt-audit-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let pool = zt_db::Pool::connect(&format!("sqlite://{}", dir.join("audit.db").display()))?;
//! // The chain key comes from configuration, never from the database or the
//! // code: here a file created on the first start and read on every later one.
//! let key = ChainKey::load_or_create(&dir.join("chain.key"))?;
//! let log = AuditLog::new(pool, &key);
//! log.migrate()?;
//! log.check_key()?; // another key wrote this log? a clear error, before any write
//!
//! let event = AuditEvent::builder(Actor::user(UserId::parse("42")?, None), "UPDATE_ROLE", "users")
//!     .resource_id(7)
//!     .metadata(&serde_json::json!({ "from": "user", "to": "admin" }))
//!     .status(AuditStatus::Success)
//!     .build()?;
//! let recorded = log.record(&event)?;
//! assert_eq!(recorded.id, 1);
//!
//! let page = log.query(&AuditFilter::new().user("42"), &PageRequest::first(50))?;
//! assert_eq!(page.records[0].action, "UPDATE_ROLE");
//! assert!(log.verify()?.is_valid());
//! # let _ = std::fs::remove_dir_all(&dir); // Best effort: pool threads may still be closing files.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Durability modes
//!
//! | mode | API | when the call returns | if the database is down | cost |
//! |---|---|---|---|---|
//! | in-transaction | [`AuditLog::record_in`] | the event commits or rolls back with the caller's change | the caller's transaction fails: if it cannot be audited, it does not happen | one statement in the caller's transaction |
//! | synchronous | [`AuditLog::record`] | the event is committed in the database | the call fails with [`ErrorKind::Unavailable`] | one round trip and one commit per event |
//! | pipeline, spooled, fsync on | [`Pipeline::submit`] with [`SubmitMode::Spooled`] `{ fsync: true }` | the event is on local disk (spool appended and synced) | events stay in the spool and are replayed, in order, when the database is back | one shared `fdatasync`; batched writes |
//! | pipeline, spooled, fsync off | as above, `{ fsync: false }` | the event is in the OS page cache: it survives a process crash, not a power failure | as above | no sync; batched writes |
//! | pipeline, memory | [`Pipeline::submit`] with [`SubmitMode::Memory`] | the event is in the bounded in-memory queue: a crash loses the queue | the writer spools what it cannot write and replays it later | fastest |
//!
//! An in-transaction write is a second, wide insert in every audited
//! transaction: on a server that is busy, most of its cost is storing the row
//! and its indexes, and the chain head adds the rest (the rows
//! "in-transaction audit" of the repository's `BENCHMARKS.md` show both).
//! Where throughput matters more than committing with the business change,
//! the pipeline writes the same rows in batches through COPY.
//!
//! SQLite runs with `synchronous = FULL` by default (see `zt_db::Synchronous`),
//! so a committed event survives a power failure. Replays are idempotent by
//! event id: an event already stored is skipped, never duplicated. A full
//! queue waits, then refuses the event ([`Overflow::Block`]), or spills it to
//! the spool ([`Overflow::Spill`]); nothing is dropped without the caller
//! being told.
//!
//! # The hash chains
//!
//! The log is made of one or more independent hash chains. Each row belongs
//! to one chain (`chain_id`) at one position in it (`chain_seq`: 1, 2, 3, …
//! with no gaps), and carries `mac = HMAC-SHA256(key, encoding)`, where the
//! key is a [`ChainKey`] from configuration or the `ZT_AUDIT_KEY` variable,
//! never from the database, and `encoding` is, in order (integers
//! big-endian):
//!
//! 1. the bytes `zt-audit-chain` and a NUL byte;
//! 2. the encoding version, `u16` = 3 (stored in `chain_version`);
//! 3. the chain id, `i16` (versions 2 and 3);
//! 4. the position in the chain, `i64`;
//! 5. `event_id`, the 16 bytes of the UUID;
//! 6. `created_at`, microseconds since the Unix epoch, `i64`;
//! 7. `actor_kind` as *text*; `user_id` and `user_email` as *optional text*;
//! 8. `action` and `resource` as *text*; `resource_id` as *optional text*;
//! 9. `metadata` as *text*: the canonical JSON text, which is exactly what
//!    PostgreSQL prints for the `jsonb` value (see
//!    [`zt_types::canonical_json`]), and the stored text on SQLite;
//! 10. `client_ip` and `peer_ip` as *optional address*;
//! 11. `user_agent` as *optional text*; `status` as *text*; `error_code` and
//!     `request_id` as *optional text*;
//! 12. the previous row's MAC in the same chain, 32 bytes: 32 zero bytes
//!     before a chain's first row.
//!
//! *text* is a `u32` byte length and the UTF-8 bytes; *optional text* is a
//! `0` byte when absent, or a `1` byte and *text*; *optional address* is a
//! `0` byte when absent, `4` and the 4 bytes of an IPv4 address, or `6` and
//! the 16 bytes of an IPv6 address. Each row also stores the previous MAC in
//! `prev_mac`, so a verifier can tell a modified row from a missing one.
//!
//! Version 3 replaces the personal fields (`user_email` in item 7, items 9
//! and 10, and `user_agent` in item 11) with one 32-byte *commitment*, placed
//! right after `user_id`: `HMAC-SHA256(personal key, event_id ||
//! user_email || metadata || client_ip || peer_ip || user_agent)` in the
//! encodings above, where the personal key is `HMAC-SHA256(key,
//! "zt-audit-personal\0")`. [`AuditLog::erase_personal_data`] empties those
//! fields and keeps the commitment in `audit_erasures`; the erased row then
//! verifies against it. Version 2 rows encode the fields themselves and
//! cannot be erased.
//!
//! Version 1 rows, written before chains existed, omit item 3, belong to
//! chain 1, and keep verifying: their position is their row id. The row id
//! itself is not covered: it is a handle for queries, handed out by a
//! sequence on PostgreSQL, and a rolled-back write leaves a hole in the ids,
//! never in a chain.
//!
//! # Chains
//!
//! Each chain has a head row in `audit_chain_head` (its last position and
//! MAC). An append locks one head, in the same statement or transaction as
//! the insert, so appends to one chain are serialized and writers in any
//! number of processes still produce valid chains. No lock is shared by all
//! writers:
//!
//! - On PostgreSQL, an unpinned write takes a head that no other open
//!   transaction holds (`FOR UPDATE SKIP LOCKED`), its thread's preferred
//!   chain first, and with a head this process wrote last it is one
//!   statement. A [`AuditLog::record_in`] keeps its head until the caller
//!   commits, so up to [`DEFAULT_CHAINS`] (or [`AuditLog::with_chains`])
//!   transactions that audit can be open at once without waiting for one
//!   another; only when all are held does a writer wait, for its preferred
//!   chain.
//! - On SQLite one writer gets in at a time anyway, so unpinned writes share
//!   chain 1.
//! - [`AuditLog::on_chain`] pins a handle's writes to one chain of the
//!   app's choosing, such as a tenant's; [`AuditLog::verify_chain`],
//!   [`AuditFilter::chain`] and `zt audit verify --chain` work per chain.
//!
//! Verification reads every chain in position order and checks each against
//! its head; a [`SignedCheckpoint`] states every chain's head, so deleting
//! the newest rows of any chain is detected. Rows of a chain with no head
//! were not written by zt, and are reported.
//!
//! The MAC covers parsed values, so verification also checks that each value
//! is stored exactly as zt writes it: on SQLite, `created_at` in the
//! fixed-width form of [`Timestamp`], `event_id` as a lowercase hyphenated
//! UUID, addresses as Rust prints them and `client_ip_bin` derived from
//! `client_ip`; on both, text that is valid UTF-8, `status` in lowercase, no
//! NULL where zt writes a value, times within the years 1 to 9999 and host
//! addresses without a network prefix. A value in another form (the same
//! instant written `2026-11-29 12:00:00.000000Z`, say, which would sort first
//! and drop out of `since` filters) is reported as
//! [`TamperKind::Modified`], naming the field. Queries and exports never stop
//! at such a row: they list it with the field marked in
//! [`AuditRecord::damaged`].
//!
//! # Feature flags
//!
//! - `sqlite` (default): the SQLite backend.
//! - `postgres`: the PostgreSQL backend.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a backend the types compile, and every connection is refused.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports, unused_macros)
)]

mod auto_checkpoint;
mod backend;
mod chain;
mod checkpoint;
mod error;
mod follow;
#[cfg(any(feature = "sqlite", test))]
mod ip_key;
mod key;
mod log;
#[cfg(feature = "postgres")]
mod partitions;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod pg_copy;
mod pipeline;
mod query;
mod retention;
mod schema;
mod shared_sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod stored;
mod verify;

pub use auto_checkpoint::{AutoCheckpoint, CheckpointDir, CheckpointSink, SinkError};
pub use backend::{Head, Recorded};
pub use chain::{CHAIN_VERSION, GENESIS_MAC};
pub use checkpoint::{CHECKPOINT_VERSION, ChainState, Checkpoint, SignedCheckpoint};
pub use error::{Error, ErrorKind, Result, classify};
pub use follow::{FollowCursor, RowVerifier};
pub use key::{ChainKey, KEY_ENV, generate_signing_key, signing_key_from_file, verifying_key_from_file};
pub use log::{AuditLog, DEFAULT_CHAINS};
pub use pipeline::{
    Overflow, Pipeline, PipelineConfig, PipelineStats, SpoolDamage, SpoolDamageKind, SpoolSegment, SubmitMode,
    encode_spool_segment, read_spool_segment,
};
pub use query::{AuditFilter, AuditRecord, Cursor, DamagedField, Order, Page, PageRequest};
pub use retention::{ARCHIVE_VERSION, ArchiveHeader, ArchiveSummary, ErasureSummary, PruneSummary, verify_archive};
pub use verify::{Finding, TamperKind, VerifyReport};
pub use zt_db::{AnyConnection, AsConnection, DbConnection, Pool, PoolConfig};
pub use zt_types::{Actor, AuditEvent, AuditStatus, FieldError, RequestContext, Timestamp, UserId};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use zt_db::{EmbeddedMigrations, MigrationSet, embed_migrations};

static POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
static SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The audit tables' migrations for both backends.
pub static MIGRATIONS: MigrationSet = MigrationSet {
    name: "zt-audit",
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
    // Rows are only ever added and read: no UPDATE, DELETE or TRUNCATE, and
    // not owning the table, the app cannot turn the triggers off either.
    runtime_privileges: &[
        zt_db::RuntimePrivilege {
            kind: "TABLE",
            object: "audit_logs",
            privileges: "SELECT, INSERT",
        },
        zt_db::RuntimePrivilege {
            kind: "SEQUENCE",
            object: "audit_logs_id_seq",
            privileges: "USAGE",
        },
        // Writers move their chain's head, and create a head on first use.
        zt_db::RuntimePrivilege {
            kind: "TABLE",
            object: "audit_chain_head",
            privileges: "SELECT, INSERT, UPDATE",
        },
        // Read to verify; only `zt audit prune`, as the tables' owner, writes it.
        zt_db::RuntimePrivilege {
            kind: "TABLE",
            object: "audit_prunes",
            privileges: "SELECT",
        },
    ],
};

/// Applies the audit tables' pending migrations on `conn`, the app's own
/// connection or pooled connection as it is; returns the versions applied.
pub fn run_migrations(conn: &mut impl AsConnection) -> std::result::Result<Vec<String>, zt_db::Error> {
    zt_db::run_migrations(conn, &MIGRATIONS)
}
