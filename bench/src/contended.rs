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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool as R2d2Pool};
use diesel::sql_types::{BigInt, Integer, Text};
use zt_audit::AuditLog;
use zt_types::AuditEvent;

use crate::report::{self, Direction, Row};
use crate::{BoxError, Scale, event, fresh_database, key};

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

/// One business transaction; with `audit`, its audit event too.
fn transaction(
    pool: &AppPool,
    writer: usize,
    n: usize,
    audit: Option<(&AuditLog, &AuditEvent)>,
) -> Result<(), BoxError> {
    let mut conn = pool.get()?;
    conn.transaction(|conn| -> Result<(), BoxError> {
        diesel::sql_query("SELECT pg_sleep(0.002)").execute(conn)?;
        diesel::sql_query("INSERT INTO bench_orders (writer, n, note) VALUES ($1, $2, $3)")
            .bind::<Integer, _>(i32::try_from(writer)?)
            .bind::<BigInt, _>(i64::try_from(n)?)
            .bind::<Text, _>("order placed")
            .execute(conn)?;
        if let Some((log, event)) = audit {
            log.record_in(conn, event)?;
        }
        Ok(())
    })
}

/// Runs `total` transactions split over `writers` threads; returns
/// transactions per second and the number that failed.
fn round(
    pool: &AppPool,
    writers: usize,
    total: usize,
    audit: Option<(&AuditLog, &[AuditEvent], &AtomicUsize)>,
) -> (f64, usize) {
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..writers {
            let failures = &failures;
            scope.spawn(move || {
                let mine = total / writers + usize::from(writer < total % writers);
                for n in 0..mine {
                    let result = match audit {
                        Some((log, events, next)) => {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            match events.get(i) {
                                Some(event) => transaction(pool, writer, n, Some((log, event))),
                                None => Err("ran out of prepared events".into()),
                            }
                        }
                        None => transaction(pool, writer, n, None),
                    };
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

/// The row for `writers` concurrent writers.
pub(crate) fn contended(admin_url: &str, scale: Scale, writers: usize) -> Result<Row, BoxError> {
    let url = fresh_database(admin_url, &format!("contended{writers}"))?;
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

    let per_round = scale.contended_per_round;
    let warmup = writers * 4;
    let events: Vec<AuditEvent> = (0..scale.contended_rounds * per_round + warmup)
        .map(event)
        .collect::<Result<_, _>>()?;
    let next = AtomicUsize::new(0);
    // Warm both paths: connections, prepared statements, the chain head.
    let (_, failed_zt) = round(&pool, writers, warmup, Some((&log, &events, &next)));
    let (_, failed_raw) = round(&pool, writers, warmup, None);
    let mut failures = failed_zt + failed_raw;

    let (mut zt, mut baseline) = (Vec::new(), Vec::new());
    for round_index in 0..scale.contended_rounds {
        // Alternate which goes first, so neither always meets the bigger table.
        for is_zt in [round_index % 2 == 0, round_index % 2 != 0] {
            let (rate, failed) = if is_zt {
                round(&pool, writers, per_round, Some((&log, &events, &next)))
            } else {
                round(&pool, writers, per_round, None)
            };
            failures += failed;
            if is_zt { zt.push(rate) } else { baseline.push(rate) }
        }
    }
    if failures > 0 {
        return Err(format!("{failures} contended transactions failed with {writers} writers").into());
    }
    let ratios: Vec<f64> = zt.iter().zip(&baseline).map(|(z, b)| z / b).collect();
    Ok(Row::new(
        name(writers),
        "transactions/s",
        crate::measure::median_rate(zt),
        crate::measure::median_rate(baseline),
        "the same transactions without the audit write",
        Direction::HigherIsBetter,
        report::Target::RatioAtLeast(0.8),
    )
    .with_ratio_spread(crate::measure::spread(&ratios)))
}
