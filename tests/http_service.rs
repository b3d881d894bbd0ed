//! The example HTTP service, driven over real HTTP on both backends through
//! every scenario of the demo: status codes, problem bodies without internal
//! detail, the audit rows written (denied and failed ones included), and
//! client IPs that a forged header cannot change.
// Tests unwrap: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use zt_e2e::{Harness, Reply, key};
use zt_examples::App;
use zt_testkit::TestDatabase;
use zt_types::AuditStatus;

/// Words that must never reach a client.
const INTERNALS: &[&str] = &[
    "UNIQUE",
    "constraint",
    "newsletter_subscribers",
    "projects",
    "sqlite",
    "SQLite",
    "postgres",
    "Postgres",
    "diesel",
    "relation",
    "SELECT",
    "INSERT",
    "session_version",
    "127.0.0.1",
    "connection",
    "password",
    "panicked",
    "SESSION_",
    "AUTH_",
    "DB_",
];

fn assert_problem(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.json["status"], status);
    let instance = reply.json["instance"].as_str().unwrap();
    assert!(instance.starts_with("urn:uuid:") && instance.len() == 45, "{instance}");
    for word in INTERNALS {
        assert!(!reply.text.contains(word), "the client saw {word:?}: {}", reply.text);
    }
}

fn projects_are_created_renamed_and_deleted(db: &TestDatabase) {
    let service = Harness::start(db, &[]);
    let alice = service.login("alice", 0);
    let created = service.send(
        "POST",
        "/projects",
        Some(&alice),
        Some(json!({"name": "Apollo"})),
        &[("X-Request-Id", "req-create")],
    );
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.request_id, "req-create");
    let id = created.json["id"].as_i64().unwrap();
    let row = service.last_audit_row();
    assert_eq!(
        (row.action.as_str(), row.status),
        ("CREATE_PROJECT", AuditStatus::Success)
    );
    assert_eq!(row.resource_id, Some(id.to_string()));
    assert_eq!(row.user_id.as_deref(), Some("alice"));
    assert_eq!(row.request_id.as_deref(), Some("req-create"));
    assert_eq!(row.client_ip, Some("127.0.0.1".parse().unwrap()));

    let renamed = service.send(
        "PATCH",
        &format!("/projects/{id}"),
        Some(&alice),
        Some(json!({"name": "Artemis"})),
        &[],
    );
    assert_eq!((renamed.status, renamed.json["name"].as_str()), (200, Some("Artemis")));

    // Someone else's project: refused and audited as failed.
    let carol = service.login("carol", 0);
    let foreign = service.send("DELETE", &format!("/projects/{id}"), Some(&carol), None, &[]);
    assert_problem(&foreign, 403);
    let row = service.last_audit_row();
    assert_eq!(
        (row.status, row.error_code.as_deref()),
        (AuditStatus::Failed, Some("AUTH_INSUFFICIENT_ROLE"))
    );

    let deleted = service.send("DELETE", &format!("/projects/{id}"), Some(&alice), None, &[]);
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let missing = service.send("DELETE", &format!("/projects/{id}"), Some(&alice), None, &[]);
    assert_problem(&missing, 404);

    let invalid = service.send("POST", "/projects", Some(&alice), Some(json!({"name": ""})), &[]);
    assert_problem(&invalid, 422);
    assert_eq!(invalid.json["errors"][0]["field"], "name");
    let anonymous = service.send("POST", "/projects", None, Some(json!({"name": "x"})), &[]);
    assert_problem(&anonymous, 401);
    assert!(service.app.audit.verify().unwrap().is_valid());
}

