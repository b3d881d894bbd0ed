//! The zt-errors integration: a [`Monitor`] is a [`zt_errors::ErrorHook`].

use zt_errors::{ErrorHook, ErrorReport};

use crate::monitor::handle::Monitor;
use crate::report::Report;

impl From<&ErrorReport<'_>> for Report {
    /// Takes the code, reference id, severity, neutralized chain and request
    /// of a sanitizer's report, marked as logged: the sanitizer, or the
    /// error's owner, logged it before any hook saw it.
    fn from(report: &ErrorReport<'_>) -> Self {
        let mut out = Report::new(report.code, report.reference)
            .with_severity(report.severity)
            .with_chain(report.chain())
            .with_logged(true);
        if let Some(context) = report.context {
            out = out.with_context(context.clone());
        }
        out
    }
}

impl ErrorHook for Monitor {
    /// Records every sanitized error. It runs on the caller's thread and does
    /// not block.
    fn on_error(&self, report: &ErrorReport<'_>) {
        self.record(Report::from(report));
    }
}
