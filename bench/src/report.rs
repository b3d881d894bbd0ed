//! `results.json` and `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::process::Command;

use diesel::{Connection, PgConnection, RunQueryDsl};

/// Whether more or less is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

/// A row's target: a ratio to its baseline, or a bound in its unit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// zt's figure over the baseline's at most this.
    RatioAtMost(f64),
    /// zt's figure over the baseline's at least this.
    RatioAtLeast(f64),
    /// zt's figure at most this, in the row's unit.
    AtMost(f64),
    /// No target: the row shows where a cost lies.
    None,
}

impl Target {
    fn describe(self, unit: &str) -> String {
        match self {
            Self::RatioAtMost(ratio) => format!("ratio ≤ {ratio}"),
            Self::RatioAtLeast(ratio) => format!("ratio ≥ {ratio}"),
            Self::AtMost(value) => format!("≤ {value} {unit}"),
            Self::None => "none (it shows where the cost lies)".to_owned(),
        }
    }
}

/// One measured row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    name: &'static str,
    /// The lowest and highest ratio of one round's figures, for rows
    /// measured in paired rounds.
    ratio_spread: Option<(f64, f64)>,
    /// The median of the per-round ratios, for rows measured in paired rounds.
    round_ratio: Option<f64>,
    unit: &'static str,
    zt: f64,
    baseline: f64,
    baseline_name: &'static str,
    direction: Direction,
    target: Target,
}

impl Row {
    pub(crate) fn new(
        name: &'static str,
        unit: &'static str,
        zt: f64,
        baseline: f64,
        baseline_name: &'static str,
        direction: Direction,
        target: Target,
    ) -> Self {
        Self {
            name,
            ratio_spread: None,
            round_ratio: None,
            unit,
            zt,
            baseline,
            baseline_name,
            direction,
            target,
        }
    }

    /// For a row measured in paired rounds: its ratio becomes the median of
    /// the rounds' ratios, each zt's round over the baseline's round beside
    /// it, so that a drift of the machine between rounds, which both sides of
    /// a pair share, cancels; their lowest and highest are kept as the spread.
    pub(crate) fn with_round_ratios(mut self, ratios: &[f64]) -> Self {
        self.round_ratio = Some(crate::measure::median_ratio(ratios));
        self.ratio_spread = Some(crate::measure::spread(ratios));
        self
    }

    /// zt over baseline: the median of the rounds' ratios where there are
    /// rounds.
    fn ratio(&self) -> f64 {
        if let Some(ratio) = self.round_ratio {
            ratio
        } else if self.baseline == 0.0 {
            f64::NAN
        } else {
            self.zt / self.baseline
        }
    }

    /// Whether the target is met; `None` for a row without one.
    fn met(&self) -> Option<bool> {
        match self.target {
            Target::RatioAtMost(limit) => Some(self.ratio() <= limit),
            Target::RatioAtLeast(limit) => Some(self.ratio() >= limit),
            Target::AtMost(limit) => Some(self.zt <= limit),
            Target::None => None,
        }
    }
}

/// The results as a JSON list of objects with `name`, `unit`, `zt`,
/// `baseline` and `ratio` (zt over baseline), plus what the baseline is,
/// which direction is better, the target and whether it is met (null for a
/// row without a target).
pub(crate) fn json(rows: &[Row]) -> String {
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut value = serde_json::json!({
                "name": row.name,
                "unit": row.unit,
                "zt": round(row.zt),
                "baseline": round(row.baseline),
                "ratio": round(row.ratio()),
                "baseline_is": row.baseline_name,
                "better": if row.direction == Direction::LowerIsBetter { "lower" } else { "higher" },
                "target": row.target.describe(row.unit),
                "met": row.met(),
            });
            if let Some((low, high)) = row.ratio_spread {
                value["ratio_spread"] = serde_json::json!([round(low), round(high)]);
            }
            value
        })
        .collect();
    serde_json::to_string_pretty(&list).unwrap_or_default()
}

fn round(value: f64) -> f64 {
    if value.is_finite() {
        (value * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

fn figure(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// What the numbers were measured on.
pub(crate) struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    rustc: String,
    postgres: String,
    sqlite: String,
}

impl Machine {
    pub(crate) fn read(pg_url: &str) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split_once(':'))
            .map_or("unknown CPU".to_owned(), |(_, name)| name.trim().to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .next()
                    .map(|line| line.split_whitespace().nth(1).unwrap_or("0").to_owned())
            })
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or("unknown".to_owned(), |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0));
        let run = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        #[derive(diesel::QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        let postgres = PgConnection::establish(pg_url)
            .ok()
            .and_then(|mut conn| {
                diesel::sql_query("SELECT current_setting('server_version') AS version")
                    .get_result::<Version>(&mut conn)
                    .ok()
            })
            .map_or("unknown".to_owned(), |v| v.version);
        let sqlite = diesel::SqliteConnection::establish(":memory:")
            .ok()
            .and_then(|mut conn| {
                diesel::sql_query("SELECT sqlite_version() AS version")
                    .get_result::<Version>(&mut conn)
                    .ok()
            })
            .map_or("unknown".to_owned(), |v| v.version);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            memory,
            kernel: run("uname", &["-sr"]),
            rustc: run("rustc", &["--version"]),
            postgres,
            sqlite,
        }
    }
}