fn a_demotion_takes_effect_at_the_next_request(db: &TestDatabase) {
    let service = Harness::start(db, &[]);
    let bob = service.login("bob", 0);
    let promoted = service.send(
        "POST",
        "/admin/users/alice/role",
        Some(&bob),
        Some(json!({"role": "admin"})),
        &[],
    );
    assert_eq!(promoted.status, 204, "{}", promoted.text);
    let alice_admin = service.login("alice", 0);
    let allowed = service.send(
        "POST",
        "/admin/users/carol/revoke-sessions",
        Some(&alice_admin),
        None,
        &[],
    );
    assert_eq!(allowed.status, 204, "{}", allowed.text);

    let demoted = service.send(
        "POST",
        "/admin/users/alice/role",
        Some(&bob),
        Some(json!({"role": "user"})),
        &[],
    );
    assert_eq!(demoted.status, 204);
    let denied = service.send("POST", "/admin/users/carol/disable", Some(&alice_admin), None, &[]);
    assert_problem(&denied, 401);
    assert_eq!(denied.json["reauthenticate"], true);
    let row = service.last_audit_row();
    assert_eq!((row.action.as_str(), row.status), ("DISABLE_USER", AuditStatus::Denied));
    assert_eq!(row.error_code.as_deref(), Some("SESSION_ROLE_CHANGED"));
    assert_eq!(
        row.resource_id.as_deref(),
        Some("carol"),
        "the denied target is recorded"
    );

    // A fresh session as a user is denied for its role, not its staleness.
    let alice_user = service.login("alice", 0);
    let forbidden = service.send("POST", "/admin/users/carol/disable", Some(&alice_user), None, &[]);
    assert_problem(&forbidden, 403);
    assert_eq!(
        service.last_audit_row().error_code.as_deref(),
        Some("AUTH_INSUFFICIENT_ROLE")
    );
}

fn disabled_and_revoked_sessions_lose_access(db: &TestDatabase) {
    let service = Harness::start(db, &[]);
    let bob = service.login("bob", 0);
    let carol = service.login("carol", 0);
    assert_eq!(
        service
            .send("POST", "/projects", Some(&carol), Some(json!({"name": "n"})), &[])
            .status,
        201
    );

    assert_eq!(
        service
            .send("POST", "/admin/users/carol/disable", Some(&bob), None, &[])
            .status,
        204
    );
    let disabled = service.send("POST", "/projects", Some(&carol), Some(json!({"name": "n"})), &[]);
    assert_problem(&disabled, 403);
    assert_eq!(
        service.last_audit_row().error_code.as_deref(),
        Some("SESSION_USER_DISABLED")
    );

    let alice = service.login("alice", 0);
    assert_eq!(
        service
            .send("POST", "/admin/users/alice/revoke-sessions", Some(&bob), None, &[])
            .status,
        204
    );
    let revoked = service.send("POST", "/projects", Some(&alice), Some(json!({"name": "n"})), &[]);
    assert_problem(&revoked, 401);
    assert_eq!(service.last_audit_row().error_code.as_deref(), Some("SESSION_REVOKED"));
    let fresh = service.login("alice", 0);
    assert_eq!(
        service
            .send("POST", "/projects", Some(&fresh), Some(json!({"name": "n"})), &[])
            .status,
        201
    );
}

fn a_stale_login_must_step_up_for_a_destructive_action(db: &TestDatabase) {
    let service = Harness::start(db, &[]);
    let fresh = service.login("alice", 0);
    let id = service
        .send("POST", "/projects", Some(&fresh), Some(json!({"name": "Apollo"})), &[])
        .json["id"]
        .as_i64()
        .unwrap();
    let stale = service.login("alice", 45);
    // Renaming allows a login an hour old; deleting needs one within 10 minutes.
    assert_eq!(
        service
            .send(
                "PATCH",
                &format!("/projects/{id}"),
                Some(&stale),
                Some(json!({"name": "B"})),
                &[]
            )
            .status,
        200
    );
    let denied = service.send("DELETE", &format!("/projects/{id}"), Some(&stale), None, &[]);
    assert_problem(&denied, 401);
    assert_eq!(denied.json["title"], "Re-authentication required");
    assert_eq!(denied.json["reauthenticate"], true);
    let row = service.last_audit_row();
    assert_eq!(
        (row.status, row.error_code.as_deref()),
        (AuditStatus::Denied, Some("AUTH_REAUTHENTICATION_REQUIRED"))
    );
    assert_eq!(row.resource_id, Some(id.to_string()));
}

