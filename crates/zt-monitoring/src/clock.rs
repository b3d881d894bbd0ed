//! Time, injectable so that windows and alert timers are deterministic in tests.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use zt_types::Timestamp;

/// Where the monitor reads the time for windows, alert timers and report
/// timestamps.
///
/// [`SystemClock`] is the default. Tests use [`ManualClock`] and call
/// [`crate::Monitor::tick`] themselves, so every alert decision is
/// deterministic. Latency timers always use [`std::time::Instant`], because
/// they measure real work.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use zt_monitoring::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now().to_string(), "2026-01-01T00:01:30.000000Z");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: std::sync::Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            micros: std::sync::Arc::new(AtomicI64::new(start.unix_micros())),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `to`, which may be earlier than now.
    pub fn set(&self, to: Timestamp) {
        self.micros.store(to.unix_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let micros = self.micros.load(Ordering::SeqCst);
        // Only a test that advances past year 9999 gets here; it gets the real time
        // rather than a panic.
        Timestamp::from_unix_micros(micros).unwrap_or_else(|_| Timestamp::now())
    }
}
