//! UTC timestamps with microsecond precision, the precision that PostgreSQL
//! stores, so that a value survives a round trip through either backend.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{FieldError, FieldErrorKind};

/// A point in time: microseconds since the Unix epoch, in UTC.
///
/// It formats as RFC 3339 with exactly six fraction digits and a `Z`, such as
/// `2026-11-29T12:00:00.000000Z`. That form has a fixed width, so it sorts as
/// text in the same order as in time; the SQLite backend relies on this.
///
/// ```
/// use zt_types::Timestamp;
/// let t: Timestamp = "2026-11-29T12:00:00+01:00".parse()?;
/// assert_eq!(t.to_string(), "2026-11-29T11:00:00.000000Z");
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

    /// Converts from `time`, cutting to microseconds.
    pub fn from_offset_date_time(value: OffsetDateTime) -> Result<Self, FieldError> {
        let micros = i64::try_from(value.unix_timestamp_nanos().div_euclid(1000))
            .map_err(|_| FieldError::new("timestamp", FieldErrorKind::InvalidFormat("a representable time")))?;
        Self::from_unix_micros(micros)
    }

    /// Converts to `time`, in UTC.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        // The constructor bounds the value to years 1..=9999, which `time` always represents.
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
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
        let value = self.to_offset_date_time();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            value.year(),
            u8::from(value.month()),
            value.day(),
            value.hour(),
            value.minute(),
            value.second(),
            value.microsecond()
        )
    }
}

impl std::str::FromStr for Timestamp {
    type Err = FieldError;
    /// Parses RFC 3339, with any offset and precision.
    fn from_str(value: &str) -> Result<Self, FieldError> {
        let parsed = OffsetDateTime::parse(value, &Rfc3339)
            .map_err(|_| FieldError::new("timestamp", FieldErrorKind::InvalidFormat("an RFC 3339 time")))?;
        Self::from_offset_date_time(parsed)
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
