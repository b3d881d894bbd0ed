//! The zt demo: what a client sees of an internal error, and what the server logs.
#![allow(clippy::print_stdout)]

use zt_error_codes::ErrorCode;
use zt_errors::{CodedError, Sanitizer};

fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    let internal = CodedError::new(ErrorCode::DbUnavailable)
        .with_message("connection to server at \"db.internal\" (10.0.3.7), port 5432 failed: password authentication failed for user \"app_rw\"");
    println!("The server logged the error above. The client sees only this:");
    let problem = Sanitizer::new().sanitize(&internal);
    println!(
        "HTTP {} {}\n{}",
        problem.status(),
        zt_errors::PROBLEM_CONTENT_TYPE,
        problem.to_json()
    );
}
