//! `zt`: the investigator's and operator's command.
//!
//! Output is a readable table on a terminal and a machine format (JSON Lines)
//! when piped. Errors are one line on stderr. Exit codes: 0 success, 1 the
//! audit log failed verification, 2 a usage, input or connection error.
#![forbid(unsafe_code)]
// A command-line tool talks to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod audit;
mod codes;
mod connect;
mod output;
mod relp;
mod syslog;
mod tail;
mod when;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "zt",
    version,
    about = "Audit logs you can prove, and the zt error-code catalog"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply zt's migrations (audit log; users and session revocations).
    ///
    /// zt records them in its own `__zt_schema_migrations` table, so the
    /// app's diesel migrations, and `diesel migration revert`, never see them.
    Migrate(MigrateArgs),
    /// Query, export, verify and checkpoint the audit log.
    #[command(subcommand)]
    Audit(Box<AuditCommand>),
    /// The error-code catalog, for support.
    #[command(subcommand)]
    Codes(CodesCommand),
}

#[derive(Args)]
pub(crate) struct DatabaseArgs {
    /// `sqlite://path/to/file.db`, `postgres://user@host/db`, or libpq
    /// `key=value` pairs such as `host=db user=app dbname=prod`. Prefer the
    /// variable: a password on the command line is visible to other users.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,
}

#[derive(Args)]
pub(crate) struct MigrateArgs {
    /// As for every command; not needed with `--print-sql`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        required_unless_present = "print_sql"
    )]
    pub(crate) database_url: Option<String>,
    /// Apply only this crate's migrations; default: both.
    #[arg(long, value_enum)]
    pub(crate) only: Option<MigrationSetName>,
    /// Then create this PostgreSQL role, if missing (NOLOGIN), and grant it
    /// exactly what the app needs at run time: on the audit log, SELECT and
    /// INSERT only. It must not own the tables, so run `zt migrate` as
    /// another role, and the app as this one.
    #[arg(long, value_name = "ROLE")]
    pub(crate) runtime_role: Option<String>,
    /// Print the runtime role's SQL instead, and touch nothing.
    #[arg(long, requires = "runtime_role")]
    pub(crate) print_sql: bool,
}

