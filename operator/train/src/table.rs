//! From the version's record batches to the numbers a model is fitted on: one row-major
//! matrix of the feature columns as f64 and the target, with every row's global index (its
//! place among all rows of all files in manifest order) so the split can be a function of the
//! row alone.
//!
//! Features are numeric columns: integers, floats, decimals and booleans (as 0 and 1). Listed
//! features must be numeric in every file; with none listed, the features are the columns
//! every file has and has as numbers, and the rest (text, dates) are left out and reported.
//! One-hot encoding text columns is left for later: it makes the model's inputs differ from
//! the data's columns, which `ciclo serve` would then have to reproduce.
//!
//! A row with a null (or NaN or infinite) value in a used column is dropped and counted.

use crate::failure::Failed;
use crate::spec::TrainerSpec;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use ciclo_model::Class;

/// The rows a model can be fitted on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    /// The feature columns, in the order of the matrix's columns.
    pub features: Vec<String>,
    /// `rows × features.len()` values, row after row.
    pub x: Vec<f64>,
    pub target: Target,
    /// Each kept row's index among all rows of the version (dropped ones included).
    pub index: Vec<u64>,
    /// Rows left out for a null in a used column.
    pub dropped: u64,
    /// Columns left out of the default features because they are not numeric everywhere.
    pub skipped: Vec<String>,
}

/// The target column of the kept rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// A regression's numbers.
    Numbers(Vec<f64>),
    /// A classifier's labels.
    Classes(Vec<Class>),
}

impl Table {
    pub fn rows(&self) -> usize {
        self.index.len()
    }

    /// The features of kept row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let width = self.features.len();
        &self.x[i * width..(i + 1) * width]
    }
}

/// One file's batches, as parsed.
pub(crate) struct File {
    pub path: String,
    pub batches: Vec<RecordBatch>,
}

impl File {
    fn column_type(&self, name: &str) -> Option<&DataType> {
        let batch = self.batches.first()?;
        let i = batch.schema_ref().index_of(name).ok()?;
        Some(batch.schema_ref().field(i).data_type())
    }
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Boolean
}

/// Builds the table of `files` (in manifest order) for `spec`.
pub(crate) fn build(files: &[File], spec: &TrainerSpec) -> Result<Table, Failed> {
    // Files without rows have no schema to speak of (a csv with just a header).
    let with_rows: Vec<&File> = files.iter().filter(|f| !f.batches.is_empty()).collect();
    if with_rows.is_empty() {
        return Err(Failed::training("the dataset version has no rows"));
    }
    let mut columns: Vec<String> = Vec::new();
    for f in &with_rows {
        for field in f.batches[0].schema_ref().fields() {
            if !columns.contains(field.name()) {
                columns.push(field.name().clone());
            }
        }
    }
    let known = |name: &str, what: &str| {
        if columns.iter().any(|c| c == name) {
            Ok(())
        } else {
            Err(Failed::invalid(format!(
                "unknown {what} column {name:?}; the columns are: {}",
                columns.join(", ")
            )))
        }
    };
    known(&spec.target, "target")?;
    let (features, skipped) = if spec.features.is_empty() {
        let (mut features, mut skipped) = (Vec::new(), Vec::new());
        for c in columns.iter().filter(|c| **c != spec.target) {
            let everywhere = with_rows
                .iter()
                .all(|f| f.column_type(c).is_some_and(is_numeric));
            if everywhere {
                features.push(c.clone());
            } else {
                skipped.push(c.clone());
            }
        }
        if features.is_empty() {
            return Err(Failed::invalid(format!(
                "no numeric column besides the target {:?} to use as a feature; the columns are: {}",
                spec.target,
                columns.join(", ")
            )));
        }
        (features, skipped)
    } else {
        for f in &spec.features {
            known(f, "feature")?;
        }
        (spec.features.clone(), Vec::new())
    };

    let classifies = spec.algorithm.classifies();
    let mut table = Table {
        x: Vec::new(),
        target: if classifies {
            Target::Classes(Vec::new())
        } else {
            Target::Numbers(Vec::new())
        },
        index: Vec::new(),
        dropped: 0,
        skipped,
        features,
    };
    let mut next_index = 0u64;
    for file in files {
        for batch in &file.batches {
            append(&mut table, file, batch, spec, &mut next_index)?;
        }
    }
    Ok(table)
}

