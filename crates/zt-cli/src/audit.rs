//! `zt migrate` and `zt audit ...`.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use zt_audit::{
    AuditFilter, AuditLog, ChainKey, CheckpointDir, Order, PageRequest, SignedCheckpoint, VerifyReport,
    generate_signing_key, signing_key_from_file, verify_archive, verifying_key_from_file,
};
use zt_db::{DatabaseUrl, MigrationSet, Pool, RuntimeRole};
use zt_types::{AuditStatus, Timestamp};

use crate::connect::{chain_key, cli_pool, connect};
use crate::output::{RECORD_COLUMNS, default_format, record_cells, spreadsheet_safe};
use crate::{AuditCommand, ExportFormat, Filters, Format, KeyArgs, MigrateArgs, MigrationSetName, Outcome, when};

/// `zt migrate [--only audit|sessions] [--runtime-role ROLE [--print-sql]]`:
/// applies zt-audit's and zt-session's migrations, or one set of them, and
/// prints one line per set; then sets up the runtime role.
pub(crate) fn migrate(args: &MigrateArgs) -> Result<Outcome> {
    let sets = [
        (MigrationSetName::Audit, "audit", vec![&zt_audit::MIGRATIONS]),
        (
            MigrationSetName::Sessions,
            "sessions",
            vec![&zt_session::MIGRATIONS, &zt_session::REGISTRY_MIGRATIONS],
        ),
    ];
    let chosen: Vec<_> = sets
        .iter()
        .filter(|(name, _, _)| args.only.is_none_or(|only| only == *name))
        .collect();
    // The input is checked before the database is touched.
    let role = args
        .runtime_role
        .as_deref()
        .map(RuntimeRole::new)
        .transpose()
        .map_err(|e| anyhow!("--runtime-role: {e}"))?;
    let privileged: Vec<&MigrationSet> = chosen.iter().flat_map(|(_, _, sets)| sets.iter().copied()).collect();
    if let (Some(role), true) = (&role, args.print_sql) {
        write!(std::io::stdout(), "{}", role.sql(&privileged))?;
        return Ok(Outcome::Ok);
    }
    let url = args.database_url.as_deref().unwrap_or_default();
    let parsed: DatabaseUrl = url.parse().map_err(|e| anyhow!("{e}"))?;
    let pool = Pool::connect_with(&parsed, &cli_pool().max_size(1)).map_err(|e| anyhow!("{e}"))?;
    for (_, label, sets) in &chosen {
        // The registry's table is the app's choice, made in its code.
        let applied = pool.run_migrations(sets[0]).map_err(|e| anyhow!("{e}"))?;
        if applied.is_empty() {
            writeln!(std::io::stdout(), "{parsed}: {label}: up to date, nothing to apply")?;
        } else {
            writeln!(std::io::stdout(), "{parsed}: {label}: applied {}", applied.join(", "))?;
        }
    }
    if let Some(role) = role {
        let mut conn = pool.get().map_err(|e| anyhow!("{e}"))?;
        let granted = role.apply(&mut conn, &privileged).map_err(|e| anyhow!("{e}"))?;
        writeln!(
            std::io::stdout(),
            "{parsed}: runtime role {}: {}",
            role.name(),
            granted.join("; ")
        )?;
    }
    Ok(Outcome::Ok)
}