/// `BENCHMARKS.md`.
pub(crate) fn markdown(rows: &[Row], machine: &Machine, quick: bool) -> String {
    let mut out = String::new();
    out.push_str("<!-- Generated by `cargo xtask bench`, do not edit. -->\n\n# Benchmarks\n\n");
    let _ = writeln!(
        out,
        "Measured by `cargo xtask bench{}` on {} ({} cores, {} RAM), {}, {}; PostgreSQL {} \
         (a throwaway cluster with its default durability, on the same machine) and bundled SQLite {} \
         (WAL, `synchronous = FULL`). Each row measures zt and its raw baseline in the same run; \
         ratio is zt over baseline. Latencies are the median of per-round means; the PostgreSQL \
         latency rows alternate zt and the baseline one operation at a time on the same pooled \
         connection (one server process), since on a small VM two connections' wake-up latencies \
         can differ fourfold by where the scheduler put them. The in-transaction rows run the same number of transactions \
         per round, split over the writers; they, the batched rows and verification report the median round's throughput; each round of the \
         PostgreSQL batched row starts right after a `CHECKPOINT`, so that none lands inside one side's round, \
         and an uncounted round warms both sides first. Where a row runs \
         in paired rounds, its ratio is the median of the rounds' ratios, each zt's round over the \
         baseline's round beside it, so that a drift of the machine, which both sides of a pair share, \
         cancels; the lowest and highest of them follow it, the noise that the median hides. The zt and \
         baseline columns are each side's median round, so their quotient can differ from the ratio.\n",
        if quick { " --quick" } else { "" },
        machine.cpu,
        machine.cores,
        machine.memory,
        machine.kernel,
        machine.rustc,
        machine.postgres,
        machine.sqlite,
    );
    out.push_str("| work | unit | zt | baseline | ratio | target | met |\n|---|---|---|---|---|---|---|\n");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} ({}) | {:.2}{} | {} | {} |",
            row.name,
            row.unit,
            figure(row.zt),
            figure(row.baseline),
            row.baseline_name,
            row.ratio(),
            row.ratio_spread
                .map(|(low, high)| format!(" ({low:.2}–{high:.2})"))
                .unwrap_or_default(),
            row.target.describe(row.unit),
            match row.met() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            },
        );
    }
    out.push_str(
        "\nProfile with `perf record -a -g` around `target/release/zt-bench --only NAME` to see where the \
         time goes; the closing notes of the benchmark issue record what was found.\n",
    );
    out.push_str("\nThe raw figures are in `target/zt-bench/results.json`.\n");
    out
}

/// Where `cargo xtask soak` keeps its section of `BENCHMARKS.md`; the same
/// markers are in `xtask/src/soak.rs`.
const SOAK_BEGIN: &str = "<!-- soak: begin, written by `cargo xtask soak` -->";
const SOAK_END: &str = "<!-- soak: end -->";

/// `generated`, followed by the soak and scale sections of `existing` (the
/// file as it was), so that a benchmark run keeps the last soak's and scale
/// run's figures.
pub(crate) fn keep_soak_section(existing: &str, mut generated: String) -> String {
    for (begin, end) in [
        (SOAK_BEGIN, SOAK_END),
        (crate::scale::SCALE_BEGIN, crate::scale::SCALE_END),
    ] {
        if let Some(span) = section_span(existing, begin, end) {
            generated.push('\n');
            generated.push_str(&existing[span]);
            generated.push('\n');
        }
    }
    generated
}

/// Where the section from `begin` to `end`, both included, is in `existing`.
fn section_span(existing: &str, begin: &str, end: &str) -> Option<std::ops::Range<usize>> {
    let start = existing.find(begin)?;
    let len = existing[start..].find(end)?;
    Some(start..start + len + end.len())
}

/// `existing` with the section between `begin` and `end` replaced by
/// `section`, or with it appended.
pub(crate) fn with_section(existing: &str, begin: &str, end: &str, section: &str) -> String {
    let block = format!("{begin}\n{}\n{end}", section.trim_end());
    if let Some(span) = section_span(existing, begin, end) {
        return format!("{}{block}{}", &existing[..span.start], &existing[span.end..]);
    }
    let mut out = existing.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(&block);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soak_section_is_kept() {
        let existing = format!("old table\n\n{SOAK_BEGIN}\n## Soak\n\nfigures\n{SOAK_END}\n");
        let kept = keep_soak_section(&existing, "new table\n".to_owned());
        assert_eq!(
            kept,
            format!("new table\n\n{SOAK_BEGIN}\n## Soak\n\nfigures\n{SOAK_END}\n")
        );
        assert_eq!(keep_soak_section("old table\n", "new\n".to_owned()), "new\n");
    }

    #[test]
    fn a_row_in_rounds_reports_the_median_of_its_rounds_ratios() {
        let row = |ratios: &[f64]| {
            Row::new(
                "r",
                "events/s",
                80.0,
                100.0,
                "b",
                Direction::HigherIsBetter,
                Target::RatioAtLeast(0.9),
            )
            .with_round_ratios(ratios)
        };
        // The quotient of the columns is 0.8; the rounds say otherwise.
        let odd = row(&[0.95, 0.7, 0.92]);
        assert_eq!(odd.ratio(), 0.92);
        assert_eq!(odd.ratio_spread, Some((0.7, 0.95)));
        assert_eq!(odd.met(), Some(true));
        let even = row(&[0.8, 0.9, 1.0, 0.6]);
        assert!((even.ratio() - 0.85).abs() < 1e-12);
        assert_eq!(even.met(), Some(false));
        // Without rounds, the columns' quotient.
        let plain = Row::new("r", "us", 1.2, 1.0, "b", Direction::LowerIsBetter, Target::None);
        assert!((plain.ratio() - 1.2).abs() < 1e-12);
        assert_eq!(plain.met(), None);
    }
}
