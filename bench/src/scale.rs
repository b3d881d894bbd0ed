//! `zt-bench --scale`: the log at 10 million rows on PostgreSQL, partitioned
//! by month. Not run in CI: it takes a quarter of an hour and several GiB.
//!
//! Reported in the scale section of `BENCHMARKS.md`: the ingest rate as the
//! log reaches 0, 1, 5 and 10 million rows; the investigators' queries at 10
//! million (by user, by resource, by CIDR, by time range); full and
//! incremental verification; and the time to prune one month's partition.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use zt_audit::{AuditFilter, AuditLog, PageRequest, SigningKey};
use zt_db::{Pool, PoolConfig};
use zt_types::{Actor, AuditEvent, AuditStatus, RequestContext, RequestId, Timestamp, UserId};

use crate::BoxError;

/// Where `--scale` keeps its section of `BENCHMARKS.md`.
pub(crate) const SCALE_BEGIN: &str = "<!-- scale: begin, written by `cargo xtask bench --scale` -->";
pub(crate) const SCALE_END: &str = "<!-- scale: end -->";

const BATCH: usize = 5_000;
/// Rows per ingest-rate window.
const WINDOW: usize = 200_000;
/// How far back the rows' times reach: ten months, one partition each.
const SPAN: Duration = Duration::from_secs(300 * 86_400);

/// Row `i` of `total`, written `SPAN` before now for the first row and
/// just now for the last: one user in 10 000, one resource in 100 000.
fn event(i: usize, total: usize) -> Result<AuditEvent, BoxError> {
    let step = SPAN.as_micros() / u128::try_from(total.max(1))?;
    let age = Duration::from_micros(u64::try_from(step * u128::try_from(total - i)?)?);
    let context = RequestContext::new()
        .with_ip(format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255).parse()?)
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0")
        .with_request_id(RequestId::parse(format!("req-{i}"))?);
    Ok(AuditEvent::builder(
        Actor::user(UserId::parse((i % 10_000).to_string())?, None),
        ["UPDATE_PROJECT", "CREATE_PROJECT", "DELETE_PROJECT", "UPDATE_ROLE"][i % 4],
        "projects",
    )
    .resource_id(i % 100_000)
    .metadata(&serde_json::json!({ "to": format!("Artemis {i}") }))
    .context(&context)
    .status(AuditStatus::Success)
    .created_at(Timestamp::now().saturating_sub(age))
    .build()?)
}

use crate::measure::median;

