//! `zt audit tail`: follows the audit log as rows commit.
//!
//! It reads by id (keyset: the rows after the last one shipped, in chain
//! order), polling every `--interval`, and ships each row as a JSON Lines
//! record on stdout (the fields of `zt audit export`), or as an RFC 5424
//! syslog message on stdout, to a TCP collector, or to a RELP collector.
//!
//! - Where it starts: after row `--from-id N`, or at the current end.
//! - What counts as shipped: a line on stdout once flushed (per batch); a
//!   message on TCP once the kernel took it; a message on RELP once the
//!   collector acknowledged it. Only a shipped row moves the resume point.
//! - Outages: once the first connection worked, a lost database or collector
//!   is retried with exponential backoff (100 ms doubling to 10 s), and the
//!   rows resume after the last one shipped, none skipped or repeated (RELP
//!   may repeat the rows whose acknowledgement the outage swallowed).
//! - A closed stdout (the reader went away) ends it quietly, with exit 0;
//!   like `tail -f`, it notices at its next write.
//! - `--verify` checks each row's MAC and link to the row before, and stops
//!   with exit 1 at the first bad row, before shipping it.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use clap::{Args, ValueEnum};
use zt_audit::{AuditLog, AuditRecord, ErrorKind as AuditErrorKind, FollowCursor};
use zt_db::{DatabaseUrl, Pool};
use zt_types::neutralize;

use crate::relp::{RelpClient, RelpError};
use crate::syslog::{Header, TcpSyslog};
use crate::{DatabaseArgs, KeyArgs, Outcome};

/// `zt audit tail`'s options.
#[derive(Args)]
pub(crate) struct TailArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Start after this row id (0: from the first row); default: the current end.
    /// Exact when no audited transaction was open when that row committed;
    /// `--from` is exact always.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..), conflicts_with = "from")]
    from_id: Option<i64>,
    /// Start after this cursor, `chain:position` pairs such as `1:120,7:33`
    /// (each row's `chain` and `chain_seq`): an exact resume point.
    #[arg(long)]
    from: Option<String>,
    /// How long to wait between polls once caught up: 500ms, 1s, 2m.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    interval: Duration,
    /// The most rows read and shipped at a time.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// Check each row's MAC as it streams; stop with exit 1 at the first bad row.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    key: KeyArgs,
    /// jsonl: one JSON object per row, as `zt audit export`; syslog: RFC 5424.
    #[arg(long, value_enum, default_value_t = TailFormat::Jsonl)]
    format: TailFormat,
    /// Send syslog to this TCP collector (octet-counted framing); rows in
    /// flight when it goes down can be lost.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "syslog_relp")]
    syslog_tcp: Option<String>,
    /// Send syslog to this RELP collector (rsyslog's imrelp); every row is
    /// acknowledged, none is lost.
    #[arg(long, value_name = "HOST:PORT")]
    syslog_relp: Option<String>,
}

/// `zt audit tail --format`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TailFormat {
    /// JSON Lines.
    Jsonl,
    /// RFC 5424 syslog messages.
    Syslog,
}

/// Parses `500ms`, `1s`, `2m`.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not an interval such as 500ms, 1s or 2m"))?;
    let interval = match unit {
        "ms" => Duration::from_millis(amount),
        "s" => Duration::from_secs(amount),
        "m" => Duration::from_secs(amount.saturating_mul(60)),
        _ => return Err(format!("{text:?} has an unknown unit; use ms, s or m")),
    };
    if interval < Duration::from_millis(10) || interval > Duration::from_secs(3600) {
        return Err("the interval must be between 10ms and 60m".to_owned());
    }
    Ok(interval)
}

/// Where the rows go.
enum Sink {
    /// stdout, written one batch at a time: whole lines, then a flush.
    Stdout {
        out: io::Stdout,
        render: Render,
    },
    Tcp(TcpSyslog, Header),
    Relp(RelpClient, Header),
}

#[derive(Clone)]
enum Render {
    Json,
    Syslog(Header),
}

/// Why a batch was not fully shipped.
enum SinkFailure {
    /// stdout was closed: stop quietly.
    Closed,
    /// The collector is unreachable: retry the rest later.
    Retry { shipped: usize, error: String },
    /// Nothing to retry.
    Fatal(anyhow::Error),
}

