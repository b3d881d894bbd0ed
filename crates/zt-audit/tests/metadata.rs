//! Metadata survives storage byte for byte: the canonical text zt writes is
//! exactly what PostgreSQL's jsonb prints back, so the MAC still verifies.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Number, Value};
use zt_audit::{AuditFilter, PageRequest};
use zt_testkit::TestDatabase;
use zt_types::{Actor, AuditEvent};

fn json_value() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        (-1_000_000i32..1_000_000, 0i32..6).prop_map(|(n, scale)| Value::from(f64::from(n) / 10f64.powi(scale))),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number,
        "\\PC{0,12}".prop_map(Value::String),
        any::<String>().prop_map(|s| Value::String(s.chars().take(16).collect())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_é\\-\\n ]{0,10}", inner, 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn metadata_round_trips(db: &TestDatabase) {
    let log = support::open(db);
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &prop::collection::btree_map("[a-z]{1,8}", json_value(), 0..6),
            |members| {
                let metadata = Value::Object(members.into_iter().collect());
                let event = AuditEvent::builder(Actor::System, "PROBE", "metadata")
                    .metadata(&metadata)
                    .build()
                    .unwrap();
                let recorded = log.record(&event).unwrap();
                let page = log
                    .query(
                        &AuditFilter::new(),
                        &PageRequest::first(1).order(zt_audit::Order::NewestFirst),
                    )
                    .unwrap();
                let stored = page
                    .records
                    .iter()
                    .find(|r| r.id == recorded.id)
                    .expect("the newest row");
                prop_assert_eq!(&stored.metadata, event.metadata().as_str());
                Ok(())
            },
        )
        .unwrap();
    let report = log.verify().unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
}

zt_testkit::backend_tests!(metadata_round_trips);
