//! The newsletter signup of the Next.js module zt grew from, with sanitized
//! errors: a validation error with a safe field message, a duplicate signup
//! (conflict), and the database down (a 503 problem with a reference id). The
//! server log, on stderr, holds what the client never sees.
//!
//! `cargo run --example error_handling [-- --database-url URL]`
// An example talks to the terminal.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use zt_db::{Pool, PoolConfig};
use zt_examples::App;
use zt_types::RequestContext;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let url = zt_examples::demo::url_from_args("zt-error-handling.db")?;
    let key = zt_examples::demo::demo_key(&url.parse()?)?;
    let app = App::open(&url, &key)?;
    let request = RequestContext::new().with_ip("192.0.2.10".parse()?);
    let email = format!("reader-{}@example.com", uuid::Uuid::new_v4().simple());

    for (what, input) in [
        ("a malformed email", "not-an-email"),
        ("a new email", email.as_str()),
        ("the same email again", email.as_str()),
    ] {
        match app.subscribe(&request, input) {
            Ok(()) => println!("{what}: 201 Created"),
            Err(problem) => println!("{what}: {} {}", problem.status(), problem.to_json()),
        }
    }

    // An app whose database is down: it starts anyway, and every request
    // gets a generic 503 with a reference id.
    let unreachable = "postgres://app:secret@127.0.0.1:1/newsletter".parse()?;
    let down = App::with_pool(
        Pool::connect_lazy(
            &unreachable,
            &PoolConfig::new().connection_timeout(Duration::from_millis(500)),
        )?,
        &key,
    )?;
    match down.subscribe(&request, &email) {
        Ok(()) => println!("the database is down, yet the signup succeeded?"),
        Err(problem) => println!("the database down: {} {}", problem.status(), problem.to_json()),
    }
    Ok(())
}
