//! Shared set-up for the integration tests: a migrated store on a fresh
//! database (with the reference store), a clock the test moves, claims as a
//! sign-in would issue them, and captured logs.
#![allow(dead_code)]

#[cfg(feature = "jwt")]
pub(crate) mod keys;
// The reference store on a database: with a backend.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod store;

use std::sync::{Arc, Mutex};

// Not every suite names the fixture's type.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)]
pub(crate) use store::{Fixture, setup};
use zt_types::Timestamp;

/// Noon, 29 November 2026: the start of every test's clock.
pub(crate) fn t0() -> Timestamp {
    "2026-11-29T12:00:00Z".parse().unwrap()
}

/// Records the `tracing` events emitted on this thread while `f` runs, as
/// (level, message) pairs.
pub(crate) fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, Vec<(tracing::Level, String)>) {
    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    struct Capture(Arc<Mutex<Vec<(tracing::Level, String)>>>);
    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push((*event.metadata().level(), message.0));
        }
    }

    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Capture(Arc::clone(&seen)));
    let result = tracing::subscriber::with_default(subscriber, f);
    let logs = seen.lock().unwrap().clone();
    (result, logs)
}
