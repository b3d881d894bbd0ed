//! Times on the command line: RFC 3339, or relative to now.

use std::time::Duration;

use anyhow::{Result, bail};
use zt_types::Timestamp;

/// Parses `2026-11-29T12:00:00Z`, or `90s`, `30m`, `24h`, `7d`, `2w` ago.
pub(crate) fn parse(text: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = match digits.parse() {
        Ok(amount) => amount,
        Err(_) => {
            bail!("{text:?} is neither an RFC 3339 time nor a relative time such as 24h or 7d")
        }
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("{text:?} has an unknown unit; use s, m, h, d or w, as in 24h or 7d"),
    };
    Ok(now.saturating_sub(Duration::from_secs(amount.saturating_mul(seconds))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        assert_eq!(parse("24h", now).unwrap().to_string(), "2026-11-28T12:00:00.000000Z");
        assert_eq!(parse("7d", now).unwrap().to_string(), "2026-11-22T12:00:00.000000Z");
        assert_eq!(parse("30m", now).unwrap().to_string(), "2026-11-29T11:30:00.000000Z");
        assert_eq!(
            parse("2026-01-01T00:00:00+02:00", now).unwrap().to_string(),
            "2025-12-31T22:00:00.000000Z"
        );
        for bad in ["", "h", "24", "24y", "yesterday", "-1h"] {
            assert!(parse(bad, now).is_err(), "{bad}");
        }
    }
}
