//! The zt examples' shared code: a small app with the server actions of the
//! Next.js module zt grew from, a stand-in identity provider, a synchronous
//! HTTP service, and the demo.
//!
//! - [`App`]: `createProject` and friends, `setUserRole`, disabling users and
//!   revoking sessions, and the newsletter signup, each run through a
//!   [`zt_guard::Guard`].
//! - [`IdentityProvider`]: signs session tokens (JWTs, Ed25519) and serves
//!   its JWKS over HTTP the way Clerk or an OIDC provider would, for the
//!   examples and tests only; [`App::tokens`] verifies them with zt-session's
//!   `TokenVerifier`.
//! - [`http::Service`]: the app as JSON endpoints, over [`server::Server`],
//!   a small HTTP/1.1 server bounded against slow, oversized and panicking
//!   requests. Its `POST /login` is a stand-in that signs anyone in as any
//!   user, so it listens only on loopback unless told otherwise.
//! - [`demo::run`]: the story `cargo run --example demo` tells.
//! - [`existing_app`]: a diesel app that existed before zt adopts it one
//!   crate at a time (`cargo run --example existing_app`).
//!
//! ```no_run
//! let app = zt_examples::App::open("sqlite://zt-demo.db", &zt_audit::ChainKey::generate()?)?;
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app;
pub mod demo;
pub mod existing_app;
pub mod http;
pub mod idp;
mod schema;
pub mod server;

pub use app::{APP_MIGRATIONS, App, Project};
pub use idp::{IdentityProvider, SignIn};

/// Audit rows, one line each, for the examples' output: id, time, actor,
/// action, resource, status and code, control characters escaped. (`zt
/// audit query` prints a proper table.)
pub fn audit_lines(records: &[zt_audit::AuditRecord]) -> String {
    records
        .iter()
        .map(|record| {
            let time = record.created_at.to_string();
            let line = format!(
                "#{} {} {} {} {}{} {}{}",
                record.id,
                time.get(..19).unwrap_or(&time).replace('T', " "),
                record.user_id.as_deref().unwrap_or(record.actor_kind.as_str()),
                record.action,
                record.resource,
                record
                    .resource_id
                    .as_deref()
                    .map(|id| format!("/{id}"))
                    .unwrap_or_default(),
                record.status,
                record
                    .error_code
                    .as_deref()
                    .map(|code| format!(" {code}"))
                    .unwrap_or_default(),
            );
            format!("{}\n", zt_types::neutralize(&line))
        })
        .collect()
}
