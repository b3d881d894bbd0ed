//! Alert rules on a manual clock: every decision is made in `tick`, so these
//! tests are deterministic.
// Helpers outside `#[test]` functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{deterministic, run_for};
use zt_error_codes::{Category, ErrorCode};
use zt_monitoring::{
    AlertConfig, AlertRule, AlertStatus, Condition, GroupLabel, InhibitRule, MemorySink, Monitor, Notification,
    Selector, SinkOptions, SpikeConfig, Timing,
};
use zt_types::Severity;

const MINUTE: Duration = Duration::from_secs(60);

fn statuses(notifications: &[Notification]) -> Vec<(String, AlertStatus)> {
    notifications.iter().map(|n| (n.rule.clone(), n.status)).collect()
}

#[test]
fn a_critical_error_alerts_at_once_and_resolves_once() {
    let (monitor, clock, records) = deterministic(|builder| builder);
    monitor.record_code(ErrorCode::AuditWriteFailed);

    let first = monitor.tick();
    assert_eq!(first.len(), 1, "{first:?}");
    let firing = &first[0];
    assert_eq!(firing.status, AlertStatus::Firing);
    assert_eq!(firing.rule, AlertRule::CRITICAL);
    assert_eq!(firing.severity, Severity::Critical);
    assert_eq!(firing.group_labels["code"], "AUDIT_WRITE_FAILED");
    assert_eq!(firing.alerts[0].labels["category"], "audit");
    assert!(!firing.repeat);
    assert_eq!(firing.title(), "[FIRING:1] critical code=AUDIT_WRITE_FAILED");

    // Nothing more while it fires, then one resolution after five quiet minutes.
    let later = run_for(&monitor, &clock, 20 * 60);
    assert_eq!(
        statuses(&later),
        [(AlertRule::CRITICAL.to_owned(), AlertStatus::Resolved)]
    );
    let resolved = &later[0];
    assert_eq!(resolved.group_key, firing.group_key);
    assert_eq!(resolved.alerts[0].fingerprint, firing.alerts[0].fingerprint);
    assert_eq!(
        resolved.alerts[0].ended_at.unwrap().to_string(),
        "2026-03-01T12:05:00.000000Z"
    );
    assert!(monitor.active_alerts().is_empty());

    // The sinks got the same two notifications.
    assert!(monitor.flush(Duration::from_secs(10)));
    assert_eq!(records.notifications().len(), 2);
    assert_eq!(monitor.stats().notifications, 2);
}

#[test]
fn alert_storm_of_10k_identical_errors_makes_two_notifications() {
    let (monitor, clock, _records) = deterministic(|builder| {
        builder.rule(AlertRule::new(
            "db-down",
            Selector::Code(ErrorCode::DbUnavailable),
            Condition::threshold(10, MINUTE),
        ))
    });
    let mut notifications = Vec::new();
    // 10 000 critical and 10 000 error reports over ten minutes, ticking every second.
    for second in 0..600 {
        let burst = if second % 3 == 0 { 50 } else { 0 };
        for _ in 0..burst {
            monitor.record_code(ErrorCode::AuditWriteFailed);
            monitor.record_code(ErrorCode::DbUnavailable);
        }
        clock.advance(Duration::from_secs(1));
        notifications.extend(monitor.tick());
    }
    assert_eq!(monitor.recorded(), 20_000);
    notifications.extend(run_for(&monitor, &clock, 30 * 60));

    let mut by_rule = statuses(&notifications);
    by_rule.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        by_rule,
        [
            ("critical".to_owned(), AlertStatus::Firing),
            ("critical".to_owned(), AlertStatus::Resolved),
            ("db-down".to_owned(), AlertStatus::Firing),
            ("db-down".to_owned(), AlertStatus::Resolved),
        ]
    );
}

