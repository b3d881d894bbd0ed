//! Retention: archive the oldest rows with a signed checkpoint at the cut,
//! verify the archive on its own, and prune exactly the rows it holds.
//!
//! The cut of each chain is the end of its prefix of rows written before a
//! time: a chain is append-only, so only a prefix can go. A prune is recorded
//! in `audit_prunes` with the last position deleted and its MAC, under a tag
//! keyed with the chain key; verification then starts the chain there, and a
//! prune record that zt did not write is found like any forged row.

use std::io::{BufRead, Write};
use std::net::IpAddr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;
use zt_types::{ActorKind, AuditStatus, Timestamp};

use crate::backend::PruneRecord;
use crate::chain::{Chain, GENESIS_MAC};
use crate::checkpoint::{CHECKPOINT_VERSION, ChainState, Checkpoint, SignedCheckpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::key::ChainKey;
use crate::query::AuditRecord;
use crate::verify::{Finding, TamperKind, VerifyReport, VerifyRow, self_consistent};

/// The archive format: a header line, then one row per line.
pub const ARCHIVE_VERSION: u8 = 1;

const PRUNE_LABEL: &[u8] = b"zt-audit-prune\0";

/// The first line of an archive: what it holds and the checkpoint at its cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveHeader {
    /// [`ARCHIVE_VERSION`].
    pub zt_audit_archive: u8,
    /// The rows are those written before this time, chain by chain.
    pub before: Timestamp,
    /// Where each chain's rows in the archive start from: the position and
    /// MAC of the row before the first one archived (position 0 and the
    /// all-zero MAC for a chain's first row).
    pub start: Vec<ChainState>,
    /// The signed checkpoint at the cut: each chain's last archived position
    /// and MAC. It is what `prune` deletes up to.
    pub checkpoint: SignedCheckpoint,
}

/// One archived row: every stored column, exactly as the MAC covers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ArchivedRow {
    id: i64,
    chain: i16,
    chain_seq: i64,
    chain_version: i16,
    event_id: Uuid,
    created_at: Timestamp,
    actor_kind: ActorKind,
    user_id: Option<String>,
    user_email: Option<String>,
    action: String,
    resource: String,
    resource_id: Option<String>,
    /// The canonical JSON text, as stored: not re-encoded.
    metadata: String,
    client_ip: Option<IpAddr>,
    peer_ip: Option<IpAddr>,
    user_agent: Option<String>,
    status: AuditStatus,
    error_code: Option<String>,
    request_id: Option<String>,
    #[serde(with = "crate::checkpoint::hex_mac")]
    prev_mac: [u8; 32],
    #[serde(with = "crate::checkpoint::hex_mac")]
    mac: [u8; 32],
    /// The commitment kept when the personal fields were erased.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_hex")]
    erased: Option<[u8; 32]>,
}

mod optional_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Option<[u8; 32]>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_some(&hex::encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<[u8; 32]>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|text| {
            hex::decode(&text)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| serde::de::Error::custom("not 32 hex bytes"))
        })
        .transpose()
    }
}

impl From<&AuditRecord> for ArchivedRow {
    fn from(record: &AuditRecord) -> Self {
        Self {
            id: record.id,
            chain: record.chain,
            chain_seq: record.chain_seq,
            chain_version: record.chain_version,
            event_id: record.event_id,
            created_at: record.created_at,
            actor_kind: record.actor_kind,
            user_id: record.user_id.clone(),
            user_email: record.user_email.clone(),
            action: record.action.clone(),
            resource: record.resource.clone(),
            resource_id: record.resource_id.clone(),
            metadata: record.metadata.clone(),
            client_ip: record.client_ip,
            peer_ip: record.peer_ip,
            user_agent: record.user_agent.clone(),
            status: record.status,
            error_code: record.error_code.clone(),
            request_id: record.request_id.clone(),
            prev_mac: record.prev_mac,
            mac: record.mac,
            erased: record.erasure,
        }
    }
}

impl From<ArchivedRow> for VerifyRow {
    fn from(row: ArchivedRow) -> Self {
        VerifyRow::from(AuditRecord {
            id: row.id,
            event_id: row.event_id,
            created_at: row.created_at,
            actor_kind: row.actor_kind,
            user_id: row.user_id,
            user_email: row.user_email,
            action: row.action,
            resource: row.resource,
            resource_id: row.resource_id,
            metadata: row.metadata,
            client_ip: row.client_ip,
            peer_ip: row.peer_ip,
            user_agent: row.user_agent,
            status: row.status,
            error_code: row.error_code,
            request_id: row.request_id,
            chain_version: row.chain_version,
            chain: row.chain,
            chain_seq: row.chain_seq,
            prev_mac: row.prev_mac,
            mac: row.mac,
            damaged: Vec::new(),
            erasure: row.erased,
        })
    }
}

