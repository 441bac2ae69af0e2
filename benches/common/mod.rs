//! What both round-trip benches measure with: the clock the floors' hooks read, their logs,
//! and the figures printed.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The bars the overhead is held to (from the issue); printed next to the figures, not enforced.
pub const BAR_MEDIAN_MS: f64 = 30.0;
pub const BAR_P90_MS: f64 = 40.0;

/// Wall-clock nanoseconds, the clock `date +%s%N` in the floor's hooks reads.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128
}

/// The timestamps a hook log holds (a line being written is skipped until it is complete).
pub fn lines(path: &Path) -> Vec<i128> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n')?.trim().parse().ok())
        .collect()
}

pub struct Stats {
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
}

pub fn summary(name: &str, mut ms: Vec<f64>) -> Stats {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    let stats = Stats {
        median: pick(0.5),
        p90: pick(0.9),
        p99: pick(0.99),
    };
    println!(
        "{name:<42} n={:<3} min={:>7.1}ms  median={:>7.1}ms  p90={:>7.1}ms  p99={:>7.1}ms  max={:>7.1}ms",
        ms.len(),
        ms[0],
        stats.median,
        stats.p90,
        stats.p99,
        ms[ms.len() - 1]
    );
    stats
}

/// How much a difference of medians can be trusted: `b`'s median minus `a`'s, over 2,000
/// resamplings of both (each drawn with replacement, its own size). Returns the 5th and 95th
/// percentiles: the difference lies between them in 90% of resamplings. With a spread of tens
/// of milliseconds between sends, one run's difference of medians moves by a few milliseconds
/// from noise alone, and this says by how much.
#[allow(dead_code)] // one bench of the two uses it
pub fn median_difference_interval(a: &[f64], b: &[f64]) -> (f64, f64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(30);
    let mut median_of = |v: &[f64]| {
        let mut draw: Vec<f64> = (0..v.len())
            .map(|_| v[rng.random_range(0..v.len())])
            .collect();
        draw.sort_by(|x, y| x.partial_cmp(y).unwrap());
        draw[draw.len() / 2]
    };
    let mut diffs: Vec<f64> = (0..2000).map(|_| median_of(b) - median_of(a)).collect();
    diffs.sort_by(|x, y| x.partial_cmp(y).unwrap());
    (diffs[100], diffs[1899])
}

#[allow(dead_code)] // one bench of the two uses it
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
