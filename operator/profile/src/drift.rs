//! How far a column's distribution moved between two profiles.
//!
//! Both measures compare two discrete distributions over the same bins:
//! - numbers: the baseline's histogram bins, the outer two open-ended (so values beyond the
//!   baseline's range land in them), each side's share per bin read from its own KLL sketch's
//!   CDF at the baseline's edges;
//! - text and booleans: one bin per value among either profile's most frequent values, plus
//!   one for all other values.
//!
//! The distances are [`ciclo_core::distance`]'s: PSI, Jensen-Shannon and L-infinity.

use crate::profile::{ColumnProfile, Profile};
use crate::sketch::Kll;
use crate::types;
use ciclo_core::expectations::{ColumnType, DriftLimit, DriftMeasure};
use datasketches::common::SearchCriteria;
use datasketches::kll::KllFloat;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub use ciclo_core::distance::EPSILON;

/// One column's drift against the limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ColumnDrift {
    pub column: String,
    pub measure: DriftMeasure,
    pub distance: f64,
    pub max_distance: f64,
    /// Whether the distance is above the limit.
    pub exceeded: bool,
}

/// The drift of every column the limit names (or, when it names none, of every integer,
/// float, text and boolean column the two profiles share). Timestamps are left out unless
/// named: time moves on, so their distribution always drifts. A column is left out when
/// either profile lacks it, when its kinds differ (numbers against text), or when a numeric
/// column has no sketch (no values); the expectations report missing columns themselves.
pub fn drift(limit: &DriftLimit, baseline: &Profile, current: &Profile) -> Vec<ColumnDrift> {
    let names: Vec<&str> = if limit.columns.is_empty() {
        baseline
            .columns
            .iter()
            .filter(|c| c.type_ != ColumnType::Timestamp)
            .map(|c| c.name.as_str())
            .collect()
    } else {
        limit.columns.iter().map(String::as_str).collect()
    };
    names
        .into_iter()
        .filter_map(|name| {
            let (b, c) = (baseline.column(name)?, current.column(name)?);
            let (p, q) = shares(b, c)?;
            let distance = ciclo_core::distance::distance(limit.measure, &p, &q);
            Some(ColumnDrift {
                column: name.to_string(),
                measure: limit.measure,
                distance,
                max_distance: limit.max_distance,
                exceeded: distance > limit.max_distance,
            })
        })
        .collect()
}

/// Each side's share of values per bin.
fn shares(baseline: &ColumnProfile, current: &ColumnProfile) -> Option<(Vec<f64>, Vec<f64>)> {
    match (
        types::is_numeric(baseline.type_),
        types::is_numeric(current.type_),
    ) {
        (true, true) => {
            let (b, c) = (baseline.sketch()?, current.sketch()?);
            let edges = &baseline.histogram.as_ref()?.edges;
            Some((bin_shares(&b, edges)?, bin_shares(&c, edges)?))
        }
        (false, false) => Some(category_shares(baseline, current)),
        _ => None,
    }
}

/// The sketch's share of values in each bin of `edges`, the outer bins open-ended. A
/// baseline with one value gets three bins: below, at and above it.
pub(crate) fn bin_shares(sketch: &Kll, edges: &[f64]) -> Option<Vec<f64>> {
    let at = |x: f64| KllFloat::<f64>::new(x).ok();
    let cdf = if edges.len() < 3 || edges[0] >= edges[edges.len() - 1] {
        let v = at(edges[0])?;
        let below = sketch.rank(&v, SearchCriteria::Exclusive)?;
        let through = sketch.rank(&v, SearchCriteria::Inclusive)?;
        vec![below, through, 1.0]
    } else {
        let inner: Vec<_> = edges[1..edges.len() - 1]
            .iter()
            .map(|&e| at(e))
            .collect::<Option<_>>()?;
        sketch.cdf(&inner, SearchCriteria::Exclusive).ok()??
    };
    let mut previous = 0.0;
    Some(
        cdf.into_iter()
            .map(|c| {
                let share = (c - previous).max(0.0);
                previous = c;
                share
            })
            .collect(),
    )
}

