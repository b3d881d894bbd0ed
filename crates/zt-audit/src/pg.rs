//! The PostgreSQL backend.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::{BigInt, Bytea, Inet, Jsonb, Nullable, SmallInt, Text, Timestamptz};
use ipnetwork::IpNetwork;
use uuid::Uuid;
use zt_types::AuditEvent;

use crate::backend::{Head, Recorded, Scope, Store};
use crate::chain::{CHAIN_VERSION, Chain, ChainFields};
use crate::error::{Error, ErrorKind, Result};
use crate::query::{AuditFilter, AuditRecord, Cursor, Order, Page, PageRequest};
use crate::schema::pg::{audit_chain_head, audit_logs};
use crate::verify::VerifyRow;

/// The columns read back.
type Selection = diesel::dsl::AsSelect<Row, Pg>;

fn selection() -> Selection {
    Row::as_select()
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_logs)]
#[diesel(check_for_backend(Pg))]
struct Row {
    id: i64,
    event_id: Uuid,
    created_at: DateTime<Utc>,
    actor_kind: String,
    user_id: Option<String>,
    user_email: Option<String>,
    action: String,
    resource: String,
    resource_id: Option<String>,
    /// jsonb's own text, which is the canonical form the MAC covers.
    #[diesel(select_expression = sql::<Text>("metadata::text"))]
    #[diesel(select_expression_type = diesel::expression::SqlLiteral<Text>)]
    metadata: String,
    client_ip: Option<IpNetwork>,
    peer_ip: Option<IpNetwork>,
    user_agent: Option<String>,
    status: String,
    error_code: Option<String>,
    request_id: Option<String>,
    chain_version: i16,
    prev_mac: Vec<u8>,
    mac: Vec<u8>,
}

impl Row {
    fn into_verify_row(self) -> VerifyRow {
        let id = self.id;
        let prev_mac = mac_bytes(&self.prev_mac);
        let mac = mac_bytes(&self.mac);
        let record = self.decode(prev_mac, mac);
        VerifyRow {
            id,
            prev_mac: prev_mac.unwrap_or_default(),
            mac: mac.unwrap_or_default(),
            record,
            derived_ok: true,
        }
    }

    fn decode(self, prev_mac: Option<[u8; 32]>, mac: Option<[u8; 32]>) -> std::result::Result<AuditRecord, String> {
        Ok(AuditRecord {
            id: self.id,
            event_id: self.event_id,
            created_at: zt_types::Timestamp::from_chrono(self.created_at).map_err(|e| e.to_string())?,
            actor_kind: zt_types::ActorKind::parse(&self.actor_kind).map_err(|e| e.to_string())?,
            user_id: self.user_id,
            user_email: self.user_email,
            action: self.action,
            resource: self.resource,
            resource_id: self.resource_id,
            metadata: self.metadata,
            client_ip: self.client_ip.map(|net| net.ip()),
            peer_ip: self.peer_ip.map(|net| net.ip()),
            user_agent: self.user_agent,
            status: self.status.parse().map_err(|e: zt_types::FieldError| e.to_string())?,
            error_code: self.error_code,
            request_id: self.request_id,
            chain_version: self.chain_version,
            prev_mac: prev_mac.ok_or("prev_mac is not 32 bytes")?,
            mac: mac.ok_or("mac is not 32 bytes")?,
        })
    }
}

fn mac_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