#[test]
fn a_burst_in_one_instant_is_one_alert() {
    let (monitor, _clock, _records) = deterministic(|builder| builder);
    for _ in 0..10_000 {
        monitor.record_code(ErrorCode::SessionCheckFailed);
    }
    let notifications = monitor.tick();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].alerts.len(), 1);
    assert_eq!(notifications[0].alerts[0].value, 10_000);
    // Ticking again without new information sends nothing.
    assert!(monitor.tick().is_empty());
}

#[test]
fn thresholds_wait_for_group_wait_and_group_codes_together() {
    let rule = AlertRule::new(
        "database",
        Selector::Category(Category::Database),
        Condition::threshold(3, 10 * MINUTE),
    )
    .with_split_by_code(true)
    .with_group_by([GroupLabel::Category]);
    let (monitor, clock, _records) = deterministic(|builder| builder.rule(rule));
    for _ in 0..3 {
        monitor.record_code(ErrorCode::DbUnavailable);
    }
    assert!(monitor.tick().is_empty(), "group_wait holds the first notification");
    clock.advance(Duration::from_secs(10));
    for _ in 0..3 {
        monitor.record_code(ErrorCode::DbTimeout);
    }
    assert!(monitor.tick().is_empty());
    let first = run_for(&monitor, &clock, 20);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].group_labels["category"], "database");
    let codes: Vec<&str> = first[0]
        .alerts
        .iter()
        .map(|alert| alert.labels["code"].as_str())
        .collect();
    assert_eq!(codes, ["DB_TIMEOUT", "DB_UNAVAILABLE"]);

    // A third code joins the group and waits for group_interval.
    for _ in 0..3 {
        monitor.record_code(ErrorCode::DbQueryFailed);
    }
    let next = run_for(&monitor, &clock, 4 * 60);
    assert!(next.is_empty(), "{next:?}");
    let next = run_for(&monitor, &clock, 60);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].firing().count(), 3);
    assert!(!next[0].repeat);
}

#[test]
fn an_unchanged_group_repeats_after_repeat_interval() {
    let timing = Timing::new()
        .with_group_wait(Duration::ZERO)
        .with_repeat_interval(Duration::from_secs(3600));
    let rule = AlertRule::new(
        "timeouts",
        Selector::Code(ErrorCode::DbTimeout),
        Condition::threshold(1, MINUTE),
    )
    .with_timing(timing);
    let (monitor, clock, _records) = deterministic(|builder| builder.rule(rule));
    let mut notifications = Vec::new();
    // One error every 10 s for 2.5 hours keeps the alert firing.
    for _ in 0..(150 * 6) {
        monitor.record_code(ErrorCode::DbTimeout);
        notifications.extend(monitor.tick());
        clock.advance(Duration::from_secs(10));
    }
    let repeats: Vec<bool> = notifications.iter().map(|n| n.repeat).collect();
    assert_eq!(repeats, [false, true, true]);
    assert!(notifications.iter().all(|n| n.status == AlertStatus::Firing));
    let gap = notifications[1].sent_at.unix_micros() - notifications[0].sent_at.unix_micros();
    assert_eq!(gap, 3600 * 1_000_000);
}

#[test]
fn cooldown_holds_back_a_flapping_alert() {
    let timing = Timing::new()
        .with_group_wait(Duration::ZERO)
        .with_group_interval(MINUTE)
        .with_cooldown(10 * MINUTE);
    let rule = AlertRule::new(
        "revoked",
        Selector::Code(ErrorCode::SessionRevoked),
        Condition::threshold(1, MINUTE),
    )
    .with_timing(timing);
    let (monitor, clock, _records) = deterministic(|builder| builder.rule(rule));
    monitor.record_code(ErrorCode::SessionRevoked);
    let mut notifications = monitor.tick();
    notifications.extend(run_for(&monitor, &clock, 3 * 60));
    // It flaps back: one error every 30 s for 12 minutes.
    for _ in 0..24 {
        monitor.record_code(ErrorCode::SessionRevoked);
        notifications.extend(run_for(&monitor, &clock, 30));
    }
    let seen: Vec<AlertStatus> = notifications.iter().map(|n| n.status).collect();
    assert_eq!(seen, [AlertStatus::Firing, AlertStatus::Resolved, AlertStatus::Firing]);
    let resolved_at = notifications[1].alerts[0].ended_at.unwrap().unix_micros();
    let refired_at = notifications[2].alerts[0].started_at.unix_micros();
    assert!(
        refired_at - resolved_at >= 10 * 60 * 1_000_000,
        "{resolved_at} {refired_at}"
    );
}

