//! The sanitizer on real diesel and r2d2 errors, and its problem+json form.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, ErrorReport, PROBLEM_CONTENT_TYPE, Sanitizer};
use zt_types::{RequestContext, RequestId};

fn sqlite() -> SqliteConnection {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query("CREATE TABLE subscribers (email TEXT PRIMARY KEY, list_id INTEGER REFERENCES lists(id))")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("CREATE TABLE lists (id INTEGER PRIMARY KEY)")
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .unwrap();
    conn
}

#[test]
fn real_unique_violation_is_a_generic_conflict() {
    let mut conn = sqlite();
    let insert = "INSERT INTO subscribers (email) VALUES ('a@example.com')";
    diesel::sql_query(insert).execute(&mut conn).unwrap();
    let error = diesel::sql_query(insert).execute(&mut conn).unwrap_err();
    assert!(error.to_string().contains("UNIQUE constraint failed"));

    let (problem, log) = support::capture(|| Sanitizer::new().sanitize(&error));
    assert_eq!(problem.status(), 409);
    assert_eq!(problem.code(), ErrorCode::ResourceConflict);
    let body = problem.to_json();
    assert!(!body.contains("UNIQUE") && !body.contains("subscribers"), "{body}");
    assert!(log.contains("UNIQUE constraint failed: subscribers.email"), "{log}");
    assert!(log.contains("RESOURCE_CONFLICT"));
    assert!(log.contains(" INFO "), "a conflict is logged at INFO: {log}");
}

#[test]
fn real_foreign_key_violation_is_a_constraint_conflict() {
    let mut conn = sqlite();
    let error = diesel::sql_query("INSERT INTO subscribers (email, list_id) VALUES ('b@example.com', 99)")
        .execute(&mut conn)
        .unwrap_err();
    let problem = Sanitizer::new().sanitize(&error);
    assert_eq!(problem.code(), ErrorCode::DbConstraintViolation);
    assert_eq!(problem.status(), 409);
}

#[test]
fn real_not_found_is_404() {
    let mut conn = sqlite();
    let error = diesel::sql_query("SELECT email FROM subscribers")
        .get_result::<EmailRow>(&mut conn)
        .unwrap_err();
    assert_eq!(Sanitizer::new().sanitize(&error).status(), 404);
}

#[derive(Debug, QueryableByName)]
#[allow(dead_code)]
struct EmailRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    email: String,
}

#[test]
fn real_pool_timeout_is_503_and_logged_as_error() {
    let manager = ConnectionManager::<SqliteConnection>::new("/nonexistent-dir/zt/never.db");
    let pool = Pool::builder()
        .max_size(1)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_millis(200))
        .build(manager)
        .unwrap();
    let error = pool.get().map(|_| ()).unwrap_err();
    let context = RequestContext::new().with_request_id(RequestId::parse("req-77").unwrap());
    let (problem, log) = support::capture(|| Sanitizer::new().sanitize_for(&error, &context));
    assert_eq!(problem.status(), 503);
    assert_eq!(problem.code(), ErrorCode::DbUnavailable);
    assert!(!problem.to_json().contains("nonexistent"));
    assert!(
        log.contains("ERROR") && log.contains("req-77") && log.contains("unable to open database file"),
        "{log}"
    );
}

#[test]
fn problem_json_has_the_rfc_9457_members() {
    let problem = Sanitizer::new().sanitize(&CodedError::new(ErrorCode::DbUnavailable));
    let body: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["title"], "Service unavailable");
    assert_eq!(body["status"], 503);
    assert_eq!(body["detail"], ErrorCode::DbUnavailable.info().public_message);
    assert_eq!(body["instance"], format!("urn:uuid:{}", problem.reference()));
    assert_eq!(body.as_object().unwrap().len(), 5, "{body}");
    assert_eq!(PROBLEM_CONTENT_TYPE, "application/problem+json");
}

#[test]
fn optional_members_appear_only_when_they_apply() {
    let validation = CodedError::validation()
        .with_safe_field("email", "Enter a valid email address.")
        .with_message("regex rejected bob@");
    let problem = Sanitizer::new()
        .expose_code(true)
        .problem_type_base("https://example.com/problems/")
        .sanitize(&validation);
    let body: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
    assert_eq!(body["status"], 422);
    assert_eq!(body["code"], "REQUEST_VALIDATION_FAILED");
    assert_eq!(body["type"], "https://example.com/problems/request");
    assert_eq!(body["errors"][0]["field"], "email");
    assert_eq!(body["errors"][0]["message"], "Enter a valid email address.");
    assert!(!problem.to_json().contains("regex"));

    let stale = Sanitizer::new().sanitize(&CodedError::new(ErrorCode::AuthReauthenticationRequired));
    let body: serde_json::Value = serde_json::from_str(&stale.to_json()).unwrap();
    assert_eq!(body["reauthenticate"], true);
    assert!(body.get("code").is_none());
}

#[test]
fn outermost_code_wins_and_custom_classifiers_run_first() {
    let inner = diesel::result::Error::NotFound;
    let outer = CodedError::new(ErrorCode::AuditWriteFailed).with_source(inner);
    assert_eq!(Sanitizer::new().sanitize(&outer).code(), ErrorCode::AuditWriteFailed);

    #[derive(Debug)]
    struct Throttled;
    impl std::fmt::Display for Throttled {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bucket empty")
        }
    }
    impl std::error::Error for Throttled {}
    let sanitizer = Sanitizer::new().classifier(|e| e.downcast_ref::<Throttled>().map(|_| ErrorCode::RateLimited));
    assert_eq!(sanitizer.sanitize(&Throttled).status(), 429);
    assert_eq!(Sanitizer::new().sanitize(&Throttled).code(), ErrorCode::Internal);
}

#[test]
fn hooks_receive_the_full_report() {
    use std::sync::{Arc, Mutex};
    type Seen = Arc<Mutex<Vec<(ErrorCode, Vec<String>)>>>;
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let sanitizer = Sanitizer::new().hook(move |report: &ErrorReport<'_>| {
        sink.lock().unwrap().push((report.code, report.chain()));
    });
    let error = CodedError::new(ErrorCode::DbTimeout).with_source(std::io::Error::other("lock wait\non tbl_x"));
    let problem = sanitizer.sanitize(&error);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, problem.code());
    assert_eq!(
        seen[0].1,
        vec!["DB_TIMEOUT".to_owned(), "lock wait\\non tbl_x".to_owned()]
    );
}
