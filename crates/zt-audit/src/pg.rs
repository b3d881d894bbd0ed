//! The PostgreSQL backend.

use std::collections::HashSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel::data_types::PgTimestamp;
use diesel::deserialize::FromSql;
use diesel::dsl::sql;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Bytea, Inet, Jsonb, Nullable, SmallInt, Text, Timestamptz};
use ipnetwork::IpNetwork;
use uuid::Uuid;
use zt_types::AuditEvent;

use crate::backend::{Head, PruneRecord, Recorded, Scope, Store, Target};
use crate::chain::{Chain, ChainFields};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{AuditFilter, AuditRecord, Cursor, Order, Page, PageRequest};
use crate::schema::pg::{audit_chain_head, audit_erasures, audit_logs, audit_prunes};
use crate::stored::{Decoder, RawText};
use crate::verify::VerifyRow;

/// The columns read back.
type Selection = diesel::dsl::AsSelect<Row, Pg>;

fn selection() -> Selection {
    Row::as_select()
}

/// One row as stored: text as bytes, the time as PostgreSQL's microseconds
/// (so that `infinity` or a year past 9999 is a damaged field, not a failed
/// query), and every column zt always writes read as nullable.
/// [`Row::decode`] makes sense of it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_logs)]
#[diesel(check_for_backend(Pg))]
pub(crate) struct Row {
    pub(crate) id: i64,
    #[diesel(select_expression = audit_logs::event_id.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::event_id>)]
    pub(crate) event_id: Option<Uuid>,
    #[diesel(select_expression = audit_logs::created_at.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::created_at>)]
    pub(crate) created_at: Option<PgTimestamp>,
    #[diesel(select_expression = audit_logs::actor_kind.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::actor_kind>)]
    pub(crate) actor_kind: Option<RawText>,
    pub(crate) user_id: Option<RawText>,
    pub(crate) user_email: Option<RawText>,
    #[diesel(select_expression = audit_logs::action.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::action>)]
    pub(crate) action: Option<RawText>,
    #[diesel(select_expression = audit_logs::resource.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::resource>)]
    pub(crate) resource: Option<RawText>,
    pub(crate) resource_id: Option<RawText>,
    /// jsonb's own text, which is the canonical form the MAC covers.
    #[diesel(select_expression = sql::<Nullable<Text>>("metadata::text"))]
    #[diesel(select_expression_type = diesel::expression::SqlLiteral<Nullable<Text>>)]
    pub(crate) metadata: Option<RawText>,
    pub(crate) client_ip: Option<IpNetwork>,
    pub(crate) peer_ip: Option<IpNetwork>,
    pub(crate) user_agent: Option<RawText>,
    #[diesel(select_expression = audit_logs::status.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::status>)]
    pub(crate) status: Option<RawText>,
    pub(crate) error_code: Option<RawText>,
    pub(crate) request_id: Option<RawText>,
    #[diesel(select_expression = audit_logs::chain_version.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::chain_version>)]
    pub(crate) chain_version: Option<i16>,
    #[diesel(select_expression = audit_logs::prev_mac.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::prev_mac>)]
    pub(crate) prev_mac: Option<Vec<u8>>,
    #[diesel(select_expression = audit_logs::mac.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::mac>)]
    pub(crate) mac: Option<Vec<u8>>,
    #[diesel(select_expression = audit_logs::chain_id.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::chain_id>)]
    pub(crate) chain_id: Option<i16>,
    #[diesel(select_expression = audit_logs::chain_seq.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<audit_logs::chain_seq>)]
    pub(crate) chain_seq: Option<i64>,
}

