//! Distances between two discrete distributions over the same bins (shares that sum to 1):
//! what Dataset drift and serving skew are measured with.
//!
//! PSI = Σ (q - p) ln(q / p), with empty bins given a share of [`EPSILON`] so that it stays
//! finite. Jensen-Shannon distance = sqrt(½ KL(p‖m) + ½ KL(q‖m)), m = (p + q) / 2, in base 2,
//! so it lies in [0, 1]. L-infinity distance = max |q - p|, in [0, 1].

use crate::expectations::DriftMeasure;

/// The share PSI gives an empty bin.
pub const EPSILON: f64 = 1e-4;

/// The distance `measure` of `q` from the baseline `p`.
pub fn distance(measure: DriftMeasure, p: &[f64], q: &[f64]) -> f64 {
    match measure {
        DriftMeasure::Psi => psi(p, q),
        DriftMeasure::JensenShannon => jensen_shannon(p, q),
        DriftMeasure::LInfinity => l_infinity(p, q),
    }
}

/// Population Stability Index of `q` against the baseline `p`.
pub fn psi(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (p.max(EPSILON), q.max(EPSILON));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Jensen-Shannon distance, base 2.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(q)
        .map(|(&p, &q)| {
            let m = (p + q) / 2.0;
            0.5 * kl(p, m) + 0.5 * kl(q, m)
        })
        .sum();
    divergence.clamp(0.0, 1.0).sqrt()
}

/// L-infinity (Chebyshev) distance: the largest difference in any one bin's share.
pub fn l_infinity(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(p, q)| (q - p).abs())
        .fold(0.0, f64::max)
}

/// Counts as shares of their sum (all zero when there are none).
pub fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        })
        .collect()
}
