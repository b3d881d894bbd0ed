//! The Sentry sink sends real envelopes, through sentry's ureq transport, to
//! a local HTTP server that parses them.
#![cfg(feature = "sentry")]
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{Received, Server};
use zt_error_codes::ErrorCode;
use zt_monitoring::{Monitor, Report, SentrySink};
use zt_types::{ReferenceId, RequestContext, RequestId};

fn client(server: &Server) -> Arc<sentry::Client> {
    let dsn = format!("http://public@{}/1", server.addr);
    let options = sentry::apply_defaults(sentry::ClientOptions::new().dsn(&dsn));
    Arc::new(sentry::Client::from(options))
}

/// The event items of an envelope: a header line, then item headers each
/// followed by a payload.
fn events(request: &Received) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest: &[u8] = &request.body;
    let line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let taken = rest[..end].to_vec();
        *rest = rest.get(end + 1..).unwrap_or_default();
        Some(taken)
    };
    line(&mut rest).expect("an envelope header");
    while let Some(header) = line(&mut rest) {
        if header.is_empty() {
            continue;
        }
        let header: Value = serde_json::from_slice(&header).unwrap();
        let payload = match header["length"].as_u64() {
            Some(length) => {
                let length = usize::try_from(length).unwrap();
                let payload = rest[..length].to_vec();
                rest = rest.get(length + 1..).unwrap_or_default();
                payload
            }
            None => line(&mut rest).unwrap_or_default(),
        };
        if header["type"] == "event" {
            out.push(serde_json::from_slice(&payload).unwrap());
        }
    }
    out
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
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(SentrySink::new(client(&server)))
        .build()
        .unwrap();
    let reference = ReferenceId::new();
    monitor.record(leaky_report(reference));
    assert!(monitor.flush(Duration::from_secs(10)));

    let (event, raw) = next_event(&server);
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
    let sink = SentrySink::new(client(&server)).send_pii(true);
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(sink)
        .build()
        .unwrap();
    monitor.record(leaky_report(ReferenceId::new()));
    assert!(monitor.flush(Duration::from_secs(10)));
    let (event, _raw) = next_event(&server);
    assert_eq!(event["user"]["ip_address"], "198.51.100.7");
    assert_eq!(event["request"]["headers"]["User-Agent"], "Mozilla/5.0 secret-agent");
    // Messages are scrubbed all the same.
    assert!(!event["message"].as_str().unwrap().contains("10.0.3.7"));
}

#[test]
fn a_burst_beyond_sentrys_own_queue_all_arrives() {
    // Sentry's transport holds 30 envelopes and drops the rest; the sink paces
    // itself so that all 100 arrive.
    let server = Server::start(vec![]);
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(SentrySink::new(client(&server)))
        .build()
        .unwrap();
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
fn a_client_without_dsn_is_a_counted_failure() {
    let client = Arc::new(sentry::Client::from(sentry::ClientOptions::new()));
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(SentrySink::new(client))
        .build()
        .unwrap();
    monitor.record_code(ErrorCode::Internal);
    monitor.flush(Duration::from_secs(10));
    assert_eq!(monitor.stats().sink("sentry").unwrap().failed, 1);
}
