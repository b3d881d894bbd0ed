//! Timing: zt and its baseline measured in alternating rounds, so that drift
//! in the machine's load hits both alike.

use std::time::{Duration, Instant};

/// What [`interleaved`] measured.
pub(crate) struct Interleaved {
    /// The median of zt's per-round mean times per operation.
    pub(crate) zt: Duration,
    /// The median of the baseline's.
    pub(crate) baseline: Duration,
    /// The lowest and highest ratio of one round of zt to the baseline's
    /// round beside it: the noise the median hides.
    /// Each round's zt mean over the baseline's mean in the same round.
    pub(crate) ratios: Vec<f64>,
}

/// The median of per-round mean times per operation of `zt` and `baseline`,
/// run alternately for `rounds` rounds of `per_round` operations each.
pub(crate) fn interleaved(
    rounds: usize,
    per_round: usize,
    mut zt: impl FnMut(usize),
    mut baseline: impl FnMut(usize),
) -> Interleaved {
    let mut zt_means = Vec::with_capacity(rounds);
    let mut baseline_means = Vec::with_capacity(rounds);
    let mut next = 0usize;
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a warm cache.
        let order: [bool; 2] = if round % 2 == 0 { [true, false] } else { [false, true] };
        for is_zt in order {
            let started = Instant::now();
            for _ in 0..per_round {
                if is_zt {
                    zt(next);
                } else {
                    baseline(next);
                }
                next += 1;
            }
            let mean = started.elapsed() / u32::try_from(per_round.max(1)).unwrap_or(u32::MAX);
            if is_zt {
                zt_means.push(mean);
            } else {
                baseline_means.push(mean);
            }
        }
    }
    summarize(zt_means, baseline_means)
}

/// [`interleaved`] for operations that each wait on a server: zt and the
/// baseline alternate one operation at a time (which goes first alternates
/// too), each timed alone, so that both meet the same moment of the
/// machine: on a small VM the wake-up latency of a server process swings
/// several-fold from one tenth of a second to the next, which whole rounds
/// of one side would catch unevenly.
pub(crate) fn interleaved_pairs(
    rounds: usize,
    per_round: usize,
    mut zt: impl FnMut(usize),
    mut baseline: impl FnMut(usize),
) -> Interleaved {
    let mut zt_means = Vec::with_capacity(rounds);
    let mut baseline_means = Vec::with_capacity(rounds);
    let mut next = 0usize;
    for _ in 0..rounds {
        let (mut zt_total, mut baseline_total) = (Duration::ZERO, Duration::ZERO);
        for i in 0..per_round {
            let mut time = |is_zt: bool| {
                let started = Instant::now();
                if is_zt {
                    zt(next);
                } else {
                    baseline(next);
                }
                started.elapsed()
            };
            // Alternate which side goes first within a pair.
            let zt_first = i % 2 == 0;
            let first = time(zt_first);
            let second = time(!zt_first);
            let (zt_time, baseline_time) = if zt_first { (first, second) } else { (second, first) };
            zt_total += zt_time;
            baseline_total += baseline_time;
            next += 1;
        }
        let per = u32::try_from(per_round.max(1)).unwrap_or(u32::MAX);
        zt_means.push(zt_total / per);
        baseline_means.push(baseline_total / per);
    }
    summarize(zt_means, baseline_means)
}

/// The medians of the per-round means, and each round's ratio to the
/// baseline's round beside it.
fn summarize(zt_means: Vec<Duration>, baseline_means: Vec<Duration>) -> Interleaved {
    let ratios: Vec<f64> = zt_means
        .iter()
        .zip(&baseline_means)
        .map(|(zt, baseline)| zt.as_secs_f64() / baseline.as_secs_f64().max(1e-12))
        .collect();
    Interleaved {
        zt: median(zt_means),
        baseline: median(baseline_means),
        ratios,
    }
}

/// The median of some per-round ratios: the middle one, or the mean of the
/// two in the middle.
pub(crate) fn median_ratio(ratios: &[f64]) -> f64 {
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The lowest and highest of some per-round ratios.
pub(crate) fn spread(ratios: &[f64]) -> (f64, f64) {
    ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), &ratio| {
            (low.min(ratio), high.max(ratio))
        })
}

pub(crate) fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// The median of some rates.
pub(crate) fn median_rate(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Items per second for `count` items in `elapsed`.
pub(crate) fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Runs `work` and returns how long it took.
pub(crate) fn timed(work: impl FnOnce()) -> Duration {
    let started = Instant::now();
    work();
    started.elapsed()
}

/// The process's peak resident set size, in bytes, from `/proc/self/status`.
pub(crate) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak resident set size to the current one (Linux 4.0+).
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
