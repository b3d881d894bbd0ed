//! How bad an event is.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldErrorKind};

/// How bad an error or event is, from least to most severe.
///
/// Each level maps onto a `tracing` level where it is logged: `Info` to INFO,
/// `Warning` to WARN, `Error` and `Critical` to ERROR. `Critical` also alerts
/// at once in zt-monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Expected and harmless, such as a validation error.
    Info,
    /// Worth a look, such as a denied session.
    Warning,
    /// A failure that needs fixing, such as a database error.
    Error,
    /// A failure that needs someone now, such as a lost audit write.
    Critical,
}

impl Severity {
    /// Every level, from least to most severe.
    pub const ALL: [Self; 4] = [Self::Info, Self::Warning, Self::Error, Self::Critical];

    /// The lowercase name: `info`, `warning`, `error` or `critical`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = FieldError;
    fn from_str(value: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(value))
            .ok_or(FieldError::new(
                "severity",
                FieldErrorKind::InvalidFormat("one of info, warning, error, critical"),
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered_and_parse() {
        assert!(Severity::Info < Severity::Critical);
        assert_eq!("CRITICAL".parse::<Severity>().unwrap(), Severity::Critical);
        assert!("fatal".parse::<Severity>().is_err());
    }
}