/// What [`crate::AuditLog::archive`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveSummary {
    /// Rows written.
    pub rows: u64,
    /// The header, with the checkpoint at the cut.
    pub header: ArchiveHeader,
}

/// What [`crate::AuditLog::erase_personal_data`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErasureSummary {
    /// Rows whose personal fields were erased now.
    pub erased: u64,
    /// Rows erased before.
    pub already_erased: u64,
    /// Rows written before erasure was possible (chain version below 3),
    /// left as they are: erasing them would break their MAC.
    pub legacy: u64,
}

/// What [`crate::AuditLog::prune`] deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneSummary {
    /// Rows deleted.
    pub rows: u64,
    /// Each chain's new start: its last position deleted.
    pub chains: Vec<ChainState>,
}

/// The tag of a prune record: a MAC, keyed from the chain key, of the chain,
/// the last position deleted and that row's MAC.
pub(crate) fn prune_tag(chain: &Chain, chain_id: i16, seq: i64, mac: &[u8]) -> [u8; 32] {
    let key = chain.derive_key(PRUNE_LABEL);
    let mut tag =
        <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    tag.update(&chain_id.to_be_bytes());
    tag.update(&seq.to_be_bytes());
    tag.update(mac);
    tag.finalize().into_bytes().into()
}

/// Whether `error` says `table` does not exist.
pub(crate) fn is_missing_table(error: &Error, table: &str) -> bool {
    let text = error.to_string();
    text.contains(table) && (text.contains("does not exist") || text.contains("no such table"))
}

/// Each chain's newest prune point, authenticated: `Ok` with the points, or
/// the finding for the first record whose tag does not verify.
pub(crate) fn prune_points(chain: &Chain, records: &[PruneRecord]) -> std::result::Result<Vec<ChainState>, Finding> {
    let mut points: Vec<ChainState> = Vec::new();
    for record in records {
        let genuine = <[u8; 32]>::try_from(record.mac.as_slice())
            .ok()
            .filter(|mac| prune_tag(chain, record.chain, record.seq, mac).as_slice() == record.tag.as_slice());
        let Some(mac) = genuine else {
            return Err(Finding {
                chain: record.chain,
                position: record.seq,
                kind: TamperKind::Inserted,
                detail: format!(
                    "a prune record up to position {} that zt did not write (its tag does not verify): \
                     rows were deleted outside `zt audit prune`",
                    record.seq
                ),
            });
        };
        match points.iter_mut().find(|point| point.chain == record.chain) {
            Some(point) if point.seq < record.seq => {
                point.seq = record.seq;
                point.last_mac = mac;
            }
            Some(_) => {}
            None => points.push(ChainState {
                chain: record.chain,
                seq: record.seq,
                last_mac: mac,
            }),
        }
    }
    Ok(points)
}

impl crate::AuditLog {
    /// Each chain's newest prune point: verification starts after it.
    pub(crate) fn verified_prune_points(&self) -> Result<std::result::Result<Vec<ChainState>, Finding>> {
        let chain = self.chain()?;
        let records = match self.with_store(|store| store.prune_records()) {
            Ok(records) => records,
            // A log migrated before retention existed has never been pruned.
            Err(error) if is_missing_table(&error, "audit_prunes") => Vec::new(),
            Err(error) => return Err(error),
        };
        Ok(prune_points(chain, &records))
    }