/// PostgreSQL text as the bytes sent, valid UTF-8 or not (a `SQL_ASCII`
/// database stores any bytes).
impl FromSql<Text, Pg> for RawText {
    fn from_sql(value: PgValue<'_>) -> diesel::deserialize::Result<Self> {
        Ok(Self(value.as_bytes().to_vec()))
    }
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// An address stored as inet: a host address, not a network.
fn host(d: &mut Decoder, field: &'static str, stored: Option<IpNetwork>) -> Option<IpAddr> {
    let network = stored?;
    let full = if network.is_ipv4() { 32 } else { 128 };
    if network.prefix() != full {
        d.noncanonical(field, &network.to_string(), &network.ip().to_string());
    }
    Some(network.ip())
}

impl Row {
    /// Decodes the row, moving its strings. Whatever is not what zt writes
    /// (bytes that are not UTF-8, a time out of range, a status in another
    /// spelling, an address with a network prefix) is named in
    /// [`AuditRecord::damaged`]; the row is never refused.
    fn decode(self) -> AuditRecord {
        let mut d = Decoder::default();
        let event_id = self.event_id.unwrap_or_else(|| {
            d.damage("event_id", "event_id is NULL");
            Uuid::nil()
        });
        let created_at = match self.created_at {
            Some(PgTimestamp(pg)) => pg
                .checked_add(PG_EPOCH_MICROS)
                .and_then(|micros| zt_types::Timestamp::from_unix_micros(micros).ok())
                .unwrap_or_else(|| {
                    let stored = match pg {
                        i64::MAX => "infinity".to_owned(),
                        i64::MIN => "-infinity".to_owned(),
                        other => format!("{other} microseconds after 2000-01-01"),
                    };
                    d.damage(
                        "created_at",
                        format!("created_at is {stored}, outside the years 1 to 9999"),
                    );
                    zt_types::Timestamp::from_unix_micros(0).unwrap_or_else(|_| zt_types::Timestamp::now())
                }),
            None => {
                d.damage("created_at", "created_at is NULL");
                zt_types::Timestamp::from_unix_micros(0).unwrap_or_else(|_| zt_types::Timestamp::now())
            }
        };
        let actor_kind = d.text("actor_kind", self.actor_kind);
        let actor_kind = d.actor_kind(&actor_kind);
        let status = d.text("status", self.status);
        let status = d.status(&status);
        let client_ip = host(&mut d, "client_ip", self.client_ip);
        let peer_ip = host(&mut d, "peer_ip", self.peer_ip);
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

fn mac_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

fn decode_record(row: Row) -> AuditRecord {
    row.decode()
}

/// A host address as the inet it is stored as.
fn inet(ip: Option<IpAddr>) -> Option<IpNetwork> {
    ip.map(IpNetwork::from)
}

fn timestamptz(event: &AuditEvent) -> DateTime<Utc> {
    event.created_at().to_chrono()
}

/// Canonical JSON text, sent as jsonb: the binary jsonb format is a version
/// byte followed by the text.
#[derive(Debug, Clone, Copy, diesel::expression::AsExpression)]
#[diesel(sql_type = Jsonb)]
struct JsonText<'a>(&'a str);

impl ToSql<Jsonb, Pg> for JsonText<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
        use std::io::Write;
        out.write_all(&[1])?;
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

/// The single-statement append: a compare-and-swap on one chain's head and
/// the insert, in one round trip. It inserts nothing when the head moved
/// since it was read, or when another transaction holds it (`SKIP LOCKED`:
/// it never waits), which the caller sees as no row returned. Inside a
/// transaction that already holds the head, the swap always succeeds.
struct ChainedInsert<'a> {
    row: NewRow<'a>,
    prev_seq: i64,
}

impl QueryId for ChainedInsert<'_> {
    type QueryId = ChainedInsert<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for ChainedInsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let row = &self.row;
        out.push_sql("WITH head AS (SELECT id FROM audit_chain_head WHERE id = ");
        out.push_bind_param::<SmallInt, _>(&row.chain_id)?;
        out.push_sql(" AND seq = ");
        out.push_bind_param::<BigInt, _>(&self.prev_seq)?;
        out.push_sql(" AND mac = ");
        out.push_bind_param::<Bytea, [u8]>(row.prev_mac)?;
        out.push_sql(" FOR UPDATE SKIP LOCKED), moved AS (UPDATE audit_chain_head h SET seq = h.seq + 1, mac = ");
        out.push_bind_param::<Bytea, [u8]>(row.mac)?;
        out.push_sql(
            " FROM head WHERE h.id = head.id RETURNING h.id) \
             INSERT INTO audit_logs (chain_id, chain_seq, event_id, created_at, actor_kind, user_id, user_email, \
             action, resource, resource_id, metadata, client_ip, peer_ip, user_agent, status, error_code, \
             request_id, chain_version, prev_mac, mac) SELECT moved.id, ",
        );
        out.push_bind_param::<BigInt, _>(&row.chain_seq)?;
        out.push_sql(", ");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&row.event_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&row.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(row.actor_kind)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.user_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.user_email)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(row.action)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(row.resource)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.resource_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Jsonb, _>(&row.metadata)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Inet>, _>(&row.client_ip)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Inet>, _>(&row.peer_ip)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.user_agent)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(row.status)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.error_code)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.request_id)?;
        out.push_sql(", ");
        out.push_bind_param::<SmallInt, _>(&row.chain_version)?;
        out.push_sql(", ");
        out.push_bind_param::<Bytea, [u8]>(row.prev_mac)?;
        out.push_sql(", ");
        out.push_bind_param::<Bytea, [u8]>(row.mac)?;
        out.push_sql(" FROM moved RETURNING id");
        Ok(())
    }
}

