//! Error and performance monitoring for zt: error reports to `tracing`,
//! Sentry and webhooks, error-pattern tracking, Alertmanager-style alert
//! rules, HDR latency histograms, and metrics.
//!
//! A [`Monitor`] accepts [`Report`]s (code, severity, reference id, request
//! context and the internal chain) and latency measurements through
//! [`Operation`] timers. It:
//!
//! - counts each code in lock-free sliding windows (1 s buckets over 1 h by
//!   default) and shows rates, top codes and spikes in a [`Snapshot`];
//! - hands each report to its [`Sink`]s: the [`TracingSink`] (the default),
//!   the [`SentrySink`], the [`WebhookSink`] for chat and pagers (both over
//!   HTTPS), or your own. Each sink has a bounded queue and a worker thread: recording
//!   **never blocks** the caller, and a full queue **never drops silently**:
//!   drops are counted per sink ([`Monitor::stats`]), exported as the
//!   `zt_monitoring_dropped_total` metric and logged;
//! - evaluates [`AlertRule`]s (thresholds per code, category or severity over
//!   a window, spikes, slow operations) with Alertmanager's grouping,
//!   `group_wait`, `group_interval`, `repeat_interval`, a cooldown,
//!   deduplication by fingerprint, [`InhibitRule`]s and resolved
//!   [`Notification`]s, so 10 000 identical errors make one notification,
//!   not an **alert storm**. A critical code alerts at once through the
//!   built-in [`AlertRule::critical`]. Rules come from code or from TOML or
//!   JSON ([`AlertConfig`]), with durations such as `30s`, `1h30m` or `2w`
//!   (humantime's grammar, which the `zt` command reads too);
//! - records latency into HDR histograms (p50, p95, p99, max; see
//!   [`LatencySummary`]) and alerts on slow runs;
//! - exports counters, gauges and histograms through the `metrics` facade,
//!   and renders its own figures in the Prometheus text format
//!   ([`Monitor::render_prometheus`], through metrics-exporter-prometheus's
//!   recorder, never installed: no global recorder, no HTTP listener).
//!
//! Time comes from a [`Clock`]; tests use a [`ManualClock`] with
//! [`MonitorBuilder::manual_evaluation`] and [`Monitor::tick`], so every
//! alert decision is deterministic.
//!
//! # Setup with `tracing`
//!
//! ```
//! use std::time::Duration;
//! use zt_error_codes::ErrorCode;
//! use zt_monitoring::{AlertConfig, Monitor, Report};
//! use zt_types::ReferenceId;
//!
//! // With any tracing subscriber installed, reports are logged under the
//! // target `zt::monitoring` and alerts under `zt::alerts`.
//! let monitor = Monitor::builder()
//!     .rules(AlertConfig::from_toml_str(r#"
//!         [[rules]]
//!         name = "database-down"
//!         code = "DB_UNAVAILABLE"
//!         threshold = 5
//!         window = "1m"
//!     "#)?)
//!     .slow_operation("db.query", Duration::from_millis(250))
//!     .build()?;
//!
//! monitor.record(Report::new(ErrorCode::DbUnavailable, ReferenceId::new()).with_chain(["pool timed out"]));
//! let rows = monitor.operation("db.query").time(|| 42);
//!
//! assert_eq!(rows, 42);
//! assert_eq!(monitor.snapshot().top(1)[0].code, ErrorCode::DbUnavailable);
//! assert!(monitor.render_prometheus().contains("zt_errors_total{code=\"DB_UNAVAILABLE\""));
//! assert!(monitor.shutdown(Duration::from_secs(5)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Setup with Sentry
//!
//! With the `sentry` feature, one call builds a [`SentrySink`] from the
//! project's DSN: its own `sentry_core::Client`, with a transport that posts
//! each envelope over HTTPS on the sink's worker thread. Failed posts count as
//! failed deliveries. Events are grouped by the fingerprint
//! `[code, "{{ default }}"]`, carry the reference id as event id and tag, and
//! are scrubbed of emails, IP addresses, tokens and passwords.
//!
//! ```no_run
//! # #[cfg(feature = "sentry")] {
//! use zt_monitoring::sentry_core::ClientOptions;
//! use zt_monitoring::{Monitor, SentrySink};
//!
//! let options = ClientOptions::new().release("my-app@1.4.2");
//! let sentry = SentrySink::from_dsn("https://public@o1.ingest.sentry.io/123", options)?;
//! let monitor = Monitor::builder().sink(sentry).build()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`SentrySink::builder`] sets TLS (a private CA for a self-hosted Sentry),
//! timeouts and retries; [`SentrySink::new`] takes an application's own client.
//! `sentry_core` is re-exported, so its version always matches.
//!
//! # HTTPS
//!
//! Webhooks and Sentry speak HTTPS out of the box: the default `rustls`
//! feature verifies servers against Mozilla's root certificates, bundled in
//! the binary. A [`TlsConfig`] trusts a private CA instead
//! ([`TlsConfig::root_certificates_pem`]), or the operating system's roots.
//! Verification cannot be turned off. In a build without TLS, an `https` URL
//! or DSN is refused when the sink is built, with
//! [`ErrorKind::TlsUnavailable`], rather than failing at every send. Plain
//! `http` stays allowed, and is logged as a warning for hosts beyond this
//! machine.
//!
//! # With zt-errors
//!
//! With the `errors` feature, a [`Monitor`] is a `zt_errors::ErrorHook`:
//! `Sanitizer::new().hook(monitor.clone())` reports every sanitized error.
//! Each event is logged once, by its owner: the sanitizer (or the error's
//! owner, such as the session validator for a denial) has logged each error
//! before the monitor sees it, so its reports are marked logged
//! ([`Report::is_logged`]) and the [`TracingSink`] does not log them again;
//! the monitor still counts them, alerts on them and hands them to the
//! other sinks.
//!
//! # Feature flags
//!
//! - `webhook` (default): the [`WebhookSink`], over ureq (a blocking HTTP
//!   client, no async runtime).
//! - `rustls` (default): HTTPS with rustls, its `ring` crypto provider and
//!   Mozilla's roots bundled (webpki-roots). Rust plus ring's C and assembly,
//!   built with the C compiler alone: no cmake, no system OpenSSL. It costs
//!   about 1.6 MB in a stripped release binary, and under a minute of release
//!   compilation on two cores.
//! - `platform-verifier`: lets [`TlsConfig`] use the operating system's
//!   certificate verifier with rustls (rustls-platform-verifier). Implies `rustls`.
//! - `native-tls`: HTTPS with the system's TLS library (OpenSSL on Linux,
//!   which needs its headers and pkg-config to build; Secure Transport on
//!   macOS, SChannel on Windows). Used when `rustls` is off, or per sink with
//!   `TlsConfig::native_tls`.
//! - `sentry`: the [`SentrySink`], over `sentry-core` (re-exported as
//!   [`sentry_core`]) and ureq, with the TLS feature chosen above.
//! - `errors`: `impl zt_errors::ErrorHook for Monitor`.
//!
//! Without `rustls` or `native-tls`, sinks reach `http://` URLs only.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Modules by job, in layers. A module imports only from the layers below
// its own, never from beside or above (`tests/layers.rs` checks it):
//
//   7. errors_hook            the zt-errors integration
//   6. monitor                Monitor and MonitorBuilder: wire everything below
//                             (handle <- evaluator <- builder)
//   5. prometheus             the text format of the monitor's figures
//   4. sinks                  the Sink trait and its queues (sinks::queue),
//                             HTTP(S) (sinks::http), the built-in sinks
//   3. evaluate, latency      alerts, spikes and snapshots from the counts
//                             (spike <- alerts <- snapshot); HDR timers
//   2. rules                  the rule model (rules::model) and its file
//                             format (rules::config, which imports the model)
//   1. window                 striped sliding-window counters
//   0. error, duration, stripe, scrub, report
#[cfg(feature = "errors")]
mod errors_hook;
mod monitor;

