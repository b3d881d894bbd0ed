//! Tables for people, CSV and JSON for machines.

use std::io::IsTerminal;

use zt_audit::AuditRecord;

use crate::Format;

/// A table on a terminal, JSON Lines when piped.
pub(crate) fn default_format() -> Format {
    if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Jsonl
    }
}

/// The columns of an audit row, in table and CSV order.
pub(crate) const RECORD_COLUMNS: &[&str] = &[
    "id",
    "created_at",
    "actor_kind",
    "user_id",
    "user_email",
    "action",
    "resource",
    "resource_id",
    "status",
    "error_code",
    "client_ip",
    "peer_ip",
    "request_id",
    "user_agent",
    "metadata",
    "event_id",
];

pub(crate) fn record_cells(record: &AuditRecord) -> Vec<String> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    vec![
        record.id.to_string(),
        record.created_at.to_string(),
        record.actor_kind.to_string(),
        text(&record.user_id),
        text(&record.user_email),
        record.action.clone(),
        record.resource.clone(),
        text(&record.resource_id),
        record.status.to_string(),
        text(&record.error_code),
        record.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        record.peer_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        text(&record.request_id),
        text(&record.user_agent),
        record.metadata.clone(),
        record.event_id.to_string(),
    ]
}

pub(crate) use zt_cli::spreadsheet_safe;
