//! Audited business transactions from many writers at once: does the audit
//! write let throughput grow with the number of writers, as the same
//! transactions without it do?
//!
//! Each transaction does 2 ms of business work with the transaction open
//! (`pg_sleep(0.002)`, as a real transaction waits on its own queries), one
//! business insert and, for zt, one `AuditLog::record_in`, in that order, as
//! `zt_guard::Guard` runs an action's body and then its audit row. The
//! baseline is the same transaction without the audit write. zt and the
//! baseline alternate rounds; each round runs a fixed number of transactions
//! split over the writers.
//!
//! At 16 writers a third kind of round writes the same row with a plain
//! diesel insert into a copy of `audit_logs` (same indexes, no chain, no zt
//! code): what storing the row costs at all, so that zt's own cost, the
//! chain, shows apart from it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool as R2d2Pool};
use diesel::sql_types::{BigInt, Integer, Text};
use zt_audit::AuditLog;
use zt_types::AuditEvent;

use crate::report::{self, Direction, Row};
use crate::{BoxError, Scale, event, fresh_database, key, raw};

type AppPool = R2d2Pool<ConnectionManager<PgConnection>>;

/// The row's name for `writers` writers.
fn name(writers: usize) -> &'static str {
    match writers {
        1 => "in-transaction audit, 1 writer (PostgreSQL)",
        4 => "in-transaction audit, 4 writers (PostgreSQL)",
        16 => "in-transaction audit, 16 writers (PostgreSQL)",
        _ => "in-transaction audit, N writers (PostgreSQL)",
    }
}

/// The writer counts measured.
pub(crate) const WRITERS: [usize; 3] = [1, 4, 16];

/// What a transaction writes besides its business row.
#[derive(Clone, Copy)]
enum Audit<'a> {
    /// Nothing: the baseline.
    Nothing,
    /// The next event, through `AuditLog::record_in`.
    Zt(&'a AuditLog, &'a [AuditEvent], &'a AtomicUsize),
    /// The next event's row, through a plain diesel insert.
    PlainRow(&'a [raw::PgRow], &'a AtomicUsize),
}

/// One business transaction, and what `audit` says to write with it.
fn transaction(pool: &AppPool, writer: usize, n: usize, audit: Audit<'_>) -> Result<(), BoxError> {
    let mut conn = pool.get()?;
    conn.transaction(|conn| -> Result<(), BoxError> {
        diesel::sql_query("SELECT pg_sleep(0.002)").execute(conn)?;
        diesel::sql_query("INSERT INTO bench_orders (writer, n, note) VALUES ($1, $2, $3)")
            .bind::<Integer, _>(i32::try_from(writer)?)
            .bind::<BigInt, _>(i64::try_from(n)?)
            .bind::<Text, _>("order placed")
            .execute(conn)?;
        match audit {
            Audit::Nothing => {}
            Audit::Zt(log, events, next) => {
                let event = events.get(next.fetch_add(1, Ordering::Relaxed));
                log.record_in(conn, event.ok_or("ran out of prepared events")?)?;
            }
            Audit::PlainRow(rows, next) => {
                let row = rows.get(next.fetch_add(1, Ordering::Relaxed));
                diesel::insert_into(raw::pg::audit_logs_raw::table)
                    .values(row.ok_or("ran out of prepared rows")?)
                    .execute(conn)?;
            }
        }
        Ok(())
    })
}

/// Runs `total` transactions split over `writers` threads; returns
/// transactions per second and the number that failed.
fn round(pool: &AppPool, writers: usize, total: usize, audit: Audit<'_>) -> (f64, usize) {
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..writers {
            let failures = &failures;
            scope.spawn(move || {
                let mine = total / writers + usize::from(writer < total % writers);
                for n in 0..mine {
                    let result = transaction(pool, writer, n, audit);
                    if let Err(error) = result
                        && failures.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        eprintln!("zt-bench: contended transaction failed: {error}");
                    }
                }
            });
        }
    });
    (
        crate::measure::per_second(total, started.elapsed()),
        failures.into_inner(),
    )
}

