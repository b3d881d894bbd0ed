//! Development tasks for the zt workspace, run as `cargo xtask <task>`.
//!
//! - `test [--no-lint] [-- <test filter>]`: fmt check, clippy with `-D warnings`,
//!   the codegen check, then the whole suite on SQLite and on a throwaway
//!   PostgreSQL (or the server in `DATABASE_URL`).
//! - `codegen [--check]`: regenerate the generated files, or check them.
//! - `migrate [--database-url URL] [--only audit|sessions]`: apply zt's
//!   migrations, both sets or one (default URL: the README's SQLite file).
//! - `bench [--quick | --scale]`: the performance targets beside their raw baselines (`--scale`: 10 million rows);
//!   writes `target/zt-bench/results.json` and `BENCHMARKS.md`.
//! - `soak [--minutes N]`: the example HTTP service under mixed load for N
//!   minutes (default 10) while PostgreSQL restarts; reports latency per
//!   minute, memory growth and lost audit rows (which fail it) in
//!   `BENCHMARKS.md`.
//! - `consumers`: `cargo check` of each package under `tests/consumers/`,
//!   small crates outside the workspace that use the zt crates with one
//!   combination of features each.
//! - `ci`: what `.ci/run` runs: `test`, each backend feature alone, the
//!   consumers, docs with warnings denied, packaging, a 1-minute soak.
#![forbid(unsafe_code)]
// A task runner reports to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod codegen;
mod consumers;
mod migrate;
mod postgres;
mod shell;
mod soak;
mod test;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <test [--no-lint] [-- FILTER...] | codegen [--check] | migrate [--database-url URL] [--only audit|sessions] | bench [--quick | --scale] | soak [--minutes N] | consumers | ci>";

fn main() -> ExitCode {
    // Ctrl-C reaches every process in the foreground group. The children stop;
    // xtask keeps going just long enough to tear down what it started.
    let _ = ctrlc::set_handler(|| eprintln!("xtask: interrupted, cleaning up"));

    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("test") => test::run(&rest),
        Some("codegen") => codegen::run(&rest),
        Some("migrate") => migrate::run(&rest),
        Some("consumers") => consumers::run(&rest),
        Some("ci") => ci::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("soak") => soak::run(&rest),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
