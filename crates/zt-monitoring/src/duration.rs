//! Durations in rule files, in humantime's grammar, the one the `zt` command
//! reads too: `250ms`, `30s`, `5m`, `4h`, `1d`, `2w`, sums such as `1h30m`
//! or `1h 30m`, and long names such as `5 minutes`. A bare number in JSON is
//! seconds. Formatting writes the compact form (`1h30m`), which parses back.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The accepted forms, for every error message.
const FORMS: &str = "use a duration such as 250ms, 30s, 5m, 4h, 1d, 2w or 1h30m";

/// Parses a duration in humantime's grammar; see the module documentation.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let shown = zt_types::neutralize(&text.chars().take(64).collect::<String>()).into_owned();
    humantime::parse_duration(text.trim()).map_err(|error| format!("invalid duration {shown:?} ({error}); {FORMS}"))
}

/// Formats a duration in the form [`parse`] reads, such as `1h30m` or `250ms`.
pub(crate) fn format(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".into();
    }
    let mut out = String::new();
    let mut seconds = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            let _ = write!(out, "{}{unit}", seconds / size);
            seconds %= size;
        }
    }
    let millis = duration.subsec_millis();
    if millis > 0 {
        let _ = write!(out, "{millis}ms");
    }
    if out.is_empty() {
        // Below a millisecond: say so rather than print nothing.
        let _ = write!(out, "{}us", duration.subsec_micros());
    }
    out
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Seconds(u64),
    Text(String),
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn deserialize_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    deserialize(deserializer).map(Some)
}

pub(crate) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse(" 5 minutes ").unwrap(), Duration::from_secs(300));
        for bad in ["", "5", "m", "5x", "-5s", "1 fortnight"] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("such as 250ms"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for text in ["0s", "250ms", "30s", "5m", "4h", "1d2h3m4s5ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(Duration::from_micros(7)), "7us");
        assert_eq!(parse("7us").unwrap(), Duration::from_micros(7));
    }
}
