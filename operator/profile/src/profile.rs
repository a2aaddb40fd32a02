//! The profile of a dataset version, as written to `profile.json`.

use crate::column::{ColumnStats, QuantileState, Summary};
use crate::sketch::{self, Kll};
use ciclo_core::expectations::ColumnType;
use datasketches::common::SearchCriteria;
use serde::{Deserialize, Serialize};

/// The quantiles every numeric column reports.
pub const QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

/// Bins of every numeric column's histogram, equal-width between its min and max.
pub const HISTOGRAM_BINS: usize = 20;

/// The most frequent values a text or boolean column reports.
pub const TOP_VALUES: usize = 100;

/// Rows and per-column statistics of a dataset version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

impl Profile {
    /// The column of that name, if the dataset has it.
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Statistics of one column. Numbers (integer, float, timestamp as epoch seconds) have
/// exact min, max, mean and std, quantiles and a histogram from a KLL sketch; text and
/// booleans have their most frequent values (see the crate docs for when counts are exact).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: ColumnType,
    /// Non-null values.
    pub count: u64,
    /// Nulls; for numeric columns also NaN and ±infinity.
    pub nulls: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Distinct non-null values: exact for booleans and for text columns with at most 1000
    /// distinct values, otherwise a HyperLogLog estimate (about 1.6 % standard error).
    pub distinct: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<Quantile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_values: Vec<ValueCount>,
    /// The column's KLL quantile sketch (Apache DataSketches serialization, base64), so that
    /// a later version's drift can be measured against this profile alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kll_sketch: Option<String>,
}

impl ColumnProfile {
    /// The decoded quantile sketch, if the column has one.
    pub(crate) fn sketch(&self) -> Option<Kll> {
        self.kll_sketch.as_deref().and_then(sketch::decode)
    }
}

/// The value below which a fraction `q` of the column's values lie.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Quantile {
    pub q: f64,
    pub value: f64,
}

/// Counts of values in equal-width bins: bin `i` holds values in `[edges[i], edges[i+1])`,
/// the last bin also its upper edge. Counts come from the quantile sketch (exact below a few
/// hundred values, within its rank error above).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

/// A value and how many rows hold it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

/// The public profile of a merged accumulator.
pub(crate) fn column_profile(name: String, stats: &mut ColumnStats) -> ColumnProfile {
    stats.close();
    let mut profile = ColumnProfile {
        name,
        type_: stats.type_,
        count: stats.count,
        nulls: stats.nulls,
        min: None,
        max: None,
        mean: None,
        std: None,
        distinct: 0,
        quantiles: Vec::new(),
        histogram: None,
        top_values: Vec::new(),
        kll_sketch: None,
    };
    match &stats.summary {
        Summary::Numeric {
            moments,
            quantiles,
            distinct,
        } => {
            profile.min = moments.min();
            profile.max = moments.max();
            profile.mean = moments.mean();
            profile.std = moments.std();
            profile.distinct = estimate(distinct.estimate(), stats.count);
            if let (QuantileState::Closed(kll), Some(min), Some(max)) =
                (quantiles, moments.min(), moments.max())
                && !kll.is_empty()
            {
                profile.quantiles = quantiles_of(kll);
                profile.histogram = Some(histogram(kll, min, max, stats.count));
                profile.kll_sketch = Some(sketch::encode(kll));
            }
        }
        Summary::Text { top, distinct } => {
            profile.distinct = match top.exact_distinct() {
                Some(exact) => exact,
                None => estimate(distinct.estimate(), stats.count),
            };
            profile.top_values = top
                .top(TOP_VALUES)
                .into_iter()
                .map(|(value, count)| ValueCount { value, count })
                .collect();
        }
        Summary::Boolean { trues, falses } => {
            profile.distinct = u64::from(*trues > 0) + u64::from(*falses > 0);
            let mut top = vec![
                ValueCount {
                    value: "true".into(),
                    count: *trues,
                },
                ValueCount {
                    value: "false".into(),
                    count: *falses,
                },
            ];
            top.retain(|v| v.count > 0);
            top.sort_by_key(|v| std::cmp::Reverse(v.count));
            profile.top_values = top;
        }
    }
    profile
}

/// An HLL estimate as a count: never more than the values seen, never zero when any were.
fn estimate(estimate: f64, count: u64) -> u64 {
    (estimate.round() as u64).clamp(u64::from(count > 0), count)
}

