//! Diesel lets us set a connection's instrumentation but not read it back.
//! So to learn what the probe saw, we swap in a fresh probe: the old one,
//! as it drops, leaves its verdict and the wrapped instrumentation in a
//! thread-local slot, which we read at once on the same thread.

use std::cell::RefCell;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error};
use diesel::{Connection, PgConnection};

type Returned = (bool, Option<Box<dyn Instrumentation>>);

thread_local! {
    static RETURNED: RefCell<Option<Returned>> = const { RefCell::new(None) };
}

pub(crate) struct HealthProbe {
    closed: bool,
    armed: bool,
    inner: Option<Box<dyn Instrumentation>>,
}

impl HealthProbe {
    pub(crate) fn new(inner: Option<Box<dyn Instrumentation>>) -> Self {
        Self {
            closed: false,
            armed: true,
            inner,
        }
    }
}

impl Instrumentation for HealthProbe {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error: Some(error), .. } = &event
            && matches!(
                error,
                Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _
                )
            )
        {
            self.closed = true;
        }
        if let Some(inner) = &mut self.inner {
            inner.on_connection_event(event);
        }
    }
}

impl Drop for HealthProbe {
    fn drop(&mut self) {
        if self.armed {
            let returned = (self.closed, self.inner.take());
            RETURNED.with(|slot| *slot.borrow_mut() = Some(returned));
        }
    }
}

/// Whether `conn`'s probe saw its connection close; the probe is renewed.
pub(crate) fn take_closed(conn: &mut PgConnection) -> bool {
    RETURNED.with(|slot| slot.borrow_mut().take());
    conn.set_instrumentation(HealthProbe {
        closed: false,
        armed: false,
        inner: None,
    });
    let (closed, inner) = RETURNED.with(|slot| slot.borrow_mut().take()).unwrap_or((false, None));
    conn.set_instrumentation(HealthProbe::new(inner));
    closed
}
