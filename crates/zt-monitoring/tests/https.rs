//! Webhooks and Sentry over real TLS: local HTTPS servers with certificates
//! from a CA made at test time, trusted through the sinks' `TlsConfig`; an
//! untrusted or self-signed certificate is refused and counted; a slow server
//! never blocks the caller.
//!
//! The server side is rustls; the client side is the crate's TLS: rustls by
//! default, native-tls when only that feature is on.
// A sink and a TLS stack, any of each: `required-features` cannot say "or",
// so this gate stays; the default features meet it.
#![cfg(all(
    any(feature = "webhook", feature = "sentry"),
    any(feature = "rustls", feature = "native-tls")
))]
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::mpsc::channel;
use std::thread;
use std::time::Duration;

use support::{Server, Setup, TestCa, TestRecorder, self_signed_server_config, warnings};
use zt_error_codes::ErrorCode;
#[cfg(feature = "sentry")]
use zt_monitoring::SentrySink;
use zt_monitoring::{Monitor, Sink, SinkOptions, TlsConfig};
#[cfg(feature = "webhook")]
use zt_monitoring::{WebhookFormat, WebhookSink};

const WAIT: Duration = Duration::from_secs(10);

/// A CA, an HTTPS server with a certificate it signed, and a `TlsConfig`
/// that trusts it.
fn trusted_server() -> (Server, TlsConfig) {
    let ca = TestCa::new("zt test CA");
    let server = Server::start_tls(ca.server_config());
    let tls = TlsConfig::new().root_certificates_pem(ca.pem()).unwrap();
    (server, tls)
}

#[cfg(feature = "sentry")]
fn monitor_with(sink: impl Sink) -> Monitor {
    Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .sink(sink)
        .build()
        .unwrap()
}

#[test]
#[cfg(feature = "webhook")]
fn generic_json_webhooks_arrive_intact_over_tls() {
    use support::{deterministic, run_for};

    let (server, tls) = trusted_server();
    assert!(server.url("/").starts_with("https://127.0.0.1:"));
    let sink = WebhookSink::new(&server.url("/hooks/alerts"))
        .unwrap()
        .tls(tls)
        .named("ops")
        .header("authorization", "Bearer t0ken");
    let (monitor, clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditWriteFailed);
    assert_eq!(monitor.tick().len(), 1);
    assert!(monitor.flush(WAIT));

    let request = server.next();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/hooks/alerts")
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["authorization"], "Bearer t0ken");
    assert!(request.headers["user-agent"].starts_with("zt-monitoring/"));
    let body = request.json();
    assert_eq!(body["type"], "notification");
    assert_eq!(body["source"], "zt-monitoring");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["rule"], "critical");
    assert_eq!(body["alerts"][0]["labels"]["code"], "AUDIT_WRITE_FAILED");
    assert_eq!(body["alerts"][0]["started_at"], "2026-03-01T12:00:00.000000Z");

    assert_eq!(run_for(&monitor, &clock, 600).len(), 1);
    assert!(monitor.flush(WAIT));
    let resolved = server.next().json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["group_key"], body["group_key"]);
    let stats = monitor.stats();
    let ops = stats.sink("ops").unwrap();
    assert_eq!((ops.delivered, ops.failed), (2, 0));
}

#[test]
#[cfg(feature = "webhook")]
fn slack_messages_arrive_intact_over_tls() {
    let (server, tls) = trusted_server();
    let sink = WebhookSink::new(&server.url("/services/T000/B000/XXXX"))
        .unwrap()
        .tls(tls)
        .format(WebhookFormat::Slack);
    let (monitor, _clock, _records) = support::deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::SessionCheckFailed);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    let request = server.next();
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    let body = request.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("[FIRING:1] critical code=SESSION_CHECK_FAILED\n- firing: SESSION_CHECK_FAILED: 1 in 5m"),
        "{text}"
    );
    assert_eq!(monitor.stats().sink("webhook").unwrap().delivered, 1);
}

