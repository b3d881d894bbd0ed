//! UTC timestamps with microsecond precision, the precision that PostgreSQL
//! stores, so that a value survives a round trip through either backend.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FieldError, FieldErrorKind};

/// A point in time: microseconds since the Unix epoch, in UTC.
///
/// It formats as RFC 3339 with exactly six fraction digits and a `Z`, such as
/// `2026-11-29T12:00:00.000000Z`. That form has a fixed width, so it sorts as
/// text in the same order as in time; the SQLite backend relies on this.
/// Only years 1 to 9999 fit that form, so only they are accepted.
///
/// ```
/// use zt_types::Timestamp;
/// let t: Timestamp = "2026-11-29T12:00:00+01:00".parse()?;
/// assert_eq!(t.to_string(), "2026-11-29T11:00:00.000000Z");
/// # Ok::<(), zt_types::FieldError>(())
/// ```
///
/// It converts to and from [`chrono::DateTime<Utc>`], cutting to microseconds:
///
/// ```
/// use chrono::{DateTime, TimeZone, Utc};
/// use zt_types::Timestamp;
///
/// let at = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + chrono::Duration::nanoseconds(1_234_567);
/// let t = Timestamp::try_from(at)?;
/// assert_eq!(t.to_string(), "2026-11-29T12:00:00.001234Z");
/// assert_eq!(DateTime::<Utc>::from(t), at - chrono::Duration::nanoseconds(567));
///
/// let too_late = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
/// assert!(Timestamp::try_from(too_late).is_err());
/// # Ok::<(), zt_types::FieldError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// Years outside 0001..=9999 do not fit the fixed-width text form.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

impl Timestamp {
    /// The current time, cut to microseconds.
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(MAX_MICROS),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(MIN_MICROS, |m| -m),
        };
        Self(micros.clamp(MIN_MICROS, MAX_MICROS))
    }

    /// A timestamp from microseconds since the Unix epoch.
    pub fn from_unix_micros(micros: i64) -> Result<Self, FieldError> {
        if (MIN_MICROS..=MAX_MICROS).contains(&micros) {
            Ok(Self(micros))
        } else {
            Err(FieldError::new(
                "timestamp",
                FieldErrorKind::InvalidFormat("a time between the years 1 and 9999"),
            ))
        }
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Converts from chrono, cutting to microseconds (towards the past). A
    /// leap second, which chrono can hold and this type cannot, becomes the
    /// last microsecond of the second before it.
    ///
    /// Fails for a time outside the years 1 to 9999. The same as
    /// `Timestamp::try_from(value)`.
    pub fn from_chrono(value: DateTime<Utc>) -> Result<Self, FieldError> {
        // chrono keeps years within ±262 143, whose microseconds fit an i64.
        let seconds = value.timestamp().saturating_mul(1_000_000);
        let fraction = value.timestamp_subsec_micros().min(999_999);
        Self::from_unix_micros(seconds.saturating_add(i64::from(fraction)))
    }

    /// Converts to chrono, in UTC. The same as `DateTime::<Utc>::from(self)`.
    pub fn to_chrono(self) -> DateTime<Utc> {
        // The constructors bound the value to years 1..=9999, which chrono always represents.
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// The time `duration` before this one, saturating at the earliest time.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(micros).max(MIN_MICROS))
    }

    /// The time `duration` after this one, saturating at the latest time.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(micros).min(MAX_MICROS))
    }

    /// How long after `earlier` this is, or `None` if it is before it.
    pub fn duration_since(self, earlier: Self) -> Option<Duration> {
        let micros = self.0.checked_sub(earlier.0)?;
        u64::try_from(micros).ok().map(Duration::from_micros)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.to_chrono();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            value.year(),
            value.month(),
            value.day(),
            value.hour(),
            value.minute(),
            value.second(),
            value.timestamp_subsec_micros()
        )
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.to_chrono()
    }
}