#[test]
fn a_critical_alert_inhibits_warnings_of_its_category() {
    let immediate = Timing::new().with_group_wait(Duration::ZERO);
    let (monitor, _clock, _records) = deterministic(|builder| {
        builder
            .critical_alerts(false)
            .rule(
                AlertRule::new(
                    "db-critical",
                    Selector::Code(ErrorCode::DbUnavailable),
                    Condition::threshold(1, MINUTE),
                )
                .with_severity(Severity::Critical)
                .with_timing(immediate),
            )
            .rule(
                AlertRule::new(
                    "db-any",
                    Selector::Category(Category::Database),
                    Condition::threshold(1, MINUTE),
                )
                .with_split_by_code(true)
                .with_severity(Severity::Warning)
                .with_timing(immediate),
            )
            .rule(
                AlertRule::new(
                    "auth",
                    Selector::Category(Category::Authorization),
                    Condition::threshold(1, MINUTE),
                )
                .with_severity(Severity::Warning)
                .with_timing(immediate),
            )
            .inhibit(
                InhibitRule::new(
                    Selector::MinSeverity(Severity::Critical),
                    Selector::MinSeverity(Severity::Warning),
                )
                .with_equal([GroupLabel::Category]),
            )
    });
    monitor.record_code(ErrorCode::DbUnavailable);
    monitor.record_code(ErrorCode::DbTimeout);
    monitor.record_code(ErrorCode::AuthInsufficientRole);
    let mut rules: Vec<String> = monitor.tick().into_iter().map(|n| n.rule).collect();
    rules.sort();
    // The database warnings are muted; the authorization warning is another category.
    assert_eq!(rules, ["auth", "db-critical"]);
    let inhibited: Vec<String> = monitor
        .active_alerts()
        .into_iter()
        .filter(|alert| alert.inhibited)
        .map(|alert| alert.fingerprint)
        .collect();
    assert_eq!(inhibited.len(), 2, "{inhibited:?}");
    assert!(inhibited.iter().all(|fingerprint| fingerprint.starts_with("db-any{")));
}

#[test]
fn slow_operations_raise_an_alert() {
    let (monitor, clock, _records) =
        deterministic(|builder| builder.slow_operation("db.query", Duration::from_millis(100)));
    let query = monitor.operation("db.query");
    query.record(Duration::from_millis(50));
    assert!(run_for(&monitor, &clock, 60).is_empty());
    query.record(Duration::from_millis(150));
    let notifications = run_for(&monitor, &clock, 31);
    assert_eq!(notifications.len(), 1);
    let alert = &notifications[0].alerts[0];
    assert_eq!(alert.rule, AlertRule::SLOW_OPERATIONS);
    assert_eq!(alert.labels["operation"], "db.query");
    assert_eq!(alert.severity, Severity::Warning);
    assert_eq!(query.summary().slow, 1);
}

#[test]
fn a_spike_over_the_baseline_alerts() {
    let spike = SpikeConfig::new(3.0)
        .with_recent(MINUTE)
        .with_baseline(10 * MINUTE)
        .with_min_count(10);
    let rule = AlertRule::new(
        "session-spike",
        Selector::Category(Category::Session),
        Condition::Spike(spike),
    )
    .with_split_by_code(true)
    .with_timing(Timing::new().with_group_wait(Duration::ZERO));
    let (monitor, clock, _records) = deterministic(|builder| builder.rule(rule));
    let mut notifications = Vec::new();
    // A steady baseline: one revoked session a minute for 20 minutes.
    for _ in 0..20 {
        monitor.record_code(ErrorCode::SessionRevoked);
        notifications.extend(run_for(&monitor, &clock, 60));
    }
    assert!(notifications.is_empty(), "{notifications:?}");
    for _ in 0..30 {
        monitor.record_code(ErrorCode::SessionRevoked);
    }
    let notifications = monitor.tick();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].alerts[0].labels["code"], "SESSION_REVOKED");
    assert!(
        notifications[0].alerts[0].summary.contains("x the baseline"),
        "{}",
        notifications[0].alerts[0].summary
    );
    assert!(monitor.snapshot().code(ErrorCode::SessionRevoked).unwrap().recent >= 30);
}