#[test]
#[cfg(feature = "webhook")]
fn pagerduty_events_arrive_intact_over_tls() {
    use support::{deterministic, run_for};

    let (server, tls) = trusted_server();
    let sink = WebhookSink::new(&server.url("/v2/enqueue"))
        .unwrap()
        .tls(tls)
        .format(WebhookFormat::PagerDuty {
            routing_key: "R0UT1NG".into(),
        });
    let (monitor, clock, _records) = deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditSpoolFailed);
    monitor.tick();
    run_for(&monitor, &clock, 600);
    assert!(monitor.flush(WAIT));
    let trigger = server.next();
    assert_eq!(trigger.path, "/v2/enqueue");
    let (trigger, resolve) = (trigger.json(), server.next().json());
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
    assert_eq!(
        trigger["payload"]["custom_details"]["alerts"][0]["labels"]["code"],
        "AUDIT_SPOOL_FAILED"
    );
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(monitor.stats().sink("webhook").unwrap().delivered, 2);
}

#[test]
#[cfg(feature = "sentry")]
fn sentry_envelopes_arrive_intact_over_tls() {
    use zt_monitoring::Report;
    use zt_types::{ReferenceId, RequestContext, RequestId};

    let (server, tls) = trusted_server();
    let sink = SentrySink::builder(&server.dsn()).tls(tls).build().unwrap();
    let monitor = monitor_with(sink);
    let reference = ReferenceId::new();
    let context = RequestContext::new()
        .with_ip("198.51.100.7".parse().unwrap())
        .with_request_id(RequestId::parse("req-9").unwrap());
    monitor.record(
        Report::new(ErrorCode::DbUnavailable, reference)
            .with_context(context)
            .with_chain(["pool timed out for ada@example.com"]),
    );
    assert!(monitor.flush(WAIT));

    let request = server.next();
    assert_eq!(request.path, "/api/1/envelope/");
    assert_eq!(request.headers["content-type"], "application/x-sentry-envelope");
    assert!(request.headers["x-sentry-auth"].contains("sentry_key=public"));
    let header: serde_json::Value =
        serde_json::from_slice(request.body.split(|&b| b == b'\n').next().unwrap()).unwrap();
    let events = support::events(&request);
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        event["event_id"].as_str().unwrap().replace('-', ""),
        reference.to_string().replace('-', "")
    );
    assert_eq!(
        header["event_id"],
        reference.to_string(),
        "the envelope is for this event"
    );
    assert_eq!(event["tags"]["error_code"], "DB_UNAVAILABLE");
    assert_eq!(event["tags"]["request_id"], "req-9");
    assert_eq!(event["message"], "DB_UNAVAILABLE: pool timed out for [email]");
    assert_eq!(
        event["fingerprint"],
        serde_json::json!(["DB_UNAVAILABLE", "{{ default }}"])
    );
    assert!(event.get("user").is_none_or(serde_json::Value::is_null));
    let stats = monitor.stats();
    let sentry = stats.sink("sentry").unwrap();
    assert_eq!((sentry.delivered, sentry.failed), (1, 0));
}

/// The client ended the connection in the handshake, and its sink logged why:
/// rustls's reason, or OpenSSL's "certificate verify failed".
fn assert_refused_in_handshake(server: &Server, sink: &str, why: &str) {
    server.next_connection_error();
    assert!(server.requests.try_recv().is_err(), "no request went through");
    let why = if cfg!(feature = "rustls") {
        why
    } else {
        "certificate verify failed"
    };
    let warnings = warnings();
    assert!(
        warnings
            .lines()
            .any(|line| line.contains(&format!("sink={sink} ")) && line.contains(why)),
        "sink {sink} logged {why}: {warnings}"
    );
}

#[test]
#[cfg(feature = "webhook")]
fn a_webhook_refuses_a_certificate_from_another_ca_and_counts_it() {
    warnings();
    let ours = TestCa::new("our CA");
    let theirs = TestCa::new("their CA");
    let server = Server::start_tls(theirs.server_config());
    let sink = WebhookSink::new(&server.url("/hook"))
        .unwrap()
        .named("other-ca")
        .tls(TlsConfig::new().root_certificates_pem(ours.pem()).unwrap())
        .retries(2, Duration::from_millis(5));
    let (monitor, _clock, _records) = support::deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditChainInvalid);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    let stats = monitor.stats();
    let webhook = stats.sink("other-ca").unwrap();
    assert_eq!((webhook.delivered, webhook.failed), (0, 1));
    assert_refused_in_handshake(&server, "other-ca", "UnknownIssuer");
    assert!(
        server
            .connection_errors
            .recv_timeout(Duration::from_millis(200))
            .is_err(),
        "a refused certificate is not retried"
    );
}

