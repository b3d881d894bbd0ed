//! A sink that keeps everything in memory, for tests and in-process dashboards.

use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Error;
use crate::evaluate::alerts::Notification;
use crate::report::Report;
use crate::sinks::queue::Sink;

#[derive(Debug, Default)]
struct Records {
    reports: Vec<Report>,
    notifications: Vec<Notification>,
}

/// Keeps every report and notification it receives, for tests and for
/// showing recent alerts in-process. It holds everything until cleared, so
/// it is not for production traffic.
///
/// ```
/// use zt_error_codes::ErrorCode;
/// use zt_monitoring::{MemorySink, Monitor};
/// use std::time::Duration;
///
/// let sink = MemorySink::new();
/// let records = sink.records();
/// let monitor = Monitor::builder().without_tracing_sink().sink(sink).manual_evaluation().build()?;
/// monitor.record_code(ErrorCode::DbTimeout);
/// assert!(monitor.flush(Duration::from_secs(5)));
/// assert_eq!(records.reports().len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemorySink {
    name: String,
    records: MemoryRecords,
}

impl Default for MemorySink {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySink {
    /// A sink named `memory`.
    pub fn new() -> Self {
        Self {
            name: "memory".into(),
            records: MemoryRecords::default(),
        }
    }

    /// Renames the sink, to tell several apart.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A handle that reads what the sink received.
    pub fn records(&self) -> MemoryRecords {
        self.records.clone()
    }
}

/// What a [`MemorySink`] received. Clones share the same records.
#[derive(Debug, Clone, Default)]
pub struct MemoryRecords {
    inner: Arc<Mutex<Records>>,
}

impl MemoryRecords {
    /// The reports, oldest first.
    pub fn reports(&self) -> Vec<Report> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reports
            .clone()
    }

    /// The notifications, oldest first.
    pub fn notifications(&self) -> Vec<Notification> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .notifications
            .clone()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut records = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        records.reports.clear();
        records.notifications.clear();
    }
}

impl Sink for MemorySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send_report(&mut self, report: &Report) -> Result<(), Error> {
        self.records
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reports
            .push(report.clone());
        Ok(())
    }

    fn send_notification(&mut self, notification: &Notification) -> Result<(), Error> {
        self.records
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .notifications
            .push(notification.clone());
        Ok(())
    }
}
