//! The zt benchmarks. Each performance target in BENCHMARKS.md (a ratio to a
//! raw baseline of the same work in the same run, or a bound on a rate,
//! latency or memory) is measured
//! for zt and for its raw baseline in the same run, and reported as a ratio.
//!
//! `cargo xtask bench [--quick]` builds this in release, starts a throwaway
//! PostgreSQL with its default durability, and runs it; it writes
//! `target/zt-bench/results.json` and `BENCHMARKS.md`.
//!
//! `zt-bench --pg URL --out DIR --markdown FILE [--quick]`
#![forbid(unsafe_code)]
// A benchmark reports to the terminal; its figures are floats by nature, and
// its counts (at most a few million) fit every integer type they are cast to.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod contended;
mod indexes;
mod measure;
mod raw;
mod report;
mod scale;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
use measure::{interleaved, interleaved_pairs, per_second, timed};
use report::{Direction, Row};
use zt_audit::{AuditLog, ChainKey, Overflow, Pipeline, PipelineConfig};
use zt_db::{DatabaseUrl, Pool, PoolConfig};
use zt_types::{
    Actor, AuditEvent, AuditStatus, RequestContext, RequestId, Role, SessionClaims, SessionId, Timestamp, UserId,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How much work each benchmark does.
#[derive(Clone, Copy)]
struct Scale {
    durable_rounds: usize,
    durable_per_round: usize,
    session_rounds: usize,
    session_per_round: usize,
    batch_events: usize,
    micro_ops: usize,
    burst_events: usize,
    contended_rounds: usize,
    contended_per_round: usize,
}

const FULL: Scale = Scale {
    durable_rounds: 15,
    durable_per_round: 300,
    session_rounds: 15,
    session_per_round: 2_000,
    batch_events: 200_000,
    micro_ops: 1_000_000,
    burst_events: 1_000_000,
    contended_rounds: 9,
    contended_per_round: 1_000,
};

const QUICK: Scale = Scale {
    durable_rounds: 5,
    durable_per_round: 100,
    session_rounds: 5,
    session_per_round: 500,
    batch_events: 30_000,
    micro_ops: 200_000,
    burst_events: 1_000_000,
    contended_rounds: 5,
    contended_per_round: 320,
};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zt-bench: error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Args {
    pg: String,
    out: PathBuf,
    markdown: Option<PathBuf>,
    quick: bool,
    /// `--scale [ROWS]`: the 10-million-row figures instead of the targets.
    scale: Option<usize>,
    rss_child: bool,
    /// Runs only the benchmarks whose step name contains this, for profiling.
    only: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        pg: String::new(),
        out: PathBuf::from("target/zt-bench"),
        markdown: None,
        quick: false,
        scale: None,
        rss_child: false,
        only: None,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        match flag.as_str() {
            "--quick" => args.quick = true,
            "--scale" => args.scale = Some(10_000_000),
            "--scale-rows" => args.scale = Some(iter.next().ok_or("--scale-rows needs a count")?.parse()?),
            "--rss-child" => args.rss_child = true,
            "--only" => args.only = Some(iter.next().ok_or("--only needs a name")?),
            "--pg" => args.pg = iter.next().ok_or("--pg needs a URL")?,
            "--out" => args.out = PathBuf::from(iter.next().ok_or("--out needs a directory")?),
            "--markdown" => args.markdown = Some(PathBuf::from(iter.next().ok_or("--markdown needs a file")?)),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if args.pg.is_empty() {
        return Err("--pg URL is required: a PostgreSQL server to create benchmark databases on".into());
    }
    Ok(args)
}

fn run() -> Result<(), BoxError> {
    let args = parse_args()?;
    let scale = if args.quick { QUICK } else { FULL };
    if args.rss_child {
        return rss_child(&args.pg, scale.burst_events);
    }
    std::fs::create_dir_all(&args.out)?;
    if let Some(total) = args.scale {
        let section = scale::run(&args.pg, total)?;
        println!("{section}");
        if let Some(path) = &args.markdown {
            let existing = std::fs::read_to_string(path).unwrap_or_default();
            std::fs::write(
                path,
                report::with_section(&existing, scale::SCALE_BEGIN, scale::SCALE_END, &section),
            )?;
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    let wanted = |name: &str| {
        let wanted = args.only.as_deref().is_none_or(|only| name.contains(only));
        if wanted {
            eprintln!("zt-bench: {name}");
        }
        wanted
    };
    if wanted("durable audit write (PostgreSQL)") {
        rows.push(durable_write(&args.pg, scale)?);
    }
    if wanted("in-transaction audit, N writers (PostgreSQL)") {
        for writers in contended::WRITERS {
            rows.extend(contended::contended(&args.pg, scale, writers)?);
        }
    }
    if wanted("session revalidation (PostgreSQL)") {
        rows.push(session_check(&args.pg, scale, false)?);
    }
    if wanted("session check with registry (PostgreSQL)") {
        rows.push(session_check(&args.pg, scale, true)?);
    }
    if wanted("batched audit throughput (PostgreSQL), then verification") {
        let (batched, verify) = batched_pg(&args.pg, scale, &args.out)?;
        rows.push(batched);
        rows.push(verify);
    }
    if wanted("batched audit throughput (SQLite)") {
        rows.push(batched_sqlite(scale, &args.out)?);
    }
    if wanted("sanitize one error") {
        rows.push(sanitize(scale));
    }
    if wanted("record one error in monitoring, 2 threads") {
        rows.push(monitor_record(scale)?);
    }
    if wanted("pipeline memory during a 1M-event burst") {
        rows.push(burst_memory(&args.pg, args.quick)?);
    }
    if let Some(url) = args
        .only
        .as_deref()
        .and_then(|only| only.strip_prefix("verify-direct="))
    {
        // A diagnostic: verification and the COPY-out baseline, alone, on
        // a database an earlier run kept (`ZT_BENCH_KEEP_DATABASES=1`), for a
        // profiler to watch.
        let log = AuditLog::new(
            Pool::connect_with(&url.parse()?, &PoolConfig::new().max_size(4))?,
            &key(),
        );
        let mut raw_conn = PgConnection::establish(url)?;
        for _ in 0..3 {
            let started = Instant::now();
            let report = log.verify()?;
            let verify = started.elapsed();
            let started = Instant::now();
            copy_out_every_row(&mut raw_conn)?;
            eprintln!(
                "verify {} rows: {verify:?}, COPY-out: {:?}",
                report.rows_checked,
                started.elapsed()
            );
        }
    }
    if args.only.as_deref() == Some("sqlite-direct") {
        let dir = args.out.join("direct");
        std::fs::create_dir_all(&dir)?;
        let url: DatabaseUrl = format!(
            "sqlite://{}",
            dir.join(format!("d-{}.db", uuid::Uuid::new_v4().simple())).display()
        )
        .parse()?;
        let log = AuditLog::new(Pool::connect_with(&url, &PoolConfig::new().max_size(2))?, &key());
        log.migrate()?;
        let all = events(scale.batch_events)?;
        let elapsed = timed(|| {
            for chunk in all.chunks(2000) {
                log.record_batch(chunk).map(|_| ()).unwrap_or_else(|e| eprintln!("{e}"));
            }
        });
        eprintln!("direct record_batch: {:.0} events/s", per_second(all.len(), elapsed));
    }
    if args.only.is_some() {
        print!("{}", report::json(&rows));
        return Ok(());
    }

    let machine = report::Machine::read(&args.pg);
    std::fs::write(args.out.join("results.json"), report::json(&rows))?;
    let mut markdown = report::markdown(&rows, &machine, args.quick);
    if wanted("what each index costs at ingest (PostgreSQL)") {
        markdown.push('\n');
        markdown.push_str(&indexes::section(&args.pg, scale.batch_events)?);
    }
    if let Some(path) = &args.markdown {
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, report::keep_soak_section(&existing, markdown.clone()))?;
    }
    println!("{markdown}");
    Ok(())
}

/// A database of one benchmark row, dropped when the row is done, so that
/// no row's leftovers (tables that autovacuum still works on, their disk)
/// weigh on the rows after it. `ZT_BENCH_KEEP_DATABASES=1` keeps them, for
/// `--only verify-direct=URL` and other looks afterwards.
pub(crate) struct BenchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    /// Its URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if std::env::var_os("ZT_BENCH_KEEP_DATABASES").is_some() {
            return;
        }
        let dropped = PgConnection::establish(&self.admin_url)
            .map_err(BoxError::from)
            .and_then(|mut admin| {
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                    .execute(&mut admin)
                    .map_err(BoxError::from)
            });
        if let Err(error) = dropped {
            eprintln!("zt-bench: could not drop database {}: {error}", self.name);
        }
    }
}