#[test]
fn rules_load_from_toml_and_json_files() {
    let dir = std::env::temp_dir().join(format!("zt-monitoring-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml_path = dir.join("rules.toml");
    std::fs::write(
        &toml_path,
        r#"
        [defaults]
        group_wait = "0s"

        [[rules]]
        name = "rate-limited"
        code = "RATE_LIMITED"
        threshold = 100
        window = "1m"
        "#,
    )
    .unwrap();
    let json_path = dir.join("rules.json");
    std::fs::write(
        &json_path,
        r#"{"rules": [{"name": "internal", "code": "INTERNAL", "threshold": 2, "window": "5m", "group_wait": 0}],
            "operations": [{"name": "render", "slow": "2s"}]}"#,
    )
    .unwrap();
    let config = AlertConfig::from_path(&toml_path)
        .unwrap()
        .merge(AlertConfig::from_path(&json_path).unwrap());
    let (monitor, _clock, _records) = deterministic(|builder| builder.rules(config));
    let names: Vec<String> = monitor.rules().iter().map(|rule| rule.name().to_owned()).collect();
    assert_eq!(names, ["critical", "slow-operations", "rate-limited", "internal"]);
    assert_eq!(
        monitor.operation("render").slow_threshold(),
        Some(Duration::from_secs(2))
    );

    for _ in 0..99 {
        monitor.record_code(ErrorCode::RateLimited);
    }
    monitor.record_code(ErrorCode::Internal);
    assert!(monitor.tick().is_empty());
    monitor.record_code(ErrorCode::RateLimited);
    monitor.record_code(ErrorCode::Internal);
    let mut fired: Vec<String> = monitor.tick().into_iter().map(|n| n.rule).collect();
    fired.sort();
    assert_eq!(fired, ["internal", "rate-limited"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rule_windows_must_fit_the_history() {
    let error = Monitor::builder()
        .without_tracing_sink()
        .manual_evaluation()
        .window(Duration::from_secs(1), Duration::from_secs(600))
        .rule(AlertRule::new(
            "wide",
            Selector::Any,
            Condition::threshold(1, Duration::from_secs(3600)),
        ))
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), zt_monitoring::ErrorKind::Config);
    assert!(
        error.to_string().contains("rule \"wide\" reads 1h of history"),
        "{error}"
    );
}

#[test]
fn a_critical_error_wakes_the_background_evaluator() {
    // The evaluator ticks only hourly, so a prompt notification proves the
    // critical report woke it.
    let sink = MemorySink::new();
    let records = sink.records();
    let monitor = Monitor::builder()
        .without_tracing_sink()
        .sink_with_options(sink, SinkOptions::new().poll_interval(Duration::from_millis(5)))
        .evaluate_every(Duration::from_secs(3600))
        .build()
        .unwrap();
    monitor.record_code(ErrorCode::AuditChainInvalid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.notifications().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let notifications = records.notifications();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].group_labels["code"], "AUDIT_CHAIN_INVALID");
    // More of the same code while it fires wakes nothing and sends nothing.
    for _ in 0..1000 {
        monitor.record_code(ErrorCode::AuditChainInvalid);
    }
    assert!(monitor.shutdown(Duration::from_secs(10)));
    assert_eq!(records.notifications().len(), 1);
    assert_eq!(records.reports().len(), 1001);
}
