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

/// A plain text table with aligned columns.
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with each cell cut to `max_cell` characters and control
    /// characters escaped, so a hostile value cannot break the layout.
    pub(crate) fn render(&self, max_cell: usize) -> String {
        let clean = |cell: &str| {
            let escaped = zt_types::neutralize(cell).into_owned();
            if escaped.chars().count() > max_cell {
                let cut: String = escaped.chars().take(max_cell.saturating_sub(1)).collect();
                format!("{cut}…")
            } else {
                escaped
            }
        };
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(|cell| clean(cell)).collect())
            .collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
                .collect();
            out.push_str(padded.join("  ").trim_end());
            out.push('\n');
        };
        line(&self.headers);
        for row in &rows {
            line(row);
        }
        out
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
        record
            .client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        record.peer_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        text(&record.request_id),
        text(&record.user_agent),
        record.metadata.clone(),
        record.event_id.to_string(),
    ]
}

/// The audit rows as a table for a terminal: the columns an investigator reads first.
pub(crate) fn record_table(records: &[AuditRecord]) -> String {
    let mut table = Table::new(&[
        "ID",
        "TIME (UTC)",
        "ACTOR",
        "ACTION",
        "RESOURCE",
        "STATUS",
        "CODE",
        "CLIENT IP",
        "REQUEST",
    ]);
    for record in records {
        let actor = match (&record.user_id, &record.user_email) {
            (Some(id), Some(email)) => format!("{id} <{email}>"),
            (Some(id), None) => id.clone(),
            _ => record.actor_kind.to_string(),
        };
        let resource = match &record.resource_id {
            Some(id) => format!("{}/{id}", record.resource),
            None => record.resource.clone(),
        };
        table.row(vec![
            record.id.to_string(),
            record.created_at.to_string()[..19].replace('T', " "),
            actor,
            record.action.clone(),
            resource,
            record.status.to_string(),
            record.error_code.clone().unwrap_or_default(),
            record
                .client_ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            record.request_id.clone().unwrap_or_default(),
        ]);
    }
    table.render(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_escapes() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["x\r\nINFO forged".to_owned(), "1".to_owned()]);
        table.row(vec!["longer value".to_owned(), "22".to_owned()]);
        let text = table.render(80);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("x\\r\\nINFO forged"));
        assert_eq!(lines[0].find('B'), lines[2].find("22"));
    }
}