/// One of zt's migration sets, for `zt migrate --only`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MigrationSetName {
    /// zt-audit's: the `audit_logs` table.
    Audit,
    /// zt-session's: `zt_users`, `zt_session_revocations`, `zt_user_revocations`.
    Sessions,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show the rows that match the filters.
    Query {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        filters: Filters,
        /// The most rows to show.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Newest rows first.
        #[arg(long)]
        newest_first: bool,
        /// The output format; default: table on a terminal, jsonl when piped.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Stream every matching row, oldest first, as JSON Lines or CSV.
    Export {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        filters: Filters,
        /// The output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file instead of stdout; it is created readable by its
        /// owner only, and an existing file is kept unless `--force`.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Replace an existing output file.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Prove the log was not altered, or name the first row that was.
    Verify {
        /// As for every command; not needed with `--archive`.
        #[arg(
            long,
            env = "DATABASE_URL",
            hide_env_values = true,
            required_unless_present = "archive"
        )]
        database_url: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
        /// A signed checkpoint file to check the log against: rows cut from
        /// the end of a chain since it was taken show as truncated.
        #[arg(long, requires = "public_key", conflicts_with_all = ["checkpoints", "from_checkpoint", "archive"])]
        checkpoint: Option<PathBuf>,
        /// Verify an archive (`zt audit archive`) on its own, without the
        /// database: its checkpoint's signature, then every row's MAC.
        /// Without `--public-key`, the key the archive names is used.
        #[arg(long, conflicts_with_all = ["checkpoints", "from_checkpoint"])]
        archive: Option<PathBuf>,
        /// A directory of checkpoints (as `zt audit checkpoint --dir` and
        /// automatic checkpoints write them): check against the newest.
        #[arg(long, requires = "public_key", conflicts_with = "from_checkpoint")]
        checkpoints: Option<PathBuf>,
        /// Incremental: check this checkpoint's signature, then verify only
        /// the rows written after it.
        #[arg(long, requires = "public_key")]
        from_checkpoint: Option<PathBuf>,
        /// The Ed25519 public key (hex or base64) that signed the checkpoints.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Verify only this hash chain, such as a tenant's.
        #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
        chain: Option<i16>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the rows older than a time to an archive (JSON Lines; zstd when
    /// the name ends in `.zst`) with a signed checkpoint at the cut, then
    /// verify the archive as written.
    Archive {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// The cut: rows written before it, such as `365d` or an RFC 3339 time.
        #[arg(long)]
        before: String,
        /// The archive file, created 0600.
        #[arg(long)]
        out: PathBuf,
        /// The Ed25519 signing key for the checkpoint at the cut; without
        /// it, a one-time key signs it, and only the chain key's MACs vouch
        /// for the archive.
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// Replace `--out` if it exists.
        #[arg(long)]
        force: bool,
    },
    /// PostgreSQL: partition `audit_logs` by month (once; it holds the table
    /// while rows move), and create this month's and the next partitions.
    /// Run it monthly; `prune` then drops whole months.
    Partition {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// How many months ahead to create partitions for.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=120))]
        months_ahead: u32,
    },
    /// Erase a user's personal data (email, metadata, client and peer IP,
    /// user agent) from their rows; the rows keep verifying, and the erasure
    /// is audited.
    Erase {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// The user whose data goes.
        #[arg(long)]
        user: String,
    },
    /// Delete the rows an archive holds, once the archive verifies, through
    /// the one path the append-only triggers allow; the prune is audited.
    Prune {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// The cut, as given to `archive`; an archive reaching past it is refused.
        #[arg(long)]
        before: String,
        /// The archive written by `zt audit archive`.
        #[arg(long)]
        archive: PathBuf,
        /// The Ed25519 public key of the archive's checkpoint; without it,
        /// the key the archive names is used, and only the chain key's MACs
        /// vouch for the rows.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Sign a checkpoint of the chain as it is now; keep the file outside the database.
    Checkpoint {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        key: KeyArgs,
        /// The Ed25519 signing key (hex or base64).
        #[arg(long)]
        signing_key: PathBuf,
        /// Where to write the checkpoint JSON (created 0600).
        #[arg(long, required_unless_present = "dir", conflicts_with = "dir")]
        out: Option<PathBuf>,
        /// Or: a checkpoint directory, where it gets a new file named by its
        /// time (`zt audit verify --checkpoints DIR` reads the newest).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace `--out` if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Follow the log as rows commit: JSON Lines on stdout, or RFC 5424 syslog.
    ///
    /// Reads by id after `--from-id` (default: the current end), every
    /// `--interval`; survives database and collector restarts, resuming after
    /// the last row shipped. `--verify` checks each row's MAC and stops with
    /// exit 1 at the first bad one. A closed stdout ends it with exit 0.
    Tail(tail::TailArgs),
    /// Generate a chain key, or an Ed25519 key pair for checkpoints.
    Keygen {
        /// Write a new chain (HMAC) key here.
        #[arg(long, required_unless_present = "signing_key")]
        chain_key: Option<PathBuf>,
        /// Write a new Ed25519 signing key here, and its public key to `--public-key`.
        #[arg(long, requires = "public_key")]
        signing_key: Option<PathBuf>,
        /// Where the public key goes, with `--signing-key`.
        #[arg(long, requires = "signing_key")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Args)]
pub(crate) struct KeyArgs {
    /// A file holding the chain key (hex or base64); otherwise `ZT_AUDIT_KEY`.
    #[arg(long)]
    pub(crate) key_file: Option<PathBuf>,
}

/// The filters shared by `query` and `export`.
#[derive(Args)]
struct Filters {
    /// Rows of this user id.
    #[arg(long)]
    user: Option<String>,
    /// Rows with this email.
    #[arg(long)]
    email: Option<String>,
    /// Rows with this action; repeat for several.
    #[arg(long = "action")]
    actions: Vec<String>,
    /// Rows about this kind of resource.
    #[arg(long)]
    resource: Option<String>,
    /// Rows about this resource id (needs --resource).
    #[arg(long, requires = "resource")]
    resource_id: Option<String>,
    /// Rows with this status: success, failed or denied.
    #[arg(long)]
    status: Option<String>,
    /// Rows at or after this time: RFC 3339, or relative such as 24h, 7d, 30m.
    #[arg(long)]
    since: Option<String>,
    /// Rows before this time: RFC 3339, or relative.
    #[arg(long)]
    until: Option<String>,
    /// Rows whose client IP is this address or inside this CIDR block.
    #[arg(long)]
    ip: Option<String>,
    /// Rows of this request id.
    #[arg(long)]
    request_id: Option<String>,
    /// Only rows of this hash chain, such as a tenant's.
    #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
    chain: Option<i16>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Subcommand)]
enum CodesCommand {
    /// List every code.
    List {
        /// The output format; default: table on a terminal, jsonl when piped.
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Show one code in full.
    Show {
        /// The code, such as SESSION_REVOKED.
        code: String,
    },
}

/// What a command reports back: success, or a log that failed verification.
pub(crate) enum Outcome {
    Ok,
    Tampered,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Migrate(args) => audit::migrate(&args),
        Command::Audit(command) => audit::run(*command),
        Command::Codes(command) => codes::run(command),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Tampered) => ExitCode::from(1),
        // The reader went away (`zt audit query | head`): nothing is wrong.
        Err(error) if stdout_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, control characters escaped, with the causes after
            // the context: "--since: \"99d9\" has no known unit; ...".
            let line = format!("{error:#}");
            eprintln!(
                "zt: error: {}",
                zt_types::neutralize(line.lines().next().unwrap_or("unknown error"))
            );
            ExitCode::from(2)
        }
    }
}

/// Whether `error` is a write to a closed pipe, however it was wrapped.
fn stdout_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            Some(io.kind())
        } else if let Some(json) = cause.downcast_ref::<serde_json::Error>() {
            json.io_error_kind()
        } else if let Some(csv) = cause.downcast_ref::<csv::Error>() {
            match csv.kind() {
                csv::ErrorKind::Io(io) => Some(io.kind()),
                _ => None,
            }
        } else {
            None
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