/// A fresh database on the benchmark server.
pub(crate) fn fresh_database(admin_url: &str, name: &str) -> Result<BenchDatabase, BoxError> {
    let mut admin = PgConnection::establish(admin_url)?;
    let database = format!("zt_bench_{name}_{}", uuid::Uuid::new_v4().simple());
    diesel::sql_query(format!("CREATE DATABASE {database}")).execute(&mut admin)?;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    Ok(BenchDatabase {
        admin_url: admin_url.to_owned(),
        url: format!("{base}/{database}"),
        name: database,
    })
}

pub(crate) fn key() -> ChainKey {
    // A fixed key keeps runs comparable; it protects nothing here.
    ChainKey::from_bytes(&(1..1 + 32).collect::<Vec<u8>>()).unwrap_or_else(|_| unreachable!())
}

fn events(count: usize) -> Result<Vec<AuditEvent>, BoxError> {
    (0..count).map(event).collect()
}

/// A representative event: a user updating a project from a browser.
fn event(i: usize) -> Result<AuditEvent, BoxError> {
    let context = RequestContext::new()
        .with_ip(format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255).parse()?)
        .with_user_agent(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
        )
        .with_request_id(RequestId::parse(format!("req-{i}"))?);
    Ok(AuditEvent::builder(
        Actor::user(UserId::parse((i % 1000).to_string())?, None),
        "UPDATE_PROJECT",
        "projects",
    )
    .resource_id(i % 5000)
    .metadata(&serde_json::json!({ "from": "Apollo", "to": format!("Artemis {i}"), "fields": ["name"] }))
    .context(&context)
    .status(AuditStatus::Success)
    .build()?)
}

