//! Verification: stream the chain in order and name the first row that fails.

use std::fmt;

use serde::Serialize;

use crate::chain::{CHAIN_VERSION, Chain, ChainFields, ERASABLE_VERSION, GENESIS_MAC};
use crate::error::Result;
use crate::query::AuditRecord;

/// How a row failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TamperKind {
    /// The row's content no longer matches its MAC.
    Modified,
    /// One or more rows are missing before this position.
    Deleted,
    /// The row was not written by the chain writer: its MAC is forged and the
    /// chain continues around it.
    Inserted,
    /// Rows were moved to other positions.
    Reordered,
    /// Rows a signed checkpoint covered are gone from the end of the log.
    TruncatedAfterCheckpoint,
    /// The checkpoint's signature does not verify with the given public key.
    BadCheckpointSignature,
    /// The row at the checkpoint's position is not the one the checkpoint signed.
    CheckpointMismatch,
}

impl TamperKind {
    /// The snake_case name, as printed by `zt audit verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modified => "modified",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::TruncatedAfterCheckpoint => "truncated_after_checkpoint",
            Self::BadCheckpointSignature => "bad_checkpoint_signature",
            Self::CheckpointMismatch => "checkpoint_mismatch",
        }
    }
}

impl fmt::Display for TamperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first failure found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The chain the failure is in.
    pub chain: i16,
    /// The position in that chain where the failure is: the changed row, the
    /// first missing position, or the checkpoint's position. Rows written
    /// before chains existed are chain 1, and there the position is the row id.
    pub position: i64,
    /// What is wrong.
    pub kind: TamperKind,
    /// A sentence for the investigator.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain {} position {}: {}: {}",
            self.chain, self.position, self.kind, self.detail
        )
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows read.
    pub rows_checked: u64,
    /// Chains that hold rows, read.
    pub chains_checked: u32,
    /// Whether a checkpoint was checked.
    pub checkpoint_checked: bool,
    /// Whether verification started after a signed checkpoint, reading only
    /// the rows written since.
    pub from_checkpoint: bool,
    /// The first failure, or `None` if the log verified.
    pub finding: Option<Finding>,
}

impl VerifyReport {
    /// Whether the log verified.
    pub fn is_valid(&self) -> bool {
        self.finding.is_none()
    }
}

/// One stored row as the verifier sees it: the chain columns, and the row
/// decoded with whatever could not be read as zt writes it named in
/// [`AuditRecord::damaged`].
#[derive(Debug)]
pub(crate) struct VerifyRow {
    /// The row id.
    pub(crate) id: i64,
    /// The chain and the position in it.
    pub(crate) chain: i16,
    pub(crate) seq: i64,
    pub(crate) prev_mac: [u8; 32],
    pub(crate) mac: [u8; 32],
    /// The decoded row.
    pub(crate) record: AuditRecord,
    /// Whether the row is consistent with its own MAC in place, when a
    /// checker thread already found out ([`check_in_parallel`]).
    pub(crate) consistent: Option<bool>,
}

impl From<AuditRecord> for VerifyRow {
    fn from(record: AuditRecord) -> Self {
        Self {
            id: record.id,
            chain: record.chain,
            seq: record.chain_seq,
            prev_mac: record.prev_mac,
            mac: record.mac,
            record,
            consistent: None,
        }
    }
}

pub(crate) fn fields_of(record: &AuditRecord) -> ChainFields<'_> {
    ChainFields {
        version: record.chain_version,
        chain: record.chain,
        seq: record.chain_seq,
        event_id: *record.event_id.as_bytes(),
        created_at_micros: record.created_at.unix_micros(),
        actor_kind: record.actor_kind.as_str(),
        user_id: record.user_id.as_deref(),
        user_email: record.user_email.as_deref(),
        action: &record.action,
        resource: &record.resource,
        resource_id: record.resource_id.as_deref(),
        metadata: &record.metadata,
        client_ip: record.client_ip,
        peer_ip: record.peer_ip,
        user_agent: record.user_agent.as_deref(),
        status: record.status.as_str(),
        error_code: record.error_code.as_deref(),
        request_id: record.request_id.as_deref(),
        erased: record.erasure,
    }
}

/// Whether the row's MAC matches its content and its stored predecessor MAC.
/// `shift` recomputes as if the row sat `shift` positions later.
pub(crate) fn self_consistent(chain: &Chain, row: &VerifyRow, shift: i64) -> bool {
    match row.consistent {
        Some(consistent) if shift == 0 => consistent,
        _ => record_consistent(chain, &row.record, shift),
    }
}

