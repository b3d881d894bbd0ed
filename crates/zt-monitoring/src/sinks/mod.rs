//! The built-in sinks.

pub(crate) mod memory;
#[cfg(feature = "sentry")]
pub(crate) mod sentry_sink;
#[cfg(feature = "sentry")]
mod sentry_transport;
pub(crate) mod tracing_sink;
#[cfg(feature = "webhook")]
pub(crate) mod webhook;