/// Shares per frequent value of either profile, and of all other values.
fn category_shares(baseline: &ColumnProfile, current: &ColumnProfile) -> (Vec<f64>, Vec<f64>) {
    let values: BTreeSet<&str> = baseline
        .top_values
        .iter()
        .chain(&current.top_values)
        .map(|v| v.value.as_str())
        .collect();
    let side = |profile: &ColumnProfile| {
        let total = profile.count.max(1) as f64;
        let mut listed = 0;
        let mut shares: Vec<f64> = values
            .iter()
            .map(|value| {
                let count = profile
                    .top_values
                    .iter()
                    .find(|v| v.value == *value)
                    .map_or(0, |v| v.count);
                listed += count;
                count as f64 / total
            })
            .collect();
        shares.push(profile.count.saturating_sub(listed) as f64 / total);
        shares
    };
    (side(baseline), side(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::ColumnStats;
    use crate::profile::{ValueCount, column_profile};
    use arrow::array::Float64Array;
    use ciclo_core::distance::{jensen_shannon, l_infinity, psi};

    #[test]
    fn psi_matches_a_hand_computed_value() {
        // (0.4-0.5)ln(0.8) + (0.6-0.5)ln(1.2) = 0.1 ln 1.5
        let d = psi(&[0.5, 0.5], &[0.4, 0.6]);
        assert!((d - 0.1 * 1.5f64.ln()).abs() < 1e-12, "{d}");
        // An empty bin counts as EPSILON: (1e-4 - 0.5) ln(2e-4) + (1 - 0.5) ln(2).
        let d = psi(&[0.5, 0.5], &[0.0, 1.0]);
        let hand = (EPSILON - 0.5) * (EPSILON / 0.5).ln() + 0.5 * 2f64.ln();
        assert!((d - hand).abs() < 1e-12, "{d}");
        assert_eq!(psi(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
    }

    #[test]
    fn jensen_shannon_matches_hand_computed_values() {
        // Disjoint distributions are as far apart as can be.
        assert!((jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        assert_eq!(jensen_shannon(&[0.2, 0.8], &[0.2, 0.8]), 0.0);
        // p = (1, 0), q = (½, ½): m = (¾, ¼); JSD = ½ log2(4/3) + ½ (¼ log2(2/3) + ¼ log2 2).
        let hand: f64 = 0.5 * (4.0f64 / 3.0).log2()
            + 0.5 * (0.5 * (0.5f64 / 0.75).log2() + 0.5 * (0.5f64 / 0.25).log2());
        let d = jensen_shannon(&[1.0, 0.0], &[0.5, 0.5]);
        assert!((d - hand.sqrt()).abs() < 1e-12, "{d} vs {}", hand.sqrt());
    }

    /// Every measure against SciPy 1.17.1's, computed apart from this code:
    /// `entropy(q, p) + entropy(p, q)` (PSI is the symmetric Kullback-Leibler divergence, in
    /// nats), `jensenshannon(p, q, base=2)` and `chebyshev(p, q)`.
    #[test]
    fn every_measure_matches_scipy() {
        // p, q, and SciPy's PSI, Jensen-Shannon and L-infinity distances.
        type Case<'a> = (&'a [f64], &'a [f64], f64, f64, f64);
        let cases: [Case; 3] = [
            (
                &[0.1, 0.2, 0.3, 0.4],
                &[0.25, 0.25, 0.25, 0.25],
                0.22821740957339182,
                0.20050332253142814,
                0.15,
            ),
            (
                &[0.5, 0.3, 0.15, 0.05],
                &[0.05, 0.15, 0.3, 0.5],
                2.280270737862625,
                0.5874040618421424,
                0.45,
            ),
            (
                &[0.7, 0.2, 0.1],
                &[0.6, 0.25, 0.15],
                0.04684550095384453,
                0.09173994971856486,
                0.1,
            ),
        ];
        for (p, q, scipy_psi, scipy_js, scipy_linf) in cases {
            let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
            assert!(
                close(psi(p, q), scipy_psi),
                "PSI {p:?} {q:?}: {}",
                psi(p, q)
            );
            let js = jensen_shannon(p, q);
            assert!(close(js, scipy_js), "JS {p:?} {q:?}: {js}");
            let linf = l_infinity(p, q);
            assert!(close(linf, scipy_linf), "L∞ {p:?} {q:?}: {linf}");
            // Symmetric, and 0 from a distribution to itself.
            assert!(close(l_infinity(q, p), linf) && close(jensen_shannon(q, p), js));
            assert_eq!(
                (psi(p, p), jensen_shannon(p, p), l_infinity(p, p)),
                (0.0, 0.0, 0.0)
            );
        }
        assert_eq!(l_infinity(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
    }

    fn numeric(name: &str, values: Vec<f64>) -> ColumnProfile {
        let mut stats = ColumnStats::new(ColumnType::Float, values.len() as u64, 1);
        stats.add(&Float64Array::from(values), &mut Vec::new());
        column_profile(name.into(), &mut stats)
    }

    fn text(name: &str, counts: &[(&str, u64)]) -> ColumnProfile {
        let mut p = numeric(name, vec![]);
        p.type_ = ColumnType::String;
        p.count = counts.iter().map(|c| c.1).sum();
        p.top_values = counts
            .iter()
            .map(|(v, c)| ValueCount {
                value: v.to_string(),
                count: *c,
            })
            .collect();
        p
    }

    fn limit(measure: DriftMeasure, columns: &[&str]) -> DriftLimit {
        DriftLimit {
            measure,
            max_distance: 0.1,
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn numeric_drift_bins_both_sketches_on_the_baseline_edges() {
        // Baseline 0..100 (5 per bin of width 5); current shifted right by half the range:
        // its values 50..150 fill the upper ten bins of the baseline, the last one open-ended.
        let baseline = numeric("x", (0..100).map(f64::from).collect());
        let shifted = numeric("x", (50..150).map(f64::from).collect());
        let b = baseline.sketch().unwrap();
        let edges = &baseline.histogram.as_ref().unwrap().edges;
        let p = bin_shares(&b, edges).unwrap();
        assert_eq!(p.len(), 20);
        assert!(p.iter().all(|&s| (s - 0.05).abs() < 1e-9), "{p:?}");
        let q = bin_shares(&shifted.sketch().unwrap(), edges).unwrap();
        // Current values 50..=94 fall into bins 10..=18 (5 each); 95..=149 into bin 19.
        assert!(q[..10].iter().all(|&s| s == 0.0));
        assert!((q[19] - 0.55).abs() < 1e-9, "{q:?}");
        let hand = 10.0 * (EPSILON - 0.05) * (EPSILON / 0.05).ln()
            + 9.0 * 0.0
            + (0.55 - 0.05) * (0.55f64 / 0.05).ln();
        let base = Profile {
            rows: 100,
            columns: vec![baseline.clone()],
        };
        let cur = Profile {
            rows: 100,
            columns: vec![shifted],
        };
        let d = drift(&limit(DriftMeasure::Psi, &[]), &base, &cur);
        assert_eq!(d.len(), 1);
        assert!(
            (d[0].distance - hand).abs() < 1e-9,
            "{} vs {hand}",
            d[0].distance
        );
        assert!(d[0].exceeded);
        let same = drift(&limit(DriftMeasure::JensenShannon, &["x"]), &base, &base);
        assert_eq!(same[0].distance, 0.0);
        assert!(!same[0].exceeded);
    }

    #[test]
    fn categorical_drift_compares_value_frequencies() {
        let base = Profile {
            rows: 4,
            columns: vec![text("c", &[("a", 2), ("b", 2)])],
        };
        let cur = Profile {
            rows: 4,
            columns: vec![text("c", &[("a", 4)])],
        };
        // Bins a, b, other: p = (½, ½, 0), q = (1, 0, 0).
        let d = drift(&limit(DriftMeasure::JensenShannon, &[]), &base, &cur);
        let hand = jensen_shannon(&[0.5, 0.5, 0.0], &[1.0, 0.0, 0.0]);
        assert!((d[0].distance - hand).abs() < 1e-12);
        let d = drift(&limit(DriftMeasure::Psi, &[]), &base, &cur);
        let hand = (1.0 - 0.5) * 2f64.ln() + (EPSILON - 0.5) * (EPSILON / 0.5).ln();
        assert!((d[0].distance - hand).abs() < 1e-12);
        // a's share moved from ½ to 1 (and b's from ½ to 0): half a point.
        let d = drift(&limit(DriftMeasure::LInfinity, &[]), &base, &cur);
        assert_eq!(
            (d[0].measure, d[0].distance),
            (DriftMeasure::LInfinity, 0.5)
        );
        assert!(d[0].exceeded, "over the limit of 0.1");
    }

    #[test]
    fn columns_missing_or_of_other_kinds_are_left_out() {
        let base = Profile {
            rows: 3,
            columns: vec![numeric("x", vec![1.0, 2.0, 3.0]), text("y", &[("a", 3)])],
        };
        let cur = Profile {
            rows: 3,
            columns: vec![text("x", &[("a", 3)])],
        };
        assert!(drift(&limit(DriftMeasure::Psi, &[]), &base, &cur).is_empty());
        assert!(drift(&limit(DriftMeasure::Psi, &["nope"]), &base, &cur).is_empty());
    }
}