#[test]
#[cfg(feature = "sentry")]
fn sentry_refuses_a_certificate_from_another_ca_and_counts_it() {
    warnings();
    let ours = TestCa::new("our CA");
    let theirs = TestCa::new("their CA");
    let server = Server::start_tls(theirs.server_config());
    let sink = SentrySink::builder(&server.dsn())
        .tls(TlsConfig::new().root_certificates_pem(ours.pem()).unwrap())
        .build()
        .unwrap();
    let monitor = monitor_with(sink);
    monitor.record_code(ErrorCode::Internal);
    assert!(monitor.flush(WAIT));
    let stats = monitor.stats();
    let sentry = stats.sink("sentry").unwrap();
    assert_eq!((sentry.delivered, sentry.failed), (0, 1));
    assert_refused_in_handshake(&server, "sentry", "UnknownIssuer");
    assert!(
        server
            .connection_errors
            .recv_timeout(Duration::from_millis(200))
            .is_err(),
        "a refused certificate is not retried"
    );
}

#[test]
#[cfg(feature = "webhook")]
fn a_webhook_refuses_a_self_signed_certificate_with_the_bundled_roots() {
    warnings();
    let server = Server::start_tls(self_signed_server_config());
    let sink = WebhookSink::new(&server.url("/hook"))
        .unwrap()
        .named("self-signed")
        .format(WebhookFormat::Slack);
    let (monitor, _clock, _records) = support::deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditChainInvalid);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    assert_eq!(monitor.stats().sink("self-signed").unwrap().failed, 1);
    assert_refused_in_handshake(&server, "self-signed", "UnknownIssuer");
}

#[test]
#[cfg(feature = "sentry")]
fn sentry_refuses_a_self_signed_certificate_with_the_bundled_roots() {
    warnings();
    let server = Server::start_tls(self_signed_server_config());
    let monitor = monitor_with(SentrySink::from_dsn(&server.dsn(), Default::default()).unwrap());
    monitor.record_code(ErrorCode::Internal);
    assert!(monitor.flush(WAIT));
    assert_eq!(monitor.stats().sink("sentry").unwrap().failed, 1);
    assert_refused_in_handshake(&server, "sentry", "UnknownIssuer");
}

#[test]
#[cfg(feature = "webhook")]
fn a_certificate_for_another_name_is_refused() {
    warnings();
    // Signed by the trusted CA, but for another host than 127.0.0.1.
    let ca = TestCa::new("zt test CA");
    let server = Server::start_tls(ca.server_config_for(&["alerts.example.com"]));
    let sink = WebhookSink::new(&server.url("/hook"))
        .unwrap()
        .named("other-name")
        .tls(TlsConfig::new().root_certificates_pem(ca.pem()).unwrap())
        .retries(0, Duration::ZERO);
    let (monitor, _clock, _records) = support::deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::AuditChainInvalid);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    assert_eq!(monitor.stats().sink("other-name").unwrap().failed, 1);
    assert_refused_in_handshake(&server, "other-name", "not valid for name");
}

/// Records one report, waits until the server holds its answer, then records
/// 1000 more on another thread, which must return while the server still
/// holds: recording never waits on the network.
fn record_while_the_server_holds(monitor: &Monitor, server: &Server, sink: &str) {
    let recorder = std::sync::Arc::new(TestRecorder::default());
    monitor.record_code(ErrorCode::Internal);
    server.next();
    let (done_tx, done) = channel();
    let worker_monitor = monitor.clone();
    let worker_recorder = recorder.clone();
    thread::spawn(move || {
        metrics::with_local_recorder(&*worker_recorder, || {
            for _ in 0..1000 {
                worker_monitor.record_code(ErrorCode::Internal);
            }
        });
        done_tx.send(()).unwrap();
    });
    done.recv_timeout(Duration::from_secs(30))
        .expect("recording returned while the server held its answer");
    let stats = monitor.stats();
    let figures = stats.sink(sink).unwrap();
    // The held report and 10 queued; the rest dropped, and counted.
    assert_eq!(
        (figures.queued, figures.dropped_reports, figures.delivered),
        (11, 990, 0)
    );
    assert_eq!(
        recorder.counter(&format!("zt_monitoring_dropped_total{{sink={sink}}}")),
        990
    );
}

