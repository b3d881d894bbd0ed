//! Support for the end-to-end tests: the example HTTP service on a fresh
//! database of either backend, and a small HTTP client.
#![forbid(unsafe_code)]
// Test support: a failed set-up should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::Value;
use zt_audit::{AuditFilter, AuditRecord, PageRequest};
use zt_examples::App;
use zt_examples::http::{Service, ServiceOptions};
use zt_testkit::TestDatabase;
use zt_types::{ClientIpResolver, Role, UserId};

/// A response: status, headers of interest, and the body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// The `X-Request-Id`.
    pub request_id: String,
    /// The raw body.
    pub text: String,
    /// The body as JSON.
    pub json: Value,
}

/// The example service running on a fresh database.
#[derive(Debug)]
pub struct Harness {
    /// The app behind the service, for seeding and for reading the audit log.
    pub app: Arc<App>,
    service: Service,
    agent: ureq::Agent,
}

/// The chain key of the tests.
pub fn key() -> zt_audit::ChainKey {
    zt_audit::ChainKey::from_bytes(&(9..9 + 32).collect::<Vec<u8>>()).unwrap()
}

impl Harness {
    /// Starts the service on `db`, trusting `proxies`, with users `alice`
    /// (user), `bob` (admin) and `carol` (user).
    pub fn start(db: &TestDatabase, proxies: &[&str]) -> Self {
        let app = App::open(db.url(), &key()).unwrap();
        for (user, role) in [("alice", Role::user()), ("bob", Role::admin()), ("carol", Role::user())] {
            app.users
                .create_user(&UserId::parse(user).unwrap(), None, &role)
                .unwrap();
        }
        Self::with_app(app, proxies)
    }

    /// Starts the service on an app built elsewhere, such as one whose
    /// database is down.
    pub fn with_app(app: App, proxies: &[&str]) -> Self {
        let resolver = ClientIpResolver::from_cidrs(proxies).unwrap();
        Self::with_options(app, ServiceOptions::new().resolver(resolver))
    }

    /// Starts the service on `app` with `options`, on 127.0.0.1.
    pub fn with_options(app: App, options: ServiceOptions) -> Self {
        let app = Arc::new(app);
        let service = Service::start(&app, "127.0.0.1:0", options).unwrap();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Self { app, service, agent }
    }

    /// The address the service listens on, for clients that speak raw TCP.
    pub fn address(&self) -> std::net::SocketAddr {
        self.service.address()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.service.address())
    }

    /// Sends a request; `body` `None` sends no body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = self.url(path);
        let mut request = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map(|value| value.to_string()).unwrap_or_default();
        let request = request.header("Content-Type", "application/json").body(body).unwrap();
        let mut response = self.agent.run(request).unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (content_type, request_id) = (header("content-type"), header("x-request-id"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Reply {
            status,
            content_type,
            request_id,
            text,
            json,
        }
    }

    /// Signs `user` in through `POST /login`; returns the token.
    pub fn login(&self, user: &str, minutes_ago: u64) -> String {
        let reply = self.try_login(user, minutes_ago);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json["token"].as_str().unwrap().to_owned()
    }

    /// Sends `POST /login` for `user`, whatever the answer.
    pub fn try_login(&self, user: &str, minutes_ago: u64) -> Reply {
        self.send(
            "POST",
            "/login",
            None,
            Some(serde_json::json!({ "user_id": user, "minutes_ago": minutes_ago })),
            &[],
        )
    }

    /// Every audit row, oldest first.
    pub fn audit_rows(&self) -> Vec<AuditRecord> {
        self.app
            .audit
            .query(&AuditFilter::new(), &PageRequest::first(1000))
            .unwrap()
            .records
    }

    /// The newest audit row.
    pub fn last_audit_row(&self) -> AuditRecord {
        self.audit_rows().pop().expect("an audit row")
    }
}

/// The event that the audit-writer processes of the many-instances test
/// write as number `n` under `prefix`: its id is derived from both, so the
/// parent knows every id to expect and a rerun writes the same ids.
pub fn writer_event(prefix: &str, action: &str, n: u64) -> zt_types::AuditEvent {
    zt_types::AuditEvent::builder(zt_types::Actor::System, action, "writer")
        .event_id(zt_types::EventId::from_uuid(writer_event_id(prefix, n)))
        .resource_id(format!("{prefix}-{n}"))
        .context(&zt_types::RequestContext::new().with_request_id(zt_types::RequestId::parse(prefix).unwrap()))
        .build()
        .unwrap()
}

/// The id of [`writer_event`]: the FNV-1a hash of `prefix`, then `n`.
pub fn writer_event_id(prefix: &str, n: u64) -> uuid::Uuid {
    let hash = prefix.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    uuid::Uuid::from_u64_pair(hash, n)
}