mod prometheus;

mod sinks;

mod evaluate;
mod latency;

mod rules;

mod window;

mod duration;
mod error;
mod report;
mod scrub;
mod stripe;

pub use error::{Error, ErrorKind};
pub use evaluate::alerts::{Alert, AlertStatus, Notification};
pub use evaluate::snapshot::{CodeSnapshot, Snapshot};
pub use latency::{LatencySummary, Operation, Timer};
pub use monitor::builder::MonitorBuilder;
pub use monitor::handle::{Monitor, MonitorStats};
pub use prometheus::PROMETHEUS_CONTENT_TYPE;
pub use report::Report;
pub use rules::model::{
    AlertConfig, AlertRule, Condition, GroupLabel, InhibitRule, Selector, SlowThreshold, SpikeConfig, Timing,
};
pub use scrub::scrub_pii;
/// The `sentry-core` this crate is built on, to build [`ClientOptions`](sentry_core::ClientOptions)
/// or a [`Client`](sentry_core::Client) of exactly the matching version.
#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub use sentry_core;
#[cfg(any(feature = "webhook", feature = "sentry"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "webhook", feature = "sentry"))))]
pub use sinks::http::TlsConfig;
pub use sinks::memory::{MemoryRecords, MemorySink};
pub use sinks::queue::{Sink, SinkOptions, SinkStats};
#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub use sinks::sentry_sink::{SentrySink, SentrySinkBuilder};
pub use sinks::tracing_sink::TracingSink;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use sinks::webhook::{WebhookFormat, WebhookSink};
pub use zt_types::{Clock, ManualClock, SystemClock};
