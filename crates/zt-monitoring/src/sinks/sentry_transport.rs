//! A blocking Sentry transport over ureq, for the clients that
//! [`SentrySink`](crate::SentrySink) builds from a DSN.
//!
//! It sends each envelope on the calling thread, which is always the sink's
//! worker: the sink's bounded queue is the only queue, so an event is either
//! delivered, or counted by the sink as failed or dropped, never lost inside a
//! transport's own queue. The outcome of each send is handed back to the sink
//! through a shared [`Outcome`] slot.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use sentry_core::client_report::{Reason as LossReason, Recorder};
use sentry_core::{Envelope, Transport, TransportFactory, TransportOptions};

use crate::error::{Error, ErrorKind};
use crate::sinks::http;

/// The result of the last envelope sent, for the sink to take.
pub(crate) type Outcome = Arc<Mutex<Option<Result<(), Error>>>>;

/// Rate limits longer than this are capped: a misbehaving server cannot mute
/// the sink for days.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Builds the [`HttpTransport`] when the client is created.
pub(crate) struct Factory {
    pub(crate) agent: ureq::Agent,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) outcome: Outcome,
}

impl TransportFactory for Factory {
    fn create_transport_with_options(&self, options: TransportOptions) -> Arc<dyn Transport> {
        let auth = options.dsn.to_auth(Some(&options.user_agent)).to_string();
        Arc::new(HttpTransport {
            agent: self.agent.clone(),
            url: options.dsn.envelope_api_url().to_string(),
            auth,
            retries: self.retries,
            backoff: self.backoff,
            recorder: options.client_report_recorder,
            outcome: self.outcome.clone(),
            blocked_until: Mutex::new(None),
        })
    }
}

/// Posts envelopes to Sentry's envelope endpoint, one request each.
struct HttpTransport {
    agent: ureq::Agent,
    url: String,
    auth: String,
    retries: u32,
    backoff: Duration,
    recorder: Recorder,
    outcome: Outcome,
    blocked_until: Mutex<Option<Instant>>,
}

impl Transport for HttpTransport {
    fn send_envelope(&self, envelope: Envelope) {
        let result = self.send(&envelope);
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        // Keep an earlier failure the sink has not taken yet.
        if result.is_err() || outcome.is_none() {
            *outcome = Some(result);
        }
    }
}

impl HttpTransport {
    fn send(&self, envelope: &Envelope) -> Result<(), Error> {
        if let Some(until) = *self.blocked_until.lock().unwrap_or_else(PoisonError::into_inner) {
            let now = Instant::now();
            if now < until {
                self.recorder.record_lost_data(envelope, LossReason::RatelimitBackoff);
                return Err(Error::new(
                    ErrorKind::Delivery,
                    format!(
                        "sentry is rate limiting this client for {} s more; the event was not sent",
                        (until - now).as_secs().max(1)
                    ),
                ));
            }
        }
        let mut body = Vec::new();
        if let Err(error) = envelope.to_writer(&mut body) {
            self.recorder.record_lost_data(envelope, LossReason::InternalError);
            return Err(Error::new(ErrorKind::Delivery, "cannot serialize the sentry envelope").with_source(error));
        }
        let mut attempt: u32 = 0;
        loop {
            let sent = self
                .agent
                .post(&self.url)
                .header("x-sentry-auth", &self.auth)
                .header("content-type", "application/x-sentry-envelope")
                .config()
                .http_status_as_error(false)
                .build()
                .send(&body[..]);
            let (error, retryable, reason) = match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    self.update_rate_limits(&response);
                    // Read the answer out, so that the connection can be reused.
                    let _ = response.body_mut().with_config().limit(64 * 1024).read_to_vec();
                    if response.status().is_success() {
                        return Ok(());
                    }
                    if status == 429 {
                        // Sentry counts what it rate-limits itself: no client report.
                        return Err(Error::new(ErrorKind::Delivery, "sentry rate-limited the event")
                            .with_source(ureq::Error::StatusCode(status)));
                    }
                    (ureq::Error::StatusCode(status), status >= 500, LossReason::SendError)
                }
                Err(error) => {
                    let retryable = http::is_transient(&error);
                    (error, retryable, LossReason::NetworkError)
                }
            };
            if !retryable || attempt >= self.retries {
                self.recorder.record_lost_data(envelope, reason);
                return Err(Error::new(
                    ErrorKind::Delivery,
                    format!("sentry envelope failed after {} attempt(s)", attempt + 1),
                )
                .with_source(error));
            }
            thread::sleep(self.backoff.saturating_mul(2u32.saturating_pow(attempt)));
            attempt += 1;
        }
    }

    /// Reads `X-Sentry-Rate-Limits`, or `Retry-After` on a 429, and stops
    /// sending until the limit for error events has passed.
    fn update_rate_limits<B>(&self, response: &ureq::http::Response<B>) {
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok());
        let wait = if let Some(limits) = header("x-sentry-rate-limits") {
            rate_limit_for_errors(limits)
        } else if response.status().as_u16() == 429 {
            Some(
                header("retry-after")
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map_or(Duration::from_secs(60), Duration::from_secs),
            )
        } else {
            None
        };
        if let Some(wait) = wait {
            let until = Instant::now() + wait.min(MAX_BACKOFF);
            let mut blocked = self.blocked_until.lock().unwrap_or_else(PoisonError::into_inner);
            *blocked = Some(blocked.map_or(until, |current| current.max(until)));
        }
    }
}

/// The longest wait in an `X-Sentry-Rate-Limits` header that applies to error
/// events: `retry_after:categories:scope[:reason], ...`, where no categories
/// means all of them.
fn rate_limit_for_errors(header: &str) -> Option<Duration> {
    header
        .split(',')
        .filter_map(|limit| {
            let mut fields = limit.trim().split(':');
            let seconds = fields.next()?.trim().parse::<f64>().ok()?;
            let categories = fields.next().unwrap_or_default();
            let applies = categories.is_empty()
                || categories
                    .split(';')
                    .any(|category| matches!(category.trim(), "error" | "default"));
            (applies && seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(1e9)))
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers_apply_to_error_events_only() {
        assert_eq!(rate_limit_for_errors("60::organization"), Some(Duration::from_secs(60)));
        assert_eq!(
            rate_limit_for_errors("60:transaction:key, 2700:default;error:organization:quota"),
            Some(Duration::from_secs(2700))
        );
        assert_eq!(rate_limit_for_errors("60:transaction;session:key"), None);
        assert_eq!(rate_limit_for_errors("soon:error:key"), None);
        assert_eq!(rate_limit_for_errors(""), None);
    }
}
