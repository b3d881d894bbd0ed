//! Following the log as rows commit, for `zt audit tail` and log shippers:
//! a cursor of positions per chain, the rows after it, and a verifier that
//! checks them one at a time.
//!
//! Row ids do not say what a follower has seen: on PostgreSQL an id is handed
//! out when a row is written, and a transaction that audited early may commit
//! after one with a higher id. Positions in a chain do: a chain's head stays
//! locked until the writer commits, and it moves in the same transaction as
//! the row, so a chain's rows up to its head are committed and none can
//! appear below it later.

use std::collections::BTreeMap;
use std::fmt;

use crate::chain::{Chain, GENESIS_MAC};
use crate::error::{Error, ErrorKind, Result};
use crate::log::AuditLog;
use crate::query::{AuditRecord, PageRequest};
use crate::verify::{Finding, TamperKind, record_consistent};

/// Where a follower is: the last position it has of each chain. Its text
/// form, `1:120,7:33`, resumes a follower exactly (`zt audit tail --from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowCursor {
    positions: BTreeMap<i16, i64>,
}

impl FollowCursor {
    /// Before the first row of every chain.
    pub fn start() -> Self {
        Self::default()
    }

    /// The last position of `chain` that the follower has; 0 for none.
    pub fn position(&self, chain: i16) -> i64 {
        self.positions.get(&chain).copied().unwrap_or(0)
    }

    /// Moves past `record`.
    pub fn advance(&mut self, record: &AuditRecord) {
        let position = self.positions.entry(record.chain).or_insert(0);
        *position = (*position).max(record.chain_seq);
    }
}

impl fmt::Display for FollowCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (chain, position) in self.positions.iter().filter(|(_, position)| **position > 0) {
            if !first {
                f.write_str(",")?;
            }
            write!(f, "{chain}:{position}")?;
            first = false;
        }
        if first {
            f.write_str("start")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FollowCursor {
    type Err = Error;

    /// Parses `start`, or `chain:position` pairs separated by commas.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidInput,
                "a cursor is `start` or `chain:position` pairs separated by commas, such as `1:120,7:33`",
            )
        };
        let mut cursor = Self::start();
        if text.trim() == "start" {
            return Ok(cursor);
        }
        for pair in text.split(',') {
            let (chain, position) = pair.trim().split_once(':').ok_or_else(bad)?;
            let chain: i16 = chain.parse().map_err(|_| bad())?;
            let position: i64 = position.parse().map_err(|_| bad())?;
            if chain < 1 || position < 0 || cursor.positions.insert(chain, position).is_some() {
                return Err(bad());
            }
        }
        Ok(cursor)
    }
}

impl AuditLog {
    /// The highest row id, if any row is stored.
    pub fn newest_id(&self) -> Result<Option<i64>> {
        Ok(self.with_store(|store| store.newest_row())?.map(|row| row.id))
    }

    /// A cursor at the current end of every chain: a follower starting here
    /// sees only rows written from now on.
    pub fn cursor_at_end(&self) -> Result<FollowCursor> {
        Ok(FollowCursor {
            positions: self
                .heads()?
                .into_iter()
                .filter(|head| head.seq > 0)
                .map(|head| (head.chain, head.seq))
                .collect(),
        })
    }

    /// A cursor after row `id` in each chain: every chain's last position
    /// among the rows with an id up to `id`. Exact when no audited
    /// transaction was still open when row `id` committed; a [`FollowCursor`]
    /// kept by the follower is exact always.
    pub fn cursor_after_id(&self, id: i64) -> Result<FollowCursor> {
        Ok(FollowCursor {
            positions: self
                .with_store(|store| store.positions_at_id(id))?
                .into_iter()
                .collect(),
        })
    }

    /// Up to `limit` committed rows after `cursor`, oldest id first; `limit`
    /// is clamped to 1..=10 000. Advance the cursor past each row shipped.
    pub fn rows_after(&self, cursor: &FollowCursor, limit: u32) -> Result<Vec<AuditRecord>> {
        let limit = i64::from(limit.clamp(1, PageRequest::MAX_LIMIT));
        let mut rows = Vec::new();
        for head in self.heads()? {
            let after = cursor.position(head.chain);
            if head.seq <= after {
                continue;
            }
            let last = head.seq.min(after.saturating_add(limit));
            // A damaged row is shipped as stored, its damage listed; the
            // verifier refuses it.
            rows.extend(
                self.chain_range(head.chain, after, last)?
                    .into_iter()
                    .map(|row| row.record),
            );
        }
        // Within a chain ids grow with positions, so each chain's rows stay a
        // prefix after its cursor whatever is cut here.
        rows.sort_by_key(|record| record.id);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(rows)
    }