impl diesel::query_builder::Query for ChainedInsert<'_> {
    type SqlType = BigInt;
}

impl RunQueryDsl<PgConnection> for ChainedInsert<'_> {}

/// Tries the single-statement append on top of `head`. Returns `None` when
/// the head moved or another transaction holds it.
fn try_append(conn: &mut PgConnection, chain: &Chain, event: &AuditEvent, head: Head) -> Result<Option<Recorded>> {
    let seq = head.seq + 1;
    let fields = ChainFields::of_event(event, head.chain, seq);
    let mac = chain.mac(&fields, &head.mac);
    let insert = ChainedInsert {
        row: new_row(event, &fields, &head.mac, &mac),
        prev_seq: head.seq,
    };
    let id: Option<i64> = insert.get_result(conn).optional()?;
    Ok(id.map(|id| Recorded {
        id,
        chain: head.chain,
        seq,
        mac,
        duplicate: false,
    }))
}

/// All zeros: the MAC before a chain's first row, in SQL.
const GENESIS_SQL: &str = "'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea";

/// Creates the heads of chains `low..=high` that do not exist yet.
///
/// Run it outside other writers' way: a head inserted by an open
/// transaction makes every other insert of the same head wait for it.
pub(crate) fn ensure_heads(conn: &mut PgConnection, low: i16, high: i16) -> Result<()> {
    diesel::sql_query(format!(
        "INSERT INTO audit_chain_head (id, seq, mac) SELECT g, 0, {GENESIS_SQL} \
         FROM generate_series($1::int, $2::int) g ON CONFLICT (id) DO NOTHING"
    ))
    .bind::<SmallInt, _>(low)
    .bind::<SmallInt, _>(high)
    .execute(conn)?;
    Ok(())
}

/// Locks a head of `target` for the rest of the transaction: one that no
/// other transaction holds, the preferred one first; when every one is held,
/// waits for the preferred one. Creates the preferred head when it is
/// missing: only that one, so that concurrent writers preferring other
/// chains never wait on each other's uncommitted heads.
fn lock_head(conn: &mut PgConnection, target: Target) -> Result<Head> {
    for attempt in 0..2 {
        let found: Option<(i16, i64, Vec<u8>)> = match target {
            Target::Any { chains, preferred } => {
                let free = audit_chain_head::table
                    .filter(audit_chain_head::id.between(1, chains.max(1)))
                    .order((audit_chain_head::id.eq(preferred).desc(), audit_chain_head::id.asc()))
                    .select((audit_chain_head::id, audit_chain_head::seq, audit_chain_head::mac))
                    .for_update()
                    .skip_locked()
                    .first(conn)
                    .optional()?;
                match free {
                    Some(head) => Some(head),
                    None => audit_chain_head::table
                        .filter(audit_chain_head::id.eq(preferred))
                        .select((audit_chain_head::id, audit_chain_head::seq, audit_chain_head::mac))
                        .for_update()
                        .first(conn)
                        .optional()?,
                }
            }
            Target::Chain(chain) => audit_chain_head::table
                .filter(audit_chain_head::id.eq(chain))
                .select((audit_chain_head::id, audit_chain_head::seq, audit_chain_head::mac))
                .for_update()
                .first(conn)
                .optional()?,
        };
        if let Some((chain, seq, mac)) = found {
            let mac = mac_bytes(&mac)
                .ok_or_else(|| Error::new(ErrorKind::Decode, format!("chain {chain}'s head MAC is not 32 bytes")))?;
            return Ok(Head { chain, seq, mac });
        }
        if attempt == 0 {
            let chain = match target {
                Target::Any { preferred, .. } => preferred,
                Target::Chain(chain) => chain,
            };
            ensure_heads(conn, chain, chain)?;
        }
    }
    Err(Error::new(ErrorKind::Database, "no chain head could be created"))
}

