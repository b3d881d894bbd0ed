//! Alert notifications as JSON over HTTP, for chat and pagers.

use std::fmt;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use zt_types::Severity;

use crate::error::{Error, ErrorKind};
use crate::evaluate::alerts::{AlertStatus, Notification};
use crate::report::Report;
use crate::sinks::http::{self, TlsConfig, redacted_url};
use crate::sinks::queue::Sink;

/// The body a [`WebhookSink`] posts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFormat {
    /// The [`Notification`] as JSON, plus `"type": "notification"` and
    /// `"source": "zt-monitoring"`. Reports, when enabled, carry `"type":
    /// "report"` with the code, category, severity, reference id, request id
    /// and time; never the chain, the client IP or the user agent.
    Json,
    /// `{"text": "..."}`, which Slack, Mattermost, Rocket.Chat and Microsoft
    /// Teams incoming webhooks accept.
    Slack,
    /// PagerDuty Events API v2: `trigger` when firing and `resolve` when
    /// resolved, deduplicated by the group key. Reports are never sent.
    PagerDuty {
        /// The integration's routing key.
        routing_key: String,
    },
}

/// Posts alert notifications to a URL as JSON, with a synchronous HTTP client
/// (ureq) on the sink's worker thread.
///
/// Failed posts are retried with exponential backoff (2 retries by default)
/// when the error is a network error, a 5xx or a 429; other 4xx fail at once.
/// The URL is a secret for most chat services, so it never appears in logs,
/// errors or `Debug` output beyond its scheme and host.
///
/// HTTPS works out of the box: with the default `rustls` feature the server's
/// certificate is verified against Mozilla's roots bundled in the binary.
/// [`WebhookSink::tls`] trusts a private CA or the platform's roots instead.
/// Without a TLS feature, an `https` URL is refused by [`WebhookSink::new`]
/// with [`ErrorKind::TlsUnavailable`](crate::ErrorKind::TlsUnavailable).
/// Plain `http` stays allowed, for endpoints on this machine or a private
/// network; it is logged as a warning for any host beyond this machine.
///
/// ```
/// use zt_monitoring::{Monitor, WebhookFormat, WebhookSink};
///
/// let pager = WebhookSink::new("http://127.0.0.1:9/alerts")?
///     .named("pager")
///     .format(WebhookFormat::Slack);
/// let monitor = Monitor::builder().sink(pager).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WebhookSink {
    name: String,
    url: String,
    agent: ureq::Agent,
    tls: TlsConfig,
    timeout: Duration,
    format: WebhookFormat,
    headers: Vec<(String, String)>,
    retries: u32,
    backoff: Duration,
    reports: bool,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field(
                "format",
                &match self.format {
                    WebhookFormat::Json => "json",
                    WebhookFormat::Slack => "slack",
                    WebhookFormat::PagerDuty { .. } => "pagerduty",
                },
            )
            .field("tls", &self.tls)
            .field("retries", &self.retries)
            .field("reports", &self.reports)
            .finish_non_exhaustive()
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl WebhookSink {
    /// A sink that posts generic JSON to `url`, with a 5 s timeout and the
    /// default [`TlsConfig`].
    ///
    /// Fails if the URL is not `http` or `https` with a host, or is `https`
    /// in a build without TLS ([`ErrorKind::TlsUnavailable`](crate::ErrorKind::TlsUnavailable)).
    pub fn new(url: &str) -> Result<Self, Error> {
        http::check_url("webhook", url, true)?;
        Ok(Self::unchecked(
            url,
            TlsConfig::default().agent(DEFAULT_TIMEOUT, http::USER_AGENT, None),
        ))
    }

    /// A sink that posts through the caller's configured ureq agent (for
    /// proxies, client certificates, or TLS from the application's own ureq
    /// features). The agent's TLS settings are the caller's: an `https` URL
    /// is not refused here, even in a build without TLS.
    pub fn with_agent(url: &str, agent: ureq::Agent) -> Result<Self, Error> {
        http::check_url("webhook", url, false)?;
        Ok(Self::unchecked(url, agent))
    }

    fn unchecked(url: &str, agent: ureq::Agent) -> Self {
        Self {
            name: "webhook".into(),
            url: url.to_owned(),
            agent,
            tls: TlsConfig::default(),
            timeout: DEFAULT_TIMEOUT,
            format: WebhookFormat::Json,
            headers: Vec::new(),
            retries: 2,
            backoff: Duration::from_millis(250),
            reports: false,
        }
    }

    /// Renames the sink, to tell several apart in metrics and logs. Default: `webhook`.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the body format. Default: [`WebhookFormat::Json`].
    #[must_use]
    pub fn format(mut self, format: WebhookFormat) -> Self {
        self.format = format;
        self
    }

    /// Adds a header to every request, such as an authorization token.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the timeout of each attempt. Default: 5 s. Replaces an agent set
    /// with [`WebhookSink::agent`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.agent = self.tls.agent(timeout, http::USER_AGENT, None);
        self
    }

    /// Sets how the server's certificate is verified, such as a private CA
    /// with [`TlsConfig::root_certificates_pem`]. Default: Mozilla's roots,
    /// bundled. Replaces an agent set with [`WebhookSink::agent`].
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.agent = tls.agent(self.timeout, http::USER_AGENT, None);
        self.tls = tls;
        self
    }

    /// Uses a configured ureq agent, for proxies, client certificates or
    /// timeouts. Its TLS settings replace the sink's [`TlsConfig`].
    #[must_use]
    pub fn agent(mut self, agent: ureq::Agent) -> Self {
        self.agent = agent;
        self
    }

    /// Sets how many times a failed post is retried, and the first backoff,
    /// which doubles each time. Default: 2 retries from 250 ms. Retries block
    /// only this sink's worker.
    #[must_use]
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Also posts every error report, not only alerts. Default: off; a chat
    /// channel wants alerts, not each error. Never with PagerDuty.
    #[must_use]
    pub fn include_reports(mut self, on: bool) -> Self {
        self.reports = on;
        self
    }

    /// The body posted for `notification`.
    pub fn notification_body(&self, notification: &Notification) -> Value {
        match &self.format {
            WebhookFormat::Json => {
                let mut body = serde_json::to_value(notification).unwrap_or_else(|_| json!({}));
                if let Some(object) = body.as_object_mut() {
                    object.insert("type".into(), json!("notification"));
                    object.insert("source".into(), json!("zt-monitoring"));
                }
                body
            }
            WebhookFormat::Slack => json!({ "text": notification.text() }),
            WebhookFormat::PagerDuty { routing_key } => {
                let mut summary = notification.title();
                if let Some(first) = notification.alerts.first() {
                    summary.push_str(": ");
                    summary.push_str(&first.summary);
                }
                // PagerDuty refuses summaries over 1024 characters.
                let summary: String = summary.chars().take(1024).collect();
                json!({
                    "routing_key": routing_key,
                    "event_action": match notification.status {
                        AlertStatus::Firing => "trigger",
                        AlertStatus::Resolved => "resolve",
                    },
                    "dedup_key": notification.group_key,
                    "payload": {
                        "summary": summary,
                        "source": "zt-monitoring",
                        "severity": match notification.severity {
                            Severity::Critical => "critical",
                            Severity::Error => "error",
                            Severity::Warning => "warning",
                            _ => "info",
                        },
                        "custom_details": notification,
                    },
                })
            }
        }
    }

    /// The body posted for `report`, when reports are enabled.
    pub fn report_body(&self, report: &Report) -> Value {
        let request_id = report
            .context()
            .and_then(|context| context.request_id())
            .map(zt_types::RequestId::as_str);
        let line = format!(
            "error {} ({}, {}) reference {}",
            report.code(),
            report.category(),
            report.severity(),
            report.reference()
        );
        match &self.format {
            WebhookFormat::Slack => json!({ "text": line }),
            _ => json!({
                "type": "report",
                "source": "zt-monitoring",
                "code": report.code(),
                "category": report.category(),
                "severity": report.severity(),
                "reference_id": report.reference(),
                "request_id": request_id,
                "recorded_at": report.timestamp(),
            }),
        }
    }

    fn post(&self, body: &Value) -> Result<(), Error> {
        let mut attempt: u32 = 0;
        loop {
            let mut request = self
                .agent
                .post(&self.url)
                .header("content-type", "application/json")
                .config()
                // 4xx and 5xx are answers, told apart below.
                .http_status_as_error(false)
                .build();
            for (name, value) in &self.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let (error, retryable) = match request.send_json(body) {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    // Read the answer out, so that the connection can be reused.
                    let _ = response.body_mut().with_config().limit(64 * 1024).read_to_vec();
                    if response.status().is_success() {
                        return Ok(());
                    }
                    (ureq::Error::StatusCode(status), status >= 500 || status == 429)
                }
                Err(error) => {
                    let retryable = http::is_transient(&error);
                    (error, retryable)
                }
            };
            if !retryable || attempt >= self.retries {
                return Err(Error::new(
                    ErrorKind::Delivery,
                    format!("webhook {:?} failed after {} attempt(s)", self.name, attempt + 1),
                )
                .with_source(error));
            }
            thread::sleep(self.backoff.saturating_mul(2u32.saturating_pow(attempt)));
            attempt += 1;
        }
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts_reports(&self) -> bool {
        self.reports && !matches!(self.format, WebhookFormat::PagerDuty { .. })
    }

    fn send_report(&mut self, report: &Report) -> Result<(), Error> {
        let body = self.report_body(report);
        self.post(&body)
    }

    fn send_notification(&mut self, notification: &Notification) -> Result<(), Error> {
        let body = self.notification_body(notification);
        self.post(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_printed() {
        assert!(WebhookSink::new("ftp://x").is_err());
        assert!(WebhookSink::new("http://").is_err());
        assert!(WebhookSink::new("http://a b").is_err());
        let url = "https://hooks.slack.com/services/T000/B000/SECRET";
        let sink = WebhookSink::with_agent(url, ureq::Agent::new_with_defaults()).unwrap();
        let debug = format!("{sink:?}");
        assert!(
            debug.contains("hooks.slack.com") && !debug.contains("SECRET"),
            "{debug}"
        );
        let built = WebhookSink::new(url);
        if http::TLS {
            assert!(!format!("{:?}", built.unwrap()).contains("SECRET"));
        } else {
            let error = built.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::TlsUnavailable);
            assert!(!error.to_string().contains("SECRET"), "{error}");
        }
    }
}