/// A CA, an HTTPS server with its certificate that holds its first answer
/// until released, and a `TlsConfig` that trusts it.
fn held_server() -> (Server, TlsConfig, std::sync::mpsc::Sender<()>) {
    let ca = TestCa::new("zt test CA");
    let (release, hold) = channel();
    let server = Server::with(Setup {
        tls: Some(ca.server_config()),
        hold_first: Some(hold),
        ..Setup::default()
    });
    let tls = TlsConfig::new().root_certificates_pem(ca.pem()).unwrap();
    (server, tls, release)
}

/// A monitor with one stripe and a report queue of 10, so counts are exact.
fn small_queue(sink: impl Sink) -> Monitor {
    Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .stripes(1)
        .sink_with_options(sink, SinkOptions::new().report_capacity(10))
        .build()
        .unwrap()
}

#[test]
#[cfg(feature = "webhook")]
fn a_slow_https_webhook_never_blocks_the_caller() {
    let (server, tls, release) = held_server();
    let sink = WebhookSink::new(&server.url("/reports"))
        .unwrap()
        .tls(tls)
        .timeout(Duration::from_secs(30))
        .include_reports(true);
    let monitor = small_queue(sink);
    record_while_the_server_holds(&monitor, &server, "webhook");
    release.send(()).unwrap();
    assert!(monitor.flush(WAIT));
    let stats = monitor.stats();
    let webhook = stats.sink("webhook").unwrap();
    assert_eq!(
        (webhook.delivered, webhook.failed, webhook.dropped_reports),
        (11, 0, 990)
    );
    for _ in 0..10 {
        assert_eq!(server.next().json()["type"], "report");
    }
}

#[test]
#[cfg(feature = "sentry")]
fn a_slow_https_sentry_never_blocks_the_caller() {
    let (server, tls, release) = held_server();
    let sink = SentrySink::builder(&server.dsn())
        .tls(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let monitor = small_queue(sink);
    record_while_the_server_holds(&monitor, &server, "sentry");
    drop(release);
    assert!(monitor.flush(WAIT));
    let stats = monitor.stats();
    let sentry = stats.sink("sentry").unwrap();
    assert_eq!((sentry.delivered, sentry.failed, sentry.dropped_reports), (11, 0, 990));
    for _ in 0..10 {
        assert_eq!(support::events(&server.next()).len(), 1);
    }
}

#[test]
#[cfg(all(feature = "webhook", feature = "native-tls"))]
fn native_tls_verifies_against_the_given_ca_too() {
    let (server, tls) = trusted_server();
    let sink = WebhookSink::new(&server.url("/native"))
        .unwrap()
        .tls(tls.native_tls())
        .format(WebhookFormat::Slack);
    let (monitor, _clock, _records) = support::deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::SessionCheckFailed);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    assert!(
        server.next().json()["text"]
            .as_str()
            .unwrap()
            .contains("SESSION_CHECK_FAILED")
    );
    assert_eq!(monitor.stats().sink("webhook").unwrap().delivered, 1);

    let other = TestCa::new("their CA");
    let server = Server::start_tls(other.server_config());
    let sink = WebhookSink::new(&server.url("/native")).unwrap().tls(
        TlsConfig::new()
            .native_tls()
            .root_certificates_pem(TestCa::new("ours").pem())
            .unwrap(),
    );
    let (monitor, _clock, _records) = support::deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::SessionCheckFailed);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    assert_eq!(monitor.stats().sink("webhook").unwrap().failed, 1);
}

#[test]
#[cfg(all(feature = "webhook", any(feature = "platform-verifier", feature = "native-tls")))]
fn the_platform_roots_do_not_trust_a_test_ca() {
    let ca = TestCa::new("zt test CA");
    let server = Server::start_tls(ca.server_config());
    let sink = WebhookSink::new(&server.url("/platform"))
        .unwrap()
        .tls(TlsConfig::new().platform_roots())
        .retries(0, Duration::ZERO);
    let (monitor, _clock, _records) = support::deterministic(|builder| builder.sink(sink));
    monitor.record_code(ErrorCode::SessionCheckFailed);
    monitor.tick();
    assert!(monitor.flush(WAIT));
    let stats = monitor.stats();
    let webhook = stats.sink("webhook").unwrap();
    assert_eq!((webhook.delivered, webhook.failed), (0, 1));
    assert!(server.requests.try_recv().is_err());
}
