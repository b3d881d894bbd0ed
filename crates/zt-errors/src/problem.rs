//! The client-safe error: an RFC 9457 problem.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use zt_error_codes::ErrorCode;
use zt_types::ReferenceId;

use crate::coded::FieldMessage;

/// The media type of a serialized [`Problem`].
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// What a client may see of an error: an HTTP status, a generic title and
/// detail from the dictionary, and a reference id. It serializes as
/// `application/problem+json` (RFC 9457):
///
/// ```json
/// {"type":"about:blank","title":"Service unavailable","status":503,
///  "detail":"The service is temporarily unavailable. Try again later.",
///  "instance":"urn:uuid:0192…"}
/// ```
///
/// Extension members appear only when they apply: `errors` with the field
/// messages that the caller marked safe, `reauthenticate: true` when signing
/// in again can cure the error, and `code` only when the sanitizer's policy
/// exposes codes. The code is always available to server code through
/// [`Problem::code`].
///
/// As an error it displays its title and reference, such as `Service
/// unavailable (reference 0192…)`, and has no source: nothing internal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (reference {reference})", .code.info().public_title)]
pub struct Problem {
    code: ErrorCode,
    reference: ReferenceId,
    fields: Vec<FieldMessage>,
    expose_code: bool,
    type_base: Option<Arc<str>>,
}

impl Problem {
    pub(crate) fn new(
        code: ErrorCode,
        reference: ReferenceId,
        fields: Vec<FieldMessage>,
        expose_code: bool,
        type_base: Option<Arc<str>>,
    ) -> Self {
        Self {
            code,
            reference,
            fields,
            expose_code,
            type_base,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.code.http_status()
    }

    /// The generic title.
    pub fn title(&self) -> &'static str {
        self.code.info().public_title
    }

    /// The generic detail.
    pub fn detail(&self) -> &'static str {
        self.code.info().public_message
    }

    /// The reference id, which support looks up in the server log.
    pub fn reference(&self) -> ReferenceId {
        self.reference
    }

    /// The `instance` member: `urn:uuid:` and the reference id.
    pub fn instance(&self) -> String {
        format!("urn:uuid:{}", self.reference)
    }

    /// The code, for server-side use. It is serialized only when the policy
    /// exposes codes.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The field messages marked safe.
    pub fn fields(&self) -> &[FieldMessage] {
        &self.fields
    }

    /// The `type` member: `about:blank`, or the configured base followed by
    /// the category, such as `https://example.com/problems/session`.
    pub fn type_uri(&self) -> String {
        match &self.type_base {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), self.code.category()),
            None => "about:blank".to_owned(),
        }
    }

    /// Whether signing in again can cure it.
    pub fn reauthenticate(&self) -> bool {
        self.code.info().reauthenticate
    }

    /// The `application/problem+json` body.
    pub fn to_json(&self) -> String {
        // Serializing strings, numbers and booleans into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", &self.type_uri())?;
        map.serialize_entry("title", self.title())?;
        map.serialize_entry("status", &self.status())?;
        map.serialize_entry("detail", self.detail())?;
        map.serialize_entry("instance", &self.instance())?;
        if self.expose_code {
            map.serialize_entry("code", self.code.reason())?;
        }
        if self.reauthenticate() {
            map.serialize_entry("reauthenticate", &true)?;
        }
        if !self.fields.is_empty() {
            map.serialize_entry("errors", &self.fields)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_title_and_reference_only() {
        let reference = ReferenceId::new();
        let problem = Problem::new(ErrorCode::DbUnavailable, reference, Vec::new(), false, None);
        assert_eq!(
            problem.to_string(),
            format!("{} (reference {reference})", problem.title())
        );
        assert!(std::error::Error::source(&problem).is_none());
    }
}