pub(crate) fn run(command: AuditCommand) -> Result<Outcome> {
    match command {
        AuditCommand::Query {
            database,
            filters,
            limit,
            newest_first,
            format,
        } => {
            // The input is checked before the database is touched.
            let filter = build_filter(&filters)?;
            let log = AuditLog::read_only(connect(&database.database_url)?);
            let order = if newest_first {
                Order::NewestFirst
            } else {
                Order::OldestFirst
            };
            let page = log
                .query(&filter, &PageRequest::first(limit).order(order))
                .map_err(|e| anyhow!("{e}"))?;
            match format.unwrap_or_else(default_format) {
                Format::Table => {
                    let total = log.count(&filter).map_err(|e| anyhow!("{e}"))?;
                    write!(std::io::stdout(), "{}", zt_cli::table::records_table(&page.records))?;
                    writeln!(std::io::stdout(), "{} of {total} matching rows", page.records.len())?;
                }
                Format::Json => writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&page.records)?)?,
                Format::Jsonl => {
                    let mut out = std::io::stdout().lock();
                    for record in &page.records {
                        writeln!(out, "{}", serde_json::to_string(record)?)?;
                    }
                }
                Format::Csv => {
                    let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
                    writer.write_record(RECORD_COLUMNS)?;
                    for record in &page.records {
                        writer.write_record(record_cells(record).iter().map(|cell| spreadsheet_safe(cell)))?;
                    }
                    writer.flush()?;
                }
            }
            Ok(Outcome::Ok)
        }
        AuditCommand::Export {
            database,
            filters,
            format,
            output,
            force,
        } => export(&database.database_url, &filters, format, output.as_deref(), force),
        AuditCommand::Verify {
            database_url,
            key,
            archive: Some(archive),
            public_key,
            json,
            ..
        } => {
            let _ = database_url;
            verify_archive_file(&key, &archive, public_key.as_deref(), json)
        }
        AuditCommand::Verify {
            database_url,
            key,
            checkpoint,
            checkpoints,
            from_checkpoint,
            public_key,
            chain,
            json,
            archive: None,
        } => {
            let using = match (&checkpoint, &checkpoints, &from_checkpoint) {
                (Some(file), _, _) => CheckpointUse::File(file),
                (_, Some(dir), _) => CheckpointUse::Newest(dir),
                (_, _, Some(file)) => CheckpointUse::Start(file),
                _ => CheckpointUse::None,
            };
            verify(
                &database_url.unwrap_or_default(),
                &key,
                using,
                public_key.as_deref(),
                chain,
                json,
            )
        }
        AuditCommand::Archive {
            database,
            key,
            before,
            out,
            signing_key,
            force,
        } => archive(
            &database.database_url,
            &key,
            &before,
            &out,
            signing_key.as_deref(),
            force,
        ),
        AuditCommand::Partition {
            database,
            key,
            months_ahead,
        } => {
            let log = AuditLog::new(connect(&database.database_url)?, &chain_key(&key)?);
            let created = log.partition_by_month(months_ahead).map_err(|e| anyhow!("{e}"))?;
            if created.is_empty() {
                writeln!(
                    std::io::stdout(),
                    "every partition up to {months_ahead} month(s) ahead exists"
                )?;
            } else {
                writeln!(std::io::stdout(), "created {}", created.join(", "))?;
            }
            Ok(Outcome::Ok)
        }
        AuditCommand::Erase { database, key, user } => {
            let log = AuditLog::new(connect(&database.database_url)?, &chain_key(&key)?);
            let summary = log.erase_personal_data(&user).map_err(|e| anyhow!("{e}"))?;
            writeln!(
                std::io::stdout(),
                "erased the personal data of {} row(s) of user {}; {} erased before; {} written before \
                 erasure was possible were left (archive and prune them)",
                summary.erased,
                zt_types::neutralize(&user),
                summary.already_erased,
                summary.legacy
            )?;
            Ok(Outcome::Ok)
        }
        AuditCommand::Prune {
            database,
            key,
            before,
            archive,
            public_key,
        } => prune(&database.database_url, &key, &before, &archive, public_key.as_deref()),
        AuditCommand::Checkpoint {
            database,
            key,
            signing_key,
            out,
            dir,
            force,
        } => {
            let log = AuditLog::new(connect(&database.database_url)?, &chain_key(&key)?);
            let signing_key = signing_key_from_file(&signing_key).map_err(|e| anyhow!("{e}"))?;
            let (written, stated) = if let Some(dir) = dir {
                let dir = CheckpointDir::new(dir).map_err(|e| anyhow!("{e}"))?;
                let checkpoint = log.checkpoint(&signing_key).map_err(|e| anyhow!("{e}"))?;
                (dir.write(&checkpoint).map_err(|e| anyhow!("{e}"))?, checkpoint)
            } else {
                let out = out.unwrap_or_default();
                // Opened before anything is signed, so a refusal costs nothing.
                let mut file = create_output(&out, force)?;
                let checkpoint = log.checkpoint(&signing_key).map_err(|e| anyhow!("{e}"))?;
                writeln!(file, "{}", checkpoint.to_json())
                    .with_context(|| format!("cannot write {}", out.display()))?;
                (out, checkpoint)
            };
            writeln!(
                std::io::stdout(),
                "checkpoint of {} rows in {} chain(s) written to {}",
                stated.checkpoint.row_count,
                stated.checkpoint.heads().iter().filter(|head| head.seq > 0).count(),
                written.display()
            )?;
            Ok(Outcome::Ok)
        }
        AuditCommand::Tail(args) => crate::tail::run(&args),
        AuditCommand::Keygen {
            chain_key,
            signing_key,
            public_key,
        } => {
            if let Some(path) = chain_key {
                let key = ChainKey::generate().map_err(|e| anyhow!("{e}"))?;
                write_secret(&path, &key.to_hex())?;
                writeln!(
                    std::io::stdout(),
                    "chain key {} written to {}",
                    key.id(),
                    path.display()
                )?;
            }
            if let (Some(secret), Some(public)) = (signing_key, public_key) {
                let key = generate_signing_key().map_err(|e| anyhow!("{e}"))?;
                write_secret(&secret, &hex::encode(key.to_bytes()))?;
                writeln!(
                    create_output(&public, false)?,
                    "{}",
                    hex::encode(key.verifying_key().as_bytes())
                )
                .with_context(|| format!("cannot write {}", public.display()))?;
                writeln!(
                    std::io::stdout(),
                    "signing key written to {}, public key to {}",
                    secret.display(),
                    public.display()
                )?;
            }
            Ok(Outcome::Ok)
        }
    }
}

