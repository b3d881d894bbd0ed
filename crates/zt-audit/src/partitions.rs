//! Monthly partitions of `audit_logs` on PostgreSQL, optional.
//!
//! A partitioned log prunes by dropping whole months instead of deleting
//! rows one by one. zt does it with plain SQL rather than pg_partman: the
//! extension needs a superuser to install and a background worker to run,
//! and all zt needs is a range partition per month, a default partition so
//! that no write ever fails, and dropping a month once every row in it is
//! archived and a recorded prune covers it.
//!
//! Partitioning changes what is unique: PostgreSQL requires the partition
//! key in every unique index, so the event id is unique together with its
//! time (a replayed event carries the same time, so replays are still
//! recognized) and a chain position together with its time (the chain head
//! still hands out each position once, and verification still finds a
//! duplicate).

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};

use crate::error::{Error, ErrorKind, Result};

/// The indexes of the partitioned table: the unique ones carry the
/// partition key; the investigators' ones are those of the plain table.
const INDEXES: &str = "
ALTER TABLE audit_logs ADD PRIMARY KEY (id, created_at);
CREATE UNIQUE INDEX audit_logs_event_id_key ON audit_logs (event_id, created_at);
CREATE UNIQUE INDEX audit_logs_chain_position_idx ON audit_logs (chain_id, chain_seq, created_at);
CREATE INDEX audit_logs_created_at_idx ON audit_logs (created_at);
CREATE INDEX audit_logs_user_created_at_idx ON audit_logs (user_id, created_at);
CREATE INDEX audit_logs_resource_created_at_idx ON audit_logs (resource, resource_id, created_at);
CREATE INDEX audit_logs_action_created_at_idx ON audit_logs (action, created_at);
CREATE INDEX audit_logs_client_ip_idx ON audit_logs (client_ip);
CREATE INDEX audit_logs_request_id_idx ON audit_logs (request_id) WHERE request_id IS NOT NULL;
CREATE TRIGGER audit_logs_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only();
CREATE TRIGGER audit_logs_no_truncate
    BEFORE TRUNCATE ON audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();
";

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Month {
    #[diesel(sql_type = BigInt)]
    year: i64,
    #[diesel(sql_type = BigInt)]
    month: i64,
}

/// Whether `audit_logs` is partitioned.
pub(crate) fn is_partitioned(conn: &mut PgConnection) -> Result<bool> {
    Ok(diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('audit_logs')) AS flag",
    )
    .get_result::<Flag>(conn)?
    .flag)
}

/// The partition of one month: `audit_logs_y2026m11`, from the first of the
/// month to the first of the next, in UTC.
fn month_partition(year: i64, month: i64) -> (String, String, String) {
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    (
        format!("audit_logs_y{year:04}m{month:02}"),
        format!("{year:04}-{month:02}-01 00:00:00+00"),
        format!("{next_year:04}-{next_month:02}-01 00:00:00+00"),
    )
}

/// Partitions `audit_logs` by month if it is not yet (in one transaction,
/// holding the table), then makes sure the partitions of this month and the
/// `months_ahead` next exist. Returns the partitions it created.
pub(crate) fn partition_by_month(conn: &mut PgConnection, months_ahead: u32) -> Result<Vec<String>> {
    conn.transaction(|conn| {
        let mut created = Vec::new();
        if !is_partitioned(conn)? {
            created.extend(convert(conn)?);
        }
        let months: Vec<Month> = diesel::sql_query(format!(
            "SELECT extract(year FROM m)::bigint AS year, extract(month FROM m)::bigint AS month \
             FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'), \
             date_trunc('month', now() AT TIME ZONE 'UTC') + interval '{months_ahead} months', interval '1 month') m"
        ))
        .load(conn)?;
        for month in months {
            if let Some(name) = create_month(conn, month.year, month.month)? {
                created.push(name);
            }
        }
        Ok(created)
    })
}

/// Creates one month's partition unless it exists.
fn create_month(conn: &mut PgConnection, year: i64, month: i64) -> Result<Option<String>> {
    let (name, from, to) = month_partition(year, month);
    let exists = diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS flag")
        .bind::<Text, _>(&name)
        .get_result::<Flag>(conn)?
        .flag;
    if exists {
        return Ok(None);
    }
    conn.batch_execute(&format!(
        "CREATE TABLE {name} PARTITION OF audit_logs FOR VALUES FROM ('{from}') TO ('{to}');
         CREATE TRIGGER {name}_no_truncate BEFORE TRUNCATE ON {name}
             FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();"
    ))
    .map_err(|e| {
        Error::new(
            ErrorKind::Database,
            format!(
                "cannot create partition {name}: {e}; rows of that month may already sit in the default \
                 partition, so create partitions ahead of time (`zt audit partition --months-ahead N`)"
            ),
        )
    })?;
    Ok(Some(name))
}

