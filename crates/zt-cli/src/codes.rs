//! `zt codes list` and `zt codes show`.

use std::io::Write as _;

use anyhow::{Result, anyhow};
use zt_error_codes::ErrorCode;

use zt_cli::table::TextTable;

use crate::output::default_format;
use crate::{CodesCommand, Format, Outcome};

pub(crate) fn run(command: CodesCommand) -> Result<Outcome> {
    match command {
        CodesCommand::List { format } => list(format.unwrap_or_else(default_format)),
        CodesCommand::Show { code } => show(&code),
    }
}

fn list(format: Format) -> Result<Outcome> {
    match format {
        Format::Table => {
            let mut table = TextTable::new(&["CODE", "HTTP", "SEVERITY", "CATEGORY", "PUBLIC MESSAGE"], 80);
            for code in ErrorCode::ALL {
                let info = code.info();
                table.row(&[
                    info.reason.to_owned(),
                    info.http_status.to_string(),
                    info.severity.to_string(),
                    info.category.to_string(),
                    info.public_message.to_owned(),
                ]);
            }
            write!(std::io::stdout(), "{}", table.render())?;
        }
        Format::Json => writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&ErrorCode::ALL.iter().map(|c| json(*c)).collect::<Vec<_>>())?
        )?,
        Format::Jsonl => {
            for code in ErrorCode::ALL {
                writeln!(std::io::stdout(), "{}", json(*code))?;
            }
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(std::io::stdout());
            writer.write_record(["code", "http_status", "severity", "category", "public_message"])?;
            for code in ErrorCode::ALL {
                let info = code.info();
                writer.write_record([
                    info.reason,
                    &info.http_status.to_string(),
                    info.severity.as_str(),
                    info.category.as_str(),
                    info.public_message,
                ])?;
            }
            writer.flush()?;
        }
    }
    Ok(Outcome::Ok)
}

fn json(code: ErrorCode) -> serde_json::Value {
    let info = code.info();
    serde_json::json!({
        "code": info.reason,
        "category": info.category,
        "severity": info.severity,
        "http_status": info.http_status,
        "retryable": info.retryable,
        "reauthenticate": info.reauthenticate,
        "public_title": info.public_title,
        "public_message": info.public_message,
        "description": info.description,
        "remediation": info.remediation,
    })
}

fn show(reason: &str) -> Result<Outcome> {
    let code = ErrorCode::from_reason(&reason.trim().to_ascii_uppercase())
        .ok_or_else(|| anyhow!("unknown error code {reason:?}; `zt codes list` shows them all"))?;
    let info = code.info();
    writeln!(std::io::stdout(), "{}", info.reason)?;
    writeln!(std::io::stdout(), "  category:        {}", info.category)?;
    writeln!(std::io::stdout(), "  severity:        {}", info.severity)?;
    writeln!(std::io::stdout(), "  HTTP status:     {}", info.http_status)?;
    writeln!(
        std::io::stdout(),
        "  retryable:       {}",
        if info.retryable { "yes" } else { "no" }
    )?;
    writeln!(
        std::io::stdout(),
        "  sign in again:   {}",
        if info.reauthenticate { "yes" } else { "no" }
    )?;
    writeln!(std::io::stdout(), "  public title:    {}", info.public_title)?;
    writeln!(std::io::stdout(), "  public message:  {}", info.public_message)?;
    writeln!(std::io::stdout(), "  meaning:         {}", info.description)?;
    writeln!(std::io::stdout(), "  what to do:      {}", info.remediation)?;
    Ok(Outcome::Ok)
}
