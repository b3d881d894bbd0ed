//! Verification: stream the chain in order and name the first row that fails.

use std::fmt;

use serde::Serialize;

use crate::chain::{CHAIN_VERSION, Chain, ChainFields, GENESIS_MAC};
use crate::checkpoint::Checkpoint;
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
    /// The chain position where the failure is: the changed row, the first
    /// missing position, or the checkpoint's position.
    pub row_id: i64,
    /// What is wrong.
    pub kind: TamperKind,
    /// A sentence for the investigator.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}: {}: {}", self.row_id, self.kind, self.detail)
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows read.
    pub rows_checked: u64,
    /// The last good position.
    pub last_id: i64,
    /// Whether a checkpoint was checked.
    pub checkpoint_checked: bool,
    /// The first failure, or `None` if the log verified.
    pub finding: Option<Finding>,
}

impl VerifyReport {
    /// Whether the log verified.
    pub fn is_valid(&self) -> bool {
        self.finding.is_none()
    }
}

/// One stored row as the verifier sees it: the chain columns always, the
/// rest decoded if possible.
#[derive(Debug)]
pub(crate) struct VerifyRow {
    pub(crate) id: i64,
    pub(crate) prev_mac: [u8; 32],
    pub(crate) mac: [u8; 32],
    /// The decoded row, or why it could not be decoded.
    pub(crate) record: std::result::Result<AuditRecord, String>,
    /// Backend-specific derived columns agree with the row (SQLite's
    /// `client_ip_bin`).
    pub(crate) derived_ok: bool,
}

pub(crate) fn fields_of(record: &AuditRecord) -> ChainFields<'_> {
    ChainFields {
        id: record.id,
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
    }
}

/// Whether the row's MAC matches its content and its stored predecessor MAC.
/// `shift` recomputes as if the row sat `shift` positions later.
pub(crate) fn self_consistent(chain: &Chain, row: &VerifyRow, shift: i64) -> bool {
    let Ok(record) = &row.record else {
        return false;
    };
    // A decoded record holds the row's own `prev_mac` and `mac`.
    row.derived_ok && record_consistent(chain, record, shift)
}

/// Whether a decoded record's MAC matches its content and its `prev_mac`.
fn record_consistent(chain: &Chain, record: &AuditRecord, shift: i64) -> bool {
    if record.chain_version != CHAIN_VERSION {
        return false;
    }
    let mut fields = fields_of(record);
    fields.id = record.id.saturating_add(shift);
    chain.mac(&fields, &record.prev_mac) == record.mac
}

/// Checks rows one at a time as they are read in chain order, from a resume
/// point on: each row's MAC against its content, and its link to the row
/// before. For followers such as `zt audit tail --verify`; build one with
/// [`crate::AuditLog::row_verifier`].
///
/// Unlike [`crate::AuditLog::verify`], it sees no row ahead, so it names the
/// first bad row and whether its content or its link failed, without telling
/// an insertion from a modification.
#[derive(Debug, Clone)]
pub struct RowVerifier {
    chain: Chain,
    last_id: i64,
    /// The MAC of row `last_id`, or `None` when that row is missing.
    last_mac: Option<[u8; 32]>,
}

impl RowVerifier {
    pub(crate) fn new(chain: Chain, last_id: i64, last_mac: Option<[u8; 32]>) -> Self {
        Self {
            chain,
            last_id,
            last_mac,
        }
    }

    /// The last row that verified (the resume point before any).
    pub fn last_id(&self) -> i64 {
        self.last_id
    }

    /// Checks the next row, which must be row `last_id() + 1`.
    pub fn check(&mut self, record: &AuditRecord) -> std::result::Result<(), Finding> {
        let expected = self.last_id.saturating_add(1);
        let finding = |row_id, kind, detail: String| Finding { row_id, kind, detail };
        let Some(last_mac) = self.last_mac else {
            return Err(finding(
                self.last_id,
                TamperKind::Deleted,
                format!("row {}, the row to continue after, is missing", self.last_id),
            ));
        };
        if record.id > expected {
            return Err(finding(
                expected,
                TamperKind::Deleted,
                format!("positions {expected} to {} are missing", record.id - 1),
            ));
        }
        if record.id < expected {
            return Err(finding(
                record.id,
                TamperKind::Reordered,
                format!("row {} came after row {}", record.id, self.last_id),
            ));
        }
        if record.chain_version != CHAIN_VERSION {
            return Err(finding(
                record.id,
                TamperKind::Modified,
                format!(
                    "the row claims chain version {}, not {CHAIN_VERSION}",
                    record.chain_version
                ),
            ));
        }
        if !record_consistent(&self.chain, record, 0) {
            return Err(finding(
                record.id,
                TamperKind::Modified,
                "the row's content does not match its MAC".to_owned(),
            ));
        }
        if record.prev_mac != last_mac {
            return Err(finding(
                record.id,
                TamperKind::Reordered,
                "the row is intact but is not chained to the row before it".to_owned(),
            ));
        }
        self.last_id = record.id;
        self.last_mac = Some(record.mac);
        Ok(())
    }
}

