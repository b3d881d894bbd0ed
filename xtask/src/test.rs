//! `cargo xtask test`: the README's test command.

use zt_testkit::Durability;

use crate::codegen;
use crate::postgres::TestServer;
use crate::shell::{cargo, has_cargo_subcommand, run as run_step};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let (flags, filter) = match args.iter().position(|arg| arg == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (args, &[][..]),
    };
    let mut lint = true;
    for flag in flags {
        match flag.as_str() {
            "--no-lint" => lint = false,
            other => {
                return Err(format!(
                    "unknown flag `{other}`; usage: cargo xtask test [--no-lint] [-- FILTER...]"
                ));
            }
        }
    }
    if lint {
        run_step("fmt check", cargo().args(["fmt", "--all", "--", "--check"]))?;
        // The schema check is `tests/schema.rs`, in the suites below.
        eprintln!("xtask: generated files check");
        codegen::write_or_check(true)?;
        run_step(
            "clippy",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }

    let server = TestServer::start(Durability::Fast)?;
    let mut tests = cargo();
    if has_cargo_subcommand("nextest") {
        tests.args(["nextest", "run", "--workspace", "--all-features", "--no-fail-fast"]);
    } else {
        tests.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
    }
    if !filter.is_empty() {
        tests.arg("--").args(filter);
    }
    server.export(&mut tests);
    run_step("tests on SQLite and PostgreSQL", &mut tests)?;

    if filter.is_empty() {
        let mut doctests = cargo();
        doctests.args(["test", "--workspace", "--all-features", "--doc"]);
        server.export(&mut doctests);
        run_step("doctests", &mut doctests)?;
    }
    drop(server);
    Ok(())
}
