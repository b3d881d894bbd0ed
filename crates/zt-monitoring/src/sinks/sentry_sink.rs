//! Error reports to Sentry, through a `sentry_core::Client`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sentry_core::protocol::{Event, Exception, IpAddress, Level, Map, Request, User, Value};
use sentry_core::{Client, Hub};
use zt_types::Severity;

use crate::error::{Error, ErrorKind};
use crate::report::Report;
use crate::scrub::scrub_pii;
use crate::sink::Sink;

/// Sends each report to Sentry as an event, through a [`sentry_core::Client`]
/// whose transport the application chose.
///
/// Each event:
/// - has the report's reference id as its event id and as the
///   `reference_id` tag, so support finds a user's error in Sentry directly;
/// - is grouped by the fingerprint `[code, "{{ default }}"]`;
/// - is tagged with `error_code`, `error_category`, `severity` and, when
///   known, `request_id`;
/// - carries the chain, scrubbed by [`crate::scrub_pii`], as the exception
///   value and the `chain` extra;
/// - has no user, IP address or user agent, unless
///   [`SentrySink::send_pii`] opts in;
/// - is captured without the hub's scope, so breadcrumbs and a user set on
///   the scope elsewhere never ride along.
///
/// Sentry's transports hold 30 envelopes and drop the rest, counted only in
/// Sentry's client reports (sentry-rust #613). So this sink waits for the
/// transport to drain after every `pace` events (16 by default): a backlog
/// then waits in this sink's queue, where drops are counted and exported as
/// metrics. Sentry can still discard events for its own reasons (rate limits,
/// sampling, `before_send`); those show in Sentry's client reports.
///
/// ```no_run
/// use std::sync::Arc;
/// use zt_monitoring::{Monitor, SentrySink};
///
/// // The app picks the transport, here through the `sentry` crate's defaults.
/// let _guard = sentry::init(("https://public@sentry.example.com/1", sentry::ClientOptions::default()));
/// let client = sentry::Hub::main().client().expect("sentry::init installed a client");
/// let monitor = Monitor::builder().sink(SentrySink::new(client)).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SentrySink {
    client: Arc<Client>,
    send_pii: bool,
    pace: usize,
    since_flush: usize,
    drain_timeout: Duration,
}

impl fmt::Debug for SentrySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentrySink")
            .field("enabled", &self.client.is_enabled())
            .field("send_pii", &self.send_pii)
            .field("pace", &self.pace)
            .finish_non_exhaustive()
    }
}

impl SentrySink {
    /// A sink that sends through `client`.
    pub fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            send_pii: false,
            pace: 16,
            since_flush: 0,
            drain_timeout: Duration::from_secs(5),
        }
    }

    /// A sink that sends through the hub's client, if it has one.
    pub fn from_hub(hub: &Hub) -> Option<Self> {
        hub.client().map(Self::new)
    }

    /// Sends the client IP (as the user's address) and the user agent.
    /// Default: off. Only turn it on with a lawful basis and a data
    /// processing agreement with the Sentry host.
    #[must_use]
    pub fn send_pii(mut self, on: bool) -> Self {
        self.send_pii = on;
        self
    }

    /// Waits for Sentry's transport to drain after this many events, at most
    /// `timeout` each time. Default: 16 events, 5 s. Keep it below the
    /// transport's capacity (30 unless the client options change it).
    #[must_use]
    pub fn pace(mut self, events: usize, timeout: Duration) -> Self {
        self.pace = events.max(1);
        self.drain_timeout = timeout;
        self
    }

    /// The event this sink sends for `report`.
    pub fn event(&self, report: &Report) -> Event<'static> {
        let code = report.code();
        let chain: Vec<String> = report.chain().iter().map(|line| scrub_pii(line).into_owned()).collect();
        let headline = chain
            .first()
            .cloned()
            .unwrap_or_else(|| code.info().description.to_owned());
        let mut tags = Map::new();
        tags.insert("error_code".to_owned(), code.reason().to_owned());
        tags.insert("error_category".to_owned(), code.category().as_str().to_owned());
        tags.insert("severity".to_owned(), report.severity().as_str().to_owned());
        tags.insert("reference_id".to_owned(), report.reference().to_string());
        let context = report.context();
        if let Some(request_id) = context.and_then(|context| context.request_id()) {
            tags.insert("request_id".to_owned(), request_id.as_str().to_owned());
        }
        let mut extra = Map::new();
        extra.insert("chain".to_owned(), Value::from(chain));
        extra.insert("description".to_owned(), Value::from(code.info().description));
        extra.insert("http_status".to_owned(), Value::from(code.http_status()));
        let (user, request) = match context.filter(|_| self.send_pii) {
            Some(context) => {
                let user = context.client_ip().map(|ip| User {
                    ip_address: Some(IpAddress::Exact(ip)),
                    ..User::default()
                });
                let request = context.user_agent().map(|agent| {
                    let mut headers = Map::new();
                    headers.insert("User-Agent".to_owned(), agent.as_str().to_owned());
                    Request {
                        headers,
                        ..Request::default()
                    }
                });
                (user, request)
            }
            None => (None, None),
        };
        let timestamp = report
            .timestamp()
            .and_then(|at| u64::try_from(at.unix_micros()).ok())
            .map_or_else(SystemTime::now, |micros| UNIX_EPOCH + Duration::from_micros(micros));
        Event {
            event_id: *report.reference().as_uuid(),
            level: match report.severity() {
                Severity::Info => Level::Info,
                Severity::Warning => Level::Warning,
                Severity::Error => Level::Error,
                _ => Level::Fatal,
            },
            fingerprint: Cow::Owned(vec![Cow::Borrowed(code.reason()), Cow::Borrowed("{{ default }}")]),
            message: Some(format!("{}: {headline}", code.reason())),
            logger: Some("zt-monitoring".to_owned()),
            timestamp,
            exception: vec![Exception {
                ty: code.reason().to_owned(),
                value: Some(headline),
                ..Exception::default()
            }]
            .into(),
            tags,
            extra,
            user,
            request,
            ..Event::default()
        }
    }
}

impl Sink for SentrySink {
    fn name(&self) -> &str {
        "sentry"
    }

    fn accepts_alerts(&self) -> bool {
        // Sentry runs its own alert rules on the events it receives.
        false
    }

    fn send_report(&mut self, report: &Report) -> Result<(), Error> {
        if !self.client.is_enabled() {
            return Err(Error::new(
                ErrorKind::Delivery,
                "sentry client is disabled: no dsn or transport",
            ));
        }
        let event = self.event(report);
        let id = self.client.capture_event(event, None);
        if id.is_nil() {
            tracing::debug!(target: "zt::monitoring", reference_id = %report.reference(), "sentry discarded the event (sampling or before_send)");
        }
        self.since_flush += 1;
        if self.since_flush >= self.pace {
            self.since_flush = 0;
            if !self.client.flush(Some(self.drain_timeout)) {
                return Err(Error::new(
                    ErrorKind::Delivery,
                    "sentry transport did not drain in time",
                ));
            }
        }
        Ok(())
    }

    fn flush(&mut self, timeout: Duration) -> Result<(), Error> {
        self.since_flush = 0;
        if self.client.flush(Some(timeout)) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Delivery,
                "sentry transport did not drain in time",
            ))
        }
    }
}
