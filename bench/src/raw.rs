//! The raw baselines' tables and rows: plain diesel on copies of zt's tables,
//! with the same columns, types, indexes and constraints, but no triggers,
//! no chain and no zt code.

use diesel::prelude::*;
use ipnetwork::IpNetwork;
use zt_types::AuditEvent;

pub(crate) mod pg {
    diesel::table! {
        audit_logs_raw (id) {
            id -> Int8,
            event_id -> Uuid,
            created_at -> Timestamptz,
            actor_kind -> Varchar,
            user_id -> Nullable<Varchar>,
            user_email -> Nullable<Varchar>,
            action -> Varchar,
            resource -> Varchar,
            resource_id -> Nullable<Varchar>,
            metadata -> Jsonb,
            client_ip -> Nullable<Inet>,
            peer_ip -> Nullable<Inet>,
            user_agent -> Nullable<Varchar>,
            status -> Varchar,
            error_code -> Nullable<Varchar>,
            request_id -> Nullable<Varchar>,
            chain_version -> Int2,
            prev_mac -> Bytea,
            mac -> Bytea,
            chain_id -> Int2,
            chain_seq -> Int8,
        }
    }

    diesel::table! {
        zt_users (id) {
            id -> Varchar,
            role -> Varchar,
            session_version -> Int8,
            disabled -> Bool,
        }
    }
}

pub(crate) mod sqlite {
    diesel::table! {
        audit_logs_raw (id) {
            id -> BigInt,
            event_id -> Text,
            created_at -> Text,
            actor_kind -> Text,
            user_id -> Nullable<Text>,
            user_email -> Nullable<Text>,
            action -> Text,
            resource -> Text,
            resource_id -> Nullable<Text>,
            metadata -> Text,
            client_ip -> Nullable<Text>,
            client_ip_bin -> Nullable<Binary>,
            peer_ip -> Nullable<Text>,
            user_agent -> Nullable<Text>,
            status -> Text,
            error_code -> Nullable<Text>,
            request_id -> Nullable<Text>,
            chain_version -> SmallInt,
            prev_mac -> Binary,
            mac -> Binary,
            chain_id -> SmallInt,
            chain_seq -> BigInt,
        }
    }
}

/// The same row zt writes for an event, with a fixed stand-in MAC: what a
/// plain diesel insert of that row stores.
#[derive(Insertable)]
#[diesel(table_name = pg::audit_logs_raw)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct PgRow {
    id: i64,
    event_id: uuid::Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    actor_kind: String,
    user_id: Option<String>,
    user_email: Option<String>,
    action: String,
    resource: String,
    resource_id: Option<String>,
    metadata: serde_json::Value,
    client_ip: Option<IpNetwork>,
    peer_ip: Option<IpNetwork>,
    user_agent: Option<String>,
    status: String,
    error_code: Option<String>,
    request_id: Option<String>,
    chain_version: i16,
    prev_mac: Vec<u8>,
    mac: Vec<u8>,
    chain_id: i16,
    chain_seq: i64,
}

impl PgRow {
    pub(crate) fn of(event: &AuditEvent, id: i64) -> Self {
        let context = event.context();
        Self {
            id,
            event_id: event.event_id().uuid(),
            created_at: event.created_at().to_chrono(),
            actor_kind: event.actor().kind().as_str().to_owned(),
            user_id: event.actor().user_id().map(ToString::to_string),
            user_email: event.actor().email().map(ToString::to_string),
            action: event.action().to_string(),
            resource: event.resource().to_string(),
            resource_id: event.resource_id().map(ToString::to_string),
            metadata: event.metadata().to_value(),
            client_ip: context.client_ip().map(IpNetwork::from),
            peer_ip: context.peer_ip().map(IpNetwork::from),
            user_agent: context.user_agent().map(ToString::to_string),
            status: event.status().as_str().to_owned(),
            error_code: event.error_code().map(ToString::to_string),
            request_id: context.request_id().map(ToString::to_string),
            chain_version: 2,
            prev_mac: vec![7; 32],
            mac: vec![9; 32],
            chain_id: 1,
            chain_seq: id,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = sqlite::audit_logs_raw)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct SqliteRow {
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
    chain_id: i16,
    chain_seq: i64,
}

impl SqliteRow {
    pub(crate) fn of(event: &AuditEvent, id: i64) -> Self {
        let context = event.context();
        Self {
            id,
            event_id: event.event_id().to_string(),
            created_at: event.created_at().to_string(),
            actor_kind: event.actor().kind().as_str().to_owned(),
            user_id: event.actor().user_id().map(ToString::to_string),
            user_email: event.actor().email().map(ToString::to_string),
            action: event.action().to_string(),
            resource: event.resource().to_string(),
            resource_id: event.resource_id().map(ToString::to_string),
            metadata: event.metadata().as_str().to_owned(),
            client_ip: context.client_ip().map(|ip| ip.to_string()),
            client_ip_bin: context.client_ip().map(|ip| match ip {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            }),
            peer_ip: context.peer_ip().map(|ip| ip.to_string()),
            user_agent: context.user_agent().map(ToString::to_string),
            status: event.status().as_str().to_owned(),
            error_code: event.error_code().map(ToString::to_string),
            request_id: context.request_id().map(ToString::to_string),
            chain_version: 2,
            prev_mac: vec![7; 32],
            mac: vec![9; 32],
            chain_id: 1,
            chain_seq: id,
        }
    }
}
