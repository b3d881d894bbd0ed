//! Error reports to Sentry, through a `sentry_core::Client`: one the sink
//! builds from a DSN, over HTTPS with ureq, or the application's own.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sentry_core::protocol::{Event, Exception, IpAddress, Level, Map, Request, User, Value};
use sentry_core::types::Dsn;
use sentry_core::{Client, ClientOptions, Hub};
use zt_types::Severity;

use crate::error::{Error, ErrorKind};
use crate::report::Report;
use crate::scrub::scrub_pii;
use crate::sinks::http::{self, TlsConfig};
use crate::sinks::queue::Sink;
use crate::sinks::sentry_transport::{Factory, Outcome};

/// Sends each report to Sentry as an event, through a [`sentry_core::Client`].
///
/// [`SentrySink::from_dsn`] (or [`SentrySink::builder`]) builds the client
/// from a DSN, with a transport that posts each envelope over HTTPS (ureq,
/// with the same [`TlsConfig`] as the webhooks) on the sink's own worker
/// thread. The caller is never blocked, and a failed post (a refused
/// certificate, a network error, a 4xx or 5xx, a rate limit) counts as a
/// failed delivery in [`crate::Monitor::stats`]. [`SentrySink::new`] takes
/// the application's own client instead, with the transport it chose.
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
/// With an application's client, the `sentry` crate's transports hold 30
/// envelopes and drop the rest, counted only in Sentry's client reports
/// (sentry-rust #613). So this sink waits for the transport to drain after
/// every `pace` events (16 by default): a backlog then waits in this sink's
/// queue, where drops are counted and exported as metrics. Sentry can still
/// discard events for its own reasons (sampling, `before_send`); those show
/// in Sentry's client reports.
///
/// ```no_run
/// use zt_monitoring::sentry_core::ClientOptions;
/// use zt_monitoring::{Monitor, SentrySink};
///
/// let options = ClientOptions::new().release("my-app@1.4.2").environment("production");
/// let sentry = SentrySink::from_dsn("https://public@o1.ingest.sentry.io/123", options)?;
/// let monitor = Monitor::builder().sink(sentry).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SentrySink {
    client: Arc<Client>,
    outcome: Option<Outcome>,
    send_pii: bool,
    pace: usize,
    since_flush: usize,
    drain_timeout: Duration,
}

impl fmt::Debug for SentrySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentrySink")
            .field("enabled", &self.client.is_enabled())
            .field("own_transport", &self.outcome.is_some())
            .field("send_pii", &self.send_pii)
            .field("pace", &self.pace)
            .finish_non_exhaustive()
    }
}

impl SentrySink {
    /// A sink that sends through the application's `client`, with the
    /// transport the application chose.
    pub fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            outcome: None,
            send_pii: false,
            pace: 16,
            since_flush: 0,
            drain_timeout: Duration::from_secs(5),
        }
    }

    /// A sink with its own client for `dsn`, such as
    /// `https://key@o1.ingest.sentry.io/123`, posting over HTTPS with the
    /// default [`TlsConfig`] and a 10 s timeout. `options` carry the release,
    /// environment, sample rate, `before_send` and so on; their DSN and
    /// transport are replaced. See [`SentrySink::builder`] for TLS settings.
    ///
    /// Fails if the DSN does not parse, is `https` in a build without TLS
    /// ([`ErrorKind::TlsUnavailable`]), or the options ask for something
    /// this transport refuses (`accept_invalid_certs`, a malformed proxy).
    pub fn from_dsn(dsn: &str, options: ClientOptions) -> Result<Self, Error> {
        Self::builder(dsn).options(options).build()
    }

    /// Builds a sink with its own client for `dsn`, with TLS, timeout and
    /// retry settings.
    pub fn builder(dsn: &str) -> SentrySinkBuilder {
        SentrySinkBuilder {
            dsn: dsn.to_owned(),
            options: ClientOptions::default(),
            tls: TlsConfig::default(),
            timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(250),
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
        // The sink's own transport sends before `capture_event` returns.
        if let Some(outcome) = &self.outcome {
            let sent = outcome.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(Err(error)) = sent {
                return Err(error);
            }
        }
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

/// Builds a [`SentrySink`] with its own client for a DSN; from
/// [`SentrySink::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use zt_monitoring::{SentrySink, TlsConfig};
///
/// // A self-hosted Sentry behind a private certificate authority.
/// let ca = std::fs::read("/etc/ssl/private-ca.pem")?;
/// let sink = SentrySink::builder("https://public@sentry.internal.example/4")
///     .tls(TlsConfig::new().root_certificates_pem(ca)?)
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct SentrySinkBuilder {
    dsn: String,
    options: ClientOptions,
    tls: TlsConfig,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl fmt::Debug for SentrySinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentrySinkBuilder")
            .field("dsn", &http::redacted_url(&self.dsn))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl SentrySinkBuilder {
    /// Sets the client's options: release, environment, sample rate,
    /// `before_send` and so on. Their DSN and transport are replaced.
    /// Default: `ClientOptions::default()`.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets how Sentry's certificate is verified. Default: Mozilla's roots,
    /// bundled.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the timeout of each attempt. Default: 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times an envelope is retried after a network error or a
    /// 5xx, and the first backoff, which doubles each time. Default: 2
    /// retries from 250 ms. Sentry deduplicates by event id, so a retry never
    /// makes a second event. Retries block only this sink's worker.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Builds the client and the sink.
    pub fn build(self) -> Result<SentrySink, Error> {
        let Self {
            dsn,
            mut options,
            tls,
            timeout,
            retries,
            backoff,
        } = self;
        let parsed: Dsn = dsn
            .trim()
            .parse()
            .map_err(|error| Error::config("sentry dsn is invalid").with_source(error))?;
        if options.accept_invalid_certs {
            return Err(Error::config(
                "sentry option accept_invalid_certs is refused: trust the server's ca with TlsConfig::root_certificates_pem",
            ));
        }
        http::check_url("sentry dsn", dsn.trim(), true)?;
        let proxy = match parsed.scheme() {
            sentry_core::types::Scheme::Https => options.https_proxy.as_ref().or(options.http_proxy.as_ref()),
            sentry_core::types::Scheme::Http => options.http_proxy.as_ref(),
        };
        let proxy = proxy
            .map(|proxy| ureq::Proxy::new(proxy.as_ref()))
            .transpose()
            .map_err(|error| Error::config("sentry proxy is invalid").with_source(error))?;
        let outcome: Outcome = Arc::new(Mutex::new(None));
        options.dsn = Some(parsed);
        options.transport = Some(Arc::new(Factory {
            agent: tls.agent(timeout, &options.user_agent, proxy),
            retries,
            backoff,
            outcome: outcome.clone(),
        }));
        let mut sink = SentrySink::new(Arc::new(Client::with_options(options)));
        sink.outcome = Some(outcome);
        Ok(sink)
    }
}
