//! The zt demo: a user, an admin, a demotion, a stale login, database errors
//! and an alert, then the audit trail and its verification.
//!
//! `cargo run --example demo [-- --database-url URL]`; the default is the
//! SQLite file `zt-demo.db` in the current folder. Run it as often as you like.
// A demo talks to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use zt_examples::demo::{DEFAULT_DATABASE_URL, ServerLog, demo_key, run};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut url = std::env::var("ZT_DEMO_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--database-url", Some(value)) => url = value,
            _ => {
                eprintln!("usage: cargo run --example demo [-- --database-url sqlite://FILE | postgres://...]");
                return ExitCode::from(2);
            }
        }
    }
    let log = ServerLog::default();
    if tracing::subscriber::set_global_default(log.subscriber()).is_err() {
        eprintln!("demo: a tracing subscriber is already installed; the server log will not be shown");
    }
    let key = match url.parse().map_err(Into::into).and_then(|url| demo_key(&url)) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("demo: error: {}", zt_types::neutralize(&error.to_string()));
            return ExitCode::from(2);
        }
    };
    match run(&url, &key, &mut std::io::stdout(), &log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo: error: {}", zt_types::neutralize(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}
