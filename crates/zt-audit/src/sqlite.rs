//! The SQLite backend.

use std::collections::HashSet;

use diesel::deserialize::FromSql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::{Sqlite, SqliteValue};
use uuid::Uuid;
use zt_types::{AuditEvent, Timestamp};

use crate::backend::{Head, PruneRecord, Recorded, Scope, Store, Target};
use crate::chain::{Chain, ChainFields, GENESIS_MAC};
use crate::error::{Error, ErrorKind, Result};
use crate::ip_key::{ip_key, ip_key_range};
use crate::query::{AuditFilter, AuditRecord, Cursor, Order, Page, PageRequest};
use crate::schema::sqlite::{audit_chain_head, audit_erasures, audit_logs, audit_prunes};
use crate::stored::{Decoder, RawText, excerpt};
use crate::verify::VerifyRow;

/// One row as stored: text as bytes, and every column zt always writes read
/// as nullable, so that a NULL written by someone who dropped a constraint
/// is a damaged field, not a failed query. [`Row::decode`] makes sense of it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_logs)]
#[diesel(check_for_backend(Sqlite))]
struct Row {
    id: i64,
    #[diesel(select_expression = audit_logs::event_id.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::event_id>)]
    event_id: Option<RawText>,
    #[diesel(select_expression = audit_logs::created_at.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::created_at>)]
    created_at: Option<RawText>,
    #[diesel(select_expression = audit_logs::actor_kind.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::actor_kind>)]
    actor_kind: Option<RawText>,
    user_id: Option<RawText>,
    user_email: Option<RawText>,
    #[diesel(select_expression = audit_logs::action.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::action>)]
    action: Option<RawText>,
    #[diesel(select_expression = audit_logs::resource.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::resource>)]
    resource: Option<RawText>,
    resource_id: Option<RawText>,
    #[diesel(select_expression = audit_logs::metadata.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::metadata>)]
    metadata: Option<RawText>,
    client_ip: Option<RawText>,
    client_ip_bin: Option<Vec<u8>>,
    peer_ip: Option<RawText>,
    user_agent: Option<RawText>,
    #[diesel(select_expression = audit_logs::status.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::status>)]
    status: Option<RawText>,
    error_code: Option<RawText>,
    request_id: Option<RawText>,
    #[diesel(select_expression = audit_logs::chain_version.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::chain_version>)]
    chain_version: Option<i16>,
    #[diesel(select_expression = audit_logs::prev_mac.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::prev_mac>)]
    prev_mac: Option<Vec<u8>>,
    #[diesel(select_expression = audit_logs::mac.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::mac>)]
    mac: Option<Vec<u8>>,
    #[diesel(select_expression = audit_logs::chain_id.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::chain_id>)]
    chain_id: Option<i16>,
    #[diesel(select_expression = audit_logs::chain_seq.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::chain_seq>)]
    chain_seq: Option<i64>,
}

/// SQLite text as the bytes stored, valid UTF-8 or not.
impl FromSql<Text, Sqlite> for RawText {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> diesel::deserialize::Result<Self> {
        Ok(Self(value.read_blob().to_vec()))
    }
}

/// An `event_id` stored as text: a UUID in its lowercase,
/// hyphenated form, or the nil UUID as a stand-in.
fn uuid_text(d: &mut Decoder, text: &str) -> uuid::Uuid {
    match uuid::Uuid::parse_str(text) {
        Ok(uuid) => {
            d.noncanonical("event_id", text, &uuid.hyphenated().to_string());
            uuid
        }
        Err(_) => {
            d.damage("event_id", format!("event_id {} is not a UUID", excerpt(text)));
            uuid::Uuid::nil()
        }
    }
}

/// An address stored as text, in the form Rust prints it.
fn ip_text(d: &mut Decoder, field: &'static str, text: Option<&str>) -> Option<std::net::IpAddr> {
    let text = text?;
    match text.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            d.noncanonical(field, text, &ip.to_string());
            Some(ip)
        }
        Err(_) => {
            d.damage(field, format!("{field} {} is not an IP address", excerpt(text)));
            None
        }
    }
}

fn mac_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

