//! The Sentry sink, built from a DSN, sends real envelopes through its own
//! ureq transport to a local HTTP server that parses them. The same over TLS
//! is in `https.rs`.
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{Server, Setup, events};
use zt_error_codes::ErrorCode;
use zt_monitoring::sentry_core::{Client, ClientOptions};
use zt_monitoring::{ErrorKind, Monitor, Report, SentrySink};
use zt_types::{ReferenceId, RequestContext, RequestId};

fn sink(server: &Server) -> SentrySink {
    SentrySink::from_dsn(&server.dsn(), ClientOptions::new().release("zt-test@1.0.0")).unwrap()
}

fn monitor_with(sink: SentrySink) -> Monitor {
    Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(sink)
        .build()
        .unwrap()
}

fn next_event(server: &Server) -> (Value, String) {
    loop {
        let request = server.next_matching(|request| request.path.contains("/envelope"));
        if let Some(event) = events(&request).into_iter().next() {
            return (event, String::from_utf8_lossy(&request.body).into_owned());
        }
    }
}

fn leaky_report(reference: ReferenceId) -> Report {
    let context = RequestContext::new()
        .with_ip("198.51.100.7".parse().unwrap())
        .with_user_agent("Mozilla/5.0 secret-agent")
        .with_request_id(RequestId::parse("req-7").unwrap());
    Report::new(ErrorCode::DbUnavailable, reference)
        .with_context(context)
        .with_chain([
            "connection to 10.0.3.7:5432 refused for ada@example.com",
            "password=hunter2 rejected; Authorization: Bearer eyJhbGciOi.abc",
            "peer 2001:db8::1\nFORGED LINE",
        ])
}

#[test]
fn events_are_fingerprinted_tagged_and_scrubbed() {
    let server = Server::start(vec![]);
    let monitor = monitor_with(sink(&server));
    let reference = ReferenceId::new();
    monitor.record(leaky_report(reference));
    assert!(monitor.flush(Duration::from_secs(10)));

    let (event, raw) = next_event(&server);
    assert_eq!(event["release"], "zt-test@1.0.0");
    assert_eq!(
        event["event_id"].as_str().unwrap().replace('-', ""),
        reference.to_string().replace('-', "")
    );
    // Error is the protocol's default level, so it is left out of the payload.
    assert!(event.get("level").is_none_or(|level| level == "error"), "{event}");
    assert_eq!(event["logger"], "zt-monitoring");
    assert_eq!(
        event["fingerprint"],
        serde_json::json!(["DB_UNAVAILABLE", "{{ default }}"])
    );
    assert_eq!(event["tags"]["reference_id"], reference.to_string());
    assert_eq!(event["tags"]["request_id"], "req-7");
    assert_eq!(event["tags"]["error_code"], "DB_UNAVAILABLE");
    assert_eq!(event["tags"]["error_category"], "database");
    assert_eq!(
        event["message"],
        "DB_UNAVAILABLE: connection to [ip]:5432 refused for [email]"
    );
    assert_eq!(event["exception"]["values"][0]["type"], "DB_UNAVAILABLE");
    assert_eq!(
        event["exception"]["values"][0]["value"],
        "connection to [ip]:5432 refused for [email]"
    );
    assert_eq!(
        event["extra"]["chain"],
        serde_json::json!([
            "connection to [ip]:5432 refused for [email]",
            "password=[redacted] rejected; Authorization: [redacted]",
            "peer [ip]\\nFORGED LINE",
        ])
    );
    assert!(event.get("user").is_none_or(Value::is_null), "{event}");
    assert!(event.get("request").is_none_or(Value::is_null), "{event}");
    for secret in [
        "10.0.3.7",
        "ada@example.com",
        "hunter2",
        "eyJhbGciOi",
        "2001:db8",
        "198.51.100.7",
        "secret-agent",
    ] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
    assert_eq!(monitor.stats().sink("sentry").unwrap().delivered, 1);
}

#[test]
fn client_ip_and_user_agent_only_with_consent() {
    let server = Server::start(vec![]);
    let monitor = monitor_with(sink(&server).send_pii(true));
    monitor.record(leaky_report(ReferenceId::new()));
    assert!(monitor.flush(Duration::from_secs(10)));
    let (event, _raw) = next_event(&server);
    assert_eq!(event["user"]["ip_address"], "198.51.100.7");
    assert_eq!(event["request"]["headers"]["User-Agent"], "Mozilla/5.0 secret-agent");
    // Messages are scrubbed all the same.
    assert!(!event["message"].as_str().unwrap().contains("10.0.3.7"));
}