impl Sink {
    fn open(args: &TailArgs) -> Result<Self> {
        let header = Header::here();
        match (args.format, &args.syslog_tcp, &args.syslog_relp) {
            (TailFormat::Jsonl, None, None) => Ok(Self::Stdout {
                out: io::stdout(),
                render: Render::Json,
            }),
            (TailFormat::Syslog, None, None) => Ok(Self::Stdout {
                out: io::stdout(),
                render: Render::Syslog(header),
            }),
            (TailFormat::Syslog, Some(address), None) => {
                let client = TcpSyslog::connect(address)
                    .map_err(|e| anyhow!("cannot connect to the syslog collector at {address}: {e}"))?;
                Ok(Self::Tcp(client, header))
            }
            (TailFormat::Syslog, None, Some(address)) => {
                let client = RelpClient::connect(address)
                    .map_err(|e| anyhow!("cannot open a RELP session with {address}: {e}"))?;
                Ok(Self::Relp(client, header))
            }
            (TailFormat::Jsonl, _, _) => bail!("--syslog-tcp and --syslog-relp need --format syslog"),
            (TailFormat::Syslog, Some(_), Some(_)) => bail!("give --syslog-tcp or --syslog-relp, not both"),
        }
    }

    fn ship(&mut self, rows: &[AuditRecord]) -> Result<(), SinkFailure> {
        match self {
            Self::Stdout { out, render } => {
                // The batch goes out as one buffer of whole lines, so a file
                // it is appended to never ends in half a line.
                let mut batch = Vec::with_capacity(rows.len() * 1024);
                for record in rows {
                    match render {
                        Render::Json => serde_json::to_writer(&mut batch, record)
                            .map_err(|e| SinkFailure::Fatal(anyhow!("cannot encode row {}: {e}", record.id)))?,
                        Render::Syslog(header) => {
                            batch.extend_from_slice(crate::syslog::message(record, header).as_bytes());
                        }
                    }
                    batch.push(b'\n');
                }
                let written = (|| -> io::Result<()> {
                    let mut out = out.lock();
                    out.write_all(&batch)?;
                    out.flush()
                })();
                match written {
                    Ok(()) => Ok(()),
                    Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Err(SinkFailure::Closed),
                    Err(error) => Err(SinkFailure::Fatal(anyhow!("cannot write to stdout: {error}"))),
                }
            }
            Self::Tcp(client, header) => {
                let messages: Vec<String> = rows.iter().map(|r| crate::syslog::message(r, header)).collect();
                client.send(&messages).map_err(|(shipped, error)| SinkFailure::Retry {
                    shipped,
                    error: error.to_string(),
                })
            }
            Self::Relp(client, header) => {
                let messages: Vec<String> = rows.iter().map(|r| crate::syslog::message(r, header)).collect();
                client.send(&messages).map_err(|(shipped, error)| match error {
                    RelpError::Connection(error) => SinkFailure::Retry {
                        shipped,
                        error: error.to_string(),
                    },
                    refused @ RelpError::Refused(_) => SinkFailure::Fatal(anyhow!("{refused}")),
                })
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Stdout { .. } => "stdout",
            Self::Tcp(..) => "the syslog collector",
            Self::Relp(..) => "the RELP collector",
        }
    }
}

/// Bounded exponential backoff, with one line on stderr when an outage
/// starts and one when it ends.
struct Backoff {
    what: &'static str,
    delay: Duration,
    since: Option<Instant>,
}

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(10);

impl Backoff {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            delay: FIRST_DELAY,
            since: None,
        }
    }

    fn wait(&mut self, error: &str) {
        if self.since.is_none() {
            eprintln!(
                "zt: {} unavailable ({}); retrying with backoff",
                self.what,
                neutralize(error)
            );
            self.since = Some(Instant::now());
        }
        std::thread::sleep(self.delay);
        self.delay = (self.delay * 2).min(MAX_DELAY);
    }

    fn recovered(&mut self, after: &FollowCursor) {
        if let Some(since) = self.since.take() {
            eprintln!(
                "zt: {} is back after {:.1}s; resuming after {after}",
                self.what,
                since.elapsed().as_secs_f64()
            );
        }
        self.delay = FIRST_DELAY;
    }
}

/// Whether a retry may succeed: the database is down, restarting or locked.
fn transient(error: &zt_audit::Error) -> bool {
    error.kind() == AuditErrorKind::Unavailable || error.database_class().is_some_and(zt_db::ErrorClass::is_transient)
}