/// Whether `conn` is inside a transaction.
fn in_transaction(conn: &mut PgConnection) -> Result<bool> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    Ok(AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some())
}

/// Appends one event. With a fresh `hint` it is one statement, one round
/// trip. Otherwise it locks a head no other transaction holds and appends
/// there: in the caller's transaction when one is open, so the head stays
/// locked until the caller commits, or in a transaction of its own.
pub(crate) fn append(
    conn: &mut PgConnection,
    chain: &Chain,
    event: &AuditEvent,
    hint: Option<Head>,
    target: Target,
) -> Result<Recorded> {
    let hint = hint.filter(|head| match target {
        Target::Any { chains, .. } => (1..=chains).contains(&head.chain),
        Target::Chain(chain) => head.chain == chain,
    });
    if let Some(head) = hint
        && let Some(recorded) = try_append(conn, chain, event, head)?
    {
        return Ok(recorded);
    }
    let locked_append = |conn: &mut PgConnection| {
        let head = lock_head(conn, target)?;
        try_append(conn, chain, event, head)?
            .ok_or_else(|| Error::new(ErrorKind::Database, "the chain head moved while it was locked"))
    };
    if in_transaction(conn)? {
        locked_append(conn)
    } else {
        conn.transaction(locked_append)
    }
}

/// The row of an event already stored, for idempotent replays.
pub(crate) fn find_event(conn: &mut PgConnection, event_id: &Uuid) -> Result<Option<Recorded>> {
    let found: Option<(i64, i16, i64, Vec<u8>)> = audit_logs::table
        .filter(audit_logs::event_id.eq(event_id))
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

/// The event ids among `ids` that are already stored.
pub(crate) fn existing_events(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>> {
    Ok(audit_logs::table
        .filter(audit_logs::event_id.eq_any(ids))
        .select(audit_logs::event_id)
        .load(conn)?)
}

/// One event's row as the single-statement append binds it.
struct NewRow<'a> {
    event_id: Uuid,
    created_at: DateTime<Utc>,
    actor_kind: &'a str,
    user_id: Option<&'a str>,
    user_email: Option<&'a str>,
    action: &'a str,
    resource: &'a str,
    resource_id: Option<&'a str>,
    metadata: JsonText<'a>,
    client_ip: Option<IpNetwork>,
    peer_ip: Option<IpNetwork>,
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

/// The row of `event`, whose MAC covers `fields`, as the single-statement
/// append binds it.
fn new_row<'a>(event: &AuditEvent, fields: &ChainFields<'a>, prev_mac: &'a [u8; 32], mac: &'a [u8; 32]) -> NewRow<'a> {
    NewRow {
        chain_id: fields.chain,
        chain_seq: fields.seq,
        event_id: *event.event_id().as_uuid(),
        created_at: timestamptz(event),
        actor_kind: fields.actor_kind,
        user_id: fields.user_id,
        user_email: fields.user_email,
        action: fields.action,
        resource: fields.resource,
        resource_id: fields.resource_id,
        metadata: JsonText(fields.metadata),
        client_ip: inet(fields.client_ip),
        peer_ip: inet(fields.peer_ip),
        user_agent: fields.user_agent,
        status: fields.status,
        error_code: fields.error_code,
        request_id: fields.request_id,
        chain_version: fields.version,
        prev_mac,
        mac,
    }
}

