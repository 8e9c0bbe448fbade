//! Timing and checking: the timed loop of the one-thread rows, the checker every read goes
//! through, and the statistics of rounds (medians) and of round trips (median, p99).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// What the reads of one contender in one round looked like.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checks {
    /// Reads checked.
    pub checked: u64,
    /// Reads whose words do not all hold one number (first ≠ last), or that do not hold the
    /// value the writer is known to have committed.
    pub torn: u64,
    /// Reads older than a read before them (values and versions only grow).
    pub backwards: u64,
    /// Reads that returned an error (mapped-state's `Contended` after its retry budget).
    pub failed: u64,
}

impl Checks {
    pub fn add(&mut self, other: &Checks) {
        self.checked += other.checked;
        self.torn += other.torn;
        self.backwards += other.backwards;
        self.failed += other.failed;
    }

    pub fn to_line(self) -> String {
        format!(
            "checked={} torn={} backwards={} failed={}",
            self.checked, self.torn, self.backwards, self.failed
        )
    }

    pub fn from_fields(get: impl Fn(&str) -> Option<u64>) -> Checks {
        Checks {
            checked: get("checked").unwrap_or(0),
            torn: get("torn").unwrap_or(0),
            backwards: get("backwards").unwrap_or(0),
            failed: get("failed").unwrap_or(0),
        }
    }
}

/// Checks a stream of reads of values that hold one number in every word and only grow.
#[derive(Debug, Default)]
pub struct Checker {
    pub checks: Checks,
    newest: u64,
}

impl Checker {
    /// Checks a read whose first and last words are `ends`. Callers pass the value through
    /// `black_box` first: a check of two words would otherwise let the compiler copy only those
    /// two words of a plain-memory value, while atomic loads are never elided.
    #[inline]
    pub fn see(&mut self, (first, last): (u64, u64)) {
        self.checks.checked += 1;
        if first != last {
            self.checks.torn += 1;
        }
        if first < self.newest {
            self.checks.backwards += 1;
        }
        self.newest = self.newest.max(first);
    }

    /// Checks a read that must be exactly `expected` (nobody else writes).
    #[inline]
    pub fn see_exact(&mut self, got: (u64, u64), expected: u64) {
        self.see(got);
        if got.0 != expected && got.0 == got.1 {
            self.checks.torn += 1;
        }
    }

    /// Checks a version (or any counter that must only grow).
    #[inline]
    pub fn see_version(&mut self, v: u64) {
        self.checks.checked += 1;
        if v < self.newest {
            self.checks.backwards += 1;
        }
        self.newest = v;
    }

    pub fn failed(&mut self) {
        self.checks.failed += 1;
    }
}

/// Runs `op` for about `round` after a warm-up of a tenth of that, in batches that grow until a
/// batch takes at least 200 µs (so the clock is read rarely); returns nanoseconds per call.
pub fn time_per_op(round: Duration, mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < round / 10 {
        for _ in 0..16 {
            op();
        }
    }
    let (mut batch, mut n, mut total) = (16u64, 0u64, Duration::ZERO);
    while total < round {
        let t = Instant::now();
        for _ in 0..batch {
            op();
        }
        let dt = t.elapsed();
        total += dt;
        n += batch;
        if dt < Duration::from_micros(200) {
            batch *= 2;
        }
    }
    black_box(total.as_nanos() as f64 / n as f64)
}

/// The median of `xs` (mean of the middle two for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The `q` quantile (0..=1) of `xs`, nearest rank; NaN when empty.
pub fn quantile(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}
