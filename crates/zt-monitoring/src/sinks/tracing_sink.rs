//! The default sink: reports and alerts as `tracing` events.

use zt_types::Severity;

use crate::error::Error;
use crate::evaluate::alerts::{AlertStatus, Notification};
use crate::report::Report;
use crate::sinks::queue::Sink;

/// Logs reports under the target `zt::monitoring` and alert notifications
/// under `zt::alerts`, through `tracing`. The default sink.
///
/// Reports are logged at their severity's level (critical and error at
/// ERROR), with the code, category, reference id, request id, client IP and
/// the neutralized chain. Firing notifications are logged at ERROR when
/// critical or error, WARN otherwise; resolutions at INFO.
///
/// Each event is logged once, by its owner: a report that was already
/// logged where it arose ([`Report::is_logged`]), such as every report that
/// reaches the monitor through zt-errors' sanitizer, is not logged again; the
/// monitor still counts it and hands it to the other sinks. So this sink
/// logs what only the monitor knows: reports recorded directly with
/// [`Monitor::record`](crate::Monitor::record), and alerts.
#[derive(Debug, Clone, Copy)]
pub struct TracingSink {
    reports: bool,
    alerts: bool,
}

impl Default for TracingSink {
    fn default() -> Self {
        Self {
            reports: true,
            alerts: true,
        }
    }
}

impl TracingSink {
    /// Logs reports and alerts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to log each report nobody logged before. Default: yes.
    #[must_use]
    pub fn reports(mut self, on: bool) -> Self {
        self.reports = on;
        self
    }

    /// Whether to log alert notifications. Default: yes.
    #[must_use]
    pub fn alerts(mut self, on: bool) -> Self {
        self.alerts = on;
        self
    }
}

impl Sink for TracingSink {
    fn name(&self) -> &str {
        "tracing"
    }

    fn accepts_reports(&self) -> bool {
        self.reports
    }

    fn accepts_logged_reports(&self) -> bool {
        false
    }

    fn accepts_alerts(&self) -> bool {
        self.alerts
    }

    fn send_report(&mut self, report: &Report) -> Result<(), Error> {
        let code = report.code();
        let reference = report.reference();
        let context = report.context();
        let request_id = context
            .and_then(|context| context.request_id())
            .map(zt_types::RequestId::as_str);
        let client_ip = context
            .and_then(zt_types::RequestContext::client_ip)
            .map(tracing::field::display);
        let recorded_at = report.timestamp().map(tracing::field::display);
        // Chain lines were neutralized when the report was built.
        let chain = report.chain().join(": ");
        macro_rules! log {
            ($macro:ident) => {
                tracing::$macro!(
                    target: "zt::monitoring",
                    code = code.reason(),
                    category = code.category().as_str(),
                    severity = report.severity().as_str(),
                    reference_id = %reference,
                    request_id,
                    client_ip,
                    recorded_at,
                    error = %chain,
                    "error reported"
                )
            };
        }
        match report.severity() {
            Severity::Info => log!(info),
            Severity::Warning => log!(warn),
            _ => log!(error),
        }
        Ok(())
    }

    fn send_notification(&mut self, notification: &Notification) -> Result<(), Error> {
        let title = notification.title();
        let text = zt_types::neutralize(&notification.text()).into_owned();
        macro_rules! log {
            ($macro:ident, $message:literal) => {
                tracing::$macro!(
                    target: "zt::alerts",
                    rule = %notification.rule,
                    status = notification.status.as_str(),
                    severity = notification.severity.as_str(),
                    group_key = %notification.group_key,
                    alerts = notification.alerts.len(),
                    repeat = notification.repeat,
                    title = %title,
                    details = %text,
                    $message
                )
            };
        }
        match (notification.status, notification.severity) {
            (AlertStatus::Firing, Severity::Error | Severity::Critical) => {
                log!(error, "alert firing");
            }
            (AlertStatus::Firing, _) => log!(warn, "alert firing"),
            _ => log!(info, "alert resolved"),
        }
        Ok(())
    }
}
