//! Plain text tables of audit rows, for terminals.

use crate::query::AuditRecord;

/// A plain text table with aligned columns. Each cell is cut to a maximum
/// width and its control characters are escaped, so a hostile value cannot
/// break the layout or forge lines.
#[derive(Debug, Clone)]
pub struct TextTable {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl TextTable {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders with cells cut to `max_cell` characters.
    pub fn render(&self, max_cell: usize) -> String {
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

/// Audit rows as a table: the columns an investigator reads first. A row
/// with damaged fields (see [`AuditRecord::damaged`]) shows them beside its id.
pub fn records_table(records: &[AuditRecord]) -> String {
    let mut table = TextTable::new(&[
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
        let time = record.created_at.to_string();
        // A damaged row says so, and which fields hold stand-ins.
        let id = if record.is_damaged() {
            let fields: Vec<&str> = record.damaged.iter().map(|damaged| damaged.field).collect();
            format!("{} [damaged: {}]", record.id, fields.join(", "))
        } else {
            record.id.to_string()
        };
        table.row(vec![
            id,
            time.get(..19).unwrap_or(&time).replace('T', " "),
            actor,
            record.action.clone(),
            resource,
            record.status.to_string(),
            record.error_code.clone().unwrap_or_default(),
            record.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
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
        let mut table = TextTable::new(&["A", "B"]);
        table.row(vec!["x\r\nINFO forged".to_owned(), "1".to_owned()]);
        table.row(vec!["longer value".to_owned(), "22".to_owned()]);
        let text = table.render(80);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("x\\r\\nINFO forged"));
        assert_eq!(lines[0].find('B'), lines[2].find("22"));
        assert!(TextTable::new(&["A"]).render(3).starts_with('A'));
    }
}
