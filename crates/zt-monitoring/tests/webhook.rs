//! The webhook sink against a local HTTP server.
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Server, Setup, deterministic, run_for};
use zt_error_codes::ErrorCode;
use zt_monitoring::{Report, WebhookFormat, WebhookSink};
use zt_types::{ReferenceId, RequestContext, RequestId};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn json_notifications_reach_the_server_firing_then_resolved() {
    let server = Server::start(vec![]);
    let sink = WebhookSink::new(&server.url("/hooks/alerts"))
        .unwrap()
        .named("ops")
        .header("x-token", "abc");
    let (monitor, clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditWriteFailed);
    assert_eq!(monitor.tick().len(), 1);
    assert!(monitor.flush(WAIT));

    let request = server.next();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/alerts");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-token"], "abc");
    let body = request.json();
    assert_eq!(body["type"], "notification");
    assert_eq!(body["source"], "zt-monitoring");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["rule"], "critical");
    assert_eq!(body["severity"], "critical");
    assert_eq!(body["alerts"][0]["labels"]["code"], "AUDIT_WRITE_FAILED");
    assert_eq!(body["alerts"][0]["window"], "5m");
    assert_eq!(body["alerts"][0]["started_at"], "2026-03-01T12:00:00.000000Z");
    let group_key = body["group_key"].as_str().unwrap().to_owned();

    assert_eq!(run_for(&monitor, &clock, 600).len(), 1);
    assert!(monitor.flush(WAIT));
    let body = server.next().json();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["group_key"], group_key.as_str());
    assert_eq!(body["alerts"][0]["ended_at"], "2026-03-01T12:05:00.000000Z");
    assert_eq!(monitor.stats().sink("ops").unwrap().delivered, 2);
}

#[test]
fn slack_format_posts_text() {
    let server = Server::start(vec![]);
    let sink = WebhookSink::new(&server.url("/slack"))
        .unwrap()
        .format(WebhookFormat::Slack);
    let (monitor, _clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::SessionCheckFailed);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    let body = server.next().json();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING:1] critical code=SESSION_CHECK_FAILED\n- firing: SESSION_CHECK_FAILED: 1 in 5m"),
        "{text}"
    );
    assert_eq!(body.as_object().unwrap().len(), 1);
}

#[test]
fn pagerduty_triggers_and_resolves_by_dedup_key() {
    let server = Server::start(vec![]);
    let sink = WebhookSink::new(&server.url("/v2/enqueue"))
        .unwrap()
        .format(WebhookFormat::PagerDuty {
            routing_key: "R0UT1NG".into(),
        })
        .include_reports(true);
    let (monitor, clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditSpoolFailed);
    monitor.tick();
    run_for(&monitor, &clock, 600);
    assert!(monitor.flush(WAIT));
    let trigger = server.next().json();
    let resolve = server.next().json();
    assert_eq!(trigger["routing_key"], "R0UT1NG");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "zt-monitoring");
    assert!(
        trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .contains("AUDIT_SPOOL_FAILED")
    );
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    // PagerDuty never gets individual reports, even when asked.
    assert!(server.requests.try_recv().is_err());
}

#[test]
fn server_errors_are_retried_and_client_errors_are_not() {
    let server = Server::start(vec![500, 503]);
    let sink = WebhookSink::new(&server.url("/flaky"))
        .unwrap()
        .retries(2, Duration::from_millis(5));
    let (monitor, _clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditChainInvalid);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    for _ in 0..3 {
        assert_eq!(server.next().path, "/flaky");
    }
    let stats = monitor.stats().sink("webhook").cloned().unwrap();
    assert_eq!((stats.delivered, stats.failed), (1, 0));

    let server = Server::start(vec![404]);
    let sink = WebhookSink::new(&server.url("/gone"))
        .unwrap()
        .retries(2, Duration::from_millis(5));
    let (monitor, _clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditChainInvalid);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    server.next();
    assert!(server.requests.try_recv().is_err(), "a 404 is not retried");
    let stats = monitor.stats().sink("webhook").cloned().unwrap();
    assert_eq!((stats.delivered, stats.failed), (0, 1));
}

#[test]
fn an_unreachable_webhook_is_a_counted_failure() {
    // Bind then drop a listener, so nothing answers on its port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = WebhookSink::new(&format!("http://127.0.0.1:{port}/x"))
        .unwrap()
        .retries(1, Duration::from_millis(1));
    let (monitor, _clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditChainInvalid);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    assert_eq!(monitor.stats().sink("webhook").unwrap().failed, 1);
}

#[test]
fn reports_carry_no_chain_or_client_data() {
    let server = Server::start(vec![]);
    let sink = WebhookSink::new(&server.url("/reports")).unwrap().include_reports(true);
    let (monitor, _clock, _records) = deterministic(|builder| builder.sink(sink));
    let reference = ReferenceId::new();
    let context = RequestContext::new()
        .with_ip("198.51.100.7".parse().unwrap())
        .with_user_agent("Mozilla/5.0 secret-agent")
        .with_request_id(RequestId::parse("req-42").unwrap());
    monitor.record(
        Report::new(ErrorCode::DbQueryFailed, reference)
            .with_context(context)
            .with_chain(["select * from users failed"]),
    );
    assert!(monitor.flush(WAIT));
    let request = server.next();
    let body = request.json();
    assert_eq!(body["type"], "report");
    assert_eq!(body["code"], "DB_QUERY_FAILED");
    assert_eq!(body["category"], "database");
    assert_eq!(body["reference_id"], reference.to_string());
    assert_eq!(body["request_id"], "req-42");
    let raw = String::from_utf8(request.body).unwrap();
    for secret in ["select", "198.51.100.7", "secret-agent"] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
}

#[test]
fn redirects_are_not_followed() {
    // A redirect could downgrade to plain http or carry the headers elsewhere.
    let target = Server::start(vec![]);
    let server = Server::with(Setup {
        statuses: vec![302],
        headers: vec![("location".to_owned(), target.url("/elsewhere"))],
        ..Setup::default()
    });
    let sink = WebhookSink::new(&server.url("/moved"))
        .unwrap()
        .header("x-token", "abc")
        .retries(2, Duration::from_millis(5));
    let (monitor, _clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditChainInvalid);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    assert_eq!(server.next().path, "/moved");
    assert!(server.requests.try_recv().is_err(), "a redirect is not retried");
    assert!(target.requests.try_recv().is_err(), "nor followed");
    let stats = monitor.stats().sink("webhook").cloned().unwrap();
    assert_eq!((stats.delivered, stats.failed), (0, 1));
}