    /// Writes the rows written before `before` to `out` as JSON Lines: a
    /// header ([`ArchiveHeader`]) with a checkpoint at the cut signed with
    /// `signing_key`, then each chain's rows from its last prune (or its
    /// start) to the cut, in order. Each row is verified as it is read; a
    /// log that does not verify is not archived.
    pub fn archive(&self, before: Timestamp, signing_key: &SigningKey, out: &mut dyn Write) -> Result<ArchiveSummary> {
        let chain = self.chain()?;
        let starts = self
            .verified_prune_points()?
            .map_err(|finding| Error::new(ErrorKind::Tampered, format!("cannot archive: {finding}")))?;
        let mut chain_ids: Vec<i16> = self.with_store(|store| store.chain_ids())?;
        chain_ids.sort_unstable();
        let mut start = Vec::new();
        let mut cut = Vec::new();
        for &chain_id in &chain_ids {
            let from = starts
                .iter()
                .find(|point| point.chain == chain_id)
                .copied()
                .unwrap_or(ChainState {
                    chain: chain_id,
                    seq: 0,
                    last_mac: GENESIS_MAC,
                });
            let upto = self
                .with_store(|store| store.cut_seq(chain_id, before))?
                .unwrap_or(0)
                .max(from.seq);
            let last_mac = if upto == from.seq {
                from.last_mac
            } else {
                self.with_store(|store| store.mac_at(chain_id, upto))?.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Tampered,
                        format!("cannot archive: chain {chain_id} has no row at position {upto}"),
                    )
                })?
            };
            start.push(from);
            cut.push(ChainState {
                chain: chain_id,
                seq: upto,
                last_mac,
            });
        }
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            seq: 0,
            last_mac: GENESIS_MAC,
            row_count: cut
                .iter()
                .zip(&start)
                .map(|(cut, start)| u64::try_from(cut.seq - start.seq).unwrap_or(0))
                .sum(),
            chains: cut.clone(),
            created_at: Timestamp::now(),
            chain_key_id: self.key_id().to_owned(),
        }
        .sign(signing_key);
        let header = ArchiveHeader {
            zt_audit_archive: ARCHIVE_VERSION,
            before,
            start: start.clone(),
            checkpoint,
        };
        let io = |e: std::io::Error| Error::new(ErrorKind::Io, "cannot write the archive").with_source(e);
        serde_json::to_writer(&mut *out, &header).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
        let mut rows = 0u64;
        for (from, to) in start.iter().zip(&cut) {
            let mut expected = from.seq + 1;
            let mut prev_mac = from.last_mac;
            let mut after = from.seq;
            while after < to.seq {
                let upto = after.saturating_add(5_000).min(to.seq);
                for row in self.chain_range(to.chain, after, upto)? {
                    if row.seq != expected || row.prev_mac != prev_mac || !self_consistent(chain, &row, 0) {
                        return Err(Error::new(
                            ErrorKind::Tampered,
                            format!(
                                "cannot archive: chain {} position {expected} does not verify; run `zt audit verify`",
                                to.chain
                            ),
                        ));
                    }
                    serde_json::to_writer(&mut *out, &ArchivedRow::from(&row.record)).map_err(|e| io(e.into()))?;
                    out.write_all(b"\n").map_err(io)?;
                    prev_mac = row.mac;
                    expected += 1;
                    rows += 1;
                }
                after = upto;
            }
            if expected - 1 != to.seq || prev_mac != to.last_mac {
                return Err(Error::new(
                    ErrorKind::Tampered,
                    format!("cannot archive: chain {} ends before position {}", to.chain, to.seq),
                ));
            }
        }
        out.flush().map_err(io)?;
        Ok(ArchiveSummary { rows, header })
    }

    /// Deletes the rows an archive holds: each chain up to the position its
    /// checkpoint states, through the one path the append-only triggers
    /// allow, and records the prune as an audit event (`AUDIT_PRUNE`). The
    /// checkpoint must verify with `trusted`, and each chain's row at the cut
    /// must still be the one it states, so only rows that were archived go.
    ///
    /// Verification then starts each chain after the cut; the rows left are
    /// checked as before.
    pub fn prune(&self, header: &ArchiveHeader, trusted: &VerifyingKey) -> Result<PruneSummary> {
        let chain = self.chain()?;
        let statement = header.checkpoint.verify(trusted)?;
        let starts = self
            .verified_prune_points()?
            .map_err(|finding| Error::new(ErrorKind::Tampered, format!("cannot prune: {finding}")))?;
        let mut plan = Vec::new();
        for state in statement.heads() {
            let pruned = starts
                .iter()
                .find(|point| point.chain == state.chain)
                .map_or(0, |point| point.seq);
            if state.seq < pruned || state.seq == 0 {
                continue;
            }
            // Pruned before: its leftover rows, if a run stopped half way, go now.
            if state.seq > pruned {
                let stored = self.with_store(|store| store.mac_at(state.chain, state.seq))?;
                if stored != Some(state.last_mac) {
                    return Err(Error::new(
                        ErrorKind::Checkpoint,
                        format!(
                            "cannot prune: chain {} position {} is not the row the archive's checkpoint states",
                            state.chain, state.seq
                        ),
                    ));
                }
            }
            plan.push(state);
        }
        let at = Timestamp::now();
        // First every prune is recorded, so that whole partitions of pruned
        // rows can go at once; then the rows left in other partitions.
        for state in &plan {
            let record = PruneRecord {
                chain: state.chain,
                seq: state.seq,
                mac: state.last_mac.to_vec(),
                tag: prune_tag(chain, state.chain, state.seq, &state.last_mac).to_vec(),
            };
            self.with_store(|store| store.record_prune(&record, at))?;
        }
        let mut rows = self.with_store(|store| store.drop_pruned_partitions(header.before))?;
        for state in &plan {
            rows += self.with_store(|store| store.delete_pruned(state.chain, state.seq))?;
        }
        if rows == 0 {
            return Ok(PruneSummary {
                rows,
                chains: Vec::new(),
            });
        }
        let metadata = serde_json::json!({
            "rows": rows,
            "before": header.before.to_string(),
            "chains": plan.iter().map(|state| serde_json::json!({"chain": state.chain, "upto": state.seq})).collect::<Vec<_>>(),
        });
        let event = zt_types::AuditEvent::builder(zt_types::Actor::System, "AUDIT_PRUNE", "audit_logs")
            .metadata(&metadata)
            .status(AuditStatus::Success)
            .build()?;
        self.record(&event)?;
        Ok(PruneSummary { rows, chains: plan })
    }
}