/// Appends the rows of one batch.
fn append(
    table: &mut Table,
    file: &File,
    batch: &RecordBatch,
    spec: &TrainerSpec,
    next_index: &mut u64,
) -> Result<(), Failed> {
    let column = |name: &str| {
        batch.column_by_name(name).ok_or_else(|| {
            Failed::invalid(format!(
                "column {name:?} is missing from file {}",
                file.path
            ))
        })
    };
    let mut features = Vec::with_capacity(table.features.len());
    for name in &table.features {
        let array = column(name)?;
        if !is_numeric(array.data_type()) {
            return Err(Failed::invalid(format!(
                "feature column {name:?} is not numeric ({} in file {}); list only numeric features",
                array.data_type(),
                file.path
            )));
        }
        features.push(numbers(array, name, &file.path)?);
    }
    let target = column(&spec.target)?;
    let labels = match &table.target {
        Target::Numbers(_) => {
            if !is_numeric(target.data_type()) {
                return Err(Failed::invalid(format!(
                    "the target column {:?} is not numeric ({} in file {}): {:?} predicts a number",
                    spec.target,
                    target.data_type(),
                    file.path,
                    spec.algorithm
                )));
            }
            Labels::Numbers(numbers(target, &spec.target, &file.path)?)
        }
        Target::Classes(_) => Labels::Classes(classes(target, &spec.target, &file.path)?),
    };
    'rows: for row in 0..batch.num_rows() {
        let index = *next_index;
        *next_index += 1;
        let start = table.x.len();
        for values in &features {
            match values.get(row) {
                Some(v) => table.x.push(v),
                None => {
                    table.x.truncate(start);
                    table.dropped += 1;
                    continue 'rows;
                }
            }
        }
        let kept = match (&labels, &mut table.target) {
            (Labels::Numbers(ys), Target::Numbers(out)) => ys.get(row).map(|y| out.push(y)),
            (Labels::Classes(ys), Target::Classes(out)) => {
                ys[row].clone().map(|class| out.push(class))
            }
            _ => unreachable!("the labels are read for the table's kind of target"),
        };
        if kept.is_none() {
            table.x.truncate(start);
            table.dropped += 1;
            continue;
        }
        table.index.push(index);
    }
    Ok(())
}

/// A numeric column as f64, non-finite values as missing.
struct Numbers(arrow::array::Float64Array);

impl Numbers {
    fn get(&self, row: usize) -> Option<f64> {
        Some(self.0.value(row)).filter(|v| self.0.is_valid(row) && v.is_finite())
    }
}

enum Labels {
    Numbers(Numbers),
    Classes(Vec<Option<Class>>),
}

fn numbers(array: &ArrayRef, name: &str, path: &str) -> Result<Numbers, Failed> {
    let cast = cast(array, &DataType::Float64)
        .map_err(|e| Failed::invalid(format!("column {name:?} of file {path} as numbers: {e}")))?;
    Ok(Numbers(cast.as_primitive::<Float64Type>().clone()))
}

