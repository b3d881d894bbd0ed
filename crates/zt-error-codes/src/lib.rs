//! The zt error-code dictionary.
//!
//! Every [`ErrorCode`] has a stable reason string such as `SESSION_REVOKED`
//! (`[A-Z][A-Z0-9_]+`) and an entry, [`CodeInfo`], with its [`Category`],
//! severity, HTTP status, a generic public title and message that are safe to
//! show anyone, an internal description, and a remediation for support.
//!
//! Codes are logged, not shown: clients get the public text and a reference
//! id, support finds the code under that id in the server log. A published
//! code is never removed or renamed (a test pins the catalog), and
//! `docs/error-codes.md` is generated from this table by `cargo xtask codegen`.
//!
//! ```
//! use zt_error_codes::{Category, ErrorCode};
//!
//! let code: ErrorCode = "SESSION_REVOKED".parse()?;
//! assert_eq!(code, ErrorCode::SessionRevoked);
//! assert_eq!(code.category(), Category::Session);
//! assert_eq!(code.http_status(), 401);
//! // The public message says nothing about why.
//! assert!(!code.info().public_message.contains("revoked"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod catalog;
mod markdown;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zt_types::Severity;

pub use catalog::ErrorCode;
pub use markdown::catalog_markdown;

/// A group of related codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// The session is missing, stale, revoked, or could not be checked.
    Session,
    /// The session is valid but not enough for this operation.
    Authorization,
    /// The request itself is wrong: invalid, too large, too frequent.
    Request,
    /// The thing asked for is missing or conflicts.
    Resource,
    /// The database failed.
    Database,
    /// The audit log failed.
    Audit,
    /// Anything else.
    Internal,
}

impl Category {
    /// Every category, in catalog order.
    pub const ALL: [Self; 7] = [
        Self::Session,
        Self::Authorization,
        Self::Request,
        Self::Resource,
        Self::Database,
        Self::Audit,
        Self::Internal,
    ];

    /// The lowercase name, such as `session`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Authorization => "authorization",
            Self::Request => "request",
            Self::Resource => "resource",
            Self::Database => "database",
            Self::Audit => "audit",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Category {
    type Err = UnknownCode;
    fn from_str(value: &str) -> Result<Self, UnknownCode> {
        Self::ALL
            .into_iter()
            .find(|category| category.as_str().eq_ignore_ascii_case(value))
            .ok_or_else(|| UnknownCode(value.chars().take(64).collect()))
    }
}

/// One entry of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodeInfo {
    /// The code.
    pub code: ErrorCode,
    /// The stable reason string, such as `DB_UNAVAILABLE`.
    pub reason: &'static str,
    /// Its group.
    pub category: Category,
    /// How bad it is; this picks the log level.
    pub severity: Severity,
    /// The HTTP status a client gets.
    pub http_status: u16,
    /// Whether retrying the same request later may succeed.
    pub retryable: bool,
    /// Whether signing in again (step-up) can cure it.
    pub reauthenticate: bool,
    /// A generic title, safe to show anyone.
    pub public_title: &'static str,
    /// A generic message, safe to show anyone.
    pub public_message: &'static str,
    /// What it means, for the server log and support. Never sent to clients.
    pub description: &'static str,
    /// What support should do about it.
    pub remediation: &'static str,
}

impl ErrorCode {
    /// This code's catalog entry.
    pub fn info(self) -> &'static CodeInfo {
        // `CATALOG` is generated from the same list as the enum, in the same order.
        &catalog::CATALOG[self as usize]
    }

    /// The stable reason string, such as `SESSION_REVOKED`.
    pub fn reason(self) -> &'static str {
        self.info().reason
    }

    /// The code's group.
    pub fn category(self) -> Category {
        self.info().category
    }

    /// How bad it is.
    pub fn severity(self) -> Severity {
        self.info().severity
    }

    /// The HTTP status a client gets.
    pub fn http_status(self) -> u16 {
        self.info().http_status
    }

    /// Looks a code up by its reason string, exactly.
    pub fn from_reason(reason: &str) -> Option<Self> {
        catalog::CATALOG
            .iter()
            .find(|info| info.reason == reason)
            .map(|info| info.code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = UnknownCode;
    fn from_str(reason: &str) -> Result<Self, UnknownCode> {
        Self::from_reason(reason).ok_or_else(|| UnknownCode(reason.chars().take(64).collect()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.reason())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let reason = String::deserialize(deserializer)?;
        reason.parse().map_err(serde::de::Error::custom)
    }
}

/// A reason string that is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownCode(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_enum_agree() {
        assert_eq!(ErrorCode::ALL.len(), catalog::CATALOG.len());
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(catalog::CATALOG[index].code, *code);
            assert_eq!(code.info().code, *code);
        }
    }

    #[test]
    fn reasons_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for info in ErrorCode::ALL.iter().map(|code| code.info()) {
            assert!(seen.insert(info.reason), "duplicate {}", info.reason);
            let mut chars = info.reason.chars();
            assert!(chars.next().is_some_and(|c| c.is_ascii_uppercase()), "{}", info.reason);
            assert!(info.reason.len() >= 2);
            assert!(
                chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                info.reason
            );
            assert!((400..600).contains(&info.http_status), "{}", info.reason);
        }
    }

    #[test]
    fn public_text_never_mentions_internals() {
        const INTERNAL_WORDS: &[&str] = &[
            "sql",
            "postgres",
            "sqlite",
            "diesel",
            "table",
            "column",
            "query",
            "database",
            "constraint",
            "revoked",
            "deleted",
            "disabled",
            "stack",
            "panic",
            "r2d2",
            "pool",
        ];
        for info in ErrorCode::ALL.iter().map(|code| code.info()) {
            let public = format!("{} {}", info.public_title, info.public_message).to_lowercase();
            for word in INTERNAL_WORDS {
                assert!(!public.contains(word), "{}: public text mentions {word}", info.reason);
            }
        }
    }

    #[test]
    fn lookup_and_serde() {
        assert_eq!(ErrorCode::from_reason("DB_UNAVAILABLE"), Some(ErrorCode::DbUnavailable));
        assert_eq!(ErrorCode::from_reason("db_unavailable"), None);
        let unknown = "NOPE".parse::<ErrorCode>().unwrap_err();
        assert_eq!(unknown.to_string(), "unknown error code \"NOPE\"");
        assert!(std::error::Error::source(&unknown).is_none());
        let json = serde_json::to_string(&ErrorCode::RateLimited).unwrap();
        assert_eq!(json, "\"RATE_LIMITED\"");
        assert_eq!(
            serde_json::from_str::<ErrorCode>(&json).unwrap(),
            ErrorCode::RateLimited
        );
    }
}