/// Checks each row of `rows` against its own MAC, spread over `threads`
/// threads, and notes the outcome in the row. A row's MAC covers its
/// content and its stored predecessor MAC, nothing computed from the rows
/// before it, so the rows can be checked in any order; the verifier then
/// only follows the links.
pub(crate) fn check_in_parallel(chain: &Chain, rows: &mut [VerifyRow], threads: usize) {
    let share = rows.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let mut parts = rows.chunks_mut(share);
        let first = parts.next();
        for part in parts {
            scope.spawn(move || check_all(chain, part));
        }
        // The calling thread takes a share too.
        if let Some(first) = first {
            check_all(chain, first);
        }
    });
}

fn check_all(chain: &Chain, rows: &mut [VerifyRow]) {
    for row in rows {
        row.consistent = Some(record_consistent(chain, &row.record, 0));
    }
}

/// [`self_consistent`] for a row read as a record, such as one `follow`
/// ships.
pub(crate) fn record_consistent(chain: &Chain, record: &AuditRecord, shift: i64) -> bool {
    // A value stored in another form than zt writes may still parse to what
    // the MAC covers: it is tampering all the same.
    if record.is_damaged() {
        return false;
    }
    // An erased row holds no personal data: the kept commitment speaks for it.
    if record.is_erased()
        && (record.chain_version < ERASABLE_VERSION
            || record.user_email.is_some()
            || record.metadata != "{}"
            || record.client_ip.is_some()
            || record.peer_ip.is_some()
            || record.user_agent.is_some())
    {
        return false;
    }
    // Version 1 rows predate chains and belong to chain 1.
    let known_version =
        (2..=CHAIN_VERSION).contains(&record.chain_version) || (record.chain_version == 1 && record.chain == 1);
    if !known_version {
        return false;
    }
    let mut fields = fields_of(record);
    fields.seq = record.chain_seq.saturating_add(shift);
    chain.mac(&fields, &record.prev_mac) == record.mac
}

/// What the verifier knows about one chain besides its rows.
pub(crate) struct Context<'a> {
    pub(crate) chain: &'a Chain,
    /// The chain being verified.
    pub(crate) chain_id: i16,
    /// The chain's head row: position and MAC, if there is one.
    pub(crate) head: Option<(i64, [u8; 32])>,
    /// The signed checkpoint's position and MAC for this chain, if one is checked.
    pub(crate) checkpoint: Option<(i64, [u8; 32])>,
    /// Where verification starts, trusted: a signed checkpoint's position
    /// and MAC. The rows up to it are not read (incremental verification,
    /// or a log pruned up to it).
    pub(crate) start: Option<(i64, [u8; 32])>,
}

/// The outcome of verifying one chain.
pub(crate) struct ChainOutcome {
    pub(crate) rows_checked: u64,
    pub(crate) finding: Option<Finding>,
}

/// How far a renumbered row is searched for its original position.
const MAX_SHIFT: i64 = 64;

