//! The default sink logs reports and alerts through `tracing`. One test in
//! this binary, because it installs the global subscriber that the sink's
//! worker thread logs to.
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zt_error_codes::ErrorCode;
use zt_monitoring::{Monitor, Report};
use zt_types::{ReferenceId, RequestContext, RequestId};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn reports_and_alerts_are_logged_with_their_fields() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let monitor = Monitor::builder().manual_evaluation().build().unwrap();
    let reference = ReferenceId::new();
    let context = RequestContext::new()
        .with_ip("198.51.100.7".parse().unwrap())
        .with_request_id(RequestId::parse("req-9").unwrap());
    monitor.record(
        Report::new(ErrorCode::AuditWriteFailed, reference)
            .with_context(context)
            .with_chain(["insert failed\nERROR forged line", "disk full"]),
    );
    // A report already logged where it arose, such as the sanitizer's, is
    // counted but not logged again.
    let logged = ReferenceId::new();
    monitor.record(Report::new(ErrorCode::DbTimeout, logged).with_logged(true));
    monitor.tick();
    assert!(monitor.flush(Duration::from_secs(10)));
    assert_eq!(monitor.count(ErrorCode::DbTimeout, Duration::from_secs(60)), 1);

    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let report_line = log
        .lines()
        .find(|line| line.contains("error reported"))
        .expect("the report is logged");
    assert!(report_line.contains("ERROR"), "{report_line}");
    assert!(report_line.contains("zt::monitoring"), "{report_line}");
    assert!(report_line.contains("code=\"AUDIT_WRITE_FAILED\""), "{report_line}");
    assert!(
        report_line.contains(&format!("reference_id={reference}")),
        "{report_line}"
    );
    assert!(report_line.contains("request_id=\"req-9\""), "{report_line}");
    assert!(
        report_line.contains("error=insert failed\\nERROR forged line: disk full"),
        "{report_line}"
    );
    assert!(!log.lines().any(|line| line.starts_with("ERROR forged line")), "{log}");
    assert!(!log.contains(&logged.to_string()), "logged twice:\n{log}");
    let alert_line = log
        .lines()
        .find(|line| line.contains("alert firing"))
        .expect("the alert is logged");
    assert!(alert_line.contains("zt::alerts"), "{alert_line}");
    assert!(
        alert_line.contains("[FIRING:1] critical code=AUDIT_WRITE_FAILED"),
        "{alert_line}"
    );
}
