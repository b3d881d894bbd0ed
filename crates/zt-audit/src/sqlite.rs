//! The SQLite backend.

use std::net::IpAddr;

use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use uuid::Uuid;
use zt_types::{AuditEvent, Timestamp};

use crate::chain::{CHAIN_VERSION, Chain, ChainFields};
use crate::error::{Error, ErrorKind, Result};
use crate::log::{Head, Recorded};
use crate::query::{AuditFilter, AuditRecord, Cursor, Order, Page, PageRequest, ip_key, ip_key_range};
use crate::schema::sqlite::{audit_chain_head, audit_logs};
use crate::verify::VerifyRow;

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_logs)]
#[diesel(check_for_backend(Sqlite))]
struct Row {
    id: i64,
    event_id: String,
    created_at: String,
    actor_kind: String,
    user_id: Option<String>,
    user_email: Option<String>,
    action: String,
    resource: String,
    resource_id: Option<String>,
    metadata: String,
    client_ip: Option<String>,
    client_ip_bin: Option<Vec<u8>>,
    peer_ip: Option<String>,
    user_agent: Option<String>,
    status: String,
    error_code: Option<String>,
    request_id: Option<String>,
    chain_version: i16,
    prev_mac: Vec<u8>,
    mac: Vec<u8>,
}

fn mac_bytes(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

fn parse_ip(text: Option<&str>, field: &str) -> std::result::Result<Option<IpAddr>, String> {
    text.map(|text| {
        text.parse::<IpAddr>()
            .map_err(|_| format!("{field} {text:?} is not an IP address"))
    })
    .transpose()
}

impl Row {
    fn decode(&self) -> std::result::Result<AuditRecord, String> {
        let client_ip = parse_ip(self.client_ip.as_deref(), "client_ip")?;
        Ok(AuditRecord {
            id: self.id,
            event_id: Uuid::parse_str(&self.event_id).map_err(|_| "event_id is not a UUID".to_owned())?,
            created_at: self.created_at.parse::<Timestamp>().map_err(|e| e.to_string())?,
            actor_kind: zt_types::ActorKind::parse(&self.actor_kind).map_err(|e| e.to_string())?,
            user_id: self.user_id.clone(),
            user_email: self.user_email.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            resource_id: self.resource_id.clone(),
            metadata: self.metadata.clone(),
            client_ip,
            peer_ip: parse_ip(self.peer_ip.as_deref(), "peer_ip")?,
            user_agent: self.user_agent.clone(),
            status: self.status.parse().map_err(|e: zt_types::FieldError| e.to_string())?,
            error_code: self.error_code.clone(),
            request_id: self.request_id.clone(),
            chain_version: self.chain_version,
            prev_mac: mac_bytes(&self.prev_mac).ok_or("prev_mac is not 32 bytes")?,
            mac: mac_bytes(&self.mac).ok_or("mac is not 32 bytes")?,
        })
    }

    /// Whether the derived `client_ip_bin` agrees with `client_ip`.
    fn derived_ok(&self, record: &AuditRecord) -> bool {
        self.client_ip_bin.as_deref() == record.client_ip.map(ip_key).as_ref().map(|key| &key[..])
    }

    fn into_verify_row(self) -> VerifyRow {
        let record = self.decode();
        let derived_ok = record.as_ref().is_ok_and(|record| self.derived_ok(record));
        VerifyRow {
            id: self.id,
            prev_mac: mac_bytes(&self.prev_mac).unwrap_or_default(),
            mac: mac_bytes(&self.mac).unwrap_or_default(),
            record,
            derived_ok,
        }
    }
}

fn decode_record(row: &Row) -> Result<AuditRecord> {
    row.decode().map_err(|problem| {
        Error::new(
            ErrorKind::Decode,
            format!("audit row {} cannot be decoded: {problem}", row.id),
        )
    })
}

/// Every column is always bound (NULL, not DEFAULT), so the insert is one
/// statement that diesel prepares once and caches.
#[derive(Insertable)]
#[diesel(table_name = audit_logs)]
#[diesel(treat_none_as_default_value = false)]
struct NewRow<'a> {
    id: i64,
    event_id: String,
    created_at: String,
    actor_kind: &'a str,
    user_id: Option<&'a str>,
    user_email: Option<&'a str>,
    action: &'a str,
    resource: &'a str,
    resource_id: Option<&'a str>,
    metadata: &'a str,
    client_ip: Option<String>,
    client_ip_bin: Option<Vec<u8>>,
    peer_ip: Option<String>,
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
        event_id: event.event_id().to_string(),
        created_at: event.created_at().to_string(),
        actor_kind: event.actor().kind().as_str(),
        user_id: event.actor().user_id().map(zt_types::UserId::as_str),
        user_email: event.actor().email().map(zt_types::Email::as_str),
        action: event.action().as_str(),
        resource: event.resource().as_str(),
        resource_id: event.resource_id().map(zt_types::ResourceId::as_str),
        metadata: event.metadata().as_str(),
        client_ip: context.client_ip().map(|ip| ip.to_string()),
        client_ip_bin: context.client_ip().map(|ip| ip_key(ip).to_vec()),
        peer_ip: context.peer_ip().map(|ip| ip.to_string()),
        user_agent: context.user_agent().map(zt_types::UserAgent::as_str),
        status: event.status().as_str(),
        error_code: event.error_code().map(zt_types::ErrorCodeName::as_str),
        request_id: context.request_id().map(zt_types::RequestId::as_str),
        chain_version: CHAIN_VERSION,
        prev_mac,
        mac,
    }
}