/// Appends `events` in one transaction: lock a head of `target`, COPY the
/// rows in, each chained as it is encoded, so the MACs are computed while
/// the server stores the rows before them; last, move the head. The id
/// column's default numbers the rows as COPY stores them, so ids grow with
/// positions without a round trip to take them first.
///
/// With `dedupe`, events already stored are skipped, so a replayed batch is
/// not duplicated; without it an event stored before, or given twice, fails
/// the batch with a unique violation, and the caller retries with it.
pub(crate) fn append_batch(
    conn: &mut PgConnection,
    chain: &Chain,
    events: &[AuditEvent],
    dedupe: bool,
    target: Target,
) -> Result<(Vec<Recorded>, Head)> {
    conn.transaction(|conn| {
        let head = lock_head(conn, target)?;
        let stored: HashSet<Uuid> = if dedupe {
            let ids: Vec<Uuid> = events.iter().map(|event| event.event_id().uuid()).collect();
            existing_events(conn, &ids)?.into_iter().collect()
        } else {
            HashSet::new()
        };
        let fresh: Vec<&AuditEvent> = if dedupe {
            // An event repeated within the batch is stored once, at its first place.
            let mut seen: HashSet<Uuid> = HashSet::with_capacity(events.len());
            events
                .iter()
                .filter(|event| {
                    let id = event.event_id().uuid();
                    !stored.contains(&id) && seen.insert(id)
                })
                .collect()
        } else {
            // A repeat fails the COPY with a unique violation instead.
            events.iter().collect()
        };
        if fresh.is_empty() {
            let recorded = events
                .iter()
                .map(|event| stored_event(conn, &event.event_id().uuid()))
                .collect::<Result<Vec<_>>>()?;
            return Ok((recorded, head));
        }
        let macs = copy_chained(conn, chain, head, &fresh)?;
        let last_mac = *macs.last().unwrap_or(&head.mac);
        let last_seq = head.seq + i64::try_from(fresh.len()).unwrap_or(i64::MAX);
        let ids = move_head(conn, head, last_seq, &last_mac)?;
        let head_after = Head {
            chain: head.chain,
            seq: last_seq,
            mac: last_mac,
        };
        if fresh.len() == events.len() {
            // Every event was new and given once: the rows are the results.
            let recorded = ids
                .iter()
                .zip(&macs)
                .zip(head.seq + 1..)
                .map(|((&id, &mac), seq)| Recorded {
                    id,
                    chain: head.chain,
                    seq,
                    mac,
                    duplicate: false,
                })
                .collect();
            return Ok((recorded, head_after));
        }
        // Each event's result in the order given: fresh ones in the order
        // written, a repeat or a stored one as found.
        let mut written = ids.iter().zip(&macs).zip(1..);
        let mut placed: HashSet<Uuid> = HashSet::with_capacity(fresh.len());
        let mut recorded: Vec<Recorded> = Vec::with_capacity(events.len());
        for event in events {
            let id = event.event_id().uuid();
            if !stored.contains(&id)
                && placed.insert(id)
                && let Some(((&row_id, &mac), offset)) = written.next()
            {
                recorded.push(Recorded {
                    id: row_id,
                    chain: head.chain,
                    seq: head.seq + offset,
                    mac,
                    duplicate: false,
                });
            } else {
                recorded.push(stored_event(conn, &id)?);
            }
        }
        Ok((recorded, head_after))
    })
}

/// Moves a chain's head to `last_seq` and `mac`, returning the ids at
/// positions `first_seq` and `last_seq`: one statement, prepared once.
struct MoveHead<'a> {
    chain: i16,
    first_seq: i64,
    last_seq: i64,
    mac: &'a [u8; 32],
}

impl QueryId for MoveHead<'_> {
    type QueryId = MoveHead<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for MoveHead<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("UPDATE audit_chain_head SET seq = ");
        out.push_bind_param::<BigInt, _>(&self.last_seq)?;
        out.push_sql(", mac = ");
        out.push_bind_param::<Bytea, _>(&self.mac[..])?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<SmallInt, _>(&self.chain)?;
        for (separator, seq) in [(" RETURNING ", &self.first_seq), (", ", &self.last_seq)] {
            out.push_sql(separator);
            out.push_sql("(SELECT id FROM audit_logs WHERE chain_id = ");
            out.push_bind_param::<SmallInt, _>(&self.chain)?;
            out.push_sql(" AND chain_seq = ");
            out.push_bind_param::<BigInt, _>(seq)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

impl diesel::query_builder::Query for MoveHead<'_> {
    type SqlType = (Nullable<BigInt>, Nullable<BigInt>);
}

impl RunQueryDsl<PgConnection> for MoveHead<'_> {}