fn quantiles_of(kll: &Kll) -> Vec<Quantile> {
    let values = kll
        .quantiles(&QUANTILES, SearchCriteria::Inclusive)
        .ok()
        .flatten()
        .unwrap_or_default();
    QUANTILES
        .iter()
        .zip(values)
        .map(|(&q, v)| Quantile { q, value: *v })
        .collect()
}

/// Equal-width bins between the exact min and max; each bin's count is the sketch's share
/// of values below its upper edge, rounded cumulatively so that the counts add up to `count`.
pub(crate) fn histogram(kll: &Kll, min: f64, max: f64, count: u64) -> Histogram {
    let width = (max - min) / HISTOGRAM_BINS as f64;
    let mut edges: Vec<f64> = (0..HISTOGRAM_BINS)
        .map(|i| min + width * i as f64)
        .collect();
    edges.push(max);
    let increasing = edges.windows(2).all(|w| w[0] < w[1]);
    if !increasing {
        // One value (or a range too narrow to split): one bin holds everything.
        return Histogram {
            edges: vec![min, max],
            counts: vec![count],
        };
    }
    let inner: Vec<_> = edges[1..HISTOGRAM_BINS]
        .iter()
        .filter_map(|&e| datasketches::kll::KllFloat::<f64>::new(e).ok())
        .collect();
    let cdf = kll
        .cdf(&inner, SearchCriteria::Exclusive)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut counts = Vec::with_capacity(HISTOGRAM_BINS);
    let mut below = 0u64;
    for fraction in cdf {
        let cumulative = ((fraction * count as f64).round() as u64).clamp(below, count);
        counts.push(cumulative - below);
        below = cumulative;
    }
    Histogram { edges, counts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};

    #[test]
    fn numeric_profiles_have_exact_moments_and_sketched_quantiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let mut stats = ColumnStats::new(ColumnType::Float, 100, 1);
        stats.add(&Float64Array::from(values), &mut Vec::new());
        let p = column_profile("x".into(), &mut stats);
        assert_eq!((p.count, p.nulls), (100, 0));
        assert_eq!((p.min, p.max, p.mean), (Some(1.0), Some(100.0), Some(50.5)));
        // Sample variance of 1..=100 is 100 * 101 / 12.
        assert!((p.std.unwrap() - (100.0f64 * 101.0 / 12.0).sqrt()).abs() < 1e-9);
        assert_eq!(p.distinct, 100);
        let median = p.quantiles.iter().find(|q| q.q == 0.5).unwrap().value;
        assert_eq!(median, 50.0);
        let h = p.histogram.unwrap();
        assert_eq!(h.edges.len(), HISTOGRAM_BINS + 1);
        assert_eq!((h.edges[0], h.edges[HISTOGRAM_BINS]), (1.0, 100.0));
        assert_eq!(h.counts.iter().sum::<u64>(), 100);
        // Bin 0 is [1, 5.95): values 1..=5.
        assert_eq!(h.counts[0], 5);
        assert!(p.kll_sketch.is_some());
    }

    #[test]
    fn a_constant_column_has_one_bin() {
        let mut stats = ColumnStats::new(ColumnType::Float, 3, 1);
        stats.add(&Float64Array::from(vec![2.0; 3]), &mut Vec::new());
        let h = column_profile("x".into(), &mut stats).histogram.unwrap();
        assert_eq!((h.edges, h.counts), (vec![2.0, 2.0], vec![3]));
    }

    #[test]
    fn text_profiles_list_values_by_frequency() {
        let mut stats = ColumnStats::new(ColumnType::String, 4, 1);
        let a = StringArray::from(vec![Some("b"), Some("a"), Some("b"), None]);
        stats.add(&a, &mut Vec::new());
        let p = column_profile("s".into(), &mut stats);
        assert_eq!((p.count, p.nulls, p.distinct), (3, 1, 2));
        assert_eq!(
            p.top_values[0],
            ValueCount {
                value: "b".into(),
                count: 2
            }
        );
        assert_eq!(p.min, None);
    }

    #[test]
    fn profiles_serialize_in_camel_case_and_round_trip() {
        let mut stats = ColumnStats::new(ColumnType::Integer, 3, 1);
        stats.add(
            &arrow::array::Int64Array::from(vec![1, 2, 3]),
            &mut Vec::new(),
        );
        let profile = Profile {
            rows: 3,
            columns: vec![column_profile("n".into(), &mut stats)],
        };
        let json = serde_json::to_value(&profile).unwrap();
        assert_eq!(json["columns"][0]["type"], "integer");
        assert!(json["columns"][0]["kllSketch"].is_string());
        let back: Profile = serde_json::from_value(json).unwrap();
        assert_eq!(back, profile);
    }
}