impl Row {
    /// Decodes the row, moving its strings. Whatever is not what zt writes
    /// (bytes that are not UTF-8, a time or an address in another text form,
    /// a derived range key that disagrees with its address) is named in
    /// [`AuditRecord::damaged`]; the row is never refused.
    fn decode(self) -> AuditRecord {
        let mut d = Decoder::default();
        let event_id = d.text("event_id", self.event_id);
        let event_id = uuid_text(&mut d, &event_id);
        let created_at_text = d.text("created_at", self.created_at);
        let created_at = match created_at_text.parse::<Timestamp>() {
            Ok(at) => {
                d.noncanonical("created_at", &created_at_text, &at.to_string());
                at
            }
            Err(_) => {
                d.damage(
                    "created_at",
                    format!("created_at {} is not a time", excerpt(&created_at_text)),
                );
                Timestamp::from_unix_micros(0).unwrap_or_else(|_| Timestamp::now())
            }
        };
        let actor_kind = d.text("actor_kind", self.actor_kind);
        let actor_kind = d.actor_kind(&actor_kind);
        let client_ip = d.optional_text("client_ip", self.client_ip);
        let client_ip = ip_text(&mut d, "client_ip", client_ip.as_deref());
        // The derived range key must agree with the address it is derived from.
        if self.client_ip_bin.as_deref() != client_ip.map(ip_key).as_ref().map(|key| &key[..]) {
            d.damage("client_ip_bin", "client_ip_bin does not match client_ip");
        }
        let peer_ip = d.optional_text("peer_ip", self.peer_ip);
        let peer_ip = ip_text(&mut d, "peer_ip", peer_ip.as_deref());
        let status = d.text("status", self.status);
        let status = d.status(&status);
        AuditRecord {
            id: self.id,
            event_id,
            created_at,
            actor_kind,
            user_id: d.optional_text("user_id", self.user_id),
            user_email: d.optional_text("user_email", self.user_email),
            action: d.text("action", self.action),
            resource: d.text("resource", self.resource),
            resource_id: d.optional_text("resource_id", self.resource_id),
            metadata: d.text("metadata", self.metadata),
            client_ip,
            peer_ip,
            user_agent: d.optional_text("user_agent", self.user_agent),
            status,
            error_code: d.optional_text("error_code", self.error_code),
            request_id: d.optional_text("request_id", self.request_id),
            chain_version: d.integer("chain_version", self.chain_version),
            chain: d.integer("chain_id", self.chain_id),
            chain_seq: d.integer("chain_seq", self.chain_seq),
            prev_mac: d.mac("prev_mac", self.prev_mac),
            mac: d.mac("mac", self.mac),
            damaged: d.finish(),
            erasure: None,
        }
    }

    fn into_verify_row(self) -> VerifyRow {
        VerifyRow::from(self.decode())
    }
}

fn decode_record(row: Row) -> AuditRecord {
    row.decode()
}

/// Every column is always bound (NULL, not DEFAULT), so the insert is one
/// statement that diesel prepares once and caches.
#[derive(Insertable)]
#[diesel(table_name = audit_logs)]
#[diesel(treat_none_as_default_value = false)]
struct NewRow<'a> {
    id: i64,
    event_id: &'a str,
    created_at: &'a str,
    actor_kind: &'a str,
    user_id: Option<&'a str>,
    user_email: Option<&'a str>,
    action: &'a str,
    resource: &'a str,
    resource_id: Option<&'a str>,
    metadata: &'a str,
    client_ip: Option<&'a str>,
    client_ip_bin: Option<&'a [u8]>,
    peer_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    status: &'a str,
    error_code: Option<&'a str>,
    request_id: Option<&'a str>,
    chain_version: i16,
    prev_mac: &'a [u8],
    mac: &'a [u8],
    chain_id: i16,
    chain_seq: i64,
}

/// The chain an append goes to. SQLite lets one writer in at a time, so
/// spreading writers over chains gains nothing: they share chain 1 unless the
/// app pins a chain of its own.
fn chain_of(target: Target) -> i16 {
    match target {
        Target::Any { .. } => 1,
        Target::Chain(chain) => chain,
    }
}