/// `zt audit tail`.
pub(crate) fn run(args: &TailArgs) -> Result<Outcome> {
    let url: DatabaseUrl = args.database.database_url.parse().map_err(|e| anyhow!("{e}"))?;
    let key = if args.verify {
        Some(crate::connect::chain_key(&args.key)?)
    } else {
        None
    };
    if let Some(path) = url.sqlite_path()
        && !path.exists()
    {
        bail!("no SQLite database at {}", path.display());
    }
    // One connection, a short wait for it: the loop retries on its own.
    let config = crate::connect::cli_pool()
        .max_size(1)
        .connection_timeout(Duration::from_secs(5));
    let pool = Pool::connect_with(&url, &config).map_err(|e| anyhow!("{e}"))?;
    let log = match &key {
        Some(key) => AuditLog::new(pool, key),
        None => AuditLog::read_only(pool),
    };
    let mut after = match (&args.from, args.from_id) {
        (Some(cursor), _) => cursor.parse::<FollowCursor>().map_err(|e| anyhow!("--from: {e}"))?,
        (None, Some(from)) => {
            let end = log
                .newest_id()
                .map_err(|e| anyhow!("cannot read the audit log: {e}"))?
                .unwrap_or(0);
            if from > end {
                bail!("--from-id {from} is past the end of the log, row {end}");
            }
            log.cursor_after_id(from)
                .map_err(|e| anyhow!("cannot read the audit log: {e}"))?
        }
        (None, None) => log
            .cursor_at_end()
            .map_err(|e| anyhow!("cannot read the audit log: {e}"))?,
    };
    let mut verifier = match &key {
        Some(_) => Some(log.row_verifier(&after).map_err(|e| anyhow!("{e}"))?),
        None => None,
    };
    let mut sink = Sink::open(args)?;
    eprintln!(
        "zt: following the audit log after row {} (cursor {after})",
        args.from_id.unwrap_or_default()
    );
    let mut database = Backoff::new("the audit database");
    let mut collector = Backoff::new(sink.name());
    loop {
        let rows = match log.rows_after(&after, args.batch) {
            Ok(rows) => {
                database.recovered(&after);
                rows
            }
            Err(error) if transient(&error) => {
                database.wait(&error.to_string());
                continue;
            }
            Err(error) if args.verify && error.kind() == AuditErrorKind::Decode => {
                eprintln!("zt: TAMPERED: {}", neutralize(&error.to_string()));
                return Ok(Outcome::Tampered);
            }
            Err(error) => bail!("{error}"),
        };
        let caught_up = rows.len() < usize::try_from(args.batch).unwrap_or(usize::MAX);
        if verifier.is_none() {
            warn_gap(&after, &rows);
        }
        let mut good = rows.len();
        let mut finding = None;
        if let Some(verifier) = &mut verifier {
            for (index, record) in rows.iter().enumerate() {
                if let Err(found) = verifier.check(record) {
                    good = index;
                    finding = Some(found);
                    break;
                }
            }
        }
        let mut pending = &rows[..good];
        while !pending.is_empty() {
            match sink.ship(pending) {
                Ok(()) => {
                    pending.iter().for_each(|record| after.advance(record));
                    collector.recovered(&after);
                    pending = &[];
                }
                Err(SinkFailure::Closed) => return Ok(Outcome::Ok),
                Err(SinkFailure::Fatal(error)) => return Err(error),
                Err(SinkFailure::Retry { shipped, error }) => {
                    pending[..shipped].iter().for_each(|record| after.advance(record));
                    pending = &pending[shipped..];
                    collector.wait(&error);
                }
            }
        }
        if let Some(finding) = finding {
            eprintln!(
                "zt: TAMPERED: chain {} position {}: {}: {}",
                finding.chain,
                finding.position,
                finding.kind,
                neutralize(&finding.detail)
            );
            return Ok(Outcome::Tampered);
        }
        if caught_up {
            std::thread::sleep(args.interval);
        }
    }
}

/// Each chain is gapless; a gap means rows were deleted. Without `--verify`
/// the rows still flow, with a warning.
fn warn_gap(after: &FollowCursor, rows: &[AuditRecord]) {
    let mut seen = after.clone();
    for record in rows {
        let previous = seen.position(record.chain);
        if record.chain_seq != previous + 1 {
            eprintln!(
                "zt: warning: positions {} to {} of chain {} are missing from the log; run `zt audit verify`",
                previous + 1,
                record.chain_seq - 1,
                record.chain
            );
        }
        seen.advance(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "1", "1h", "0ms", "5ms", "61m", "x1s"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
