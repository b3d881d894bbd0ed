//! Durations in rule files: `250ms`, `30s`, `5m`, `4h`, `1d`, or sums such as
//! `1h30m`. A bare number in JSON is seconds.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `250ms`, `30s`, `5m`, `4h`, `1d` and sums such as `1h30m`.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {text:?}: expected a number"));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => {
                return Err(format!("invalid duration {text:?}: missing unit (ms, s, m, h or d)"));
            }
            other => return Err(format!("invalid duration {text:?}: unknown unit {other:?}")),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
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
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "5", "m", "5x", "-5s", "5 m"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        for text in ["0s", "250ms", "30s", "5m", "4h", "1d2h3m4s5ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        assert_eq!(format(Duration::from_micros(7)), "7us");
    }
}