fn decode_record(row: Row) -> Result<AuditRecord> {
    let id = row.id;
    let prev_mac = mac_bytes(&row.prev_mac);
    let mac = mac_bytes(&row.mac);
    row.decode(prev_mac, mac).map_err(|problem| {
        Error::new(
            ErrorKind::Decode,
            format!("audit row {id} cannot be decoded: {problem}"),
        )
    })
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

/// The single-statement append: a compare-and-swap on the chain head and the
/// insert, in one round trip. It inserts nothing when the head moved since
/// it was read, which the caller sees as 0 rows.
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
        out.push_sql("WITH head AS (UPDATE audit_chain_head SET seq = ");
        out.push_bind_param::<BigInt, _>(&row.id)?;
        out.push_sql(", mac = ");
        out.push_bind_param::<Bytea, [u8]>(row.mac)?;
        out.push_sql(" WHERE id = 1 AND seq = ");
        out.push_bind_param::<BigInt, _>(&self.prev_seq)?;
        out.push_sql(" AND mac = ");
        out.push_bind_param::<Bytea, [u8]>(row.prev_mac)?;
        out.push_sql(
            " RETURNING seq) INSERT INTO audit_logs (id, event_id, created_at, actor_kind, user_id, user_email, \
             action, resource, resource_id, metadata, client_ip, peer_ip, user_agent, status, error_code, \
             request_id, chain_version, prev_mac, mac) SELECT head.seq, ",
        );
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
        out.push_sql(" FROM head");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for ChainedInsert<'_> {}

/// Reads the chain head, locking it for the rest of the transaction if `lock`.
pub(crate) fn read_head(conn: &mut PgConnection, lock: bool) -> Result<Head> {
    let query = audit_chain_head::table
        .filter(audit_chain_head::id.eq(1))
        .select((audit_chain_head::seq, audit_chain_head::mac));
    let (seq, mac): (i64, Vec<u8>) = if lock {
        query.for_update().first(conn)?
    } else {
        query.first(conn)?
    };
    let mac = mac_bytes(&mac).ok_or_else(|| Error::new(ErrorKind::Decode, "the chain head's MAC is not 32 bytes"))?;
    Ok(Head { seq, mac })
}

/// Tries the single-statement append on top of `head`. Returns `None` when
/// the head moved.
fn try_append(conn: &mut PgConnection, chain: &Chain, event: &AuditEvent, head: Head) -> Result<Option<Recorded>> {
    let seq = head.seq + 1;
    let mac = chain.mac(&ChainFields::of_event(event, seq), &head.mac);
    let insert = ChainedInsert {
        row: new_row(event, seq, &head.mac, &mac),
        prev_seq: head.seq,
    };
    match insert.execute(conn)? {
        1 => Ok(Some(Recorded {
            id: seq,
            mac,
            duplicate: false,
        })),
        _ => Ok(None),
    }
}

/// Appends one event. With a fresh `cached` head it is one statement, one
/// round trip; when another writer moved the head, it reads the head with a
/// lock and appends again in a transaction (a savepoint when the caller's
/// transaction is open), which cannot lose.
pub(crate) fn append(
    conn: &mut PgConnection,
    chain: &Chain,
    event: &AuditEvent,
    cached: Option<Head>,
) -> Result<Recorded> {
    let head = match cached {
        Some(head) => head,
        None => read_head(conn, false)?,
    };
    if let Some(recorded) = try_append(conn, chain, event, head)? {
        return Ok(recorded);
    }
    conn.transaction(|conn| {
        let head = read_head(conn, true)?;
        try_append(conn, chain, event, head)?
            .ok_or_else(|| Error::new(ErrorKind::Database, "the chain head moved while it was locked"))
    })
}

/// The row of an event already stored, for idempotent replays.
pub(crate) fn find_event(conn: &mut PgConnection, event_id: &Uuid) -> Result<Option<Recorded>> {
    let found: Option<(i64, Vec<u8>)> = audit_logs::table
        .filter(audit_logs::event_id.eq(event_id))
        .select((audit_logs::id, audit_logs::mac))
        .first(conn)
        .optional()?;
    Ok(found.map(|(id, mac)| Recorded {
        id,
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

#[derive(Insertable)]
#[diesel(table_name = audit_logs)]
#[diesel(treat_none_as_default_value = false)]
struct NewRow<'a> {
    id: i64,
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
}

fn new_row<'a>(event: &'a AuditEvent, id: i64, prev_mac: &'a [u8; 32], mac: &'a [u8; 32]) -> NewRow<'a> {
    let context = event.context();
    NewRow {
        id,
        event_id: *event.event_id().as_uuid(),
        created_at: timestamptz(event),
        actor_kind: event.actor().kind().as_str(),
        user_id: event.actor().user_id().map(zt_types::UserId::as_str),
        user_email: event.actor().email().map(zt_types::Email::as_str),
        action: event.action().as_str(),
        resource: event.resource().as_str(),
        resource_id: event.resource_id().map(zt_types::ResourceId::as_str),
        metadata: JsonText(event.metadata().as_str()),
        client_ip: inet(context.client_ip()),
        peer_ip: inet(context.peer_ip()),
        user_agent: context.user_agent().map(zt_types::UserAgent::as_str),
        status: event.status().as_str(),
        error_code: event.error_code().map(zt_types::ErrorCodeName::as_str),
        request_id: context.request_id().map(zt_types::RequestId::as_str),
        chain_version: CHAIN_VERSION,
        prev_mac,
        mac,
    }
}

/// Appends `events` in one transaction: lock the head, chain every event,
/// COPY the rows in, move the head. With `dedupe`, events already stored are
/// skipped, so a replayed batch is not duplicated; without it a stored event
/// fails the batch with a unique violation, and the caller retries with it.
pub(crate) fn append_batch(
    conn: &mut PgConnection,
    chain: &Chain,
    events: &[AuditEvent],
    dedupe: bool,
) -> Result<(Vec<Recorded>, Head)> {
    conn.transaction(|conn| {
        let mut head = read_head(conn, true)?;
        let mut existing = if dedupe {
            let ids: Vec<Uuid> = events.iter().map(|event| event.event_id().uuid()).collect();
            existing_events(conn, &ids)?
        } else {
            Vec::new()
        };
        // An event repeated within the batch is stored once, at its first place.
        let mut fresh: Vec<&AuditEvent> = Vec::with_capacity(events.len());
        for event in events {
            let id = event.event_id().uuid();
            if !existing.contains(&id) && !fresh.iter().any(|seen| seen.event_id().uuid() == id) {
                fresh.push(event);
            }
        }
        let mut macs = Vec::with_capacity(fresh.len());
        let mut prevs = Vec::with_capacity(fresh.len());
        for (offset, event) in fresh.iter().enumerate() {
            let seq = head.seq + 1 + i64::try_from(offset).unwrap_or(i64::MAX);
            let prev = macs.last().copied().unwrap_or(head.mac);
            macs.push(chain.mac(&ChainFields::of_event(event, seq), &prev));
            prevs.push(prev);
        }
        let rows: Vec<NewRow<'_>> = fresh
            .iter()
            .enumerate()
            .map(|(offset, event)| {
                new_row(
                    event,
                    head.seq + 1 + i64::try_from(offset).unwrap_or(i64::MAX),
                    &prevs[offset],
                    &macs[offset],
                )
            })
            .collect();
        if !rows.is_empty() {
            diesel::copy_from(audit_logs::table)
                .from_insertable(&rows)
                .execute(conn)?;
            let last_mac = *macs.last().unwrap_or(&head.mac);
            let last_seq = head.seq + i64::try_from(rows.len()).unwrap_or(i64::MAX);
            diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
                .set((
                    audit_chain_head::seq.eq(last_seq),
                    audit_chain_head::mac.eq(&last_mac[..]),
                ))
                .execute(conn)?;
            head = Head {
                seq: last_seq,
                mac: last_mac,
            };
        }
        let mut fresh_results = rows.iter().map(|row| Recorded {
            id: row.id,
            mac: mac_bytes(row.mac).unwrap_or_default(),
            duplicate: false,
        });
        let mut recorded: Vec<Recorded> = Vec::with_capacity(events.len());
        for event in events {
            let id = event.event_id().uuid();
            if existing.contains(&id) {
                recorded.push(find_event(conn, &id)?.unwrap_or(Recorded {
                    id: 0,
                    mac: [0; 32],
                    duplicate: true,
                }));
            } else if let Some(result) = fresh_results.next() {
                existing.push(id);
                recorded.push(result);
            }
        }
        Ok((recorded, head))
    })
}

/// A time as this backend stores it.
fn db_time(at: zt_types::Timestamp) -> DateTime<Utc> {
    at.to_chrono()
}

/// `client_ip <<= network`.
fn filter_ip<'a>(query: Boxed<'a>, network: IpNetwork) -> Boxed<'a> {
    query.filter(audit_logs::client_ip.is_contained_by_or_eq(network))
}

