//! The example app as a synchronous HTTP service with JSON endpoints,
//! trusted-proxy client IPs and problem+json errors; see
//! `zt_examples::http` for the routes. Sessions are JWTs signed by a
//! stand-in identity provider that serves its JWKS on another port.
//!
//! `cargo run --example http_service [-- --listen 127.0.0.1:8080 --trusted-proxy 10.0.0.0/8 --database-url URL]`
//!
//! `POST /login` is a stand-in: any client can sign in as any user, admins
//! included. The service therefore listens only on a loopback address; a
//! `--listen` address beyond it is refused unless
//! `--allow-stand-in-login-beyond-loopback` is given too.
// An example talks to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;

use zt_examples::App;
use zt_examples::http::{Service, ServiceOptions};
use zt_types::{ClientIpResolver, Role, UserId};

const USAGE: &str = "usage: http_service [--listen ADDRESS] [--trusted-proxy CIDR]... [--database-url URL] \
                     [--allow-stand-in-login-beyond-loopback]";

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().init();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut url = "sqlite://zt-http.db".to_owned();
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut proxies = Vec::new();
    let mut beyond_loopback = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--database-url" => url = value()?,
            "--listen" => listen = value()?,
            "--trusted-proxy" => proxies.push(value()?),
            "--allow-stand-in-login-beyond-loopback" => beyond_loopback = true,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
    }
    eprintln!(
        "WARNING: POST /login is a stand-in identity provider's sign-in: ANY client can sign in as ANY user, \
         admins included, with MFA if it asks. For examples and tests only; never expose this service."
    );
    let app = App::open(&url, &zt_examples::demo::demo_key(&url.parse()?)?)?;
    for (user, role) in [("alice", Role::user()), ("bob", Role::admin())] {
        let user = UserId::parse(user)?;
        if app.users.user_state(&user)?.is_none() {
            app.users.create_user(&user, None, &role)?;
        }
    }
    let app_jwks = app.idp.jwks_url();
    let options = ServiceOptions::new()
        .resolver(ClientIpResolver::from_cidrs(&proxies)?)
        .allow_stand_in_login_beyond_loopback(beyond_loopback);
    let service = Service::start(&Arc::new(app), &listen, options)?;
    if !service.address().ip().to_canonical().is_loopback() {
        eprintln!(
            "WARNING: listening on {} beyond loopback (--allow-stand-in-login-beyond-loopback): every client that \
             reaches it can act as every user.",
            service.address()
        );
    }
    println!(
        "listening on http://{}  (users: alice, bob; POST /login {{\"user_id\":\"alice\"}} for a token)",
        service.address()
    );
    println!("the identity provider's keys: {}", app_jwks);
    service.wait();
    Ok(())
}
