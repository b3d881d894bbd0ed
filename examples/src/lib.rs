//! The zt examples' shared code: a small app with the seed's server actions,
//! a stand-in identity provider, a synchronous HTTP service, and the demo.
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

pub use app::{App, Project};
pub use idp::{IdentityProvider, SignIn};
