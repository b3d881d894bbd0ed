//! Sinks: where reports and notifications go. `queue.rs` is the [`Sink`]
//! trait and the machinery that keeps sinks off the caller's thread (bounded
//! queues, a worker per sink); `http.rs` is the HTTP(S) client the webhook
//! and Sentry sinks share; the other files are the built-in sinks, which use
//! those two and nothing above them.
//!
//! [`Sink`]: crate::Sink

#[cfg(any(feature = "webhook", feature = "sentry"))]
pub(crate) mod http;
pub(crate) mod memory;
pub(crate) mod queue;
#[cfg(feature = "sentry")]
pub(crate) mod sentry_sink;
#[cfg(feature = "sentry")]
mod sentry_transport;
pub(crate) mod tracing_sink;
#[cfg(feature = "webhook")]
pub(crate) mod webhook;
