//! Time, injectable, so that whatever depends on it can be tested to the
//! microsecond: session freshness and clock skew, monitoring windows and
//! alert timers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::timestamp::Timestamp;

/// A source of the current time. [`SystemClock`] is the default everywhere;
/// tests use a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock: [`Timestamp::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is moved. Clones share the same time,
/// so a test keeps one and hands the other to the code under test.
///
/// ```
/// use std::time::Duration;
/// use zt_types::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-11-29T12:00:00Z".parse()?);
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(shared.now().to_string(), "2026-11-29T12:01:30.000000Z");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(start.unix_micros())),
        }
    }

    /// Sets the time, which may be earlier than now.
    pub fn set(&self, now: Timestamp) {
        self.micros.store(now.unix_micros(), Ordering::SeqCst);
    }

    /// Moves the time forward by `by`, saturating at the latest time.
    pub fn advance(&self, by: Duration) {
        self.set(self.now().saturating_add(by));
    }

    /// Moves the time back by `by`, saturating at the earliest time.
    pub fn rewind(&self, by: Duration) {
        self.set(self.now().saturating_sub(by));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let micros = self.micros.load(Ordering::SeqCst);
        // Only `new` and `set` write, both from a valid timestamp.
        Timestamp::from_unix_micros(micros).unwrap_or_else(|_| Timestamp::now())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &'static C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