/// Moves `head` to `last_seq` and `last_mac`, and returns the ids of the
/// rows just written after it, in chain order.
///
/// COPY numbered the rows in order, so their ids are consecutive unless
/// another session took ids from the sequence meanwhile: the ids at the
/// first and last positions, read in the statement that moves the head,
/// show which. Only when they are not consecutive are the ids read.
fn move_head(conn: &mut PgConnection, head: Head, last_seq: i64, last_mac: &[u8; 32]) -> Result<Vec<i64>> {
    let (first_id, last_id): (Option<i64>, Option<i64>) = MoveHead {
        chain: head.chain,
        first_seq: head.seq + 1,
        last_seq,
        mac: last_mac,
    }
    .get_result(conn)?;
    let count = last_seq - head.seq;
    if let (Some(first), Some(last)) = (first_id, last_id)
        && last - first + 1 == count
    {
        return Ok((first..=last).collect());
    }
    let ids: Vec<i64> = audit_logs::table
        .filter(audit_logs::chain_id.eq(head.chain))
        .filter(audit_logs::chain_seq.gt(head.seq))
        .filter(audit_logs::chain_seq.le(last_seq))
        .order(audit_logs::chain_seq.asc())
        .select(audit_logs::id)
        .load(conn)?;
    if i64::try_from(ids.len()).ok() != Some(count) {
        return Err(Error::new(
            ErrorKind::Database,
            format!(
                "chain {} holds {} of the {count} rows just written",
                head.chain,
                ids.len()
            ),
        ));
    }
    Ok(ids)
}

/// An event stored before, or earlier in the same batch, as a duplicate.
fn stored_event(conn: &mut PgConnection, event_id: &Uuid) -> Result<Recorded> {
    Ok(find_event(conn, event_id)?.unwrap_or(Recorded {
        id: 0,
        chain: 0,
        seq: 0,
        mac: [0; 32],
        duplicate: true,
    }))
}

/// COPYs `events` in after `head` in PostgreSQL's binary format, computing
/// each MAC as its row is encoded. Returns the MACs.
fn copy_chained(conn: &mut PgConnection, chain: &Chain, head: Head, events: &[&AuditEvent]) -> Result<Vec<[u8; 32]>> {
    use crate::pg_copy::CopyEncoder;
    let macs = std::cell::RefCell::new(Vec::with_capacity(events.len()));
    // The columns in `pg_copy::ROW_COLUMNS` order, but for the id, which
    // the column's default gives.
    let columns = (
        audit_logs::event_id,
        audit_logs::created_at,
        audit_logs::actor_kind,
        audit_logs::user_id,
        audit_logs::user_email,
        audit_logs::action,
        audit_logs::resource,
        audit_logs::resource_id,
        audit_logs::metadata,
        audit_logs::client_ip,
        audit_logs::peer_ip,
        audit_logs::user_agent,
        audit_logs::status,
        audit_logs::error_code,
        audit_logs::request_id,
        audit_logs::chain_version,
        audit_logs::prev_mac,
        audit_logs::mac,
        audit_logs::chain_id,
        audit_logs::chain_seq,
    );
    let write = |sink: &mut dyn std::io::Write| -> std::result::Result<(), diesel::result::Error> {
        let io = |error: std::io::Error| diesel::result::Error::SerializationError(Box::new(error));
        let mut macs = macs.borrow_mut();
        macs.clear();
        let mut encoder = CopyEncoder::start(sink);
        let mut prev = head.mac;
        for (event, seq) in events.iter().zip(head.seq + 1..) {
            let fields = ChainFields::of_event(event, head.chain, seq);
            let mac = chain.mac(&fields, &prev);
            encoder.row(crate::pg_copy::ROW_FIELDS - 1).map_err(io)?;
            encoder.bytes(&fields.event_id);
            encoder.int8(fields.created_at_micros - PG_EPOCH_MICROS);
            encoder.bytes(fields.actor_kind.as_bytes());
            encoder.optional_text(fields.user_id);
            encoder.optional_text(fields.user_email);
            encoder.bytes(fields.action.as_bytes());
            encoder.bytes(fields.resource.as_bytes());
            encoder.optional_text(fields.resource_id);
            encoder.jsonb(fields.metadata);
            encoder.inet(fields.client_ip);
            encoder.inet(fields.peer_ip);
            encoder.optional_text(fields.user_agent);
            encoder.bytes(fields.status.as_bytes());
            encoder.optional_text(fields.error_code);
            encoder.optional_text(fields.request_id);
            encoder.int2(fields.version);
            encoder.bytes(&prev);
            encoder.bytes(&mac);
            encoder.int2(fields.chain);
            encoder.int8(fields.seq);
            macs.push(mac);
            prev = mac;
        }
        encoder.finish().map_err(io)
    };
    diesel::copy_from(audit_logs::table)
        .from_raw_data(columns, write)
        .with_format(diesel::pg::CopyFormat::Binary)
        .execute(conn)?;
    Ok(macs.into_inner())
}

