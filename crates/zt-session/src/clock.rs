//! Where the validator gets the time, so that tests can move it.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use zt_types::Timestamp;

/// A source of the current time.
///
/// The validator and the store read the time only through this trait, so a
/// test can pin it with a [`ManualClock`] and check the freshness and
/// clock-skew edges to the microsecond.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock: [`Timestamp::now`]. The default everywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until it is moved, for tests.
///
/// ```
/// use std::time::Duration;
/// use zt_session::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-11-29T12:00:00Z".parse()?);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now().to_string(), "2026-11-29T12:01:30.000000Z");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: AtomicI64::new(start.unix_micros()),
        }
    }

    /// Sets the time.
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

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &'static C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