#[test]
fn a_burst_of_a_hundred_all_arrives() {
    // The sentry crate's transports hold 30 envelopes and drop the rest; the
    // sink's own transport has no queue of its own, so all 100 arrive.
    let server = Server::start(vec![]);
    let monitor = monitor_with(sink(&server));
    let references: Vec<ReferenceId> = (0..100).map(|_| monitor.record_code(ErrorCode::Internal)).collect();
    assert!(monitor.flush(Duration::from_secs(30)));
    let mut seen = std::collections::HashSet::new();
    while seen.len() < references.len() {
        let (event, _raw) = next_event(&server);
        seen.insert(event["tags"]["reference_id"].as_str().unwrap().to_owned());
    }
    assert!(references.iter().all(|reference| seen.contains(&reference.to_string())));
    let stats = monitor.stats();
    let sink = stats.sink("sentry").unwrap();
    assert_eq!((sink.delivered, sink.failed, sink.dropped_reports), (100, 0, 0));
}

#[test]
fn an_application_client_without_dsn_is_a_counted_failure() {
    let client = Arc::new(Client::from(ClientOptions::new()));
    let monitor = monitor_with(SentrySink::new(client));
    monitor.record_code(ErrorCode::Internal);
    monitor.flush(Duration::from_secs(10));
    assert_eq!(monitor.stats().sink("sentry").unwrap().failed, 1);
}

#[test]
fn envelopes_carry_the_auth_header_and_content_type() {
    let server = Server::start(vec![]);
    let monitor = monitor_with(sink(&server));
    monitor.record_code(ErrorCode::Internal);
    assert!(monitor.flush(Duration::from_secs(10)));
    let request = server.next();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/1/envelope/");
    assert_eq!(request.headers["content-type"], "application/x-sentry-envelope");
    let auth = &request.headers["x-sentry-auth"];
    assert!(auth.starts_with("Sentry "), "{auth}");
    for part in ["sentry_key=public", "sentry_version=7", "sentry_client=sentry.rust/"] {
        assert!(auth.contains(part), "{part} missing: {auth}");
    }
}

#[test]
fn server_errors_are_retried_then_counted_as_failed() {
    let server = Server::start(vec![503, 500, 500, 500]);
    let sink = SentrySink::builder(&server.dsn())
        .retries(1, Duration::from_millis(5))
        .build()
        .unwrap();
    let monitor = monitor_with(sink);
    monitor.record_code(ErrorCode::Internal);
    monitor.record_code(ErrorCode::Internal);
    assert!(monitor.flush(Duration::from_secs(10)));
    // 503 then 500: the first report fails after its retry; 500 then 500: so does the second.
    for _ in 0..4 {
        assert_eq!(server.next().path, "/api/1/envelope/");
    }
    let stats = monitor.stats();
    let sink = stats.sink("sentry").unwrap();
    assert_eq!((sink.delivered, sink.failed), (0, 2));

    let server = Server::start(vec![502]);
    let sink = SentrySink::builder(&server.dsn())
        .retries(2, Duration::from_millis(5))
        .build()
        .unwrap();
    let monitor = monitor_with(sink);
    monitor.record_code(ErrorCode::Internal);
    assert!(monitor.flush(Duration::from_secs(10)));
    let (first, second) = (events(&server.next()), events(&server.next()));
    assert_eq!(
        first[0]["event_id"], second[0]["event_id"],
        "a retry resends the same event"
    );
    assert_eq!(monitor.stats().sink("sentry").unwrap().delivered, 1);
}

#[test]
fn a_rate_limit_stops_sending_and_counts_each_event() {
    let server = Server::with(Setup {
        statuses: vec![429],
        headers: vec![("retry-after".to_owned(), "60".to_owned())],
        ..Setup::default()
    });
    let monitor = monitor_with(sink(&server));
    for _ in 0..3 {
        monitor.record_code(ErrorCode::Internal);
    }
    assert!(monitor.flush(Duration::from_secs(10)));
    server.next();
    assert!(
        server.requests.recv_timeout(Duration::from_millis(200)).is_err(),
        "no request while rate-limited"
    );
    let stats = monitor.stats();
    let sink = stats.sink("sentry").unwrap();
    assert_eq!((sink.delivered, sink.failed, sink.dropped_reports), (0, 3, 0));
}

#[test]
fn bad_dsns_and_unsafe_options_are_refused_when_built() {
    let error = SentrySink::from_dsn("not a dsn", ClientOptions::new()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert_eq!(error.to_string(), "sentry dsn is invalid");
    assert!(std::error::Error::source(&error).is_some());

    let error = SentrySink::from_dsn("https://key@o1.ingest.sentry.io", ClientOptions::new()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config, "no project id");

    let mut options = ClientOptions::new();
    options.accept_invalid_certs = true;
    let error = SentrySink::from_dsn("https://key@o1.ingest.sentry.io/1", options).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);

    let https = SentrySink::from_dsn("https://key@o1.ingest.sentry.io/1", ClientOptions::new());
    if cfg!(any(feature = "rustls", feature = "native-tls")) {
        assert!(https.is_ok());
    } else {
        assert_eq!(https.unwrap_err().kind(), ErrorKind::TlsUnavailable);
    }
}