/// Writes a key file readable by its owner only.
/// An export's file: evidence with personal data in it, so readable by its
/// owner only; an existing file, perhaps a key, is kept unless `force`.
fn create_output(path: &Path, force: bool) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists; pass --force to replace it", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })
}

fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    writeln!(file, "{text}")?;
    Ok(())
}

fn build_filter(filters: &Filters) -> Result<AuditFilter> {
    let now = Timestamp::now();
    let mut filter = AuditFilter::new();
    if let Some(user) = &filters.user {
        filter = filter.user(user);
    }
    if let Some(email) = &filters.email {
        filter = filter.email(email);
    }
    for action in &filters.actions {
        filter = filter.action(action);
    }
    if let Some(resource) = &filters.resource {
        filter = filter.resource(resource);
    }
    if let Some(resource_id) = &filters.resource_id {
        filter = filter.resource_id(resource_id);
    }
    if let Some(status) = &filters.status {
        let status: AuditStatus = status.parse().map_err(|e| anyhow!("--status: {e}"))?;
        filter = filter.status(status);
    }
    if let Some(since) = &filters.since {
        filter = filter.since(when::parse(since, now).context("--since")?);
    }
    if let Some(until) = &filters.until {
        filter = filter.until(when::parse(until, now).context("--until")?);
    }
    if let Some(ip) = &filters.ip {
        filter = filter.ip(ip).map_err(|e| anyhow!("--ip: {e}"))?;
    }
    if let Some(chain) = filters.chain {
        filter = filter.chain(chain);
    }
    if let Some(request_id) = &filters.request_id {
        filter = filter.request_id(request_id);
    }
    Ok(filter)
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template = format!("{what} {{bar:40}} {{pos}}/{{len}} rows ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

fn export(url: &str, filters: &Filters, format: ExportFormat, output: Option<&Path>, force: bool) -> Result<Outcome> {
    let filter = build_filter(filters)?;
    let log = AuditLog::read_only(connect(url)?);
    let sink: Box<dyn Write> = match output {
        Some(path) => Box::new(create_output(path, force)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = BufWriter::new(sink);
    let total = log.count(&filter).map_err(|e| anyhow!("{e}"))?;
    let bar = progress_bar(total, "exporting");
    let written = match format {
        ExportFormat::Jsonl => log.for_each(&filter, |record| {
            serde_json::to_writer(&mut sink, record).map_err(std::io::Error::from)?;
            sink.write_all(b"\n")?;
            bar.inc(1);
            Ok(())
        }),
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut sink);
            writer.write_record(RECORD_COLUMNS)?;
            let written = log.for_each(&filter, |record| {
                writer
                    .write_record(record_cells(record).iter().map(|cell| spreadsheet_safe(cell)))
                    .map_err(std::io::Error::from)?;
                bar.inc(1);
                Ok(())
            });
            writer.flush()?;
            written
        }
    }
    // Kept whole, so that a closed stdout is still seen as one.
    .map_err(anyhow::Error::new)?;
    sink.flush()?;
    bar.finish_and_clear();
    if let Some(path) = output {
        eprintln!("exported {written} rows to {}", path.display());
    }
    Ok(Outcome::Ok)
}

/// Which checkpoint `zt audit verify` uses, and how.
#[derive(Clone, Copy)]
pub(crate) enum CheckpointUse<'a> {
    /// None: a cut tail would go unseen.
    None,
    /// A file, as the chains' end.
    File(&'a Path),
    /// The newest in a directory, as the chains' end.
    Newest(&'a Path),
    /// A file, as the chains' start: only newer rows are read.
    Start(&'a Path),
}

fn read_checkpoint(file: &Path) -> Result<SignedCheckpoint> {
    // A checkpoint is a few KiB; refuse to read a huge file whole.
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    if size > 1 << 20 {
        return Err(anyhow!(
            "{} is {size} bytes, too large for a checkpoint",
            file.display()
        ));
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    SignedCheckpoint::from_json(&text).map_err(|e| anyhow!("{}: {e}", file.display()))
}

fn verify(
    url: &str,
    key: &KeyArgs,
    checkpoint: CheckpointUse<'_>,
    public_key: Option<&Path>,
    chain: Option<i16>,
    json: bool,
) -> Result<Outcome> {
    let key = chain_key(key)?;
    // The inputs are read before the database is touched.
    let trusted = public_key
        .map(|public| verifying_key_from_file(public).map_err(|e| anyhow!("{e}")))
        .transpose()?;
    let (signed, incremental) = match checkpoint {
        CheckpointUse::None => (None, false),
        CheckpointUse::File(file) => (Some(read_checkpoint(file)?), false),
        CheckpointUse::Start(file) => (Some(read_checkpoint(file)?), true),
        CheckpointUse::Newest(dir) => {
            let dir = CheckpointDir::new(dir).map_err(|e| anyhow!("{e}"))?;
            let (_, newest) = dir
                .newest()
                .map_err(|e| anyhow!("{e}"))?
                .ok_or_else(|| anyhow!("no checkpoint in {}", dir.path().display()))?;
            (Some(newest), false)
        }
    };
    let log = AuditLog::new(connect(url)?, &key);
    let checkpoint = signed.zip(trusted);
    let total: u64 = log
        .heads()
        .map(|heads| {
            heads
                .iter()
                .filter(|head| chain.is_none_or(|chain| chain == head.chain))
                .map(|head| u64::try_from(head.seq).unwrap_or(0))
                .sum()
        })
        .map_err(|e| anyhow!("{e}"))?;
    let already = match (&checkpoint, incremental) {
        (Some((signed, _)), true) => signed
            .checkpoint
            .heads()
            .iter()
            .filter(|head| chain.is_none_or(|chain| chain == head.chain))
            .map(|head| u64::try_from(head.seq).unwrap_or(0))
            .sum(),
        _ => 0,
    };
    let bar = progress_bar(total.saturating_sub(already), "verifying");
    let advance = |read| bar.inc(read);
    let report = match (
        checkpoint.as_ref().map(|(signed, trusted)| (signed, trusted)),
        incremental,
        chain,
    ) {
        (Some((signed, trusted)), true, only) => log.verify_from(signed, trusted, only, advance),
        (checkpoint, _, Some(chain)) => log.verify_chain(chain, checkpoint, advance),
        (checkpoint, _, None) => log.verify_with(checkpoint, advance),
    }
    .map_err(|e| anyhow!("{e}"))?;
    bar.finish_and_clear();
    print_report(&report, json)
}

/// Prints a verification report as `zt audit verify` does; exit 1 when tampered.
fn print_report(report: &VerifyReport, json: bool) -> Result<Outcome> {
    if json {
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        match &report.finding {
            None => {
                let against = match (report.checkpoint_checked, report.from_checkpoint) {
                    (true, true) => " after the signed checkpoint, which they continue",
                    (true, false) => ", and matches the signed checkpoint",
                    _ => "",
                };
                writeln!(
                    std::io::stdout(),
                    "OK: {} rows in {} chain(s) verified, every chain is intact{against}",
                    report.rows_checked,
                    report.chains_checked,
                )?;
                if !report.checkpoint_checked {
                    // Said plainly: the one attack a checkpoint-less verify cannot see.
                    writeln!(
                        std::io::stdout(),
                        "NOTE: no signed checkpoint was checked, so rows cut from the end of a chain \
                         (with its head moved back) would go unseen; pass --checkpoints DIR"
                    )?;
                }
            }
            Some(finding) => writeln!(
                std::io::stdout(),
                "TAMPERED: chain {} position {}: {}: {}",
                finding.chain,
                finding.position,
                finding.kind,
                finding.detail
            )?,
        }
    }
    Ok(if report.is_valid() {
        Outcome::Ok
    } else {
        Outcome::Tampered
    })
}

/// Opens an archive, decompressing it when it starts with zstd's magic bytes.
fn open_archive(path: &Path) -> Result<Box<dyn std::io::BufRead>> {
    use std::io::{BufRead as _, BufReader};
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let compressed = reader.fill_buf()?.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    Ok(if compressed {
        Box::new(BufReader::new(zstd::Decoder::with_buffer(reader)?))
    } else {
        Box::new(reader)
    })
}

/// `zt audit verify --archive FILE`: the archive alone, no database.
fn verify_archive_file(key: &KeyArgs, path: &Path, public: Option<&Path>, json: bool) -> Result<Outcome> {
    let key = chain_key(key)?;
    let trusted = match public {
        Some(public) => verifying_key_from_file(public).map_err(|e| anyhow!("{e}"))?,
        None => named_key(&read_archive_header(path)?)?,
    };
    let (header, report) =
        verify_archive(open_archive(path)?, &key, &trusted).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if !json && report.is_valid() {
        writeln!(
            std::io::stdout(),
            "archive {}: rows written before {}",
            path.display(),
            header.before
        )?;
    }
    print_report(&report, json)
}

/// `zt audit archive --before AGE --out FILE`.
fn archive(
    url: &str,
    key: &KeyArgs,
    before: &str,
    out: &Path,
    signing_key: Option<&Path>,
    force: bool,
) -> Result<Outcome> {
    let before = when::parse(before, Timestamp::now()).context("--before")?;
    let key = chain_key(key)?;
    let one_time = signing_key.is_none();
    let signing_key = match signing_key {
        Some(path) => signing_key_from_file(path),
        None => generate_signing_key(),
    }
    .map_err(|e| anyhow!("{e}"))?;
    let file = create_output(out, force)?;
    let log = AuditLog::new(connect(url)?, &key);
    let compressed = out.extension().is_some_and(|extension| extension == "zst");
    let written = (|| -> Result<zt_audit::ArchiveSummary> {
        let mut sink = BufWriter::new(&file);
        let summary = if compressed {
            let mut encoder = zstd::Encoder::new(&mut sink, 3)?;
            let summary = log
                .archive(before, &signing_key, &mut encoder)
                .map_err(|e| anyhow!("{e}"))?;
            encoder.finish()?;
            summary
        } else {
            log.archive(before, &signing_key, &mut sink)
                .map_err(|e| anyhow!("{e}"))?
        };
        sink.flush()?;
        drop(sink);
        file.sync_all()?;
        Ok(summary)
    })();
    let summary = match written {
        Ok(summary) => summary,
        Err(error) => {
            // A half-written archive is worse than none.
            let _ = std::fs::remove_file(out);
            return Err(error);
        }
    };
    // Read back as an investigator will, before anyone prunes on its strength.
    let (_, report) =
        verify_archive(open_archive(out)?, &key, &signing_key.verifying_key()).map_err(|e| anyhow!("{e}"))?;
    if !report.is_valid() {
        return Err(anyhow!(
            "the archive written to {} does not verify: {:?}",
            out.display(),
            report.finding
        ));
    }
    writeln!(
        std::io::stdout(),
        "archived {} rows written before {} to {}, verified against its signed checkpoint",
        summary.rows,
        before,
        out.display()
    )?;
    if one_time {
        writeln!(
            std::io::stdout(),
            "NOTE: signed with a one-time key ({}); pass --signing-key to sign with a key you keep",
            summary.header.checkpoint.public_key
        )?;
    }
    Ok(Outcome::Ok)
}

/// `zt audit prune --before AGE --archive FILE --public-key PUB`.
fn prune(url: &str, key: &KeyArgs, before: &str, archive: &Path, public: Option<&Path>) -> Result<Outcome> {
    let before = when::parse(before, Timestamp::now()).context("--before")?;
    let key = chain_key(key)?;
    let trusted = match public {
        Some(public) => verifying_key_from_file(public).map_err(|e| anyhow!("{e}"))?,
        // The rows' MACs, under the chain key, vouch for the archive; the
        // key it names only has to match its own signature.
        None => named_key(&read_archive_header(archive)?)?,
    };
    // Nothing is deleted on the strength of an archive that does not verify.
    let (header, report) =
        verify_archive(open_archive(archive)?, &key, &trusted).map_err(|e| anyhow!("{}: {e}", archive.display()))?;
    if !report.is_valid() {
        writeln!(std::io::stdout(), "the archive does not verify; nothing was deleted")?;
        return print_report(&report, false);
    }
    if header.before > before {
        return Err(anyhow!(
            "the archive holds rows written up to {}, after --before {before}; nothing was deleted",
            header.before
        ));
    }
    let log = AuditLog::new(connect(url)?, &key);
    let summary = log.prune(&header, &trusted).map_err(|e| anyhow!("{e}"))?;
    let chains: Vec<String> = summary
        .chains
        .iter()
        .map(|state| format!("{}:{}", state.chain, state.seq))
        .collect();
    writeln!(
        std::io::stdout(),
        "pruned {} rows written before {}; verification now starts after {}",
        summary.rows,
        header.before,
        if chains.is_empty() {
            "nothing new".to_owned()
        } else {
            chains.join(", ")
        }
    )?;
    Ok(Outcome::Ok)
}

/// The header of an archive, read alone.
fn read_archive_header(path: &Path) -> Result<zt_audit::ArchiveHeader> {
    let mut first = String::new();
    // A header is a few KiB; a longer first line is no archive.
    std::io::BufRead::read_line(&mut std::io::Read::take(open_archive(path)?, 1 << 20), &mut first)?;
    serde_json::from_str(&first).map_err(|e| anyhow!("{} is not a zt audit archive: {e}", path.display()))
}

/// The public key an archive's checkpoint names.
fn named_key(header: &zt_audit::ArchiveHeader) -> Result<zt_audit::VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(&header.checkpoint.public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| anyhow!("the archive names no valid public key; pass --public-key"))?;
    zt_audit::VerifyingKey::from_bytes(&bytes).map_err(|e| anyhow!("the archive's public key: {e}"))
}