impl crate::AuditLog {
    /// Erases the personal data of `user_id` from the log: in each of the
    /// user's rows, the email, the metadata, the client and peer IPs and the
    /// user agent. The user id, the action, the resource, the time and the
    /// outcome stay, and every erased row still verifies: its MAC (chain
    /// version 3) covers those fields through a keyed commitment, which is
    /// kept in `audit_erasures`. Records the erasure as an `AUDIT_ERASE`
    /// event.
    ///
    /// A row that does not verify is not erased (`Tampered`): erasing would
    /// hide the tampering. Rows written before version 3 are left and counted
    /// in [`ErasureSummary::legacy`]; archive and prune them to remove them.
    pub fn erase_personal_data(&self, user_id: &str) -> Result<ErasureSummary> {
        let chain = self.chain()?;
        let mut positions = Vec::new();
        self.for_each(&crate::AuditFilter::new().user(user_id), |record| {
            positions.push((record.chain, record.chain_seq));
            Ok(())
        })?;
        let mut summary = ErasureSummary {
            erased: 0,
            already_erased: 0,
            legacy: 0,
        };
        let at = Timestamp::now();
        for (chain_id, seq) in positions {
            let Some(row) = self.chain_range(chain_id, seq - 1, seq)?.into_iter().next() else {
                continue;
            };
            if row.record.is_erased() {
                summary.already_erased += 1;
                continue;
            }
            if row.record.chain_version < crate::chain::ERASABLE_VERSION {
                summary.legacy += 1;
                continue;
            }
            if !self_consistent(chain, &row, 0) {
                return Err(Error::new(
                    ErrorKind::Tampered,
                    format!(
                        "cannot erase row {} (chain {chain_id} position {seq}): it does not verify, and erasing \
                         it would hide that; run `zt audit verify`",
                        row.id
                    ),
                ));
            }
            let commitment = chain.personal_commitment(&crate::verify::fields_of(&row.record));
            self.with_store(|store| store.erase(chain_id, seq, &commitment, at))?;
            summary.erased += 1;
        }
        let event = zt_types::AuditEvent::builder(zt_types::Actor::System, "AUDIT_ERASE", "audit_logs")
            .resource_id(user_id)
            .metadata(&serde_json::json!({
                "erased": summary.erased,
                "already_erased": summary.already_erased,
                "legacy": summary.legacy,
            }))
            .status(AuditStatus::Success)
            .build()?;
        self.record(&event)?;
        Ok(summary)
    }
}

impl crate::AuditLog {
    /// Partitions `audit_logs` by month on PostgreSQL, once (moving the rows
    /// in one transaction that holds the table: run it at a quiet time), and
    /// makes sure this month's partition and the `months_ahead` next exist.
    /// Run it monthly, such as from cron with `zt audit partition`: a row of a
    /// month without a partition lands in the default partition, which is
    /// never dropped. [`AuditLog::prune`](crate::AuditLog::prune) then drops
    /// whole months whose rows are all pruned. Returns the partitions created.
    ///
    /// Grants on the table are carried over. On SQLite it is `InvalidInput`.
    pub fn partition_by_month(&self, months_ahead: u32) -> Result<Vec<String>> {
        self.with_store(|store| store.partition_by_month(months_ahead.min(120)))
    }
}

