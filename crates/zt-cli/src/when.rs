//! Times on the command line: RFC 3339, or an age relative to now, in
//! humantime's duration grammar, the one zt-monitoring's rule files read:
//! `90s`, `30m`, `24h`, `7d`, `2w`, sums such as `1h30m`, `250ms`.

use std::time::Duration;

use anyhow::{Result, bail};
use zt_types::Timestamp;

/// The accepted forms, for every error message.
const FORMS: &str =
    "use an RFC 3339 time such as 2026-11-29T12:00:00Z, or an age such as 90s, 30m, 24h, 7d, 2w or 1h30m";

/// The furthest back an age may reach: 100 years, of humantime's 365.25 days.
const MAX_AGE: Duration = Duration::from_secs(100 * 31_557_600);

/// Parses `2026-11-29T12:00:00Z`, or an age such as `90s`, `30m`, `24h`,
/// `7d`, `2w` or `1h30m` ago. An age beyond 100 years is refused, not clamped.
pub(crate) fn parse(text: &str, now: Timestamp) -> Result<Timestamp> {
    let shown = zt_types::neutralize(&text.chars().take(64).collect::<String>()).into_owned();
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let text = text.trim();
    // An age starts with a digit; anything else is no time at all.
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        bail!("{shown:?} is not a time; {FORMS}");
    }
    let age = match humantime::parse_duration(text) {
        Ok(age) => age,
        Err(humantime::DurationError::NumberOverflow) => {
            bail!("{shown:?} reaches back more than 100 years; {FORMS}")
        }
        Err(humantime::DurationError::UnknownUnit { .. }) => bail!("{shown:?} has no known unit; {FORMS}"),
        Err(_) => bail!("{shown:?} is not a time; {FORMS}"),
    };
    if age > MAX_AGE {
        bail!("{shown:?} reaches back more than 100 years; {FORMS}");
    }
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
        // The grammar zt-monitoring's rule files read: sums and milliseconds too.
        assert_eq!(parse("1h30m", now).unwrap().to_string(), "2026-11-29T10:30:00.000000Z");
        assert_eq!(parse("2w", now).unwrap().to_string(), "2026-11-15T12:00:00.000000Z");
        assert_eq!(parse("250ms", now).unwrap().to_string(), "2026-11-29T11:59:59.750000Z");
        for bad in ["", "h", "24", "24x", "yesterday", "-1h", "10000-01-01T00:00:00Z"] {
            let error = parse(bad, now).unwrap_err().to_string();
            assert!(error.contains("such as 90s"), "{bad}: {error}");
        }
        // Bounded: an age that overflows, or reaches past a century, is refused.
        for far in [
            "99999999999d",
            "99999999999999999999d",
            "18446744073709551615s",
            "5300w",
            "101y",
        ] {
            let error = parse(far, now).unwrap_err().to_string();
            assert!(error.contains("more than 100 years"), "{far}: {error}");
        }
        assert!(parse("5200w", now).is_ok());
        assert!(parse("100y", now).is_ok());
    }
}
