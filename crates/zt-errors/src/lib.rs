//! Error sanitization: clients get a generic message and a reference id,
//! the server log gets everything.
//!
//! This meets RFC 9457 (problem details) and OWASP ASVS 5.0 16.5.1. A
//! [`Sanitizer`] turns any internal error, a `std::error::Error` chain that may
//! hold diesel and r2d2 errors, into a [`Problem`]: an HTTP status, a generic
//! title and detail from the zt-error-codes dictionary, and a reference id.
//! The code, the reference id, the severity and the full chain go to
//! `tracing`, neutralized against log injection.
//!
//! The code is picked from the chain (see [`Classifier`]):
//! - [`CodedError`]: the code the application chose;
//! - diesel: `NotFound` → not found, unique violation → conflict, foreign-key,
//!   check and not-null violations → constraint violation (409), serialization
//!   failure and deadlock → retryable, closed connection → unavailable (503),
//!   statement timeout or SQLite busy → timeout (503);
//! - r2d2: pool timeout and connection errors → database unavailable (503);
//! - anything else → `INTERNAL`.
//!
//! ```
//! use zt_errors::{CodedError, Sanitizer};
//! use zt_error_codes::ErrorCode;
//!
//! let sanitizer = Sanitizer::new();
//! let internal = CodedError::new(ErrorCode::DbUnavailable)
//!     .with_message("connection to 10.0.3.7:5432 refused; password for user app_rw rejected");
//! let problem = sanitizer.sanitize(&internal);
//!
//! assert_eq!(problem.status(), 503);
//! let body = problem.to_json();
//! assert!(body.contains("\"instance\":\"urn:uuid:"));
//! assert!(!body.contains("10.0.3.7") && !body.contains("app_rw") && !body.contains("DB_UNAVAILABLE"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! - `diesel` (default): maps diesel and r2d2 errors by kind.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod coded;
#[cfg(feature = "diesel")]
mod diesel_map;
mod problem;
mod sanitizer;

pub use classify::Classifier;
pub use coded::{CodedError, FieldMessage};
pub use problem::{PROBLEM_CONTENT_TYPE, Problem};
pub use sanitizer::{ErrorHook, ErrorReport, Sanitizer};

/// Maps diesel and r2d2 errors onto codes without sanitizing them.
#[cfg(feature = "diesel")]
#[cfg_attr(docsrs, doc(cfg(feature = "diesel")))]
pub mod diesel {
    pub use crate::diesel_map::{class_code, connection_error, query_error};
}
