//! A numeric column's baseline as bins that values seen elsewhere (the requests a model
//! serves) are counted into one by one, with the baseline's own share of each: the bins the
//! drift between two versions is measured over (the baseline histogram's edges, the outer
//! two bins open-ended; below, at and above the value when the baseline has one value).
//! Counts over the same bins add up across servers, and their shares against the baseline's
//! give the same distances as drift ([`ciclo_core::distance`]).

use crate::profile::ColumnProfile;
use crate::types;

/// A column's bins and the baseline's share of values in each.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    bins: Bins,
    /// The baseline's share per bin, summing to 1.
    pub shares: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Bins {
    /// Bin `k` holds the values at or over `inner[k - 1]` and under `inner[k]`.
    Edges { inner: Vec<f64> },
    /// Below, at and above the baseline's only value.
    Point { value: f64 },
}

impl Baseline {
    /// The bins of a numeric column with values; none otherwise.
    pub fn of(column: &ColumnProfile) -> Option<Self> {
        if !types::is_numeric(column.type_) {
            return None;
        }
        let sketch = column.sketch()?;
        let edges = &column.histogram.as_ref()?.edges;
        let shares = crate::drift::bin_shares(&sketch, edges)?;
        // As `bin_shares` reads them: a single value, or edges that span nothing.
        let bins = if edges.len() < 3 || edges[0] >= edges[edges.len() - 1] {
            Bins::Point { value: edges[0] }
        } else {
            Bins::Edges {
                inner: edges[1..edges.len() - 1].to_vec(),
            }
        };
        Some(Self { bins, shares })
    }

    /// How many bins there are.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// The bin of the finite value `v`.
    pub fn bin(&self, v: f64) -> usize {
        match &self.bins {
            Bins::Edges { inner } => inner.partition_point(|e| *e <= v),
            Bins::Point { value } => match v.partial_cmp(value) {
                Some(std::cmp::Ordering::Less) => 0,
                Some(std::cmp::Ordering::Equal) => 1,
                _ => 2,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::ColumnStats;
    use crate::profile::column_profile;
    use arrow::array::Float64Array;
    use ciclo_core::distance::{distance, shares};
    use ciclo_core::expectations::{ColumnType, DriftLimit, DriftMeasure};

    fn profile(values: Vec<f64>) -> ColumnProfile {
        let mut stats = ColumnStats::new(ColumnType::Float, values.len() as u64, 7);
        stats.add(&Float64Array::from(values), &mut Vec::new());
        column_profile("x".into(), &mut stats)
    }

    #[test]
    fn values_counted_into_the_bins_measure_what_drift_measures() {
        let base: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let baseline = Baseline::of(&profile(base.clone())).unwrap();
        assert!((baseline.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // A shifted population, counted value by value as a server would.
        let served: Vec<f64> = base.iter().map(|v| v * 0.7 + 0.5).collect();
        let mut counts = vec![0u64; baseline.len()];
        for v in &served {
            counts[baseline.bin(*v)] += 1;
        }
        // Above the baseline's range: the open-ended last bin.
        assert!(counts[baseline.len() - 1] > 0);
        for measure in [
            DriftMeasure::Psi,
            DriftMeasure::JensenShannon,
            DriftMeasure::LInfinity,
        ] {
            let skew = distance(measure, &baseline.shares, &shares(&counts));
            let limit = DriftLimit {
                measure,
                max_distance: 0.1,
                columns: Vec::new(),
            };
            let of = |values: &[f64]| crate::Profile {
                rows: values.len() as u64,
                columns: vec![profile(values.to_vec())],
            };
            let drift = crate::drift(&limit, &of(&base), &of(&served));
            // Exact counts against the sketch's estimate of the same shares.
            assert!(
                (skew - drift[0].distance).abs() < 0.02 * drift[0].distance.max(0.1),
                "{measure:?}: skew {skew}, drift {}",
                drift[0].distance
            );
            assert!(skew > 0.1, "{measure:?}: {skew}");
        }
        // The same population: no skew.
        let mut same = vec![0u64; baseline.len()];
        for v in &base {
            same[baseline.bin(*v)] += 1;
        }
        let d = distance(DriftMeasure::Psi, &baseline.shares, &shares(&same));
        assert!(d < 0.01, "{d}");
    }

    #[test]
    fn a_baseline_of_one_value_has_bins_below_at_and_above_it() {
        let baseline = Baseline::of(&profile(vec![2.0; 10])).unwrap();
        assert_eq!(baseline.len(), 3);
        assert_eq!(
            [baseline.bin(1.0), baseline.bin(2.0), baseline.bin(3.0)],
            [0, 1, 2]
        );
        assert_eq!(baseline.shares, [0.0, 1.0, 0.0]);
    }
}