/// Reserves `count` positions of `chain` by moving its head's `seq`, which
/// also takes SQLite's write lock; returns the head before the move and the
/// first free row id. Creates the head on the chain's first append.
fn reserve(conn: &mut SqliteConnection, chain: i16, count: i64) -> Result<(Head, i64)> {
    let moved: Option<(i64, Vec<u8>)> =
        diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(i64::from(chain))))
            .set(audit_chain_head::seq.eq(audit_chain_head::seq + count))
            .returning((audit_chain_head::seq, audit_chain_head::mac))
            .get_result(conn)
            .optional()?;
    let (seq, mac) = match moved {
        Some(moved) => moved,
        None => {
            diesel::insert_into(audit_chain_head::table)
                .values((
                    audit_chain_head::id.eq(i64::from(chain)),
                    audit_chain_head::seq.eq(count),
                    audit_chain_head::mac.eq(&GENESIS_MAC[..]),
                ))
                .execute(conn)?;
            (count, GENESIS_MAC.to_vec())
        }
    };
    let mac = mac_bytes(&mac)
        .ok_or_else(|| Error::new(ErrorKind::Decode, format!("chain {chain}'s head MAC is not 32 bytes")))?;
    let last_id: Option<i64> = audit_logs::table.select(diesel::dsl::max(audit_logs::id)).first(conn)?;
    Ok((
        Head {
            chain,
            seq: seq - count,
            mac,
        },
        last_id.unwrap_or(0) + 1,
    ))
}

fn set_head_mac(conn: &mut SqliteConnection, chain: i16, mac: &[u8; 32]) -> Result<()> {
    diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(i64::from(chain))))
        .set(audit_chain_head::mac.eq(&mac[..]))
        .execute(conn)?;
    Ok(())
}

/// Appends one event to `target`'s chain inside a transaction of its own,
/// or a savepoint of the caller's. Moving the head first takes the write
/// lock, so concurrent writers, in any process, queue instead of forking the
/// chain.
pub(crate) fn append(
    conn: &mut SqliteConnection,
    chain: &Chain,
    event: &AuditEvent,
    immediate: bool,
    target: Target,
) -> Result<Recorded> {
    let body = |conn: &mut SqliteConnection| -> Result<Recorded> {
        let (head, id) = reserve(conn, chain_of(target), 1)?;
        let row = Prepared::next(chain, head, event);
        diesel::insert_into(audit_logs::table)
            .values(row.new_row(id))
            .execute(conn)?;
        set_head_mac(conn, head.chain, &row.mac)?;
        Ok(Recorded {
            id,
            chain: head.chain,
            seq: row.fields.seq,
            mac: row.mac,
            duplicate: false,
        })
    };
    if immediate {
        conn.immediate_transaction(body)
    } else {
        conn.transaction(body)
    }
}

/// The row of an event already stored, for idempotent replays.
pub(crate) fn find_event(conn: &mut SqliteConnection, event_id: &Uuid) -> Result<Option<Recorded>> {
    let found: Option<(i64, i16, i64, Vec<u8>)> = audit_logs::table
        .filter(audit_logs::event_id.eq(event_id.to_string()))
        .select((
            audit_logs::id,
            audit_logs::chain_id,
            audit_logs::chain_seq,
            audit_logs::mac,
        ))
        .first(conn)
        .optional()?;
    Ok(found.map(|(id, chain, seq, mac)| Recorded {
        id,
        chain,
        seq,
        mac: mac_bytes(&mac).unwrap_or_default(),
        duplicate: true,
    }))
}

