//! What a monitor records: one error report.

use std::error::Error as StdError;

use zt_error_codes::{Category, ErrorCode};
use zt_types::{Neutralized, ReferenceId, RequestContext, Severity, Timestamp};

/// The longest chain a report keeps; deeper links are cut, with a marker.
const MAX_CHAIN: usize = 16;
/// The longest chain line a report keeps, in bytes.
const MAX_LINE: usize = 2048;

/// One error, as a monitor records it and hands it to sinks.
///
/// It carries the code, severity, reference id, the request it belongs to and
/// the internal error chain. The chain is for server-side sinks only: every
/// line is neutralized against log injection, and the Sentry sink scrubs it
/// before anything leaves the process.
///
/// ```
/// use zt_error_codes::ErrorCode;
/// use zt_monitoring::Report;
/// use zt_types::{ReferenceId, Severity};
///
/// let report = Report::new(ErrorCode::DbTimeout, ReferenceId::new())
///     .with_chain(["query timed out\r\nFAKE LOG LINE"]);
/// assert_eq!(report.severity(), Severity::Error);
/// assert_eq!(report.chain(), ["query timed out\\r\\nFAKE LOG LINE"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    code: ErrorCode,
    severity: Severity,
    reference: ReferenceId,
    recorded_at: Option<Timestamp>,
    /// Boxed: most reports have none, and a small report is cheap to queue.
    context: Option<Box<RequestContext>>,
    chain: Vec<String>,
    logged: bool,
}

impl Report {
    /// A report of `code` under the reference id the client got. The
    /// severity is the code's.
    pub fn new(code: ErrorCode, reference: ReferenceId) -> Self {
        Self {
            code,
            severity: code.severity(),
            reference,
            recorded_at: None,
            context: None,
            chain: Vec::new(),
            logged: false,
        }
    }

    /// Overrides the code's severity, for example to escalate.
    #[must_use]
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Attaches the request the error belongs to.
    #[must_use]
    pub fn with_context(mut self, context: RequestContext) -> Self {
        self.context = Some(Box::new(context));
        self
    }

    /// Sets the chain from lines, outermost first. Each line is neutralized
    /// and cut to 2 KiB; at most 16 lines are kept.
    #[must_use]
    pub fn with_chain<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.chain = lines
            .into_iter()
            .take(MAX_CHAIN)
            .map(|line| bounded_line(line.as_ref()))
            .collect();
        self
    }

    /// Sets the chain from an error and its sources.
    #[must_use]
    pub fn with_error(self, error: &(dyn StdError + 'static)) -> Self {
        let mut lines = Vec::new();
        let mut link = Some(error);
        while let Some(current) = link {
            lines.push(current.to_string());
            link = current.source();
        }
        self.with_chain(lines)
    }

    /// Sets the time the error happened. The monitor stamps reports that have
    /// none with its clock when it records them.
    #[must_use]
    pub fn with_timestamp(mut self, at: Timestamp) -> Self {
        self.recorded_at = Some(at);
        self
    }

    /// Marks the report as already logged where it arose: zt-errors'
    /// sanitizer logs every error it hands to its hooks, or leaves it to the
    /// error's owner, who did. The [`TracingSink`](crate::TracingSink) then
    /// does not log it again (each event is logged once, by its owner);
    /// other sinks get it as usual. Default: not logged.
    #[must_use]
    pub fn with_logged(mut self, logged: bool) -> Self {
        self.logged = logged;
        self
    }

    pub(crate) fn stamp(&mut self, now: Timestamp) {
        if self.recorded_at.is_none() {
            self.recorded_at = Some(now);
        }
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The code's category.
    pub fn category(&self) -> Category {
        self.code.category()
    }

    /// The severity: the code's, unless overridden.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The reference id the client got.
    pub fn reference(&self) -> ReferenceId {
        self.reference
    }

    /// When the error happened; set for every report a sink receives.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.recorded_at
    }

    /// The request, when known. It holds the client IP and user agent, which
    /// sinks that leave the server must not send without the app's consent.
    pub fn context(&self) -> Option<&RequestContext> {
        self.context.as_deref()
    }

    /// The internal chain, outermost first, each line neutralized. Never for clients.
    pub fn chain(&self) -> &[String] {
        &self.chain
    }

    /// Whether the report was already logged where it arose; see
    /// [`Report::with_logged`].
    pub fn is_logged(&self) -> bool {
        self.logged
    }
}

fn bounded_line(line: &str) -> String {
    let mut out = Neutralized(line).to_string();
    if out.len() > MAX_LINE {
        let mut end = MAX_LINE - zt_types::TRUNCATION_MARKER.len();
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str(zt_types::TRUNCATION_MARKER);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("inner\nforged")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    impl StdError for Inner {}

    #[test]
    fn chain_is_walked_and_neutralized() {
        let report = Report::new(ErrorCode::Internal, ReferenceId::new()).with_error(&Outer(Inner));
        assert_eq!(report.chain(), ["outer", "inner\\nforged"]);
    }

    #[test]
    fn long_lines_and_chains_are_bounded() {
        let report = Report::new(ErrorCode::Internal, ReferenceId::new()).with_chain(vec!["é".repeat(5000); 40]);
        assert_eq!(report.chain().len(), MAX_CHAIN);
        assert!(report.chain()[0].len() <= MAX_LINE);
        assert!(report.chain()[0].ends_with(zt_types::TRUNCATION_MARKER));
    }

    #[test]
    fn stamp_keeps_an_explicit_time() {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut report = Report::new(ErrorCode::Internal, ReferenceId::new()).with_timestamp(at);
        report.stamp(Timestamp::now());
        assert_eq!(report.timestamp(), Some(at));
    }
}