/// The class labels of a column of any type: booleans, integers, floats (integral ones as
/// integers) and, for anything else, the value as text.
fn classes(array: &ArrayRef, name: &str, path: &str) -> Result<Vec<Option<Class>>, Failed> {
    let unreadable = |e: arrow::error::ArrowError| {
        Failed::invalid(format!("target column {name:?} of file {path}: {e}"))
    };
    let t = array.data_type();
    let labels = if *t == DataType::Boolean {
        let a = array.as_boolean();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| Class::Bool(a.value(i))))
            .collect()
    } else if t.is_integer() {
        let cast = cast(array, &DataType::Int64).map_err(unreadable)?;
        let a = cast.as_primitive::<Int64Type>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| Class::Int(a.value(i))))
            .collect()
    } else if t.is_numeric() {
        let cast = cast(array, &DataType::Float64).map_err(unreadable)?;
        let a = cast.as_primitive::<Float64Type>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| Class::from_f64(a.value(i))).flatten())
            .collect()
    } else {
        let cast = cast(array, &DataType::Utf8).map_err(unreadable)?;
        let a = cast.as_string::<i32>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| Class::Str(a.value(i).to_string())))
            .collect()
    };
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use ciclo_model::Algorithm;
    use std::sync::Arc;

    fn file(path: &str, columns: Vec<(&str, ArrayRef)>) -> File {
        File {
            path: path.into(),
            batches: vec![RecordBatch::try_from_iter(columns).unwrap()],
        }
    }

    fn spec(algorithm: Algorithm, target: &str, features: &[&str]) -> TrainerSpec {
        TrainerSpec {
            algorithm,
            target: target.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            test_fraction: 0.2,
        }
    }

    #[test]
    fn rows_with_nulls_in_used_columns_are_dropped_but_keep_their_index_slot() {
        let files = [
            file(
                "a.csv",
                vec![
                    (
                        "x",
                        Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])),
                    ),
                    ("b", Arc::new(BooleanArray::from(vec![true, false, true]))),
                    ("name", Arc::new(StringArray::from(vec!["p", "q", "r"]))),
                    (
                        "y",
                        Arc::new(Int64Array::from(vec![Some(0), Some(1), None])),
                    ),
                ],
            ),
            file(
                "b.csv",
                vec![
                    ("x", Arc::new(Int64Array::from(vec![7]))),
                    ("b", Arc::new(BooleanArray::from(vec![false]))),
                    ("name", Arc::new(StringArray::from(vec!["s"]))),
                    ("y", Arc::new(Float64Array::from(vec![1.0]))),
                ],
            ),
        ];
        let t = build(&files, &spec(Algorithm::DecisionTree, "y", &[])).unwrap();
        assert_eq!(t.features, vec!["x", "b"]);
        assert_eq!(t.skipped, vec!["name"]);
        assert_eq!(t.x, vec![1.0, 1.0, 7.0, 0.0]);
        assert_eq!(t.index, vec![0, 3]);
        assert_eq!(t.dropped, 2);
        // The integral float of the second file is the same class as an integer.
        assert_eq!(
            t.target,
            Target::Classes(vec![Class::Int(0), Class::Int(1)])
        );
    }

    #[test]
    fn a_listed_text_feature_is_invalid_and_named() {
        let files = [file(
            "a.csv",
            vec![
                ("name", Arc::new(StringArray::from(vec!["p"])) as ArrayRef),
                ("y", Arc::new(Int64Array::from(vec![1]))),
            ],
        )];
        let err = build(&files, &spec(Algorithm::DecisionTree, "y", &["name"])).unwrap_err();
        assert!(
            err.message
                .contains("feature column \"name\" is not numeric"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_columns_are_named_with_the_ones_there_are() {
        let files = [file(
            "a.csv",
            vec![
                ("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                ("y", Arc::new(Int64Array::from(vec![1]))),
            ],
        )];
        let err = build(&files, &spec(Algorithm::DecisionTree, "label", &[])).unwrap_err();
        assert_eq!(
            err.message,
            "unknown target column \"label\"; the columns are: x, y"
        );
        let err = build(&files, &spec(Algorithm::DecisionTree, "y", &["z"])).unwrap_err();
        assert!(
            err.message.starts_with("unknown feature column \"z\""),
            "{err:?}"
        );
    }

    #[test]
    fn a_regression_needs_a_numeric_target() {
        let files = [file(
            "a.csv",
            vec![
                ("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                ("y", Arc::new(StringArray::from(vec!["high"]))),
            ],
        )];
        let err = build(&files, &spec(Algorithm::LinearRegression, "y", &[])).unwrap_err();
        assert!(
            err.message
                .contains("the target column \"y\" is not numeric"),
            "{err:?}"
        );
        // The same column is a fine class label.
        let t = build(&files, &spec(Algorithm::LogisticRegression, "y", &[])).unwrap();
        assert_eq!(t.target, Target::Classes(vec![Class::Str("high".into())]));
    }
}
