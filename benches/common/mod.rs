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