fn newsletter_errors_are_sanitized(db: &TestDatabase) {
    let service = Harness::start(db, &[]);
    let invalid = service.send("POST", "/newsletter", None, Some(json!({"email": "not-an-email"})), &[]);
    assert_problem(&invalid, 422);
    assert_eq!(
        invalid.json["errors"],
        json!([{"field": "email", "message": "Enter a valid email address."}])
    );

    assert_eq!(
        service
            .send(
                "POST",
                "/newsletter",
                None,
                Some(json!({"email": "dana@example.com"})),
                &[]
            )
            .status,
        201
    );
    let duplicate = service.send(
        "POST",
        "/newsletter",
        None,
        Some(json!({"email": "Dana@example.com"})),
        &[],
    );
    assert_problem(&duplicate, 409);
    let row = service.last_audit_row();
    assert_eq!(
        (row.action.as_str(), row.status),
        ("NEWSLETTER_SIGNUP", AuditStatus::Failed)
    );
    assert_eq!(row.error_code.as_deref(), Some("RESOURCE_CONFLICT"));
    assert_eq!(row.actor_kind, zt_types::ActorKind::Anonymous);

    let malformed = service.send("POST", "/newsletter", None, None, &[]);
    assert_problem(&malformed, 422);
    let huge = service.send(
        "POST",
        "/newsletter",
        None,
        Some(json!({"email": "x".repeat(70_000)})),
        &[],
    );
    assert_problem(&huge, 413);
    let unknown = service.send("GET", "/admin/secrets", None, None, &[]);
    assert_problem(&unknown, 404);
}

fn the_database_down_is_a_503_with_a_reference(db: &TestDatabase) {
    let dead = match db.backend() {
        zt_testkit::Backend::Sqlite => "sqlite:///nonexistent-dir/zt/app.db".to_owned(),
        zt_testkit::Backend::Postgres => "postgres://app:secret@127.0.0.1:1/zt".to_owned(),
    };
    let pool = zt_db::Pool::connect_lazy(
        &dead.parse().unwrap(),
        &zt_db::PoolConfig::new().connection_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let service = Harness::with_app(App::with_pool(pool, &key()).unwrap(), &[]);
    let signup = service.send(
        "POST",
        "/newsletter",
        None,
        Some(json!({"email": "eve@example.com"})),
        &[],
    );
    assert_problem(&signup, 503);
    assert_eq!(signup.json["title"], "Service unavailable");
    // A token that does not verify needs no database to be refused.
    let guarded = service.send(
        "POST",
        "/projects",
        Some("sess_unknown"),
        Some(json!({"name": "n"})),
        &[],
    );
    assert_problem(&guarded, 401);
    assert_eq!(guarded.json["reauthenticate"], true);
    // With claims, the check cannot reach the user store, and fails closed.
    let claims = zt_types::SessionClaims::new(
        zt_types::SessionId::parse("sess_1").unwrap(),
        zt_types::UserId::parse("alice").unwrap(),
        zt_types::Role::user(),
        0,
        zt_types::Timestamp::now(),
    );
    let problem = service
        .app
        .create_project(Some(&claims), &zt_types::RequestContext::new(), "n")
        .unwrap_err();
    assert_eq!(
        (problem.status(), problem.code().reason()),
        (503, "SESSION_CHECK_FAILED")
    );
}

fn forged_forwarding_headers_are_not_believed(db: &TestDatabase) {
    // The test client connects from 127.0.0.1, which is not a trusted proxy here.
    let untrusting = Harness::start(db, &["10.0.0.0/8"]);
    let alice = untrusting.login("alice", 0);
    let forged = [("X-Forwarded-For", "6.6.6.6")];
    assert_eq!(
        untrusting
            .send("POST", "/projects", Some(&alice), Some(json!({"name": "n"})), &forged)
            .status,
        201
    );
    let row = untrusting.last_audit_row();
    assert_eq!(
        row.client_ip,
        Some("127.0.0.1".parse().unwrap()),
        "a header from an untrusted peer is ignored"
    );
    assert_eq!(row.peer_ip, Some("127.0.0.1".parse().unwrap()));
}

fn a_trusted_proxy_is_believed_from_the_right(db: &TestDatabase) {
    let behind_proxy = Harness::start(db, &["127.0.0.1/32"]);
    let alice = behind_proxy.login("alice", 0);
    let headers = [("X-Forwarded-For", "6.6.6.6, 198.51.100.7")];
    assert_eq!(
        behind_proxy
            .send("POST", "/projects", Some(&alice), Some(json!({"name": "n"})), &headers)
            .status,
        201
    );
    let row = behind_proxy.last_audit_row();
    assert_eq!(
        row.client_ip,
        Some("198.51.100.7".parse().unwrap()),
        "the rightmost untrusted hop is the client"
    );
    assert_eq!(row.peer_ip, Some("127.0.0.1".parse().unwrap()));
}

/// A token with `part` (0 header, 1 payload) replaced by `json`, its
/// signature kept.
fn with_part(token: &str, part: usize, json: &serde_json::Value) -> String {
    use base64::Engine as _;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[part] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string());
    parts.join(".")
}

