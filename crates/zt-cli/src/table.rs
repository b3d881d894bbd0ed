//! Plain text tables for terminals, laid out by comfy-table (which measures
//! each cell's display width, wide characters included) after every cell is
//! neutralized: control and line-breaking characters escaped, so a hostile
//! value cannot break the layout, forge a line, or move the cursor, and cut
//! to a maximum width.

use comfy_table::{ContentArrangement, Table, presets};
use zt_audit::AuditRecord;

/// A table with aligned columns and no borders.
#[derive(Debug)]
pub struct TextTable {
    table: Table,
    max_cell: usize,
}

impl TextTable {
    /// A table with these column headers, cutting cells to `max_cell`
    /// characters (at least 1).
    pub fn new(headers: &[&str], max_cell: usize) -> Self {
        let max_cell = max_cell.max(1);
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            // Never wrap: one row is one line, whatever the terminal's width.
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(headers.iter().map(|header| clean(header, max_cell)));
        // No border, so no left padding; two spaces between columns.
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        Self { table, max_cell }
    }

    /// Adds a row.
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let max_cell = self.max_cell;
        self.table
            .add_row(cells.iter().map(|cell| clean(cell.as_ref(), max_cell)));
    }

    /// The table, one line per row after the header, each ending in a newline.
    pub fn render(&self) -> String {
        let mut out: String = self
            .table
            .lines()
            .map(|line| line.trim_end().to_owned() + "\n")
            .collect();
        if out.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// A cell as printed: escaped, then cut with an ellipsis.
fn clean(cell: &str, max_cell: usize) -> String {
    // Control characters escaped; then what reorders or breaks lines in a
    // terminal too: bidirectional controls, line and paragraph separators.
    let escaped: String = zt_types::neutralize(cell)
        .chars()
        .map(|c| {
            if crate::is_bidi_control(c) || c == '\u{2028}' || c == '\u{2029}' {
                format!("\\u{{{:04x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect();
    if escaped.chars().count() > max_cell {
        let cut: String = escaped.chars().take(max_cell - 1).collect();
        format!("{cut}…")
    } else {
        escaped
    }
}

/// Audit rows as a table: the columns an investigator reads first. A row
/// with damaged fields (see [`AuditRecord::damaged`]) shows them beside its
/// id.
pub fn records_table(records: &[AuditRecord]) -> String {
    let mut table = TextTable::new(
        &[
            "ID",
            "TIME (UTC)",
            "ACTOR",
            "ACTION",
            "RESOURCE",
            "STATUS",
            "CODE",
            "CLIENT IP",
            "REQUEST",
        ],
        40,
    );
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
        table.row(&[
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
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_escape_and_cut() {
        let mut table = TextTable::new(&["A", "B"], 80);
        table.row(&["x\r\nINFO forged", "1"]);
        table.row(&["longer value", "22"]);
        table.row(&["日本語", "333"]);
        table.row(&["abc\u{202e}fed\u{2028}", "4"]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].contains("x\\r\\nINFO forged"), "{text}");
        assert!(
            lines[4].contains("\\u{202e}") && lines[4].contains("\\u{2028}"),
            "{text}"
        );
        // Columns line up by display width: wide characters count double.
        let column = |line: &str, needle: &str| {
            let at = line.find(needle).unwrap();
            unicode_width(&line[..at])
        };
        assert_eq!(column(lines[0], "B"), column(lines[2], "22"));
        assert_eq!(column(lines[2], "22"), column(lines[3], "333"));

        let mut narrow = TextTable::new(&["A"], 3);
        narrow.row(&["abcdef"]);
        assert!(narrow.render().contains("ab…"));
    }

    /// Display width as a terminal counts it, for the test: CJK is two.
    fn unicode_width(text: &str) -> usize {
        text.chars()
            .map(|c| if ('\u{3000}'..='\u{9fff}').contains(&c) { 2 } else { 1 })
            .sum()
    }
}