/// Runs `op` on the PostgreSQL connection of `pool`: the baselines of the
/// latency rows use zt's own pool of one connection, so that zt and the
/// baseline talk to the same server process. On a small VM the wake-up
/// latency of a server process depends on where the scheduler put it, and
/// two connections can differ fourfold for that reason alone.
fn on_pooled_pg<T>(pool: &Pool, op: impl FnOnce(&mut PgConnection) -> QueryResult<T>) -> QueryResult<T> {
    use zt_db::AsConnection as _;
    let mut pooled = pool
        .get()
        .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
    match pooled.as_connection() {
        zt_db::AnyConnection::Postgres(conn) => op(conn),
        _ => Err(diesel::result::Error::QueryBuilderError("not PostgreSQL".into())),
    }
}

fn durable_write(admin_url: &str, scale: Scale) -> Result<Row, BoxError> {
    let database = fresh_database(admin_url, "durable")?;
    let url = database.url().to_owned();
    let pool = Pool::connect_with(&url.parse()?, &PoolConfig::new().max_size(1))?;
    let log = AuditLog::new(pool.clone(), &key());
    log.migrate()?;
    on_pooled_pg(&pool, |conn| {
        diesel::sql_query("CREATE TABLE audit_logs_raw (LIKE audit_logs INCLUDING ALL)").execute(conn)
    })?;
    let total = scale.durable_rounds * scale.durable_per_round * 2 + 100;
    let all = events(total)?;
    let raw_rows: Vec<raw::PgRow> = all
        .iter()
        .enumerate()
        .map(|(i, e)| raw::PgRow::of(e, i as i64 + 1))
        .collect();
    // Warm both paths: prepared statements, caches, the chain head.
    for i in 0..50 {
        log.record(&all[total - 1 - i])?;
        on_pooled_pg(&pool, |conn| {
            diesel::insert_into(raw::pg::audit_logs_raw::table)
                .values(&raw_rows[total - 1 - i])
                .execute(conn)
        })?;
    }
    let failures = std::cell::Cell::new(0usize);
    let measured = interleaved_pairs(
        scale.durable_rounds,
        scale.durable_per_round,
        |i| failures.set(failures.get() + usize::from(log.record(&all[i]).is_err())),
        |i| {
            failures.set(
                failures.get()
                    + usize::from(
                        on_pooled_pg(&pool, |conn| {
                            diesel::insert_into(raw::pg::audit_logs_raw::table)
                                .values(&raw_rows[i])
                                .execute(conn)
                        })
                        .is_err(),
                    ),
            );
        },
    );
    let failures = failures.get();
    if failures > 0 {
        return Err(format!("{failures} durable writes failed").into());
    }
    Ok(Row::new(
        "durable audit write (PostgreSQL, autocommit)",
        "ms per write",
        measured.zt.as_secs_f64() * 1e3,
        measured.baseline.as_secs_f64() * 1e3,
        "plain diesel insert of the same row",
        Direction::LowerIsBetter,
        report::Target::RatioAtMost(1.25),
    )
    .with_round_ratios(&measured.ratios))
}

