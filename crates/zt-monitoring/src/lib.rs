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
//!   the [`SentrySink`], the [`WebhookSink`] for chat and pagers, or your
//!   own. Each sink has a bounded queue and a worker thread: recording
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
//!   JSON ([`AlertConfig`]);
//! - records latency into HDR histograms (p50, p95, p99, max; see
//!   [`LatencySummary`]) and alerts on slow runs;
//! - exports counters, gauges and histograms through the `metrics` facade,
//!   and renders its own figures in the Prometheus text format
//!   ([`Monitor::render_prometheus`]).
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
//! The application initializes Sentry with the transport it wants; the
//! [`SentrySink`] sends through that client. Events are grouped by the
//! fingerprint `[code, "{{ default }}"]`, carry the reference id as event id
//! and tag, and are scrubbed of emails, IP addresses, tokens and passwords.
//!
//! ```no_run
//! # #[cfg(feature = "sentry")] {
//! use zt_monitoring::{Monitor, SentrySink};
//!
//! let options = sentry::ClientOptions::new().maybe_release(sentry::release_name!());
//! let _sentry = sentry::init(("https://public@sentry.example.com/1", options));
//! let client = sentry::Hub::main().client().expect("sentry::init installed a client");
//! let monitor = Monitor::builder().sink(SentrySink::new(client)).build()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # With zt-errors
//!
//! With the `errors` feature, a [`Monitor`] is a `zt_errors::ErrorHook`:
//! `Sanitizer::new().hook(monitor.clone())` reports every sanitized error.
//! The sanitizer already logs each error, so configure the tracing sink with
//! `TracingSink::new().reports(false)` to keep only alerts in the log.
//!
//! # Feature flags
//!
//! - `webhook` (default): the [`WebhookSink`], over ureq.
//! - `sentry`: the [`SentrySink`], over `sentry-core`.
//! - `errors`: `impl zt_errors::ErrorHook for Monitor`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod alerts;
mod duration;
mod error;
#[cfg(feature = "errors")]
mod errors_hook;
mod latency;
mod monitor;
mod patterns;
mod prometheus;
mod report;
mod rules;
mod scrub;
mod sink;
mod sinks;
mod stripe;
mod window;

pub use alerts::{Alert, AlertStatus, Notification};
pub use error::{Error, ErrorKind};
pub use latency::{LatencySummary, Operation, Timer};
pub use monitor::{Monitor, MonitorBuilder, MonitorStats};
pub use patterns::{CodeSnapshot, Snapshot, SpikeConfig};
pub use prometheus::PROMETHEUS_CONTENT_TYPE;
pub use report::Report;
pub use rules::{AlertConfig, AlertRule, Condition, GroupLabel, InhibitRule, Selector, SlowThreshold, Timing};
pub use scrub::scrub_pii;
pub use sink::{Sink, SinkOptions, SinkStats};
pub use sinks::memory::{MemoryRecords, MemorySink};
#[cfg(feature = "sentry")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
pub use sinks::sentry_sink::SentrySink;
pub use sinks::tracing_sink::TracingSink;
#[cfg(feature = "webhook")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhook")))]
pub use sinks::webhook::{WebhookFormat, WebhookSink};
pub use zt_types::{Clock, ManualClock, SystemClock};