/// A chain head's id as this backend stores it.
type HeadId = i16;

/// Empties the personal fields of one row, as erasure does.
fn empty_personal_fields(conn: &mut PgConnection, chain_id: i16, seq: i64) -> Result<usize> {
    Ok(diesel::update(
        audit_logs::table
            .filter(audit_logs::chain_id.eq(chain_id))
            .filter(audit_logs::chain_seq.eq(seq)),
    )
    .set((
        audit_logs::user_email.eq(None::<String>),
        audit_logs::metadata.eq(sql::<Jsonb>("'{}'::jsonb")),
        audit_logs::client_ip.eq(None::<IpNetwork>),
        audit_logs::peer_ip.eq(None::<IpNetwork>),
        audit_logs::user_agent.eq(None::<String>),
    ))
    .execute(conn)?)
}

/// A time as this backend stores it.
fn db_time(at: zt_types::Timestamp) -> DateTime<Utc> {
    at.to_chrono()
}

/// `client_ip <<= network`.
fn filter_ip<'a>(query: Boxed<'a>, network: IpNetwork) -> Boxed<'a> {
    query.filter(audit_logs::client_ip.is_contained_by_or_eq(network))
}

crate::shared_sql::shared_queries!(conn = PgConnection, backend = Pg);

/// The rows of `chain_id` at positions `after + 1 ..= last`, in chain order,
/// read as a binary COPY stream: the fastest way rows leave PostgreSQL.
fn chain_range(conn: &mut PgConnection, chain_id: i16, after: i64, last: i64) -> Result<Vec<VerifyRow>> {
    let mut rows = Vec::new();
    copy_chain_range(conn, chain_id, after, last, |row| {
        rows.push(row);
        true
    })?;
    Ok(rows)
}

/// Streams positions `after + 1 ..= last` of `chain_id` out through one
/// binary COPY, handing each row to `each` until it returns false.
fn copy_chain_range(
    conn: &mut PgConnection,
    chain_id: i16,
    after: i64,
    last: i64,
    mut each: impl FnMut(VerifyRow) -> bool,
) -> Result<()> {
    crate::pg_copy::select_range(conn, chain_id, after, last)?;
    let stream = diesel::copy_to(crate::pg_copy::ChainRangeCopy)
        .with_format(diesel::pg::CopyFormat::Binary)
        .load_raw(conn)?;
    let mut decoder = crate::pg_copy::CopyDecoder::new(stream);
    let read = loop {
        match decoder.next_row() {
            Ok(Some(row)) => {
                if !each(row.into_verify_row()) {
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    decoder.drain();
    crate::pg_copy::forget_range(conn)?;
    read
}

impl Store for PgConnection {
    fn append(
        &mut self,
        chain: &Chain,
        event: &AuditEvent,
        hint: Option<Head>,
        _scope: Scope,
        target: Target,
    ) -> Result<Recorded> {
        // The scope needs nothing here: `append` joins an open transaction
        // and opens its own otherwise.
        append(self, chain, event, hint, target)
    }

    crate::shared_sql::delegated_store_methods!();

    fn chain_batches(
        &mut self,
        chain_id: i16,
        after: i64,
        last: i64,
        batch: usize,
        deliver: &mut dyn FnMut(Vec<VerifyRow>) -> bool,
    ) -> Result<()> {
        // Read before the COPY takes the connection; at most one per row of the span.
        let mut erasures = crate::backend::Erasures::read(self, chain_id, after, last)?;
        let batch = batch.max(1);
        let mut rows = Vec::with_capacity(batch);
        let mut listening = true;
        copy_chain_range(self, chain_id, after, last, |mut row| {
            erasures.fill(&mut row);
            rows.push(row);
            if rows.len() == batch {
                listening = deliver(std::mem::replace(&mut rows, Vec::with_capacity(batch)));
            }
            listening
        })?;
        if listening && !rows.is_empty() {
            deliver(rows);
        }
        Ok(())
    }

    fn drop_pruned_partitions(&mut self, before: zt_types::Timestamp) -> Result<u64> {
        crate::partitions::drop_pruned(self, before)
    }

    fn partition_by_month(&mut self, months_ahead: u32) -> Result<Vec<String>> {
        crate::partitions::partition_by_month(self, months_ahead)
    }

    fn ensure_chains(&mut self, chains: i16) -> Result<()> {
        ensure_heads(self, 1, chains.max(1))
    }
}