/// A session check, with or without the session registry (NIST AAL2
/// timeouts; sessions registered beforehand, so that checks within the
/// touch interval write nothing), beside a plain primary-key lookup.
fn session_check(admin_url: &str, scale: Scale, registry: bool) -> Result<Row, BoxError> {
    let database = fresh_database(admin_url, if registry { "registry" } else { "session" })?;
    let url = database.url().to_owned();
    let pool = Pool::connect_with(&url.parse()?, &PoolConfig::new().max_size(1))?;
    let store = zt_session::UserStore::new(pool.clone());
    store.migrate()?;
    let sessions = store.registry().with_policy(zt_session::RegistryPolicy::aal2());
    if registry {
        sessions.migrate()?;
    }
    let users: Vec<UserId> = (0..1000)
        .map(|i| UserId::parse(format!("user-{i}")))
        .collect::<Result<_, _>>()?;
    for user in &users {
        store.create_user(user, None, &Role::user())?;
    }
    let mut validator = zt_session::Validator::new(store);
    if registry {
        validator = validator.with_registry(sessions.clone());
    }
    let requirement = zt_session::Requirement::moderate();
    let claims: Vec<SessionClaims> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            Ok(SessionClaims::new(
                SessionId::parse(format!("sess_{i}"))?,
                user.clone(),
                Role::user(),
                0,
                Timestamp::now(),
            ))
        })
        .collect::<Result<_, BoxError>>()?;
    let context = RequestContext::new().with_ip("203.0.113.7".parse()?);
    if registry {
        for session in &claims {
            sessions.register(session, &context)?;
        }
    }
    let denials = std::cell::Cell::new(0usize);
    let measured = interleaved_pairs(
        scale.session_rounds,
        scale.session_per_round,
        |i| {
            denials.set(
                denials.get()
                    + usize::from(
                        validator
                            .validate(&claims[i % claims.len()], &requirement, &context)
                            .is_err(),
                    ),
            );
        },
        |i| {
            use raw::pg::zt_users;
            let row: QueryResult<(String, i64, bool)> = on_pooled_pg(&pool, |conn| {
                zt_users::table
                    .find(users[i % users.len()].as_str())
                    .select((zt_users::role, zt_users::session_version, zt_users::disabled))
                    .first(conn)
            });
            denials.set(denials.get() + usize::from(row.is_err()));
        },
    );
    let denials = denials.get();
    if denials > 0 {
        return Err(format!("{denials} session checks failed").into());
    }
    Ok(Row::new(
        if registry {
            "session check with registry (PostgreSQL)"
        } else {
            "session revalidation (PostgreSQL)"
        },
        "us per check",
        measured.zt.as_secs_f64() * 1e6,
        measured.baseline.as_secs_f64() * 1e6,
        "plain diesel primary-key lookup of the user",
        Direction::LowerIsBetter,
        // The registry adds a second lookup, of the session's own row.
        report::Target::RatioAtMost(if registry { 1.3 } else { 1.2 }),
    )
    .with_round_ratios(&measured.ratios))
}

