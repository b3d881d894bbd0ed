//! A synchronous HTTP service over tiny_http that exposes the example app's
//! actions as JSON endpoints, with trusted-proxy client-IP resolution and
//! `application/problem+json` errors.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /login` | `{"user_id", "mfa"?, "minutes_ago"?}` | `{"token"}`: a JWT from the stand-in identity provider |
//! | `POST /projects` | `{"name"}` | 201, the project |
//! | `PATCH /projects/{id}` | `{"name"}` | 200, the project |
//! | `DELETE /projects/{id}` | | 204 |
//! | `POST /admin/users/{id}/role` | `{"role"}` | 204 |
//! | `POST /admin/users/{id}/disable` | | 204 |
//! | `POST /admin/users/{id}/revoke-sessions` | | 204 |
//! | `POST /newsletter` | `{"email"}` | 201 |
//!
//! Sessions travel as `Authorization: Bearer <token>`, a JWT that the app's
//! [`zt_session::TokenVerifier`] checks against the provider's JWKS (fetched
//! over HTTP, cached) before the session is checked against the database. A
//! token that does not verify is a 401 (`SESSION_INVALID` or
//! `SESSION_EXPIRED` in the server's log); no token at all, too
//! (`SESSION_MISSING`).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Deserialize;
use tiny_http::{Header, Method, Request, Response, Server};
use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, PROBLEM_CONTENT_TYPE, Problem};
use zt_types::{ClientIpResolver, RequestContext, RequestId, Role, SessionClaims, UserId};

use crate::app::App;
use crate::idp::SignIn;

/// The largest request body read, in bytes.
const MAX_BODY: u64 = 64 * 1024;

/// A running service. Dropping it stops it.
pub struct Service {
    server: Arc<Server>,
    address: SocketAddr,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Listens on `address` (port 0 picks a free one) with `threads` workers.
    /// Forwarding headers are believed only as `resolver` allows.
    pub fn start(app: &Arc<App>, address: &str, resolver: ClientIpResolver, threads: usize) -> std::io::Result<Self> {
        let server = Arc::new(Server::http(address).map_err(std::io::Error::other)?);
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("the server is not on an IP address"))?;
        let resolver = Arc::new(resolver);
        let workers = (0..threads.max(1))
            .map(|_| {
                let (server, app, resolver) = (Arc::clone(&server), Arc::clone(app), Arc::clone(&resolver));
                std::thread::spawn(move || {
                    while let Ok(request) = server.recv() {
                        handle(&app, &resolver, request);
                    }
                })
            })
            .collect();
        Ok(Self {
            server,
            address,
            workers,
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// What a handler answers.
enum Reply {
    Json(u16, serde_json::Value),
    Empty(u16),
    Problem(Problem),
}

fn handle(app: &App, resolver: &ClientIpResolver, mut request: Request) {
    let context = request_context(resolver, &request);
    let reply = route(app, &mut request, &context).unwrap_or_else(Reply::Problem);
    let request_id = context
        .request_id()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    let (status, body, content_type) = match reply {
        Reply::Json(status, value) => (status, value.to_string(), "application/json"),
        Reply::Empty(status) => (status, String::new(), "application/json"),
        Reply::Problem(problem) => (problem.status(), problem.to_json(), PROBLEM_CONTENT_TYPE),
    };
    let response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", content_type))
        .with_header(header("X-Request-Id", &request_id));
    // The client may have gone; there is no one left to tell.
    let _ = request.respond(response);
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII: fixed names and values we built.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| Header {
        field: "X-Invalid".parse().unwrap_or_else(|_| unreachable!()),
        value: "".parse().unwrap_or_else(|_| unreachable!()),
    })
}

/// Where the request came from: the socket peer, the client IP through
/// trusted proxies, the user agent and the request id.
fn request_context(resolver: &ClientIpResolver, request: &Request) -> RequestContext {
    let peer = request
        .remote_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SocketAddr::ip);
    let forwarding = resolver.forwarding_header().name();
    let lines: Vec<&str> = request
        .headers()
        .iter()
        .filter(|h| h.field.as_str().as_str().eq_ignore_ascii_case(forwarding))
        .map(|h| h.value.as_str())
        .collect();
    let resolved = resolver.resolve(peer, lines);
    if let Some(anomaly) = resolved.anomaly {
        tracing::warn!(target: "zt::http", peer = %peer, anomaly = %anomaly, "forwarding header not believed");
    }
    let header_value = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    };
    let (request_id, _) = RequestId::from_header_or_generate(header_value("X-Request-Id"));
    let mut context = RequestContext::new()
        .with_resolved_ip(peer, resolved)
        .with_request_id(request_id);
    if let Some(agent) = header_value("User-Agent") {
        context = context.with_user_agent(agent);
    }
    context
}