/// Loads `total` rows and measures; returns the markdown section.
pub(crate) fn run(admin_url: &str, total: usize) -> Result<String, BoxError> {
    let database = crate::fresh_database(admin_url, "scale")?;
    let url = database.url().to_owned();
    let log = AuditLog::new(
        Pool::connect_with(&url.parse()?, &PoolConfig::new().max_size(4))?,
        &crate::key(),
    );
    log.migrate()?;
    log.partition_by_month(1)?;
    // The months the rows reach back to, which the conversion of an empty
    // table does not know about.
    let mut conn = PgConnection::establish(&url)?;
    conn.batch_execute(
        "DO $$ DECLARE m date; name text; BEGIN
           FOR m IN SELECT generate_series(date_trunc('month', now() - interval '320 days'),
                                           date_trunc('month', now()) - interval '1 month', interval '1 month')::date LOOP
             name := format('audit_logs_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));
             IF to_regclass(name) IS NULL THEN
               EXECUTE format('CREATE TABLE %I PARTITION OF audit_logs FOR VALUES FROM (%L) TO (%L)',
                              name, m, m + interval '1 month');
             END IF;
           END LOOP;
         END $$;",
    )?;
    let signing = SigningKey::from_bytes(&[7; 32]);

    let marks = [0, 1_000_000, 5_000_000, total].map(|mark| mark.min(total));
    let mut rates = Vec::new();
    let mut window_start: Option<(usize, Instant)> = None;
    let mut checkpoint = None;
    let mut written = 0;
    while written < total {
        let end = (written + BATCH).min(total);
        let batch = (written..end).map(|i| event(i, total)).collect::<Result<Vec<_>, _>>()?;
        // Measure the window that starts at each mark (the last: that ends at it).
        for &mark in &marks {
            let start = if mark == total {
                total.saturating_sub(WINDOW)
            } else {
                mark
            };
            if written == start && window_start.is_none() {
                window_start = Some((mark, Instant::now()));
            }
        }
        log.record_batch(&batch)?;
        written = end;
        if let Some((mark, started)) = window_start {
            let start = if mark == total {
                total.saturating_sub(WINDOW)
            } else {
                mark
            };
            if written >= start + WINDOW || written == total {
                let rate = (written - start) as f64 / started.elapsed().as_secs_f64();
                rates.push((mark, rate));
                window_start = None;
            }
        }
        if written == total - WINDOW.min(total) && checkpoint.is_none() {
            checkpoint = Some(log.checkpoint(&signing)?);
        }
        if written.is_multiple_of(1_000_000) {
            eprintln!("zt-bench: scale: {written} rows");
        }
    }
    conn.batch_execute("ANALYZE audit_logs")?;

    let timed = |query: &dyn Fn() -> Result<usize, BoxError>| -> Result<(Duration, usize), BoxError> {
        let mut samples = Vec::new();
        let mut found = 0;
        for _ in 0..15 {
            let started = Instant::now();
            found = query()?;
            samples.push(started.elapsed());
        }
        Ok((median(samples), found))
    };
    let page = PageRequest::first(100);
    let now = Timestamp::now();
    let queries: Vec<(&str, AuditFilter)> = vec![
        ("by user, first 100", AuditFilter::new().user("4242")),
        (
            "by resource, first 100",
            AuditFilter::new().resource("projects").resource_id("4242"),
        ),
        ("by CIDR /24, first 100", AuditFilter::new().ip("10.1.2.0/24")?),
        (
            "by time range (one hour, 30 days ago), first 100",
            AuditFilter::new()
                .since(now.saturating_sub(Duration::from_secs(30 * 86_400)))
                .until(now.saturating_sub(Duration::from_secs(30 * 86_400 - 3_600))),
        ),
    ];
    let mut query_rows = Vec::new();
    for (name, filter) in &queries {
        let (latency, found) = timed(&|| Ok(log.query(filter, &page)?.records.len()))?;
        query_rows.push((*name, latency, found));
    }

    let started = Instant::now();
    let full = log.verify()?;
    let full_time = started.elapsed();
    let trusted = signing.verifying_key();
    let started = Instant::now();
    let incremental = match &checkpoint {
        Some(checkpoint) => Some(log.verify_from(checkpoint, &trusted, None, |_| {})?),
        None => None,
    };
    let incremental_time = started.elapsed();

    // Prune the oldest month: archive it (to the null device), then prune.
    #[derive(QueryableByName)]
    struct Oldest {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        end: chrono::DateTime<chrono::Utc>,
    }
    let oldest: Oldest =
        diesel::sql_query("SELECT date_trunc('month', min(created_at)) + interval '1 month' AS end FROM audit_logs")
            .get_result(&mut conn)?;
    let cut = Timestamp::from_chrono(oldest.end)?;
    let started = Instant::now();
    let archived = log.archive(cut, &signing, &mut std::io::sink())?;
    let archive_time = started.elapsed();
    let started = Instant::now();
    let pruned = log.prune(&archived.header, &trusted)?;
    let prune_time = started.elapsed();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Scale\n\nMeasured by `cargo xtask bench --scale` on this machine: {total} rows written with \
         `record_batch` ({BATCH} per batch, the pipeline's writer) into a log partitioned by month, \
         their times spread over ten months, one user in 10 000 and one resource in 100 000; PostgreSQL \
         with its default durability.\n"
    );
    let _ = writeln!(
        out,
        "| log size | ingest (events/s, over the next {WINDOW} rows; at the end, the last) |\n|---|---|"
    );
    for (mark, rate) in &rates {
        let _ = writeln!(out, "| {mark} rows | {rate:.0} |");
    }
    let _ = writeln!(out, "\n| query at {total} rows | median of 15 | rows |\n|---|---|---|");
    for (name, latency, found) in &query_rows {
        let _ = writeln!(out, "| {name} | {:.2} ms | {found} |", latency.as_secs_f64() * 1e3);
    }
    let _ = writeln!(out, "\n| work | time | rows |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| full verification | {:.1} s ({:.0} rows/s) | {} ({}) |",
        full_time.as_secs_f64(),
        full.rows_checked as f64 / full_time.as_secs_f64(),
        full.rows_checked,
        if full.is_valid() { "intact" } else { "NOT intact" }
    );
    if let Some(incremental) = incremental {
        let _ = writeln!(
            out,
            "| incremental verification from a checkpoint {WINDOW} rows back | {:.2} s | {} ({}) |",
            incremental_time.as_secs_f64(),
            incremental.rows_checked,
            if incremental.is_valid() { "intact" } else { "NOT intact" }
        );
    }
    let _ = writeln!(
        out,
        "| archive the oldest month (verified as read, written to /dev/null) | {:.1} s | {} |",
        archive_time.as_secs_f64(),
        archived.rows
    );
    let _ = writeln!(
        out,
        "| prune it: record the prune, drop the month's partition | {:.2} s | {} |",
        prune_time.as_secs_f64(),
        pruned.rows
    );
    drop(conn);
    let mut admin = PgConnection::establish(admin_url)?;
    let database = url.rsplit('/').next().unwrap_or_default().to_owned();
    drop(log);
    let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).execute(&mut admin);
    Ok(out)
}
