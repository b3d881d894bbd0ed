//! A synchronous HTTP service over the examples' bounded server
//! ([`crate::server`]) that exposes the example app's actions as JSON
//! endpoints, with trusted-proxy client-IP resolution and
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
//!
//! **`POST /login` is a stand-in.** It signs in whoever asks as whichever
//! user they name, with MFA if they say so, and a login up to 30 days old
//! (`minutes_ago`, to stage stale sessions). That is what the examples and
//! tests need, and why [`Service::start`] listens only on loopback unless
//! told otherwise ([`ServiceOptions::allow_stand_in_login_beyond_loopback`]).
//! A real app gets its tokens from its identity provider's own sign-in.
//!
//! Hostile clients meet the server's bounds ([`Limits`]): slow or oversized
//! requests are refused without holding more than their own connection,
//! and a panic in a route is a generic 500 that leaves the service serving.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde::Deserialize;
use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, PROBLEM_CONTENT_TYPE, Problem};
use zt_types::{ClientIpResolver, RequestContext, RequestId, Role, SessionClaims, UserId};

use crate::app::App;
use crate::idp::SignIn;
use crate::server::{Limits, Request, Response, Server};

/// How the service runs: which proxies it believes, its connection bounds,
/// and whether it may listen beyond loopback.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    resolver: ClientIpResolver,
    limits: Limits,
    beyond_loopback: bool,
}

impl ServiceOptions {
    /// The defaults: no trusted proxy, [`Limits::new`], loopback only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Believes forwarding headers only as `resolver` allows. Default: no
    /// proxy is trusted, so the client IP is the socket peer.
    #[must_use]
    pub fn resolver(mut self, resolver: ClientIpResolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// The server's bounds on connections, headers, bodies and time.
    /// Default: [`Limits::new`].
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Lets the service listen on an address other than loopback. Default:
    /// off, and [`Service::start`] refuses such an address. `POST /login`
    /// is a stand-in that signs in anyone as any user, with MFA if they ask:
    /// beyond this machine, every client could act as every user, admins
    /// included. Turn it on only on a network of your own.
    #[must_use]
    pub fn allow_stand_in_login_beyond_loopback(mut self, allow: bool) -> Self {
        self.beyond_loopback = allow;
        self
    }
}

/// A running service. Dropping it stops it.
#[derive(Debug)]
pub struct Service {
    server: Server,
}

impl Service {
    /// Listens on `address` (port 0 picks a free one), which must be a
    /// loopback address unless `options` allow otherwise
    /// ([`ServiceOptions::allow_stand_in_login_beyond_loopback`]); the error
    /// is then `PermissionDenied` and says why.
    pub fn start(app: &Arc<App>, address: &str, options: ServiceOptions) -> io::Result<Self> {
        let addresses: Vec<SocketAddr> = address.to_socket_addrs()?.collect();
        // Checked before binding: the stand-in login must never be reachable
        // from elsewhere, not even for a moment.
        if let Some(beyond) = addresses.iter().find(|a| !a.ip().to_canonical().is_loopback())
            && !options.beyond_loopback
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refusing to listen on {beyond}, which is not a loopback address: POST /login is a stand-in \
                     that lets any client sign in as any user; listen on 127.0.0.1 or ::1, or opt in with \
                     --allow-stand-in-login-beyond-loopback \
                     (ServiceOptions::allow_stand_in_login_beyond_loopback)"
                ),
            ));
        }
        let listener = TcpListener::bind(&addresses[..])?;
        let local = listener.local_addr()?;
        if !local.ip().to_canonical().is_loopback() {
            tracing::warn!(
                target: "zt::http",
                address = %local,
                "listening beyond loopback: POST /login lets any client sign in as any user"
            );
        }
        let app = Arc::clone(app);
        let resolver = options.resolver;
        let server = Server::start(listener, options.limits, move |request| {
            handle(&app, &resolver, &request)
        })?;
        Ok(Self { server })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.server.address()
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        self.server.wait();
    }
}

/// What a handler answers.
enum Reply {
    Json(u16, serde_json::Value),
    Empty(u16),
    Problem(Problem),
}

/// A panic in a route, as an error for the sanitizer: its message goes to
/// the server's log, never to the client.
#[derive(Debug)]
struct Panicked(String);

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a route panicked: {}", self.0)
    }
}

impl std::error::Error for Panicked {}