fn route(app: &App, request: &mut Request, context: &RequestContext) -> Result<Reply, Problem> {
    let method = request.method().clone();
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let token = bearer(request);
    // The routes that act for a session verify its token first.
    let session = || session(app, token.as_deref(), context);
    match (method, segments.as_slice()) {
        (Method::Post, ["login"]) => {
            #[derive(Deserialize)]
            struct Login {
                user_id: String,
                #[serde(default)]
                mfa: bool,
                #[serde(default)]
                minutes_ago: u64,
            }
            let body: Login = json_body(app, request, context)?;
            let user = UserId::parse(body.user_id).map_err(|e| invalid(app, context, "user_id", e))?;
            let (token, _) = app
                .idp
                .sign_in(
                    &user,
                    SignIn {
                        mfa: body.mfa,
                        minutes_ago: body.minutes_ago,
                    },
                )
                .map_err(|e| {
                    app.guard
                        .sanitizer()
                        .sanitize_as(ErrorCode::SessionMissing, e.as_ref(), Some(context))
                })?;
            Ok(Reply::Json(200, serde_json::json!({ "token": token })))
        }
        (Method::Post, ["projects"]) => {
            let claims = session()?;
            let body: NameBody = json_body(app, request, context)?;
            let project = app.create_project(claims.as_ref(), context, &body.name)?;
            Ok(Reply::Json(201, serde_json::to_value(project).unwrap_or_default()))
        }
        (Method::Patch, ["projects", id]) => {
            let claims = session()?;
            let id = project_id(app, context, id)?;
            let body: NameBody = json_body(app, request, context)?;
            let project = app.rename_project(claims.as_ref(), context, id, &body.name)?;
            Ok(Reply::Json(200, serde_json::to_value(project).unwrap_or_default()))
        }
        (Method::Delete, ["projects", id]) => {
            let claims = session()?;
            let id = project_id(app, context, id)?;
            app.delete_project(claims.as_ref(), context, id)?;
            Ok(Reply::Empty(204))
        }
        (Method::Post, ["admin", "users", user, "role"]) => {
            #[derive(Deserialize)]
            struct RoleBody {
                role: String,
            }
            let claims = session()?;
            let user = UserId::parse(*user).map_err(|e| invalid(app, context, "user", e))?;
            let body: RoleBody = json_body(app, request, context)?;
            let role = Role::parse(body.role).map_err(|e| invalid(app, context, "role", e))?;
            app.set_user_role(claims.as_ref(), context, &user, &role)?;
            Ok(Reply::Empty(204))
        }
        (Method::Post, ["admin", "users", user, "disable"]) => {
            let claims = session()?;
            let user = UserId::parse(*user).map_err(|e| invalid(app, context, "user", e))?;
            app.disable_user(claims.as_ref(), context, &user)?;
            Ok(Reply::Empty(204))
        }
        (Method::Post, ["admin", "users", user, "revoke-sessions"]) => {
            let claims = session()?;
            let user = UserId::parse(*user).map_err(|e| invalid(app, context, "user", e))?;
            app.revoke_sessions(claims.as_ref(), context, &user)?;
            Ok(Reply::Empty(204))
        }
        (Method::Post, ["newsletter"]) => {
            #[derive(Deserialize)]
            struct Signup {
                email: String,
            }
            let body: Signup = json_body(app, request, context)?;
            app.subscribe(context, &body.email)?;
            Ok(Reply::Empty(201))
        }
        _ => Err(app.guard.sanitizer().sanitize_for(
            &CodedError::new(ErrorCode::ResourceNotFound).with_message(format!("no route for {path}")),
            context,
        )),
    }
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

/// The bearer token, if the request carries one.
fn bearer(request: &Request) -> Option<String> {
    let header = request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case("Authorization"))?;
    let token = header.value.as_str().strip_prefix("Bearer ")?;
    Some(token.trim().to_owned())
}

/// The session of the bearer token: none without a token (the guard denies
/// it as missing), its claims once it verifies, and a problem when it does
/// not, logged by the validator like any other denial.
fn session(app: &App, token: Option<&str>, context: &RequestContext) -> Result<Option<SessionClaims>, Problem> {
    let Some(token) = token else {
        return Ok(None);
    };
    match app.tokens.verify(token) {
        Ok(verified) => Ok(Some(verified.into_claims())),
        Err(denial) => {
            let denial = app.guard.validator().report(denial, context);
            Err(app.guard.sanitizer().sanitize_as(denial.code(), &denial, Some(context)))
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(
    app: &App,
    request: &mut Request,
    context: &RequestContext,
) -> Result<T, Problem> {
    let mut body = Vec::new();
    let read = request.as_reader().take(MAX_BODY + 1).read_to_end(&mut body);
    let sanitizer = app.guard.sanitizer();
    if read.is_err() {
        return Err(sanitizer.sanitize_for(
            &CodedError::validation().with_message("unreadable request body"),
            context,
        ));
    }
    if body.len() as u64 > MAX_BODY {
        let error = CodedError::new(ErrorCode::RequestTooLarge).with_message(format!("body over {MAX_BODY} bytes"));
        return Err(sanitizer.sanitize_for(&error, context));
    }
    serde_json::from_slice(&body).map_err(|error| {
        sanitizer.sanitize_for(
            &CodedError::validation()
                .with_safe_field("body", "Send a JSON object with the expected fields.")
                .with_source(error),
            context,
        )
    })
}

fn project_id(app: &App, context: &RequestContext, text: &str) -> Result<i64, Problem> {
    text.parse().map_err(|_| {
        app.guard.sanitizer().sanitize_for(
            &CodedError::new(ErrorCode::ResourceNotFound).with_message(format!("bad project id {text:?}")),
            context,
        )
    })
}

fn invalid(app: &App, context: &RequestContext, field: &str, error: zt_types::FieldError) -> Problem {
    let message = format!("Check the {field}.");
    app.guard.sanitizer().sanitize_for(
        &CodedError::validation()
            .with_safe_field(field, message)
            .with_source(error),
        context,
    )
}