crate::queries::shared_queries!(conn = PgConnection, backend = Pg);

impl Store for PgConnection {
    fn append(&mut self, chain: &Chain, event: &AuditEvent, cached: Option<Head>, _scope: Scope) -> Result<Recorded> {
        // One statement either way: it commits at once outside a transaction,
        // and joins the caller's inside one.
        append(self, chain, event, cached)
    }

    fn append_batch(&mut self, chain: &Chain, events: &[AuditEvent], dedupe: bool) -> Result<(Vec<Recorded>, Head)> {
        append_batch(self, chain, events, dedupe)
    }

    fn find_event(&mut self, event_id: &Uuid) -> Result<Option<Recorded>> {
        find_event(self, event_id)
    }

    fn read_head(&mut self) -> Result<Head> {
        read_head(self, false)
    }

    fn query_page(&mut self, filter: &AuditFilter, page: &PageRequest) -> Result<Page> {
        query_page(self, filter, page)
    }

    fn count(&mut self, filter: &AuditFilter) -> Result<u64> {
        count(self, filter)
    }

    fn chain_range(&mut self, after_id: i64, last_id: i64) -> Result<Vec<VerifyRow>> {
        chain_range(self, after_id, last_id)
    }

    fn rows_after(&mut self, after_id: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        rows_after(self, after_id, limit)
    }

    fn max_id(&mut self) -> Result<Option<i64>> {
        max_id(self)
    }

    fn mac_at(&mut self, id: i64) -> Result<Option<[u8; 32]>> {
        mac_at(self, id)
    }
}