fn pipeline(log: &AuditLog, spool: PathBuf) -> Result<Pipeline, BoxError> {
    Ok(Pipeline::start(
        log.clone(),
        PipelineConfig::new(spool).batch_size(5_000).overflow(Overflow::Block {
            timeout: Duration::from_secs(60),
        }),
    )?)
}

/// Submits the next `count` events and waits until they are stored; returns how long that took.
fn pipeline_round(pipeline: &Pipeline, events: &mut Vec<AuditEvent>, count: usize) -> Duration {
    let batch: Vec<AuditEvent> = events.drain(..count.min(events.len())).collect();
    timed(|| {
        if let Err(error) = submit_all(pipeline, batch) {
            eprintln!("zt-bench: pipeline: {error}");
        }
    })
}

fn submit_all(pipeline: &Pipeline, events: Vec<AuditEvent>) -> Result<(), BoxError> {
    for event in events {
        pipeline.submit(event)?;
    }
    pipeline.flush(Duration::from_secs(600))?;
    Ok(())
}

/// How many rounds the PostgreSQL batched row counts.
const BATCHED_ROUNDS: usize = 4;

fn batched_pg(admin_url: &str, scale: Scale, out: &std::path::Path) -> Result<(Row, Row), BoxError> {
    let database = fresh_database(admin_url, "batch")?;
    let url = database.url().to_owned();
    let log = AuditLog::new(
        Pool::connect_with(&url.parse()?, &PoolConfig::new().max_size(2))?,
        &key(),
    );
    log.migrate()?;
    let mut raw_conn = PgConnection::establish(&url)?;
    diesel::sql_query("CREATE TABLE audit_logs_raw (LIKE audit_logs INCLUDING ALL)").execute(&mut raw_conn)?;
    // zt and the baseline alternate in four rounds, so that neither always
    // meets the bigger tables or the server's checkpoints, after a round of
    // the same size that warms both and is not counted.
    let round_size = scale.batch_events.div_ceil(BATCHED_ROUNDS);
    let count = round_size * (BATCHED_ROUNDS + 1);
    let baseline_rows: Vec<raw::PgRow> = events(count)?
        .iter()
        .enumerate()
        .map(|(i, e)| raw::PgRow::of(e, i as i64 + 1))
        .collect();
    let mut zt_events = events(count)?;
    let pipeline = pipeline(&log, out.join("spool-pg"))?;
    let (mut zt, mut baseline, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for (index, round) in baseline_rows.chunks(round_size).enumerate() {
        // Each round starts right after a checkpoint, so that none falls
        // inside one round and not the other.
        diesel::sql_query("CHECKPOINT").execute(&mut raw_conn)?;
        let baseline_round = timed(|| {
            for chunk in round.chunks(5_000) {
                let _ = diesel::copy_from(raw::pg::audit_logs_raw::table)
                    .from_insertable(chunk)
                    .execute(&mut raw_conn);
            }
        });
        diesel::sql_query("CHECKPOINT").execute(&mut raw_conn)?;
        let zt_round = pipeline_round(&pipeline, &mut zt_events, round.len());
        if index == 0 {
            continue;
        }
        // Throughput: the baseline's time over zt's.
        ratios.push(baseline_round.as_secs_f64() / zt_round.as_secs_f64());
        baseline.push(per_second(round.len(), baseline_round));
        zt.push(per_second(round.len(), zt_round));
    }
    let copied: i64 = raw::pg::audit_logs_raw::table.count().get_result(&mut raw_conn)?;
    if copied != count as i64 {
        return Err(format!("the COPY baseline stored {copied} of {count} rows").into());
    }
    let stats = pipeline.shutdown(Duration::from_secs(60))?;
    if stats.written != count as u64 {
        return Err(format!("the pipeline wrote {} of {count} events", stats.written).into());
    }
    let batched = Row::new(
        "batched audit throughput (PostgreSQL, with the hash chain)",
        "events/s",
        measure::median_rate(zt),
        measure::median_rate(baseline),
        "COPY of the same rows in 5 000-row batches",
        Direction::HigherIsBetter,
        report::Target::RatioAtLeast(0.95),
    )
    .with_round_ratios(&ratios);

    // Verification reads what the pipeline wrote; the baseline reads the
    // same rows out in one binary COPY. They alternate in five rounds, on
    // the log as it is once settled: vacuumed, its statistics gathered.
    diesel::sql_query("VACUUM ANALYZE audit_logs").execute(&mut raw_conn)?;
    let (mut verify_times, mut read_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let mut report = None;
        let verify_time = timed(|| report = Some(log.verify()));
        let report = report.ok_or("no report")??;
        if !report.is_valid() || report.rows_checked != count as u64 {
            return Err(format!("verification failed: {:?}", report.finding).into());
        }
        let mut bytes = 0;
        let read_time = timed(|| bytes = copy_out_every_row(&mut raw_conn).unwrap_or(0));
        if bytes == 0 {
            return Err("the COPY-out baseline read nothing".into());
        }
        ratios.push(read_time.as_secs_f64() / verify_time.as_secs_f64());
        verify_times.push(verify_time);
        read_times.push(read_time);
    }
    let verify = Row::new(
        "verify the chain (PostgreSQL, reading included)",
        "rows/s",
        per_second(count, measure::median(verify_times)),
        per_second(count, measure::median(read_times)),
        "binary COPY-out of the same rows in chain order",
        Direction::HigherIsBetter,
        report::Target::RatioAtLeast(0.9),
    )
    .with_round_ratios(&ratios);
    Ok((batched, verify))
}

/// `COPY (SELECT … every row, in chain order …) TO STDOUT (FORMAT binary)`:
/// the fastest way the rows leave PostgreSQL, and the columns the verifier reads.
struct EveryRowInChainOrder;

impl diesel::pg::CopyTarget for EveryRowInChainOrder {
    type Table = raw::pg::audit_logs_raw::table;
    type SqlType = diesel::sql_types::BigInt;

    fn walk_target(mut pass: diesel::query_builder::AstPass<'_, '_, diesel::pg::Pg>) -> QueryResult<()> {
        pass.push_sql(
            "(SELECT id, event_id, created_at, actor_kind, user_id, user_email, action, resource, resource_id, \
             metadata::text, client_ip, peer_ip, user_agent, status, error_code, request_id, chain_version, \
             prev_mac, mac, chain_id, chain_seq FROM audit_logs ORDER BY chain_id, chain_seq)",
        );
        Ok(())
    }
}

/// Reads every row out as the COPY-out baseline does; returns the bytes read.
fn copy_out_every_row(conn: &mut PgConnection) -> Result<u64, BoxError> {
    let mut stream = diesel::copy_to(EveryRowInChainOrder)
        .with_format(diesel::pg::CopyFormat::Binary)
        .load_raw(conn)?;
    let bytes = std::io::copy(&mut stream, &mut std::io::sink())?;
    drop(stream);
    // diesel leaves the COPY's closing status unread; a simple query collects it.
    diesel::connection::SimpleConnection::batch_execute(conn, "SELECT 1")?;
    Ok(bytes)
}

fn batched_sqlite(scale: Scale, out: &std::path::Path) -> Result<Row, BoxError> {
    let dir = out.join(format!("sqlite-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let url: DatabaseUrl = format!("sqlite://{}", dir.join("bench.db").display()).parse()?;
    let log = AuditLog::new(Pool::connect_with(&url, &PoolConfig::new().max_size(2))?, &key());
    log.migrate()?;
    let path = dir.join("bench.db");
    let mut raw_conn = SqliteConnection::establish(&path.display().to_string())?;
    zt_db::SqliteCustomizer::new(Duration::from_secs(5), zt_db::Synchronous::Full).apply(&mut raw_conn)?;
    // The same table, constraints and indexes, without the triggers.
    #[derive(QueryableByName)]
    struct Schema {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }
    let schema: Vec<Schema> = diesel::sql_query(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'audit_logs' AND type IN ('table', 'index') AND sql IS NOT NULL",
    )
    .load(&mut raw_conn)?;
    for statement in schema {
        diesel::sql_query(statement.sql.replace("audit_logs", "audit_logs_raw")).execute(&mut raw_conn)?;
    }
    let count = scale.batch_events;
    let rows: Vec<raw::SqliteRow> = events(count)?
        .iter()
        .enumerate()
        .map(|(i, e)| raw::SqliteRow::of(e, i as i64 + 1))
        .collect();
    let mut zt_events = events(count)?;
    let pipeline = pipeline(&log, dir.join("spool"))?;
    // zt and the baseline alternate in four rounds.
    let round_size = count.div_ceil(4);
    let (mut zt, mut baseline, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in rows.chunks(round_size) {
        // One transaction per 5 000 rows, as zt's writer commits each batch.
        let baseline_round = timed(|| {
            for batch in round.chunks(5_000) {
                let _ = raw_conn.immediate_transaction::<_, diesel::result::Error, _>(|conn| {
                    for row in batch {
                        diesel::insert_into(raw::sqlite::audit_logs_raw::table)
                            .values(row)
                            .execute(conn)?;
                    }
                    Ok(())
                });
            }
        });
        let zt_round = pipeline_round(&pipeline, &mut zt_events, round.len());
        ratios.push(baseline_round.as_secs_f64() / zt_round.as_secs_f64());
        baseline.push(per_second(round.len(), baseline_round));
        zt.push(per_second(round.len(), zt_round));
    }
    let stats = pipeline.shutdown(Duration::from_secs(60))?;
    let _ = std::fs::remove_dir_all(&dir);
    if stats.written != count as u64 {
        return Err(format!("the SQLite pipeline wrote {} of {count} events", stats.written).into());
    }
    Ok(Row::new(
        "batched audit throughput (SQLite, WAL, with the hash chain)",
        "events/s",
        measure::median_rate(zt),
        measure::median_rate(baseline),
        "plain diesel inserts of the same rows, one transaction per 5 000",
        Direction::HigherIsBetter,
        report::Target::RatioAtLeast(0.9),
    )
    .with_round_ratios(&ratios))
}

fn sanitize(scale: Scale) -> Row {
    let sanitizer = zt_errors::Sanitizer::new();
    let error = diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::UniqueViolation,
        Box::new("duplicate key value violates unique constraint \"newsletter_subscribers_pkey\"".to_owned()),
    );
    let sink = std::cell::Cell::new(0u64);
    let measured = interleaved(
        5,
        scale.micro_ops / 5,
        |_| sink.set(sink.get().wrapping_add(u64::from(sanitizer.sanitize(&error).status()))),
        |_| sink.set(sink.get().wrapping_add(u64::from(uuid::Uuid::now_v7().as_bytes()[15]))),
    );
    std::hint::black_box(sink.get());
    Row::new(
        "sanitize one error (reference id included, no sink I/O)",
        "us per error",
        measured.zt.as_secs_f64() * 1e6,
        measured.baseline.as_secs_f64() * 1e6,
        "generating the UUIDv7 reference id alone",
        Direction::LowerIsBetter,
        report::Target::AtMost(2.0),
    )
    .with_round_ratios(&measured.ratios)
}

fn monitor_record(scale: Scale) -> Result<Row, BoxError> {
    let monitor = zt_monitoring::Monitor::builder().build()?;
    let code = zt_error_codes::ErrorCode::DbUnavailable;
    let per_thread = scale.micro_ops;
    // The reference id comes from the sanitizer; recording is what is measured.
    let reference = zt_types::ReferenceId::new();
    let zt = two_threads(per_thread, |_| {
        monitor.record(zt_monitoring::Report::new(code, reference));
    });
    let counter = AtomicU64::new(0);
    let baseline = two_threads(per_thread, |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    monitor.shutdown(Duration::from_secs(10));
    Ok(Row::new(
        "record one error in monitoring, 2 threads",
        "ns per record",
        zt.as_secs_f64() * 1e9,
        baseline.as_secs_f64() * 1e9,
        "a shared atomic counter increment, 2 threads",
        Direction::LowerIsBetter,
        report::Target::AtMost(300.0),
    ))
}

/// The time per operation when two threads each run `per_thread` operations.
fn two_threads(per_thread: usize, work: impl Fn(usize) + Sync) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for i in 0..per_thread {
                    work(i);
                }
            });
        }
    });
    started.elapsed() / u32::try_from(per_thread).unwrap_or(u32::MAX)
}