    /// A [`RowVerifier`] for the rows after `cursor`, under this handle's
    /// chain key. It reads the MAC at each chain's cursor position now; if
    /// that row is missing, the verifier's first check of that chain says so.
    pub fn row_verifier(&self, cursor: &FollowCursor) -> Result<RowVerifier> {
        let chain = self.chain()?.clone();
        let mut last = BTreeMap::new();
        for (&chain_id, &position) in &cursor.positions {
            let mac = if position == 0 {
                Some(GENESIS_MAC)
            } else {
                self.with_store(|store| store.mac_at(chain_id, position))?
            };
            last.insert(chain_id, (position, mac));
        }
        Ok(RowVerifier { chain, last })
    }
}

/// Checks rows one at a time as a follower reads them, from a cursor on:
/// each row's MAC against its content, and its link to the row before it in
/// its chain. Build one with [`AuditLog::row_verifier`].
///
/// Unlike [`AuditLog::verify`], it sees no row ahead, so it names the first
/// bad row and whether its content or its link failed, without telling an
/// insertion from a modification.
#[derive(Debug, Clone)]
pub struct RowVerifier {
    chain: Chain,
    /// Each chain's last verified position and its MAC (`None` when that row
    /// is missing).
    last: BTreeMap<i16, (i64, Option<[u8; 32]>)>,
}

impl RowVerifier {
    /// Where the verifier is: the last verified position of each chain.
    pub fn cursor(&self) -> FollowCursor {
        FollowCursor {
            positions: self
                .last
                .iter()
                .map(|(chain, (position, _))| (*chain, *position))
                .collect(),
        }
    }

    /// Checks the next row of its chain.
    pub fn check(&mut self, record: &AuditRecord) -> std::result::Result<(), Finding> {
        let chain = record.chain;
        let (last, last_mac) = self.last.get(&chain).copied().unwrap_or((0, Some(GENESIS_MAC)));
        let expected = last.saturating_add(1);
        let finding = |position, kind, detail: String| Finding {
            chain,
            position,
            kind,
            detail,
        };
        let Some(last_mac) = last_mac else {
            return Err(finding(
                last,
                TamperKind::Deleted,
                format!("position {last} of chain {chain}, the row to continue after, is missing"),
            ));
        };
        if record.chain_seq > expected {
            return Err(finding(
                expected,
                TamperKind::Deleted,
                format!("positions {expected} to {} are missing", record.chain_seq - 1),
            ));
        }
        if record.chain_seq < expected {
            return Err(finding(
                record.chain_seq,
                TamperKind::Reordered,
                format!("position {} came after position {last}", record.chain_seq),
            ));
        }
        if let Some(damage) = record.damaged.first() {
            return Err(finding(
                record.chain_seq,
                TamperKind::Modified,
                format!("{}: {}", damage.field, damage.problem),
            ));
        }
        if !record_consistent(&self.chain, record, 0) {
            return Err(finding(
                record.chain_seq,
                TamperKind::Modified,
                "the row's content does not match its MAC".to_owned(),
            ));
        }
        if record.prev_mac != last_mac {
            return Err(finding(
                record.chain_seq,
                TamperKind::Inserted,
                "the row is not chained to the row before it".to_owned(),
            ));
        }
        self.last.insert(chain, (record.chain_seq, Some(record.mac)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_text_round_trips() {
        let cursor: FollowCursor = "1:120, 7:33".parse().unwrap();
        assert_eq!(
            (cursor.position(1), cursor.position(7), cursor.position(2)),
            (120, 33, 0)
        );
        assert_eq!(cursor.to_string(), "1:120,7:33");
        assert_eq!("start".parse::<FollowCursor>().unwrap(), FollowCursor::start());
        assert_eq!(FollowCursor::start().to_string(), "start");
        for bad in ["", "1", "1:", "x:1", "0:5", "1:-1", "1:2,1:3", "1:2;3:4"] {
            assert!(bad.parse::<FollowCursor>().is_err(), "{bad}");
        }
    }
}