fn decode_part(token: &str, part: usize) -> serde_json::Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(part).unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn forged_tokens_are_refused(db: &TestDatabase) {
    let service = Harness::start(db, &[]);
    let alice = service.login("alice", 0);
    let header = decode_part(&alice, 0);
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("EdDSA"), Some("JWT"))
    );
    let mut claims = decode_part(&alice, 1);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"].as_str(), Some(service.app.idp.issuer()));

    // Alice makes herself bob, an admin; the signature no longer matches.
    claims["sub"] = json!("bob");
    claims["https://zt.example/roles"] = json!(["admin"]);
    let tampered = with_part(&alice, 1, &claims);
    // The algorithm `none`, and an HMAC "signed" with nothing the server has.
    let unsigned = format!(
        "{}.",
        with_part(&alice, 0, &json!({"alg": "none", "typ": "JWT"}))
            .rsplit_once('.')
            .unwrap()
            .0
    );
    let hmac = with_part(&alice, 0, &json!({"alg": "HS256", "kid": header["kid"]}));
    let unknown_key = with_part(&alice, 0, &json!({"alg": "EdDSA", "kid": "someone-else"}));
    for forged in [&tampered, &unsigned, &hmac, &unknown_key] {
        let reply = service.send("POST", "/admin/users/carol/disable", Some(forged), None, &[]);
        assert_problem(&reply, 401);
        assert_eq!(reply.json["reauthenticate"], true);
    }
    // Nothing happened to carol, and alice's real token still works.
    let carol = service.login("carol", 0);
    assert_eq!(
        service
            .send("POST", "/projects", Some(&carol), Some(json!({"name": "n"})), &[])
            .status,
        201
    );
    assert_eq!(
        service
            .send("POST", "/projects", Some(&alice), Some(json!({"name": "n"})), &[])
            .status,
        201
    );
}

zt_testkit::backend_tests!(
    forged_tokens_are_refused,
    projects_are_created_renamed_and_deleted,
    a_demotion_takes_effect_at_the_next_request,
    disabled_and_revoked_sessions_lose_access,
    a_stale_login_must_step_up_for_a_destructive_action,
    newsletter_errors_are_sanitized,
    the_database_down_is_a_503_with_a_reference,
    forged_forwarding_headers_are_not_believed,
    a_trusted_proxy_is_believed_from_the_right,
);