/// Moves the plain table's rows into a partitioned one with the same
/// columns, constraints, defaults, indexes, triggers and grants.
fn convert(conn: &mut PgConnection) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Grant {
        #[diesel(sql_type = Text)]
        grantee: String,
        #[diesel(sql_type = Text)]
        privilege: String,
    }
    // The grants go with the old table; they are given again below.
    let grants: Vec<Grant> = diesel::sql_query(
        "SELECT grantee::regrole::text AS grantee, privilege_type AS privilege \
         FROM aclexplode((SELECT relacl FROM pg_class WHERE oid = to_regclass('audit_logs'))) a \
         WHERE grantee <> 0 AND grantee <> (SELECT relowner FROM pg_class WHERE oid = to_regclass('audit_logs'))",
    )
    .load(conn)?;
    conn.batch_execute(
        "LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE;
         ALTER TABLE audit_logs RENAME TO audit_logs_unpartitioned;
         CREATE TABLE audit_logs (LIKE audit_logs_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
             PARTITION BY RANGE (created_at);
         ALTER SEQUENCE audit_logs_id_seq OWNED BY audit_logs.id;
         CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;
         CREATE TRIGGER audit_logs_default_no_truncate BEFORE TRUNCATE ON audit_logs_default
             FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only();",
    )?;
    let mut created = vec!["audit_logs_default".to_owned()];
    // A partition for every month that holds rows, before they move in.
    let months: Vec<Month> = diesel::sql_query(
        "SELECT DISTINCT extract(year FROM created_at AT TIME ZONE 'UTC')::bigint AS year, \
         extract(month FROM created_at AT TIME ZONE 'UTC')::bigint AS month FROM audit_logs_unpartitioned",
    )
    .load(conn)?;
    for month in months {
        if let Some(name) = create_month(conn, month.year, month.month)? {
            created.push(name);
        }
    }
    conn.batch_execute(&format!(
        "INSERT INTO audit_logs SELECT * FROM audit_logs_unpartitioned;
         DROP TABLE audit_logs_unpartitioned;
         {INDEXES}"
    ))?;
    for grant in grants {
        // Both come from the catalog: a role name and a privilege keyword.
        let role: Vec<Name> = diesel::sql_query("SELECT quote_ident($1) AS name")
            .bind::<Text, _>(&grant.grantee)
            .load(conn)?;
        if let (Some(role), true) = (
            role.first(),
            grant.privilege.bytes().all(|b| b.is_ascii_uppercase() || b == b' '),
        ) {
            conn.batch_execute(&format!("GRANT {} ON audit_logs TO {}", grant.privilege, role.name))?;
        }
    }
    Ok(created)
}

/// Drops the month partitions that end by `before` and hold only rows that
/// recorded prunes cover; returns how many rows they held.
pub(crate) fn drop_pruned(conn: &mut PgConnection, before: zt_types::Timestamp) -> Result<u64> {
    if !is_partitioned(conn)? {
        return Ok(0);
    }
    #[derive(QueryableByName)]
    struct Partition {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Bool)]
        ended: bool,
    }
    let partitions: Vec<Partition> = diesel::sql_query(
        "SELECT c.relname::text AS name, \
         (substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)'))::timestamptz <= $1 AS ended \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = to_regclass('audit_logs') AND c.relname ~ '^audit_logs_y[0-9]{4}m[0-9]{2}$' \
         ORDER BY c.relname",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before.to_chrono())
    .load(conn)?;
    let mut dropped = 0;
    for partition in partitions.into_iter().filter(|partition| partition.ended) {
        let name = partition.name;
        #[derive(QueryableByName)]
        struct Counts {
            #[diesel(sql_type = BigInt)]
            total: i64,
            #[diesel(sql_type = BigInt)]
            uncovered: i64,
        }
        let counts: Counts = diesel::sql_query(format!(
            "SELECT count(*) AS total, count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM audit_prunes r \
             WHERE r.chain_id = p.chain_id AND r.upto_seq >= p.chain_seq)) AS uncovered FROM {name} p"
        ))
        .get_result(conn)?;
        if counts.uncovered > 0 {
            continue;
        }
        conn.batch_execute(&format!(
            "ALTER TABLE audit_logs DETACH PARTITION {name}; DROP TABLE {name};"
        ))?;
        dropped += u64::try_from(counts.total).unwrap_or(0);
        tracing::info!(target: "zt::audit", partition = %name, rows = counts.total, "dropped a pruned partition");
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_partitions_cover_one_month() {
        assert_eq!(
            month_partition(2026, 12),
            (
                "audit_logs_y2026m12".to_owned(),
                "2026-12-01 00:00:00+00".to_owned(),
                "2027-01-01 00:00:00+00".to_owned()
            )
        );
        assert_eq!(month_partition(2026, 1).2, "2026-02-01 00:00:00+00");
    }
}