/// Runs the burst in a child process, so that nothing else this process
/// allocated counts toward its peak.
fn burst_memory(admin_url: &str, quick: bool) -> Result<Row, BoxError> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command.args(["--rss-child", "--pg", admin_url]);
    if quick {
        command.arg("--quick");
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!("the burst child failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let text = String::from_utf8(output.stdout)?;
    let figures: Vec<f64> = text.split_whitespace().filter_map(|word| word.parse().ok()).collect();
    let [idle, peak] = figures[..] else {
        return Err(format!("unexpected burst output {text:?}").into());
    };
    Ok(Row::new(
        "pipeline memory during a 1M-event burst",
        "MiB peak RSS",
        peak,
        idle,
        "the same process idle, pipeline started",
        Direction::LowerIsBetter,
        report::Target::AtMost(64.0),
    ))
}

/// The child: prints the idle and the burst peak RSS in MiB.
fn rss_child(admin_url: &str, count: usize) -> Result<(), BoxError> {
    let database = fresh_database(admin_url, "burst")?;
    let url = database.url().to_owned();
    let log = AuditLog::new(
        Pool::connect_with(&url.parse()?, &PoolConfig::new().max_size(2))?,
        &key(),
    );
    log.migrate()?;
    let spool = std::env::temp_dir().join(format!("zt-bench-spool-{}", uuid::Uuid::new_v4().simple()));
    let pipeline = pipeline(&log, spool.clone())?;
    let idle = measure::peak_rss().unwrap_or(0);
    if !measure::reset_peak_rss() {
        return Err("cannot reset the peak RSS (/proc/self/clear_refs)".into());
    }
    for i in 0..count {
        pipeline.submit(event(i)?)?;
    }
    pipeline.flush(Duration::from_secs(600))?;
    let peak = measure::peak_rss().unwrap_or(0);
    let stats = pipeline.shutdown(Duration::from_secs(60))?;
    let _ = std::fs::remove_dir_all(&spool);
    if stats.written != count as u64 {
        return Err(format!("the burst wrote {} of {count} events", stats.written).into());
    }
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!("{:.1} {:.1}", mib(idle), mib(peak));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn representative_events_build() {
        assert!(super::event(123_456).is_ok());
    }
}
