//! A closed column accumulator as JSON, for a [`crate::Partial`] handed from one worker to
//! another: moments as numbers, every sketch in its standard (cross-language) Apache
//! DataSketches serialization as base64, exact value counts as a list.

use crate::column::{ColumnStats, QuantileState, Summary};
use crate::freq::TopValues;
use crate::moments::Moments;
use crate::sketch::{self, Distinct};
use base64::Engine as _;
use ciclo_core::expectations::ColumnType;
use datasketches::frequencies::FrequentItemsSketch;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(rename = "type")]
    type_: ColumnType,
    count: u64,
    nulls: u64,
    summary: StoredSummary,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum StoredSummary {
    Numeric {
        moments: StoredMoments,
        /// The KLL quantile sketch.
        kll: String,
        /// The HyperLogLog distinct-count sketch.
        hll: String,
    },
    Text {
        top: StoredTop,
        hll: String,
    },
    Boolean {
        trues: u64,
        falses: u64,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum StoredTop {
    /// Every value with its count, in text order so that equal states write equal JSON.
    Exact(Vec<(String, u64)>),
    /// The frequent-items sketch.
    Sketch(String),
}

/// [`Moments`] with every float kept exactly.
#[derive(Serialize, Deserialize)]
struct StoredMoments {
    n: u64,
    #[serde(with = "exact")]
    mean: f64,
    #[serde(with = "exact")]
    m2: f64,
    #[serde(with = "exact")]
    min: f64,
    #[serde(with = "exact")]
    max: f64,
}

/// A float as the text Rust reads back to the same bits: `{:?}` is the shortest text that
/// parses back exactly, and names the infinities JSON has no number for (an empty column's
/// min and max). A JSON number would do for finite values only if every reader parsed it
/// exactly, which serde_json does not promise by default.
mod exact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{x:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a number")))
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unbase64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("{what}: {e}"))
}

fn distinct(text: &str) -> Result<Distinct, String> {
    Distinct::from_bytes(&unbase64(text, "hll")?).ok_or_else(|| "hll: not a sketch".to_string())
}

impl Serialize for ColumnStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let summary = match &self.summary {
            Summary::Numeric {
                moments,
                quantiles,
                distinct,
            } => {
                // Parts hold finished files only, and a file's accumulators close with it.
                let QuantileState::Closed(kll) = quantiles else {
                    return Err(serde::ser::Error::custom(
                        "a column still sampling cannot be stored",
                    ));
                };
                StoredSummary::Numeric {
                    moments: StoredMoments {
                        n: moments.n,
                        mean: moments.mean,
                        m2: moments.m2,
                        min: moments.min,
                        max: moments.max,
                    },
                    kll: sketch::encode(kll),
                    hll: base64(&distinct.to_bytes()),
                }
            }
            Summary::Text { top, distinct } => StoredSummary::Text {
                top: match top {
                    TopValues::Exact(map) => {
                        let mut values: Vec<(String, u64)> =
                            map.iter().map(|(v, c)| (v.to_string(), *c)).collect();
                        values.sort_unstable();
                        StoredTop::Exact(values)
                    }
                    TopValues::Sketch(sketch) => StoredTop::Sketch(base64(&sketch.serialize())),
                },
                hll: base64(&distinct.to_bytes()),
            },
            Summary::Boolean { trues, falses } => StoredSummary::Boolean {
                trues: *trues,
                falses: *falses,
            },
        };
        Stored {
            type_: self.type_,
            count: self.count,
            nulls: self.nulls,
            summary,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ColumnStats {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(deserializer)?;
        let summary = match stored.summary {
            StoredSummary::Numeric { moments, kll, hll } => Summary::Numeric {
                moments: Moments {
                    n: moments.n,
                    mean: moments.mean,
                    m2: moments.m2,
                    min: moments.min,
                    max: moments.max,
                },
                quantiles: QuantileState::Closed(
                    sketch::decode(&kll)
                        .ok_or_else(|| serde::de::Error::custom("kll: not a sketch"))?,
                ),
                distinct: distinct(&hll).map_err(serde::de::Error::custom)?,
            },
            StoredSummary::Text { top, hll } => Summary::Text {
                top: match top {
                    StoredTop::Exact(values) => TopValues::Exact(
                        values
                            .into_iter()
                            .map(|(v, c)| (v.into_boxed_str(), c))
                            .collect(),
                    ),
                    StoredTop::Sketch(text) => {
                        let bytes = unbase64(&text, "top").map_err(serde::de::Error::custom)?;
                        TopValues::Sketch(Box::new(
                            FrequentItemsSketch::deserialize(&bytes)
                                .map_err(|e| serde::de::Error::custom(format!("top: {e}")))?,
                        ))
                    }
                },
                distinct: distinct(&hll).map_err(serde::de::Error::custom)?,
            },
            StoredSummary::Boolean { trues, falses } => Summary::Boolean { trues, falses },
        };
        Ok(ColumnStats {
            type_: stored.type_,
            count: stored.count,
            nulls: stored.nulls,
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::column_profile;
    use arrow::array::{BooleanArray, Float64Array, StringArray};

    fn round_trip(stats: &ColumnStats) -> ColumnStats {
        let json = serde_json::to_string(stats).unwrap();
        let back: ColumnStats = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json, "stable JSON");
        back
    }

    #[test]
    fn every_kind_of_column_survives_json_with_the_same_profile() {
        let mut buf = Vec::new();
        let mut numbers = ColumnStats::new(ColumnType::Float, 100, 1);
        numbers.add(
            &Float64Array::from(vec![Some(0.1), None, Some(1e300), Some(-2.5)]),
            &mut buf,
        );
        let mut few = ColumnStats::new(ColumnType::String, 10, 1);
        few.add(
            &StringArray::from(vec![Some("b"), Some("a"), None]),
            &mut buf,
        );
        let mut many = ColumnStats::new(ColumnType::String, 10, 1);
        let values: Vec<String> = (0..3000).map(|i| format!("v{}", i % 1500)).collect();
        many.add(&StringArray::from(values), &mut buf);
        let mut flags = ColumnStats::new(ColumnType::Boolean, 10, 1);
        flags.add(&BooleanArray::from(vec![Some(true), None]), &mut buf);
        for mut stats in [numbers, few, many, flags] {
            stats.close();
            let mut back = round_trip(&stats);
            assert_eq!(
                column_profile("c".into(), &mut back),
                column_profile("c".into(), &mut stats)
            );
        }
    }

    #[test]
    fn floats_survive_json_to_the_bit() {
        let mut stats = ColumnStats::new(ColumnType::Float, 10, 1);
        let awkward = [0.1 + 0.2, 1e-300 / 3.0, 123_456_789.123_456_79, -0.0, 1e300];
        stats.add(&Float64Array::from(awkward.to_vec()), &mut Vec::new());
        stats.close();
        let (Summary::Numeric { moments: a, .. }, Summary::Numeric { moments: b, .. }) =
            (&stats.summary, &round_trip(&stats).summary)
        else {
            panic!("numeric")
        };
        for (x, y) in [
            (a.mean, b.mean),
            (a.m2, b.m2),
            (a.min, b.min),
            (a.max, b.max),
        ] {
            assert_eq!(x.to_bits(), y.to_bits());
        }
    }

    #[test]
    fn infinite_moments_survive_json() {
        let mut empty = ColumnStats::new(ColumnType::Integer, 0, 1);
        empty.close();
        let json = serde_json::to_value(&empty).unwrap();
        assert_eq!(json["summary"]["numeric"]["moments"]["min"], "inf");
        let Summary::Numeric { moments, .. } = round_trip(&empty).summary else {
            panic!("numeric")
        };
        assert_eq!(
            (moments.min, moments.max),
            (f64::INFINITY, f64::NEG_INFINITY)
        );
    }

    #[test]
    fn an_open_accumulator_is_not_stored() {
        let open = ColumnStats::new(ColumnType::Float, 0, 1);
        assert!(serde_json::to_string(&open).is_err());
    }
}