/// The row for `writers` concurrent writers; at 16 writers, also zt against
/// a plain insert of the same row.
pub(crate) fn contended(admin_url: &str, scale: Scale, writers: usize) -> Result<Vec<Row>, BoxError> {
    let database = fresh_database(admin_url, &format!("contended{writers}"))?;
    let url = database.url().to_owned();
    let size = u32::try_from(writers + 2)?;
    let pool: AppPool = R2d2Pool::builder()
        .max_size(size)
        .min_idle(Some(size))
        .build(ConnectionManager::new(&url))?;
    let log = AuditLog::new(pool.clone(), &key());
    log.migrate()?;
    diesel::sql_query(
        "CREATE TABLE bench_orders (id bigserial PRIMARY KEY, writer integer NOT NULL, n bigint NOT NULL, note text NOT NULL)",
    )
    .execute(&mut pool.get()?)?;
    let plain_rows = writers == PLAIN_ROW_WRITERS;
    if plain_rows {
        diesel::sql_query("CREATE TABLE audit_logs_raw (LIKE audit_logs INCLUDING ALL)").execute(&mut pool.get()?)?;
    }

    let per_round = scale.contended_per_round;
    let warmup = writers * 4;
    let count = scale.contended_rounds * per_round + warmup;
    let events: Vec<AuditEvent> = (0..count).map(event).collect::<Result<_, _>>()?;
    let rows: Vec<raw::PgRow> = if plain_rows {
        let others: Vec<AuditEvent> = (0..count).map(event).collect::<Result<_, _>>()?;
        (1..)
            .zip(&others)
            .map(|(id, event)| raw::PgRow::of(event, id))
            .collect()
    } else {
        Vec::new()
    };
    let (next_event, next_row) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let zt_audit = Audit::Zt(&log, &events, &next_event);
    let plain_audit = Audit::PlainRow(&rows, &next_row);
    let mut kinds = vec![zt_audit, Audit::Nothing];
    if plain_rows {
        kinds.push(plain_audit);
    }
    // Warm every path: connections, prepared statements, the chain heads.
    let mut failures = 0;
    for &audit in &kinds {
        failures += round(&pool, writers, warmup, audit).1;
    }

    let (mut zt, mut baseline, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for round_index in 0..scale.contended_rounds {
        // Rotate which goes first, so none always meets the bigger tables.
        for k in 0..kinds.len() {
            let kind = (round_index + k) % kinds.len();
            let (rate, failed) = round(&pool, writers, per_round, kinds[kind]);
            failures += failed;
            [&mut zt, &mut baseline, &mut plain][kind].push(rate);
        }
    }
    if failures > 0 {
        return Err(format!("{failures} contended transactions failed with {writers} writers").into());
    }
    let ratios: Vec<f64> = zt.iter().zip(&baseline).map(|(z, b)| z / b).collect();
    let mut out = vec![
        Row::new(
            name(writers),
            "transactions/s",
            crate::measure::median_rate(zt.clone()),
            crate::measure::median_rate(baseline),
            "the same transactions without the audit write",
            Direction::HigherIsBetter,
            report::Target::RatioAtLeast(0.8),
        )
        .with_round_ratios(&ratios),
    ];
    if plain_rows {
        let ratios: Vec<f64> = zt.iter().zip(&plain).map(|(z, p)| z / p).collect();
        out.push(
            Row::new(
                "in-transaction audit, 16 writers, against the row alone (PostgreSQL)",
                "transactions/s",
                crate::measure::median_rate(zt),
                crate::measure::median_rate(plain),
                "the same transactions with a plain diesel insert of the same row, no chain",
                Direction::HigherIsBetter,
                report::Target::None,
            )
            .with_round_ratios(&ratios),
        );
    }
    Ok(out)
}

/// The writer count at which the row alone is measured too.
const PLAIN_ROW_WRITERS: usize = 16;