impl TryFrom<DateTime<Utc>> for Timestamp {
    type Error = FieldError;
    /// Cuts to microseconds; fails outside the years 1 to 9999.
    fn try_from(value: DateTime<Utc>) -> Result<Self, FieldError> {
        Self::from_chrono(value)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = FieldError;
    /// Parses RFC 3339, with any offset and precision, cutting to microseconds.
    fn from_str(value: &str) -> Result<Self, FieldError> {
        let parsed = DateTime::parse_from_rfc3339(value)
            .map_err(|_| FieldError::new("timestamp", FieldErrorKind::InvalidFormat("an RFC 3339 time")))?;
        Self::from_chrono(parsed.with_timezone(&Utc))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_is_fixed_width_and_round_trips() {
        for micros in [0, 1, -1, 1_700_000_000_123_456, MIN_MICROS, MAX_MICROS] {
            let t = Timestamp::from_unix_micros(micros).unwrap();
            let text = t.to_string();
            assert_eq!(text.len(), 27, "{text}");
            assert_eq!(text.parse::<Timestamp>().unwrap(), t);
        }
        assert!(Timestamp::from_unix_micros(MAX_MICROS + 1).is_err());
    }

    #[test]
    fn chrono_round_trip_cuts_to_micros_and_keeps_bounds() {
        for micros in [0, 1, -1, 1_700_000_000_123_456, MIN_MICROS, MAX_MICROS] {
            let t = Timestamp::from_unix_micros(micros).unwrap();
            let at = DateTime::<Utc>::from(t);
            assert_eq!(at.timestamp_micros(), micros);
            assert_eq!(Timestamp::try_from(at).unwrap(), t);
            assert_eq!(Timestamp::from_chrono(t.to_chrono()).unwrap(), t);
        }

        // Nanoseconds are cut towards the past, before and after the epoch.
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(Timestamp::try_from(at).unwrap().unix_micros(), 1_700_000_000_123_456);
        let at = DateTime::from_timestamp(-1, 999_999_999).unwrap();
        assert_eq!(Timestamp::try_from(at).unwrap().unix_micros(), -1);

        // The first and last microseconds of years 1 and 9999, and just outside.
        let first = "0001-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let last = "9999-12-31T23:59:59.999999999Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(Timestamp::try_from(first).unwrap().unix_micros(), MIN_MICROS);
        assert_eq!(Timestamp::try_from(last).unwrap().unix_micros(), MAX_MICROS);
        let before = first - chrono::Duration::nanoseconds(1);
        let after = last + chrono::Duration::nanoseconds(1);
        for outside in [before, after, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let error = Timestamp::try_from(outside).unwrap_err();
            assert_eq!(error.field(), "timestamp");
        }
    }

    #[test]
    fn parses_any_offset_and_precision() {
        for (text, expected) in [
            ("2026-11-29T12:00:00Z", "2026-11-29T12:00:00.000000Z"),
            ("2026-11-29T12:00:00.5+01:00", "2026-11-29T11:00:00.500000Z"),
            ("2026-11-29T12:00:00.123456789-00:30", "2026-11-29T12:30:00.123456Z"),
            ("0001-01-01T00:30:00+00:30", "0001-01-01T00:00:00.000000Z"),
            // A leap second becomes the last microsecond before it.
            ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999999Z"),
            // RFC 3339 allows a space or a lowercase `t` and `z`.
            ("2026-11-29 12:00:00z", "2026-11-29T12:00:00.000000Z"),
            ("2026-11-29t12:00:00Z", "2026-11-29T12:00:00.000000Z"),
        ] {
            assert_eq!(text.parse::<Timestamp>().unwrap().to_string(), expected, "{text}");
        }
        for bad in [
            "",
            "2026-11-29",
            "2026-11-29T12:00:00",
            "2026-11-29_12:00:00Z",
            "2026-13-01T00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }

    #[test]
    fn text_order_matches_time_order() {
        let a = Timestamp::from_unix_micros(1_000_000).unwrap();
        let b = Timestamp::from_unix_micros(1_500_000).unwrap();
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_unix_micros(10).unwrap();
        assert_eq!(t.saturating_sub(Duration::from_micros(4)).unix_micros(), 6);
        assert_eq!(
            t.duration_since(t.saturating_sub(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(t.saturating_sub(Duration::from_secs(1)).duration_since(t), None);
        assert_eq!(t.saturating_sub(Duration::MAX).unix_micros(), MIN_MICROS);
    }
}
