//! The accumulator of one column: what a unit of work (a file, a parquet row group) learns
//! about it, mergeable with other units' accumulators of the same column.

use crate::freq::TopValues;
use crate::moments::Moments;
use crate::sketch::{Distinct, Kll, Quantiles};
use crate::types;
use crate::values;
use arrow::array::{Array, AsArray};
use ciclo_core::expectations::ColumnType;

/// What is known of one column.
#[derive(Debug)]
pub(crate) struct ColumnStats {
    pub type_: ColumnType,
    /// Non-null values (for numbers: finite values).
    pub count: u64,
    /// Nulls, and for numbers NaN and ±infinity, which no statistic can place.
    pub nulls: u64,
    pub summary: Summary,
}

#[derive(Debug)]
pub(crate) enum Summary {
    Numeric {
        moments: Moments,
        quantiles: QuantileState,
        distinct: Distinct,
    },
    Text {
        top: TopValues,
        distinct: Distinct,
    },
    Boolean {
        trues: u64,
        falses: u64,
    },
}

/// A unit samples into its [`Quantiles`]; once the unit is done, only the sketch remains.
#[derive(Debug)]
pub(crate) enum QuantileState {
    Open(Box<Quantiles>),
    Closed(Kll),
}

impl QuantileState {
    fn close(&mut self) -> &mut Kll {
        if let QuantileState::Open(q) = self {
            let q = std::mem::replace(q, Box::new(Quantiles::new(0, 0)));
            *self = QuantileState::Closed(q.finish());
        }
        match self {
            QuantileState::Closed(k) => k,
            QuantileState::Open(_) => unreachable!("closed above"),
        }
    }

    /// The sketch, once closed.
    #[cfg(test)]
    pub fn sketch(&self) -> Option<&Kll> {
        match self {
            QuantileState::Closed(k) => Some(k),
            QuantileState::Open(_) => None,
        }
    }
}

impl ColumnStats {
    /// An empty accumulator for a unit expected to hold about `expected_rows` rows; `seed`
    /// makes the unit's sampling reproducible.
    pub fn new(type_: ColumnType, expected_rows: u64, seed: u64) -> Self {
        let summary = match type_ {
            ColumnType::Integer | ColumnType::Float | ColumnType::Timestamp => Summary::Numeric {
                moments: Moments::default(),
                quantiles: QuantileState::Open(Box::new(Quantiles::new(expected_rows, seed))),
                distinct: Distinct::new(),
            },
            ColumnType::String => Summary::Text {
                top: TopValues::default(),
                distinct: Distinct::new(),
            },
            ColumnType::Boolean => Summary::Boolean {
                trues: 0,
                falses: 0,
            },
        };
        ColumnStats {
            type_,
            count: 0,
            nulls: 0,
            summary,
        }
    }

    /// Revises how many rows the unit is expected to hold (csv and jsonl learn it from their
    /// first batch).
    pub fn expect(&mut self, expected_rows: u64) {
        if let Summary::Numeric {
            quantiles: QuantileState::Open(q),
            ..
        } = &mut self.summary
        {
            q.expect(expected_rows);
        }
    }

    /// Adds a batch of this column. `numbers` is scratch space reused between batches.
    pub fn add(&mut self, array: &dyn Array, numbers: &mut Vec<f64>) {
        let rows = array.len() as u64;
        match &mut self.summary {
            Summary::Numeric {
                moments,
                quantiles,
                distinct,
            } => {
                let values = values::numbers(array, numbers);
                let before = moments.n;
                moments.add(&values);
                let finite = moments.n - before;
                self.count += finite;
                self.nulls += rows - finite;
                if let QuantileState::Open(q) = quantiles {
                    q.offer(&values);
                }
                distinct.offer_numbers(&values);
            }
            Summary::Text { top, distinct } => {
                let mut count = 0;
                values::each_text(array, |value, n| {
                    count += n;
                    if top.add(value, n) {
                        distinct.offer_text(value);
                    }
                });
                self.count += count;
                self.nulls += rows - count;
            }
            Summary::Boolean { trues, falses } => {
                if let Some(b) = array.as_boolean_opt() {
                    let t = b.true_count() as u64;
                    let valid = rows - b.null_count() as u64;
                    *trues += t;
                    *falses += valid - t;
                    self.count += valid;
                    self.nulls += rows - valid;
                }
            }
        }
    }

