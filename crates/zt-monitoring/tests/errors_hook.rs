//! zt-errors' sanitizer reports to a monitor through its hook.
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, Sanitizer};
use zt_monitoring::{MemorySink, Monitor};
use zt_types::{RequestContext, RequestId, Severity};

#[test]
fn the_sanitizer_hands_every_report_to_the_monitor() {
    let sink = MemorySink::new();
    let records = sink.records();
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(sink)
        .build()
        .unwrap();
    let sanitizer = Sanitizer::new().hook(monitor.clone());

    let context = RequestContext::new().with_request_id(RequestId::parse("req-1").unwrap());
    let error = CodedError::new(ErrorCode::AuditWriteFailed)
        .with_message("write failed\r\nINFO forged")
        .with_source(std::io::Error::other("disk full"));
    let problem = sanitizer.sanitize_for(&error, &context);
    assert!(monitor.flush(Duration::from_secs(10)));

    let reports = records.reports();
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.code(), ErrorCode::AuditWriteFailed);
    assert_eq!(report.reference(), problem.reference());
    // The sanitizer logged it; the tracing sink will not log it again.
    assert!(report.is_logged());
    assert_eq!(report.severity(), Severity::Critical);
    assert_eq!(
        report.context().and_then(RequestContext::request_id).unwrap().as_str(),
        "req-1"
    );
    assert!(
        report
            .chain()
            .iter()
            .all(|line| !line.contains('\n') && !line.contains('\r')),
        "{:?}",
        report.chain()
    );
    assert!(
        report.chain().iter().any(|line| line.contains("disk full")),
        "{:?}",
        report.chain()
    );
    // A critical code alerts through the built-in rule.
    assert_eq!(monitor.tick().len(), 1);
}