fn handle(app: &App, resolver: &ClientIpResolver, request: &Request) -> Response {
    let context = request_context(resolver, request);
    // The server would answer a panic with a bare 500; caught here, it is
    // logged and counted with the request's context like any other error.
    let reply = match catch_unwind(AssertUnwindSafe(|| route(app, request, &context))) {
        Ok(reply) => reply.unwrap_or_else(Reply::Problem),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|message| (*message).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Reply::Problem(
                app.guard
                    .sanitizer()
                    .sanitize_as(ErrorCode::Internal, &Panicked(message), Some(&context)),
            )
        }
    };
    let request_id = context
        .request_id()
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    let (status, body, content_type) = match reply {
        Reply::Json(status, value) => (status, value.to_string(), "application/json"),
        Reply::Empty(status) => (status, String::new(), "application/json"),
        Reply::Problem(problem) => (problem.status(), problem.to_json(), PROBLEM_CONTENT_TYPE),
    };
    Response::new(status)
        .with_body(content_type, body)
        .with_header("X-Request-Id", &request_id)
}

/// Where the request came from: the socket peer, the client IP through
/// trusted proxies, the user agent and the request id.
fn request_context(resolver: &ClientIpResolver, request: &Request) -> RequestContext {
    let peer = request.peer().ip();
    let lines: Vec<&str> = request.header_values(resolver.forwarding_header().name()).collect();
    let resolved = resolver.resolve(peer, lines);
    if let Some(anomaly) = resolved.anomaly {
        tracing::warn!(target: "zt::http", peer = %peer, anomaly = %anomaly, "forwarding header not believed");
    }
    let (request_id, _) = RequestId::from_header_or_generate(request.header("X-Request-Id"));
    let mut context = RequestContext::new()
        .with_resolved_ip(peer, resolved)
        .with_request_id(request_id);
    if let Some(agent) = request.header("User-Agent") {
        context = context.with_user_agent(agent);
    }
    context
}

fn route(app: &App, request: &Request, context: &RequestContext) -> Result<Reply, Problem> {
    let path = request.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let token = bearer(request);
    // The routes that act for a session verify its token first.
    let session = || session(app, token.as_deref(), context);
    match (request.method(), segments.as_slice()) {
        ("POST", ["login"]) => {
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
            if body.minutes_ago > SignIn::MAX_MINUTES_AGO {
                return Err(app.guard.sanitizer().sanitize_for(
                    &CodedError::validation()
                        .with_safe_field("minutes_ago", "Give at most 30 days, in minutes.")
                        .with_message(format!("minutes_ago {} is beyond 30 days", body.minutes_ago)),
                    context,
                ));
            }
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
        ("POST", ["projects"]) => {
            let claims = session()?;
            let body: NameBody = json_body(app, request, context)?;
            let project = app.create_project(claims.as_ref(), context, &body.name)?;
            Ok(Reply::Json(201, serde_json::to_value(project).unwrap_or_default()))
        }
        ("PATCH", ["projects", id]) => {
            let claims = session()?;
            let id = project_id(app, context, id)?;
            let body: NameBody = json_body(app, request, context)?;
            let project = app.rename_project(claims.as_ref(), context, id, &body.name)?;
            Ok(Reply::Json(200, serde_json::to_value(project).unwrap_or_default()))
        }
        ("DELETE", ["projects", id]) => {
            let claims = session()?;
            let id = project_id(app, context, id)?;
            app.delete_project(claims.as_ref(), context, id)?;
            Ok(Reply::Empty(204))
        }
        ("POST", ["admin", "users", user, "role"]) => {
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
        ("POST", ["admin", "users", user, "disable"]) => {
            let claims = session()?;
            let user = UserId::parse(*user).map_err(|e| invalid(app, context, "user", e))?;
            app.disable_user(claims.as_ref(), context, &user)?;
            Ok(Reply::Empty(204))
        }
        ("POST", ["admin", "users", user, "revoke-sessions"]) => {
            let claims = session()?;
            let user = UserId::parse(*user).map_err(|e| invalid(app, context, "user", e))?;
            app.revoke_sessions(claims.as_ref(), context, &user)?;
            Ok(Reply::Empty(204))
        }
        ("POST", ["newsletter"]) => {
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
    let token = request.header("Authorization")?.strip_prefix("Bearer ")?;
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

/// The body as JSON. The server has already bounded its size
/// ([`Limits::max_body`], a 413 before it is read).
fn json_body<T: serde::de::DeserializeOwned>(
    app: &App,
    request: &Request,
    context: &RequestContext,
) -> Result<T, Problem> {
    serde_json::from_slice(request.body()).map_err(|error| {
        app.guard.sanitizer().sanitize_for(
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