/// Reserves `count` positions by moving the head's `seq`, which also takes
/// SQLite's write lock; returns the head before the move.
fn reserve(conn: &mut SqliteConnection, count: i64) -> Result<Head> {
    let (seq, mac): (i64, Vec<u8>) = diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
        .set(audit_chain_head::seq.eq(audit_chain_head::seq + count))
        .returning((audit_chain_head::seq, audit_chain_head::mac))
        .get_result(conn)?;
    let mac = mac_bytes(&mac).ok_or_else(|| Error::new(ErrorKind::Decode, "the chain head's MAC is not 32 bytes"))?;
    Ok(Head { seq: seq - count, mac })
}

fn set_head_mac(conn: &mut SqliteConnection, mac: &[u8; 32]) -> Result<()> {
    diesel::update(audit_chain_head::table.filter(audit_chain_head::id.eq(1)))
        .set(audit_chain_head::mac.eq(&mac[..]))
        .execute(conn)?;
    Ok(())
}

/// Reads the chain head.
pub(crate) fn read_head(conn: &mut SqliteConnection) -> Result<Head> {
    let (seq, mac): (i64, Vec<u8>) = audit_chain_head::table
        .filter(audit_chain_head::id.eq(1))
        .select((audit_chain_head::seq, audit_chain_head::mac))
        .first(conn)?;
    let mac = mac_bytes(&mac).ok_or_else(|| Error::new(ErrorKind::Decode, "the chain head's MAC is not 32 bytes"))?;
    Ok(Head { seq, mac })
}

