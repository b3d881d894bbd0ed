//! `cargo xtask bench [--quick | --scale]`: every performance target,
//! measured beside its raw baseline, on a throwaway PostgreSQL with its
//! default durability; writes `target/zt-bench/results.json` and
//! `BENCHMARKS.md`. `--scale` (not run in CI) instead loads 10 million rows
//! and writes the scale section of `BENCHMARKS.md`.

use zt_testkit::Durability;

use crate::postgres::TestServer;
use crate::shell::{cargo, root, run as run_step, target_dir};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mode = match args {
        [] => None,
        [flag] if flag == "--quick" || flag == "--scale" => Some(flag.as_str()),
        _ => return Err("usage: cargo xtask bench [--quick | --scale]".into()),
    };
    run_step(
        "build the benchmarks (release)",
        cargo().args(["build", "--release", "--quiet", "-p", "zt-bench"]),
    )?;
    let server = TestServer::start(Durability::Default)?;
    let url = server
        .url
        .clone()
        .ok_or("the benchmarks need PostgreSQL; ZT_SKIP_POSTGRES=1 cannot skip them")?;
    let binary = target_dir().join("release/zt-bench");
    let mut bench = std::process::Command::new(binary);
    bench
        .current_dir(root())
        .args(["--pg", &url, "--out", "target/zt-bench", "--markdown", "BENCHMARKS.md"]);
    if let Some(flag) = mode {
        bench.arg(flag);
    }
    run_step("benchmarks", &mut bench)?;
    drop(server);
    eprintln!("xtask: wrote target/zt-bench/results.json and BENCHMARKS.md");
    Ok(())
}