/// Streams the rows of one chain (in position order) and returns what it
/// found. Memory stays bounded: one row of lookahead.
pub(crate) fn verify_chain<I>(rows: I, context: &Context<'_>, mut progress: impl FnMut(u64)) -> Result<ChainOutcome>
where
    I: Iterator<Item = Result<VerifyRow>>,
{
    let chain = context.chain;
    let chain_id = context.chain_id;
    let mut rows = rows.peekable();
    let (start_seq, start_mac) = context.start.unwrap_or((0, GENESIS_MAC));
    let mut expected = start_seq + 1;
    let mut prev_mac = start_mac;
    let mut checked = 0u64;
    let found = |checked, position, kind, detail: String| {
        Ok(ChainOutcome {
            rows_checked: checked,
            finding: Some(Finding {
                chain: chain_id,
                position,
                kind,
                detail,
            }),
        })
    };

    while let Some(row) = rows.next() {
        let row = row?;
        checked += 1;
        if checked.is_multiple_of(10_000) {
            progress(10_000);
        }
        if row.seq != expected {
            return found(
                checked,
                expected,
                TamperKind::Deleted,
                format!("positions {expected} to {} are missing", row.seq - 1),
            );
        }
        let self_ok = self_consistent(chain, &row, 0);
        let link_ok = row.prev_mac == prev_mac;
        if self_ok && link_ok {
            if let Some((seq, mac)) = context.checkpoint
                && seq == row.seq
                && mac != row.mac
            {
                return found(
                    checked,
                    row.seq,
                    TamperKind::CheckpointMismatch,
                    "this row verifies in the chain, but it is not the row the checkpoint signed: \
                     the chain was rewritten from here or earlier"
                        .to_owned(),
                );
            }
            prev_mac = row.mac;
            expected += 1;
            continue;
        }
        let next = match rows.peek() {
            Some(Ok(next)) => Some(next),
            Some(Err(_)) => {
                // Surface the read error rather than guess.
                if let Some(Err(error)) = rows.next() {
                    return Err(error);
                }
                None
            }
            None => None,
        };
        let mut finding = classify(chain, &row, next, prev_mac, context.head);
        finding.chain = chain_id;
        return Ok(ChainOutcome {
            rows_checked: checked,
            finding: Some(finding),
        });
    }

    progress(checked % 10_000);
    let last = expected - 1;
    if let Some((seq, _)) = context.checkpoint
        && last < seq
    {
        return found(
            checked,
            last + 1,
            TamperKind::TruncatedAfterCheckpoint,
            format!("the checkpoint covers {seq} rows of chain {chain_id} but the chain ends at position {last}"),
        );
    }
    match context.head {
        Some((head_seq, _)) if context.start.is_some() && head_seq < start_seq => {
            return found(
                checked,
                head_seq + 1,
                TamperKind::TruncatedAfterCheckpoint,
                format!(
                    "the checkpoint covers {start_seq} rows of chain {chain_id} but its head is back at position {head_seq}"
                ),
            );
        }
        None if start_seq > 0 => {
            return found(
                checked,
                1,
                TamperKind::TruncatedAfterCheckpoint,
                format!("the checkpoint covers {start_seq} rows of chain {chain_id} but the chain has no head"),
            );
        }
        Some((head_seq, _)) if last < head_seq => {
            return found(
                checked,
                last + 1,
                TamperKind::Deleted,
                format!("the chain head says {head_seq} rows were written but the chain ends at {last}"),
            );
        }
        Some((head_seq, head_mac)) if last == head_seq && head_seq > 0 && head_mac != prev_mac => {
            return found(
                checked,
                last,
                TamperKind::Modified,
                "the chain head's MAC differs from the last row's".to_owned(),
            );
        }
        None if checked > 0 => {
            return found(
                checked,
                1,
                TamperKind::Inserted,
                format!("chain {chain_id} has rows but no head: rows were added outside the chain writer"),
            );
        }
        _ => {}
    }
    Ok(ChainOutcome {
        rows_checked: checked,
        finding: None,
    })
}

/// Names what happened at the first row that failed, from its own MAC, its
/// link to the previous row, and the next row's link.
fn classify(
    chain: &Chain,
    row: &VerifyRow,
    next: Option<&VerifyRow>,
    prev_mac: [u8; 32],
    head: Option<(i64, [u8; 32])>,
) -> Finding {
    let self_ok = self_consistent(chain, row, 0);
    let link_ok = row.prev_mac == prev_mac;
    let finding = |kind, detail: &str| Finding {
        chain: row.chain,
        position: row.seq,
        kind,
        detail: detail.to_owned(),
    };
    if row.record.is_damaged() {
        let problems: Vec<&str> = row
            .record
            .damaged
            .iter()
            .map(|damaged| damaged.problem.as_str())
            .collect();
        return finding(
            TamperKind::Modified,
            &format!("row {} holds values zt never writes: {}", row.id, problems.join("; ")),
        );
    }
    let next_links_here = next.is_some_and(|next| next.prev_mac == row.mac);
    let next_links_over = next.is_some_and(|next| next.prev_mac == prev_mac);

    if self_ok {
        // A genuine row whose predecessor is not the row before it.
        return finding(
            TamperKind::Reordered,
            "the row is intact but follows a different row than the one it was chained to",
        );
    }
    if link_ok {
        if next_links_over {
            return finding(
                TamperKind::Inserted,
                "the row's MAC is forged and the next row is chained to the row before it",
            );
        }
        if next.is_none() && head.is_some_and(|(seq, _)| row.seq > seq) {
            return finding(
                TamperKind::Inserted,
                "the row's MAC is forged and it lies past the chain head",
            );
        }
        return finding(TamperKind::Modified, "the row's content does not match its MAC");
    }
    // Neither its MAC nor its link holds.
    if let Some(next) = next {
        if next_links_over && row.prev_mac == next.mac && self_consistent(chain, row, next.seq - row.seq) {
            return finding(TamperKind::Reordered, "this row and the next were swapped");
        }
        if next_links_over {
            return finding(
                TamperKind::Inserted,
                "the row is not part of the chain and the next row is chained to the row before it",
            );
        }
    }
    if let Some(shift) = (1..=MAX_SHIFT).find(|&shift| self_consistent(chain, row, shift)) {
        return Finding {
            chain: row.chain,
            position: row.seq,
            kind: TamperKind::Deleted,
            detail: format!("{shift} row(s) before this one were deleted and the rest renumbered"),
        };
    }
    if next_links_here {
        return finding(
            TamperKind::Modified,
            "the row's content and its chain link were changed",
        );
    }
    finding(
        TamperKind::Modified,
        "the row matches neither its MAC nor its place in the chain",
    )
}