/// Appends one event inside a transaction of its own, or a savepoint of the
/// caller's. Taking the head first takes the write lock, so concurrent
/// writers, in any process, queue instead of forking the chain.
pub(crate) fn append(
    conn: &mut SqliteConnection,
    chain: &Chain,
    event: &AuditEvent,
    immediate: bool,
) -> Result<Recorded> {
    let body = |conn: &mut SqliteConnection| -> Result<Recorded> {
        let head = reserve(conn, 1)?;
        let id = head.seq + 1;
        let mac = chain.mac(&ChainFields::of_event(event, id), &head.mac);
        diesel::insert_into(audit_logs::table)
            .values(new_row(event, id, &head.mac, &mac))
            .execute(conn)?;
        set_head_mac(conn, &mac)?;
        Ok(Recorded {
            id,
            mac,
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
    let found: Option<(i64, Vec<u8>)> = audit_logs::table
        .filter(audit_logs::event_id.eq(event_id.to_string()))
        .select((audit_logs::id, audit_logs::mac))
        .first(conn)
        .optional()?;
    Ok(found.map(|(id, mac)| Recorded {
        id,
        mac: mac_bytes(&mac).unwrap_or_default(),
        duplicate: true,
    }))
}

/// Appends `events` in one immediate transaction. With `dedupe`, events
/// already stored are skipped; without it they fail the batch with a unique
/// violation, and the caller retries with it.
pub(crate) fn append_batch(
    conn: &mut SqliteConnection,
    chain: &Chain,
    events: &[AuditEvent],
    dedupe: bool,
) -> Result<(Vec<Recorded>, Head)> {
    conn.immediate_transaction(|conn| {
        let ids: Vec<String> = events.iter().map(|event| event.event_id().to_string()).collect();
        let mut stored: std::collections::HashSet<String> = if dedupe {
            audit_logs::table
                .filter(audit_logs::event_id.eq_any(&ids))
                .select(audit_logs::event_id)
                .load(conn)?
                .into_iter()
                .collect()
        } else {
            std::collections::HashSet::new()
        };
        // An event repeated within the batch is stored once, at its first place.
        let mut seen = std::collections::HashSet::new();
        let fresh_count = ids
            .iter()
            .filter(|id| !stored.contains(*id) && seen.insert(id.as_str()))
            .count();
        let mut head = reserve(conn, i64::try_from(fresh_count).unwrap_or(i64::MAX))?;
        let mut recorded = Vec::with_capacity(events.len());
        for (event, id) in events.iter().zip(ids) {
            if stored.contains(&id) {
                let found = find_event(conn, event.event_id().as_uuid())?;
                recorded.push(found.unwrap_or(Recorded {
                    id: 0,
                    mac: [0; 32],
                    duplicate: true,
                }));
                continue;
            }
            let seq = head.seq + 1;
            let mac = chain.mac(&ChainFields::of_event(event, seq), &head.mac);
            diesel::insert_into(audit_logs::table)
                .values(new_row(event, seq, &head.mac, &mac))
                .execute(conn)?;
            stored.insert(id);
            head = Head { seq, mac };
            recorded.push(Recorded {
                id: seq,
                mac,
                duplicate: false,
            });
        }
        if fresh_count > 0 {
            set_head_mac(conn, &head.mac)?;
        }
        Ok((recorded, head))
    })
}

type Boxed<'a> = audit_logs::BoxedQuery<'a, Sqlite, diesel::dsl::SqlTypeOf<diesel::dsl::AsSelect<Row, Sqlite>>>;

fn filtered<'a>(filter: &'a AuditFilter) -> Boxed<'a> {
    let mut query = audit_logs::table.select(Row::as_select()).into_boxed();
    if let Some(user_id) = &filter.user_id {
        query = query.filter(audit_logs::user_id.eq(user_id));
    }
    if let Some(email) = &filter.email {
        query = query.filter(audit_logs::user_email.eq(email));
    }
    if !filter.actions.is_empty() {
        query = query.filter(audit_logs::action.eq_any(&filter.actions));
    }
    if let Some(resource) = &filter.resource {
        query = query.filter(audit_logs::resource.eq(resource));
    }
    if let Some(resource_id) = &filter.resource_id {
        query = query.filter(audit_logs::resource_id.eq(resource_id));
    }
    if let Some(status) = filter.status {
        query = query.filter(audit_logs::status.eq(status.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_logs::created_at.ge(since.to_string()));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_logs::created_at.lt(until.to_string()));
    }
    if let Some(network) = filter.ip {
        let (low, high) = ip_key_range(network);
        query = query.filter(audit_logs::client_ip_bin.between(low.to_vec(), high.to_vec()));
    }
    if let Some(request_id) = &filter.request_id {
        query = query.filter(audit_logs::request_id.eq(request_id));
    }
    query
}

/// One page in time order, keyset-paginated on `(created_at, id)`.
pub(crate) fn query_page(conn: &mut SqliteConnection, filter: &AuditFilter, page: &PageRequest) -> Result<Page> {
    let mut query = filtered(filter);
    if let Some(cursor) = page.after {
        let at = cursor.created_at.to_string();
        query = match page.order {
            Order::OldestFirst => query.filter(
                audit_logs::created_at
                    .gt(at.clone())
                    .or(audit_logs::created_at.eq(at).and(audit_logs::id.gt(cursor.id))),
            ),
            Order::NewestFirst => query.filter(
                audit_logs::created_at
                    .lt(at.clone())
                    .or(audit_logs::created_at.eq(at).and(audit_logs::id.lt(cursor.id))),
            ),
        };
    }
    query = match page.order {
        Order::OldestFirst => query.order((audit_logs::created_at.asc(), audit_logs::id.asc())),
        Order::NewestFirst => query.order((audit_logs::created_at.desc(), audit_logs::id.desc())),
    };
    let rows: Vec<Row> = query.limit(i64::from(page.limit) + 1).load(conn)?;
    let mut records = rows.iter().map(decode_record).collect::<Result<Vec<_>>>()?;
    let next = (records.len() > page.limit as usize).then(|| {
        records.truncate(page.limit as usize);
        records.last().map(Cursor::after)
    });
    Ok(Page {
        records,
        next: next.flatten(),
    })
}

/// How many rows match.
pub(crate) fn count(conn: &mut SqliteConnection, filter: &AuditFilter) -> Result<u64> {
    let count: i64 = filtered(filter).select(diesel::dsl::count_star()).first(conn)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The rows at positions `after_id + 1 ..= last_id`, in chain order. A
/// bounded range, not a LIMIT, so that the planner picks the primary key
/// even on a freshly loaded table without statistics.
pub(crate) fn chain_range(conn: &mut SqliteConnection, after_id: i64, last_id: i64) -> Result<Vec<VerifyRow>> {
    let rows: Vec<Row> = audit_logs::table
        .select(Row::as_select())
        .filter(audit_logs::id.gt(after_id).and(audit_logs::id.le(last_id)))
        .order(audit_logs::id.asc())
        .load(conn)?;
    Ok(rows.into_iter().map(Row::into_verify_row).collect())
}

/// The highest position stored, if any.
pub(crate) fn max_id(conn: &mut SqliteConnection) -> Result<Option<i64>> {
    Ok(audit_logs::table.select(diesel::dsl::max(audit_logs::id)).first(conn)?)
}

/// The MAC stored at position `id`.
pub(crate) fn mac_at(conn: &mut SqliteConnection, id: i64) -> Result<Option<[u8; 32]>> {
    let mac: Option<Vec<u8>> = audit_logs::table
        .filter(audit_logs::id.eq(id))
        .select(audit_logs::mac)
        .first(conn)
        .optional()?;
    Ok(mac.and_then(|mac| mac_bytes(&mac)))
}