    /// Ends the unit: sampling stops, the sketch stays.
    pub fn close(&mut self) {
        if let Summary::Numeric { quantiles, .. } = &mut self.summary {
            quantiles.close();
        }
    }

    /// Adds another unit's accumulator of the same column. The caller has checked that the
    /// types unify (see [`types::unify`]); a column with no values adopts the other's type.
    pub fn merge(&mut self, mut other: ColumnStats) {
        other.close();
        if self.count == 0 && other.count > 0 {
            other.nulls += self.nulls;
            *self = other;
            return;
        }
        self.nulls += other.nulls;
        if other.count == 0 {
            return;
        }
        self.count += other.count;
        if let Some(unified) = types::unify(self.type_, other.type_) {
            self.type_ = unified;
        }
        match (&mut self.summary, other.summary) {
            (
                Summary::Numeric {
                    moments,
                    quantiles,
                    distinct,
                },
                Summary::Numeric {
                    moments: m,
                    quantiles: mut q,
                    distinct: d,
                },
            ) => {
                moments.merge(&m);
                let _ = quantiles.close().merge(q.close());
                distinct.merge(&d);
            }
            (
                Summary::Text { top, distinct },
                Summary::Text {
                    top: t,
                    distinct: d,
                },
            ) => {
                top.merge(t);
                distinct.merge(&d);
            }
            (
                Summary::Boolean { trues, falses },
                Summary::Boolean {
                    trues: t,
                    falses: f,
                },
            ) => {
                *trues += t;
                *falses += f;
            }
            // Callers merge only unifiable types, and those share a summary kind.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};

    #[test]
    fn numbers_count_nulls_and_non_finite_values_as_nulls() {
        let mut c = ColumnStats::new(ColumnType::Float, 10, 1);
        let mut buf = Vec::new();
        c.add(
            &Float64Array::from(vec![Some(1.0), None, Some(f64::NAN), Some(3.0)]),
            &mut buf,
        );
        assert_eq!((c.count, c.nulls), (2, 2));
    }

    #[test]
    fn integers_merge_into_floats_as_floats() {
        let mut buf = Vec::new();
        let mut a = ColumnStats::new(ColumnType::Integer, 10, 1);
        a.add(&Int64Array::from(vec![1, 2]), &mut buf);
        let mut b = ColumnStats::new(ColumnType::Float, 10, 2);
        b.add(&Float64Array::from(vec![3.0]), &mut buf);
        a.close();
        a.merge(b);
        assert_eq!(a.type_, ColumnType::Float);
        assert_eq!(a.count, 3);
        let Summary::Numeric {
            moments, quantiles, ..
        } = &a.summary
        else {
            panic!("numeric")
        };
        assert_eq!(moments.mean(), Some(2.0));
        assert_eq!(quantiles.sketch().unwrap().n(), 3);
    }

    #[test]
    fn an_all_null_column_takes_the_type_of_the_column_it_merges_with() {
        let mut buf = Vec::new();
        let mut empty = ColumnStats::new(ColumnType::String, 10, 1);
        empty.add(&StringArray::from(vec![None::<&str>, None]), &mut buf);
        let mut ints = ColumnStats::new(ColumnType::Integer, 10, 2);
        ints.add(&Int64Array::from(vec![5]), &mut buf);
        empty.merge(ints);
        assert_eq!(
            (empty.type_, empty.count, empty.nulls),
            (ColumnType::Integer, 1, 2)
        );
    }

    #[test]
    fn booleans_count_both_values() {
        let mut buf = Vec::new();
        let mut c = ColumnStats::new(ColumnType::Boolean, 10, 1);
        c.add(
            &BooleanArray::from(vec![Some(true), Some(false), None, Some(true)]),
            &mut buf,
        );
        let Summary::Boolean { trues, falses } = c.summary else {
            panic!("boolean")
        };
        assert_eq!((trues, falses, c.count, c.nulls), (2, 1, 3, 1));
    }
}
