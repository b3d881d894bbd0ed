//! Each event is logged once, by its owner. A denied request through the
//! guard is one log event, the validator's, carrying the code, the reference
//! id the client got and the request id; a failed body is one event, the
//! sanitizer's. The monitor counts both and logs neither.
//!
//! The subscriber is global, because the monitor's tracing sink logs from
//! its own worker thread; each test finds its events by its own request id.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use zt_audit::{AuditLog, ChainKey};
use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, Problem, Sanitizer};
use zt_guard::{Guard, GuardedAction};
use zt_monitoring::Monitor;
use zt_session::{Requirement, UserStore, Validator};
use zt_testkit::TestDatabase;
use zt_types::{ReferenceId, RequestContext, RequestId, Role, SessionClaims, SessionId, Timestamp, UserId};

/// One event as a subscriber saw it: its message, and its fields with those
/// of every span around it (the event's own win).
#[derive(Debug, Clone)]
struct Logged {
    target: String,
    message: String,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Collects every event, everywhere in the process.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Logged>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<Fields>() {
                    fields.0.extend(span_fields.0.clone());
                }
            }
        }
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        self.0.lock().unwrap().push(Logged {
            target: event.metadata().target().to_owned(),
            message,
            fields: fields.0,
        });
    }
}

fn collector() -> &'static Collector {
    static COLLECTOR: OnceLock<Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = Collector::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(collector.clone())).unwrap();
        collector
    })
}

/// The events that mention any of `needles` in a field, theirs or a span's.
fn events_about(needles: &[&str]) -> Vec<Logged> {
    collector()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|logged| {
            logged
                .fields
                .values()
                .any(|value| needles.iter().any(|needle| value.contains(needle)))
        })
        .cloned()
        .collect()
}

struct Setup {
    guard: Guard,
    monitor: Monitor,
    users: UserStore,
}

fn setup(db: &TestDatabase) -> Setup {
    collector();
    let pool = zt_db::Pool::connect(db.url()).unwrap();
    let audit = AuditLog::new(pool.clone(), &ChainKey::generate().unwrap());
    let users = UserStore::new(pool);
    audit.migrate().unwrap();
    users.migrate().unwrap();
    // The default tracing sink, which logs the reports nobody logged.
    let monitor = Monitor::builder().manual_evaluation().build().unwrap();
    let guard = Guard::new(Validator::new(users.clone()), audit, Sanitizer::new()).with_monitor(monitor.clone());
    Setup { guard, monitor, users }
}

fn request(db: &TestDatabase, what: &str) -> (RequestContext, String) {
    let id = format!("{what}-{:?}-{}", db.backend(), ReferenceId::new());
    let context = RequestContext::new()
        .with_ip("203.0.113.7".parse().unwrap())
        .with_request_id(RequestId::parse(id.clone()).unwrap());
    (context, id)
}

/// Exactly one event about `problem` and the request `request_id`, carrying
/// the code, the reference id and the request id; returns it.
fn the_one_event(setup: &Setup, problem: &Problem, request_id: &str) -> Logged {
    // The monitor's sink would log on its worker thread: let it drain.
    assert!(setup.monitor.flush(Duration::from_secs(10)));
    let reference = problem.reference().to_string();
    let events = events_about(&[request_id, &reference]);
    assert_eq!(events.len(), 1, "one event for the request, not: {events:#?}");
    let event = events.into_iter().next().unwrap();
    assert_eq!(
        event.fields.get("code").map(String::as_str),
        Some(problem.code().reason()),
        "{event:#?}"
    );
    assert_eq!(event.fields.get("reference_id"), Some(&reference), "{event:#?}");
    assert_eq!(
        event.fields.get("request_id").map(String::as_str),
        Some(request_id),
        "{event:#?}"
    );
    // The monitor counted it all the same.
    assert_eq!(setup.monitor.count(problem.code(), Duration::from_secs(3600)), 1);
    event
}

fn a_denial_is_logged_once_by_the_validator(db: &TestDatabase) {
    let setup = setup(db);
    let (context, request_id) = request(db, "denied");
    let action = GuardedAction::new("DELETE_PROJECT", "projects", Requirement::moderate());
    let problem = setup.guard.run(&action, None, &context, |_| Ok(())).unwrap_err();
    assert_eq!(problem.code(), ErrorCode::SessionMissing);

    let event = the_one_event(&setup, &problem, &request_id);
    assert_eq!(event.message, "session denied", "{event:#?}");
    assert_eq!(
        event.fields.get("reason").map(String::as_str),
        Some("missing"),
        "{event:#?}"
    );
    // The guard's span adds the action; the validator's event, the client's address.
    assert_eq!(
        event.fields.get("action").map(String::as_str),
        Some("DELETE_PROJECT"),
        "{event:#?}"
    );
    assert_eq!(
        event.fields.get("client_ip").map(String::as_str),
        Some("203.0.113.7"),
        "{event:#?}"
    );
}

fn a_failed_body_is_logged_once_by_the_sanitizer(db: &TestDatabase) {
    let setup = setup(db);
    let alice = UserId::parse("alice").unwrap();
    setup.users.create_user(&alice, None, &Role::user()).unwrap();
    let version = setup
        .users
        .user_state(&alice)
        .unwrap()
        .unwrap()
        .session_version()
        .unwrap_or_default();
    let claims = SessionClaims::new(
        SessionId::parse("sess_1").unwrap(),
        alice,
        Role::user(),
        version,
        Timestamp::now(),
    );
    let (context, request_id) = request(db, "failed");
    let action = GuardedAction::new("CREATE_PROJECT", "projects", Requirement::moderate());
    let problem = setup
        .guard
        .run(
            &action,
            Some(&claims),
            &context,
            |_| -> Result<(), zt_guard::BoxError> {
                Err(CodedError::new(ErrorCode::ResourceNotFound)
                    .with_message("no such list")
                    .into())
            },
        )
        .unwrap_err();
    assert_eq!(problem.code(), ErrorCode::ResourceNotFound);

    let event = the_one_event(&setup, &problem, &request_id);
    assert_eq!(event.message, "request failed", "{event:#?}");
    assert_eq!(event.target, "zt::errors", "{event:#?}");
}

zt_testkit::backend_tests!(
    a_denial_is_logged_once_by_the_validator,
    a_failed_body_is_logged_once_by_the_sanitizer,
);