/// Verifies an archive on its own: the checkpoint's signature with
/// `trusted`, then each chain's rows from its stated start to the cut, each
/// MAC with `key`. Reads one line at a time, so memory stays bounded.
pub fn verify_archive(
    reader: impl BufRead,
    key: &ChainKey,
    trusted: &VerifyingKey,
) -> Result<(ArchiveHeader, VerifyReport)> {
    let chain = Chain::new(key);
    let mut lines = reader.lines();
    let bad = |why: String| Error::new(ErrorKind::Checkpoint, format!("not a zt audit archive: {why}"));
    let first = lines
        .next()
        .ok_or_else(|| bad("it is empty".to_owned()))?
        .map_err(|e| bad(e.to_string()))?;
    let header: ArchiveHeader = serde_json::from_str(&first).map_err(|e| bad(format!("its header: {e}")))?;
    if header.zt_audit_archive != ARCHIVE_VERSION {
        return Err(bad(format!(
            "format {} is not {ARCHIVE_VERSION}",
            header.zt_audit_archive
        )));
    }
    let mut report = VerifyReport {
        rows_checked: 0,
        chains_checked: 0,
        checkpoint_checked: true,
        from_checkpoint: false,
        finding: None,
    };
    let found = |report: &mut VerifyReport, chain: i16, position: i64, kind, detail: String| {
        report.finding = Some(Finding {
            chain,
            position,
            kind,
            detail,
        });
    };
    let cut = match header.checkpoint.verify(trusted) {
        Ok(statement) => statement.heads(),
        Err(error) => {
            found(&mut report, 1, 0, TamperKind::BadCheckpointSignature, error.to_string());
            return Ok((header, report));
        }
    };
    // Where each chain stands: the next position expected and the MAC before it.
    let mut at: Vec<(i16, i64, [u8; 32])> = header
        .start
        .iter()
        .map(|state| (state.chain, state.seq + 1, state.last_mac))
        .collect();
    for (number, line) in lines.enumerate() {
        let line = line.map_err(|e| bad(e.to_string()))?;
        let row: ArchivedRow = match serde_json::from_str(&line) {
            Ok(row) => row,
            Err(error) => {
                found(
                    &mut report,
                    0,
                    0,
                    TamperKind::Modified,
                    format!("line {} is not an archived row: {error}", number + 2),
                );
                return Ok((header, report));
            }
        };
        let row = VerifyRow::from(row);
        report.rows_checked += 1;
        let Some(place) = at.iter_mut().find(|(chain, _, _)| *chain == row.chain) else {
            found(
                &mut report,
                row.chain,
                row.seq,
                TamperKind::Inserted,
                format!("chain {} has no start in the header", row.chain),
            );
            return Ok((header, report));
        };
        let (kind, detail) = if row.seq != place.1 {
            (
                TamperKind::Deleted,
                format!("position {} follows {}", row.seq, place.1 - 1),
            )
        } else if !self_consistent(&chain, &row, 0) {
            (
                TamperKind::Modified,
                "the row's content does not match its MAC".to_owned(),
            )
        } else if row.prev_mac != place.2 {
            (
                TamperKind::Reordered,
                "the row is intact but not chained to the row before it".to_owned(),
            )
        } else {
            place.1 += 1;
            place.2 = row.mac;
            continue;
        };
        found(&mut report, row.chain, row.seq, kind, detail);
        return Ok((header, report));
    }
    for state in cut {
        let (next, mac) = at
            .iter()
            .find(|(chain, _, _)| *chain == state.chain)
            .map_or((1, GENESIS_MAC), |(_, next, mac)| (*next, *mac));
        if next - 1 != state.seq || mac != state.last_mac {
            found(
                &mut report,
                state.chain,
                next,
                TamperKind::TruncatedAfterCheckpoint,
                format!(
                    "the checkpoint ends chain {} at position {} but the archive at {}",
                    state.chain,
                    state.seq,
                    next - 1
                ),
            );
            return Ok((header, report));
        }
        if state.seq > 0 {
            report.chains_checked += 1;
        }
    }
    Ok((header, report))
}
