//! One writer process of the many-instances test (`tests/many_instances.rs`):
//! it writes `--count` events with deterministic ids
//! ([`zt_e2e::writer_event`]) to one PostgreSQL database, from a few threads,
//! in one of three ways, and exits 0 once every event is stored.
//!
//! - `record`: [`zt_audit::AuditLog::record`], one durable write each;
//! - `pipeline`: [`zt_audit::Pipeline::submit`], then a shutdown that writes
//!   everything;
//! - `in-transaction`: [`zt_audit::AuditLog::record_in`] inside a diesel
//!   transaction on the process's own r2d2 pool, beside a business insert
//!   into `writer_orders (prefix text, n bigint)`, which the parent creates.
//!
//! `zt-audit-writer --database-url URL --key-file FILE --count N --mode
//! record|pipeline|in-transaction --prefix P [--threads T]`
// A command-line tool reports on stderr.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool as R2d2Pool};
use diesel::sql_types::{BigInt, Text};
use zt_audit::{AuditLog, ChainKey, ErrorKind, Overflow, Pipeline, PipelineConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    database_url: String,
    key_file: PathBuf,
    count: u64,
    mode: String,
    prefix: String,
    threads: u64,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        database_url: String::new(),
        key_file: PathBuf::new(),
        count: 0,
        mode: String::new(),
        prefix: String::new(),
        threads: 2,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--database-url" => args.database_url = value,
            "--key-file" => args.key_file = PathBuf::from(value),
            "--count" => args.count = value.parse()?,
            "--mode" => args.mode = value,
            "--prefix" => args.prefix = value,
            "--threads" => args.threads = value.parse::<u64>()?.max(1),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if args.database_url.is_empty() || args.prefix.is_empty() || args.key_file.as_os_str().is_empty() {
        return Err("--database-url, --key-file and --prefix are required".into());
    }
    Ok(args)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("zt-audit-writer: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The action of the events a mode writes.
fn action(mode: &str) -> Result<&'static str, BoxError> {
    match mode {
        "record" => Ok("WRITER_RECORD"),
        "pipeline" => Ok("WRITER_PIPELINE"),
        "in-transaction" => Ok("WRITER_IN_TRANSACTION"),
        other => Err(format!("unknown mode {other}; expected record, pipeline or in-transaction").into()),
    }
}

fn run() -> Result<(), BoxError> {
    let args = parse_args()?;
    let action = action(&args.mode)?;
    let key = ChainKey::from_file(&args.key_file)?;
    // The app's own pool, as an app hands it to zt.
    let pool: R2d2Pool<ConnectionManager<PgConnection>> = R2d2Pool::builder()
        .max_size(u32::try_from(args.threads)? + 2)
        .connection_timeout(Duration::from_secs(10))
        .build(ConnectionManager::new(&args.database_url))?;
    let log = AuditLog::new(pool.clone(), &key);
    let mine = |thread: u64| (1..=args.count).filter(move |n| n % args.threads == thread);
    match args.mode.as_str() {
        "pipeline" => {
            let spool = std::env::temp_dir().join(format!("zt-writer-spool-{}-{}", args.prefix, std::process::id()));
            let pipeline = Pipeline::start(
                log,
                PipelineConfig::new(&spool).overflow(Overflow::Block {
                    timeout: Duration::from_secs(30),
                }),
            )?;
            std::thread::scope(|scope| -> Result<(), BoxError> {
                let handles: Vec<_> = (0..args.threads)
                    .map(|thread| {
                        let (pipeline, prefix) = (&pipeline, args.prefix.as_str());
                        scope.spawn(move || -> Result<(), zt_audit::Error> {
                            for n in mine(thread) {
                                pipeline.submit(zt_e2e::writer_event(prefix, action, n))?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.join().map_err(|_| "a submitter panicked")??;
                }
                Ok(())
            })?;
            let stats = pipeline.shutdown(Duration::from_secs(60))?;
            let _ = std::fs::remove_dir_all(&spool);
            if stats.written != args.count || stats.rejected != 0 {
                return Err(format!(
                    "the pipeline wrote {} of {} events: {stats:?}",
                    stats.written, args.count
                )
                .into());
            }
        }
        mode => std::thread::scope(|scope| -> Result<(), BoxError> {
            let handles: Vec<_> = (0..args.threads)
                .map(|thread| {
                    let (log, pool, prefix) = (&log, &pool, args.prefix.as_str());
                    scope.spawn(move || -> Result<(), BoxError> {
                        for n in mine(thread) {
                            let event = zt_e2e::writer_event(prefix, action, n);
                            if mode == "record" {
                                with_retries(|| log.record(&event).map(drop).map_err(Into::into))?;
                            } else {
                                with_retries(|| {
                                    let mut conn = pool.get()?;
                                    conn.transaction(|conn| -> Result<(), BoxError> {
                                        diesel::sql_query("INSERT INTO writer_orders (prefix, n) VALUES ($1, $2)")
                                            .bind::<Text, _>(prefix)
                                            .bind::<BigInt, _>(i64::try_from(n)?)
                                            .execute(conn)?;
                                        log.record_in(conn, &event)?;
                                        Ok(())
                                    })
                                })?;
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| "a writer panicked")??;
            }
            Ok(())
        })?,
    }
    Ok(())
}

/// Runs `write` again after a transient failure (an unavailable database, a
/// serialization failure), a few times; other failures are final.
fn with_retries(mut write: impl FnMut() -> Result<(), BoxError>) -> Result<(), BoxError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match write() {
            Ok(()) => return Ok(()),
            Err(error) if attempts < 5 && is_transient(error.as_ref()) => {
                eprintln!("zt-audit-writer: retrying after: {error}");
                std::thread::sleep(Duration::from_millis(50 * attempts));
            }
            Err(error) => return Err(error),
        }
    }
}

fn is_transient(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(error) = error.downcast_ref::<zt_audit::Error>() {
        return error.kind() == ErrorKind::Unavailable
            || error.database_class().is_some_and(zt_db::ErrorClass::is_transient);
    }
    zt_db::ErrorClass::of(error).is_some_and(zt_db::ErrorClass::is_transient)
}
