//! The example app as a synchronous HTTP service with JSON endpoints,
//! trusted-proxy client IPs and problem+json errors; see
//! `zt_examples::http` for the routes. Sessions are JWTs signed by a
//! stand-in identity provider that serves its JWKS on another port.
//!
//! `cargo run --example http_service [-- --listen 127.0.0.1:8080 --trusted-proxy 10.0.0.0/8 --database-url URL]`
// An example talks to the terminal.
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use zt_examples::App;
use zt_examples::http::Service;
use zt_types::{ClientIpResolver, Role, UserId};

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt().init();
    let mut url = "sqlite://zt-http.db".to_owned();
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut proxies = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--database-url" => url = value,
            "--listen" => listen = value,
            "--trusted-proxy" => proxies.push(value),
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let app = App::open(&url, &zt_examples::demo::demo_key(&url.parse()?)?)?;
    for (user, role) in [("alice", Role::user()), ("bob", Role::admin())] {
        let user = UserId::parse(user)?;
        if app.users.user_state(&user)?.is_none() {
            app.users.create_user(&user, None, &role)?;
        }
    }
    let app_jwks = app.idp.jwks_url();
    let service = Service::start(&Arc::new(app), &listen, ClientIpResolver::from_cidrs(&proxies)?, 4)?;
    println!(
        "listening on http://{}  (users: alice, bob; POST /login {{\"user_id\":\"alice\"}} for a token)",
        service.address()
    );
    println!("the identity provider's keys: {}", app_jwks);
    service.wait();
    Ok(())
}
