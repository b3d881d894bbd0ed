//! Times on the command line: RFC 3339, or relative to now.

use std::time::Duration;

use anyhow::{Result, bail};
use zt_types::Timestamp;

/// The accepted forms, for every error message.
const FORMS: &str = "use an RFC 3339 time such as 2026-11-29T12:00:00Z, or an age such as 90s, 30m, 24h, 7d or 2w";

/// The furthest back an age may reach: 100 years.
const MAX_AGE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses `2026-11-29T12:00:00Z`, or `90s`, `30m`, `24h`, `7d`, `2w` ago.
/// An age beyond 100 years is refused, not clamped.
pub(crate) fn parse(text: &str, now: Timestamp) -> Result<Timestamp> {
    let shown = zt_types::neutralize(&text.chars().take(64).collect::<String>()).into_owned();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        bail!("{shown:?} is not a time; {FORMS}");
    }
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("{shown:?} has no known unit; {FORMS}"),
    };
    let age = digits
        .parse::<u64>()
        .ok()
        .and_then(|amount| amount.checked_mul(seconds))
        .map(Duration::from_secs)
        .filter(|age| *age <= MAX_AGE)
        .ok_or_else(|| anyhow::anyhow!("{shown:?} reaches back more than 100 years; {FORMS}"))?;
    Ok(now.saturating_sub(age))
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
        for bad in ["", "h", "24", "24y", "yesterday", "-1h", "10000-01-01T00:00:00Z"] {
            let error = parse(bad, now).unwrap_err().to_string();
            assert!(error.contains("such as 90s"), "{bad}: {error}");
        }
        // Bounded: an age that overflows, or reaches past a century, is refused.
        for far in ["99999999999d", "18446744073709551615s", "5300w"] {
            let error = parse(far, now).unwrap_err().to_string();
            assert!(error.contains("more than 100 years"), "{far}: {error}");
        }
        assert!(parse("5200w", now).is_ok());
    }
}
