//! What each index of `audit_logs` costs at ingest on PostgreSQL, beside
//! the query it serves: the same rows COPYed into a copy of the table with
//! every index, then with every index but one.

use std::fmt::Write as _;
use std::time::Instant;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;

use crate::{BoxError, events, fresh_database, raw};

/// The query each index serves, by the index's name in the migrations.
const SERVES: &[(&str, &str)] = &[
    ("audit_logs_pkey", "a row by id: export and `tail` cursors"),
    (
        "audit_logs_event_id_key",
        "idempotent writes: a replayed event is found, not stored twice",
    ),
    (
        "audit_logs_chain_position_idx",
        "verification in chain order; one row per position",
    ),
    (
        "audit_logs_created_at_idx",
        "time-ordered pages, `--since` and `--until`",
    ),
    ("audit_logs_user_created_at_idx", "`--user`, newest or oldest first"),
    ("audit_logs_resource_created_at_idx", "`--resource` and `--resource-id`"),
    ("audit_logs_action_created_at_idx", "`--action`"),
    ("audit_logs_client_ip_idx", "`--ip` with an address or a CIDR block"),
    ("audit_logs_request_id_idx", "`--request-id`: one request's rows"),
];

/// Loads `count` rows into a table with `indexes` (CREATE INDEX statements
/// on `audit_logs_raw`); returns rows per second.
fn ingest(conn: &mut PgConnection, rows: &[raw::PgRow], indexes: &[String]) -> Result<f64, BoxError> {
    conn.batch_execute(
        "DROP TABLE IF EXISTS audit_logs_raw;
         CREATE TABLE audit_logs_raw (LIKE audit_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS);",
    )?;
    for index in indexes {
        conn.batch_execute(index)?;
    }
    conn.batch_execute("CHECKPOINT")?;
    let started = Instant::now();
    for chunk in rows.chunks(5_000) {
        diesel::copy_from(raw::pg::audit_logs_raw::table)
            .from_insertable(chunk)
            .execute(conn)?;
    }
    Ok(rows.len() as f64 / started.elapsed().as_secs_f64())
}

/// The section of BENCHMARKS.md: each index's share of the ingest cost.
pub(crate) fn section(admin_url: &str, count: usize) -> Result<String, BoxError> {
    let database = fresh_database(admin_url, "indexes")?;
    let url = database.url().to_owned();
    let mut conn = PgConnection::establish(&url)?;
    zt_audit::run_migrations(&mut conn)?;
    #[derive(QueryableByName)]
    struct Index {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        definition: String,
    }
    let indexes: Vec<Index> = diesel::sql_query(
        "SELECT indexname::text AS name, indexdef::text AS definition FROM pg_indexes \
         WHERE tablename = 'audit_logs' ORDER BY indexname",
    )
    .load(&mut conn)?;
    // The same definitions on the copy, under names of their own.
    let on_copy: Vec<String> = indexes
        .iter()
        .map(|index| {
            index
                .definition
                .replacen(&index.name, &format!("{}_raw", index.name), 1)
                .replace(" ON public.audit_logs ", " ON audit_logs_raw ")
        })
        .collect();
    let rows: Vec<raw::PgRow> = events(count)?
        .iter()
        .enumerate()
        .map(|(i, e)| raw::PgRow::of(e, i as i64 + 1))
        .collect();
    // Twice with every index, first and last, so that drift shows.
    let with_all = ingest(&mut conn, &rows, &on_copy)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## What each index costs\n\nMeasured by `cargo xtask bench`: {count} rows COPYed in 5 000-row batches \
         into a copy of `audit_logs`, with every index, then without one index at a time. \
         \"Share\" is how much of the ingest time that index takes: 1 − (rows/s with all) ÷ \
         (rows/s without it).\n\n| index | serves | rows/s without it | share of ingest time |\n|---|---|---|---|"
    );
    for (i, index) in indexes.iter().enumerate() {
        let others: Vec<String> = on_copy
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, definition)| definition.clone())
            .collect();
        let without = ingest(&mut conn, &rows, &others)?;
        let serves = SERVES
            .iter()
            .find(|(name, _)| *name == index.name)
            .map_or("(not known to zt)", |(_, serves)| serves);
        let _ = writeln!(
            out,
            "| `{}` | {serves} | {without:.0} | {:.0}% |",
            index.name,
            (1.0 - with_all / without) * 100.0
        );
    }
    let again = ingest(&mut conn, &rows, &on_copy)?;
    let none = ingest(&mut conn, &rows, &[])?;
    let _ = writeln!(
        out,
        "\nWith every index: {with_all:.0} rows/s (and {again:.0} rows/s when measured again last); \
         with none: {none:.0} rows/s.",
    );
    Ok(out)
}