/// What the verifier knows besides the rows.
pub(crate) struct Context<'a> {
    pub(crate) chain: &'a Chain,
    /// The chain head row: position and MAC, if it could be read.
    pub(crate) head: Option<(i64, [u8; 32])>,
    pub(crate) checkpoint: Option<&'a Checkpoint>,
}

/// How far a renumbered row is searched for its original position.
const MAX_SHIFT: i64 = 64;

/// Streams `rows` (in id order) and returns the report. Memory stays bounded:
/// one row of lookahead.
pub(crate) fn verify_rows<I>(rows: I, context: &Context<'_>, mut progress: impl FnMut(u64)) -> Result<VerifyReport>
where
    I: Iterator<Item = Result<VerifyRow>>,
{
    let chain = context.chain;
    let mut rows = rows.peekable();
    let mut expected_id = 1i64;
    let mut prev_mac = GENESIS_MAC;
    let mut checked = 0u64;
    let report = |checked, last_id, finding| VerifyReport {
        rows_checked: checked,
        last_id,
        checkpoint_checked: context.checkpoint.is_some(),
        finding,
    };

    while let Some(row) = rows.next() {
        let row = row?;
        checked += 1;
        if checked.is_multiple_of(10_000) {
            progress(checked);
        }
        let last_good = expected_id - 1;
        if row.id != expected_id {
            let finding = Finding {
                row_id: expected_id,
                kind: TamperKind::Deleted,
                detail: format!("positions {expected_id} to {} are missing", row.id - 1),
            };
            return Ok(report(checked, last_good, Some(finding)));
        }
        let self_ok = self_consistent(chain, &row, 0);
        let link_ok = row.prev_mac == prev_mac;
        if self_ok && link_ok {
            if let Some(checkpoint) = context.checkpoint
                && checkpoint.seq == row.id
                && checkpoint.last_mac != row.mac
            {
                let finding = Finding {
                    row_id: row.id,
                    kind: TamperKind::CheckpointMismatch,
                    detail: "this row verifies in the chain, but it is not the row the checkpoint signed: \
                                 the chain was rewritten from here or earlier"
                        .to_owned(),
                };
                return Ok(report(checked, last_good, Some(finding)));
            }
            prev_mac = row.mac;
            expected_id += 1;
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
        let finding = classify(chain, &row, next, prev_mac, context.head);
        return Ok(report(checked, last_good, Some(finding)));
    }

    progress(checked);
    let last_id = expected_id - 1;
    if let Some(checkpoint) = context.checkpoint
        && last_id < checkpoint.seq
    {
        let finding = Finding {
            row_id: last_id + 1,
            kind: TamperKind::TruncatedAfterCheckpoint,
            detail: format!(
                "the checkpoint covers {} rows but the log ends at position {last_id}",
                checkpoint.seq
            ),
        };
        return Ok(report(checked, last_id, Some(finding)));
    }
    if let Some((head_seq, head_mac)) = context.head {
        if last_id < head_seq {
            let finding = Finding {
                row_id: last_id + 1,
                kind: TamperKind::Deleted,
                detail: format!("the chain head says {head_seq} rows were written but the log ends at {last_id}"),
            };
            return Ok(report(checked, last_id, Some(finding)));
        }
        if last_id == head_seq && head_seq > 0 && head_mac != prev_mac {
            let finding = Finding {
                row_id: last_id,
                kind: TamperKind::Modified,
                detail: "the chain head's MAC differs from the last row's".to_owned(),
            };
            return Ok(report(checked, last_id, Some(finding)));
        }
    }
    Ok(report(checked, last_id, None))
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
        row_id: row.id,
        kind,
        detail: detail.to_owned(),
    };
    if let Err(problem) = &row.record {
        return finding(TamperKind::Modified, &format!("the row cannot be decoded: {problem}"));
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
        if next.is_none() && head.is_some_and(|(seq, _)| row.id > seq) {
            return finding(
                TamperKind::Inserted,
                "the row's MAC is forged and it lies past the chain head",
            );
        }
        return finding(TamperKind::Modified, "the row's content does not match its MAC");
    }
    // Neither its MAC nor its link holds.
    if let Some(next) = next {
        if next_links_over && row.prev_mac == next.mac && self_consistent(chain, row, next.id - row.id) {
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
            row_id: row.id,
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