/// Appends `events` to `target`'s chain in one immediate transaction. With
/// `dedupe`, events already stored are skipped; without it they fail the
/// batch with a unique violation, and the caller retries with it.
pub(crate) fn append_batch(
    conn: &mut SqliteConnection,
    chain: &Chain,
    events: &[AuditEvent],
    dedupe: bool,
    target: Target,
) -> Result<(Vec<Recorded>, Head)> {
    conn.immediate_transaction(|conn| {
        let stored: HashSet<String> = if dedupe {
            let ids: Vec<String> = events.iter().map(|event| event.event_id().to_string()).collect();
            audit_logs::table
                .filter(audit_logs::event_id.eq_any(&ids))
                .select(audit_logs::event_id)
                .load(conn)?
                .into_iter()
                .collect()
        } else {
            HashSet::new()
        };
        // An event repeated within the batch is stored once, at its first place.
        let mut seen = HashSet::with_capacity(events.len());
        let first_places: Vec<bool> = events
            .iter()
            .map(|event| {
                let id = event.event_id().uuid();
                seen.insert(id) && (stored.is_empty() || !stored.contains(&event.event_id().to_string()))
            })
            .collect();
        let fresh: Vec<&AuditEvent> = events
            .iter()
            .zip(&first_places)
            .filter_map(|(event, &first)| first.then_some(event))
            .collect();
        let (start, first_id) = reserve(conn, chain_of(target), i64::try_from(fresh.len()).unwrap_or(i64::MAX))?;
        let mut head = start;
        let mut recorded = Vec::with_capacity(events.len());
        // SQLite inserts on this thread; a large batch is chained and
        // encoded on a second one meanwhile, so its MACs cost no time here.
        std::thread::scope(|scope| -> Result<()> {
            let mut prepared: Box<dyn Iterator<Item = Prepared<'_>>> = if fresh.len() >= PREPARE_AHEAD {
                // Handed over in chunks: a wake-up per row would cost more
                // than the row's MAC.
                let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<Prepared<'_>>>(4);
                let fresh = &fresh;
                scope.spawn(move || {
                    let mut rows = Prepared::chain(chain, start, fresh).peekable();
                    while rows.peek().is_some() {
                        let chunk: Vec<Prepared<'_>> = rows.by_ref().take(PREPARE_AHEAD).collect();
                        if sender.send(chunk).is_err() {
                            return;
                        }
                    }
                });
                Box::new(receiver.into_iter().flatten())
            } else {
                Box::new(Prepared::chain(chain, start, &fresh))
            };
            for (event, first) in events.iter().zip(first_places) {
                let row = if first { prepared.next() } else { None };
                let Some(row) = row else {
                    let found = find_event(conn, event.event_id().as_uuid())?;
                    recorded.push(found.unwrap_or(Recorded {
                        id: 0,
                        chain: 0,
                        seq: 0,
                        mac: [0; 32],
                        duplicate: true,
                    }));
                    continue;
                };
                let id = first_id + (row.fields.seq - start.seq - 1);
                diesel::insert_into(audit_logs::table)
                    .values(row.new_row(id))
                    .execute(conn)?;
                recorded.push(Recorded {
                    id,
                    chain: start.chain,
                    seq: row.fields.seq,
                    mac: row.mac,
                    duplicate: false,
                });
                head = Head {
                    chain: start.chain,
                    seq: row.fields.seq,
                    mac: row.mac,
                };
            }
            Ok(())
        })?;
        if !fresh.is_empty() {
            set_head_mac(conn, head.chain, &head.mac)?;
        }
        Ok((recorded, head))
    })
}

/// From how many new events a batch is chained on a second thread, and how
/// many rows it hands over at a time.
const PREPARE_AHEAD: usize = 256;

/// One new row, chained and encoded, waiting for its insert.
struct Prepared<'a> {
    /// What the MAC covers, and what the row stores as text.
    fields: ChainFields<'a>,
    prev_mac: [u8; 32],
    mac: [u8; 32],
    event_id: String,
    created_at: String,
    client_ip: Option<String>,
    client_ip_bin: Option<Vec<u8>>,
    peer_ip: Option<String>,
}

impl<'a> Prepared<'a> {
    /// `event` chained right after `head`.
    fn next(chain: &Chain, head: Head, event: &'a AuditEvent) -> Self {
        let fields = ChainFields::of_event(event, head.chain, head.seq + 1);
        let mac = chain.mac(&fields, &head.mac);
        Self {
            fields,
            prev_mac: head.mac,
            mac,
            event_id: event.event_id().to_string(),
            created_at: event.created_at().to_string(),
            client_ip: fields.client_ip.map(|ip| ip.to_string()),
            client_ip_bin: fields.client_ip.map(|ip| ip_key(ip).to_vec()),
            peer_ip: fields.peer_ip.map(|ip| ip.to_string()),
        }
    }

    /// `events` chained one after the other from `start`.
    fn chain(chain: &'a Chain, start: Head, events: &'a [&'a AuditEvent]) -> impl Iterator<Item = Self> + 'a {
        let mut head = start;
        events.iter().map(move |event| {
            let row = Self::next(chain, head, event);
            head = Head {
                chain: row.fields.chain,
                seq: row.fields.seq,
                mac: row.mac,
            };
            row
        })
    }

    fn new_row(&self, id: i64) -> NewRow<'_> {
        let fields = &self.fields;
        NewRow {
            id,
            chain_id: fields.chain,
            chain_seq: fields.seq,
            event_id: &self.event_id,
            created_at: &self.created_at,
            actor_kind: fields.actor_kind,
            user_id: fields.user_id,
            user_email: fields.user_email,
            action: fields.action,
            resource: fields.resource,
            resource_id: fields.resource_id,
            metadata: fields.metadata,
            client_ip: self.client_ip.as_deref(),
            client_ip_bin: self.client_ip_bin.as_deref(),
            peer_ip: self.peer_ip.as_deref(),
            user_agent: fields.user_agent,
            status: fields.status,
            error_code: fields.error_code,
            request_id: fields.request_id,
            chain_version: fields.version,
            prev_mac: &self.prev_mac,
            mac: &self.mac,
        }
    }
}

/// A chain head's id as this backend stores it.
type HeadId = i64;

/// Empties the personal fields of one row, as erasure does.
fn empty_personal_fields(conn: &mut SqliteConnection, chain_id: i16, seq: i64) -> Result<usize> {
    Ok(diesel::update(
        audit_logs::table
            .filter(audit_logs::chain_id.eq(chain_id))
            .filter(audit_logs::chain_seq.eq(seq)),
    )
    .set((
        audit_logs::user_email.eq(None::<String>),
        audit_logs::metadata.eq("{}"),
        audit_logs::client_ip.eq(None::<String>),
        audit_logs::client_ip_bin.eq(None::<Vec<u8>>),
        audit_logs::peer_ip.eq(None::<String>),
        audit_logs::user_agent.eq(None::<String>),
    ))
    .execute(conn)?)
}

/// A time as this backend stores it: the fixed-width text, which sorts in time order.
fn db_time(at: Timestamp) -> String {
    at.to_string()
}

/// The 16-byte client address inside the network's range.
fn filter_ip<'a>(query: Boxed<'a>, network: ipnetwork::IpNetwork) -> Boxed<'a> {
    let (low, high) = ip_key_range(network);
    query.filter(audit_logs::client_ip_bin.between(low.to_vec(), high.to_vec()))
}

/// The columns read back.
type Selection = diesel::dsl::AsSelect<Row, Sqlite>;

fn selection() -> Selection {
    Row::as_select()
}

crate::shared_sql::shared_queries!(conn = SqliteConnection, backend = Sqlite);

/// The rows of `chain_id` at positions `after + 1 ..= last`, in chain order.
fn chain_range(conn: &mut SqliteConnection, chain_id: i16, after: i64, last: i64) -> Result<Vec<VerifyRow>> {
    chain_range_by_query(conn, chain_id, after, last)
}

impl Store for SqliteConnection {
    fn append(
        &mut self,
        chain: &Chain,
        event: &AuditEvent,
        _hint: Option<Head>,
        scope: Scope,
        target: Target,
    ) -> Result<Recorded> {
        // SQLite's write lock serializes appends, so a hint saves nothing.
        append(self, chain, event, scope == Scope::Own, target)
    }

    crate::shared_sql::delegated_store_methods!();

    fn drop_pruned_partitions(&mut self, _before: Timestamp) -> Result<u64> {
        // SQLite has no partitions: pruned rows are deleted one by one.
        Ok(0)
    }

    fn partition_by_month(&mut self, _months_ahead: u32) -> Result<Vec<String>> {
        Err(Error::new(
            ErrorKind::InvalidInput,
            "partitions are PostgreSQL's; a SQLite log prunes by deleting rows",
        ))
    }

    fn ensure_chains(&mut self, _chains: i16) -> Result<()> {
        // Unpinned writers share chain 1, which the migration creates.
        Ok(())
    }
}
