//! Expectations, checked exactly on every row while the data streams by (so a failure can
//! name the first offending file and line), and on the merged profile at the end.

use crate::types;
use crate::values;
use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::DataType;
use ciclo_core::expectations::{ColumnExpectation, ColumnType, Expectations};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Where a row is: the input's index and the row's 1-based line (csv, jsonl) or row number
/// (parquet). Ordering them finds the first offence across files. In a [`crate::Partial`]
/// the file is numbered among all the version's inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct At {
    pub file: usize,
    pub number: u64,
}

/// How the rows of a batch are numbered in their file.
pub(crate) enum RowNumbers<'a> {
    /// The line each row starts on.
    Lines(&'a [u64]),
    /// Consecutive rows from this 1-based row number.
    From(u64),
}

impl RowNumbers<'_> {
    pub fn at(&self, i: usize) -> u64 {
        match self {
            RowNumbers::Lines(lines) => lines[i],
            RowNumbers::From(first) => first + i as u64,
        }
    }
}

/// Rows that break one rule: how many, and the first of them with its value.
#[derive(Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Offence {
    pub count: u64,
    pub first: Option<(At, String)>,
}

impl Offence {
    fn add(&mut self, at: At, value: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.as_ref().is_none_or(|(first, _)| at < *first) {
            self.first = Some((at, value()));
        }
    }

    pub fn merge(&mut self, other: Offence) {
        self.count += other.count;
        if let Some((at, value)) = other.first
            && self.first.as_ref().is_none_or(|(first, _)| at < *first)
        {
            self.first = Some((at, value));
        }
    }
}

/// The offences against one column expectation.
#[derive(Default, Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ColumnOffences {
    pub nulls: Offence,
    pub range: Offence,
    pub allowed: Offence,
}

impl ColumnOffences {
    pub fn merge(&mut self, other: ColumnOffences) {
        self.nulls.merge(other.nulls);
        self.range.merge(other.range);
        self.allowed.merge(other.allowed);
    }
}

/// The expectations, ready to test rows against.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    pub expectations: Expectations,
    allowed: Vec<HashSet<String>>,
}

impl Checks {
    pub fn new(expectations: Option<&Expectations>) -> Self {
        let expectations = expectations.cloned().unwrap_or_default();
        let allowed = expectations
            .columns
            .iter()
            .map(|c| c.allowed_values.iter().cloned().collect())
            .collect();
        Checks {
            expectations,
            allowed,
        }
    }

    pub fn columns(&self) -> &[ColumnExpectation] {
        &self.expectations.columns
    }

    /// Tests a batch's rows. `fields[i]` is the schema index of expectation `i`'s column in
    /// this file, if the file has it.
    pub fn check_batch(
        &self,
        fields: &[Option<usize>],
        columns: &[ArrayRef],
        rows: &RowNumbers<'_>,
        file: usize,
        offences: &mut [ColumnOffences],
        numbers: &mut Vec<f64>,
    ) {
        for (i, expectation) in self.expectations.columns.iter().enumerate() {
            let Some(array) = fields[i].map(|f| columns[f].as_ref()) else {
                continue;
            };
            let found = types::logical(array.data_type());
            let numeric = found.is_some_and(types::is_numeric);
            let at = |row: usize| At {
                file,
                number: rows.at(row),
            };
            let out = &mut offences[i];
            let ranged = expectation.min.is_some() || expectation.max.is_some();
            if numeric && (!expectation.nullable || ranged) {
                let values = values::numbers(array, numbers);
                let (lo, hi) = (
                    expectation.min.unwrap_or(f64::NEG_INFINITY),
                    expectation.max.unwrap_or(f64::INFINITY),
                );
                for (row, &x) in values.iter().enumerate() {
                    if !x.is_finite() {
                        if !expectation.nullable {
                            out.nulls.add(at(row), || "null".into());
                        }
                    } else if ranged && (x < lo || x > hi) {
                        out.range.add(at(row), || number_text(x));
                    }
                }
            } else if !expectation.nullable && array.null_count() > 0 {
                for row in 0..array.len() {
                    if array.is_null(row) {
                        out.nulls.add(at(row), || "null".into());
                    }
                }
            }
            if !expectation.allowed_values.is_empty() {
                let allowed = &self.allowed[i];
                if let DataType::Utf8 = array.data_type() {
                    for (row, v) in array.as_string::<i32>().iter().enumerate() {
                        if let Some(v) = v
                            && !allowed.contains(v)
                        {
                            out.allowed.add(at(row), || v.to_string());
                        }
                    }
                } else {
                    for (row, v) in values::texts(array).into_iter().enumerate() {
                        if let Some(v) = v
                            && !allowed.contains(&v)
                        {
                            out.allowed.add(at(row), || v);
                        }
                    }
                }
            }
        }
    }
}

fn number_text(x: f64) -> String {
    format!("{x}")
}

/// What the end of the scan knows about one expected column.
pub(crate) struct Seen<'a> {
    /// The merged type, if any file has the column (and ciclo profiles its type).
    pub type_: Option<ColumnType>,
    /// The arrow type, for columns ciclo does not profile.
    pub unsupported: Option<&'a str>,
    /// Non-null values over all files.
    pub count: u64,
    /// Files (paths) that lack the column, among those that have a schema.
    pub missing_from: Vec<&'a str>,
    /// Whether every file with a schema lacks it.
    pub missing_everywhere: bool,
}

/// The failures only the whole dataset can show.
pub(crate) fn final_failures(
    expectations: &Expectations,
    rows: u64,
    seen: &[Seen<'_>],
    offences: &[ColumnOffences],
    describe: &dyn Fn(At) -> String,
) -> Vec<String> {
    let mut failures = Vec::new();
    if rows == 0 {
        failures.push("the dataset has no rows".to_string());
    } else if let Some(min_rows) = expectations.min_rows
        && rows < min_rows
    {
        failures.push(format!(
            "the dataset has {rows} rows, fewer than minRows {min_rows}"
        ));
    }
    for ((expectation, seen), offences) in expectations.columns.iter().zip(seen).zip(offences) {
        let name = &expectation.name;
        if seen.missing_everywhere {
            failures.push(format!("column \"{name}\" is missing"));
            continue;
        }
        if !seen.missing_from.is_empty() {
            failures.push(format!(
                "column \"{name}\" is missing from {}",
                list(&seen.missing_from)
            ));
        }
        if let Some(arrow_type) = seen.unsupported {
            failures.push(format!(
                "column \"{name}\" has type {arrow_type}, which ciclo does not check"
            ));
            continue;
        }
        // A column with no values has no type to contradict (csv infers text for it).
        if let (Some(expected), Some(found)) = (expectation.type_, seen.type_)
            && seen.count > 0
            && !types::satisfies(found, expected)
        {
            failures.push(format!(
                "column \"{name}\": expected {}, found {}",
                types::name(expected),
                types::name(found)
            ));
        }
        let ranged = expectation.min.is_some() || expectation.max.is_some();
        if ranged
            && seen.count > 0
            && let Some(found) = seen.type_
            && !types::is_numeric(found)
        {
            failures.push(format!(
                "column \"{name}\": min and max apply to numbers, found {}",
                types::name(found)
            ));
        }
        let o = &offences.nulls;
        if let Some((at, _)) = &o.first {
            failures.push(format!(
                "column \"{name}\" is not nullable but has {} null{}; the first in {}",
                o.count,
                plural(o.count),
                describe(*at)
            ));
        }
        let o = &offences.range;
        if let Some((at, value)) = &o.first {
            failures.push(format!(
                "column \"{name}\": {} value{} outside {}; the first is {value} in {}",
                o.count,
                plural(o.count),
                range_text(expectation.min, expectation.max),
                describe(*at)
            ));
        }
        let o = &offences.allowed;
        if let Some((at, value)) = &o.first {
            failures.push(format!(
                "column \"{name}\": {} value{} not among the allowed values; the first is {value:?} in {}",
                o.count,
                plural(o.count),
                describe(*at)
            ));
        }
    }
    failures
}

fn range_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("[{lo}, {hi}]"),
        (Some(lo), None) => format!("[{lo}, ∞)"),
        (None, Some(hi)) => format!("(-∞, {hi}]"),
        (None, None) => String::new(),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Names at most three files, then how many more.
pub(crate) fn list(files: &[&str]) -> String {
    const SHOWN: usize = 3;
    let mut text = files
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" and {} more files", files.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn expectation(name: &str) -> ColumnExpectation {
        ColumnExpectation {
            name: name.into(),
            nullable: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_first_offence_across_units_wins() {
        let mut a = Offence::default();
        a.add(At { file: 1, number: 2 }, || "late".into());
        let mut b = Offence::default();
        b.add(At { file: 0, number: 9 }, || "early".into());
        b.add(
            At {
                file: 0,
                number: 10,
            },
            || "later".into(),
        );
        a.merge(b);
        assert_eq!(a.count, 3);
        assert_eq!(a.first.unwrap().1, "early");
    }

    #[test]
    fn rows_are_checked_for_nulls_range_and_allowed_values() {
        let expectations = Expectations {
            columns: vec![
                ColumnExpectation {
                    nullable: false,
                    min: Some(0.0),
                    max: Some(10.0),
                    ..expectation("n")
                },
                ColumnExpectation {
                    allowed_values: vec!["a".into(), "b".into()],
                    ..expectation("s")
                },
                ColumnExpectation {
                    allowed_values: vec!["1".into()],
                    ..expectation("i")
                },
            ],
            min_rows: None,
        };
        let checks = Checks::new(Some(&expectations));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![
                Some(1.0),
                None,
                Some(11.0),
                Some(-1.0),
            ])),
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("c"),
                None,
                Some("d"),
            ])),
            Arc::new(Int64Array::from(vec![1, 2, 1, 1])),
        ];
        let mut offences = vec![ColumnOffences::default(); 3];
        let lines = [2, 3, 5, 6];
        checks.check_batch(
            &[Some(0), Some(1), Some(2)],
            &columns,
            &RowNumbers::Lines(&lines),
            0,
            &mut offences,
            &mut Vec::new(),
        );
        assert_eq!(offences[0].nulls.count, 1);
        assert_eq!(offences[0].nulls.first.as_ref().unwrap().0.number, 3);
        assert_eq!(offences[0].range.count, 2);
        assert_eq!(offences[0].range.first.as_ref().unwrap().1, "11");
        assert_eq!(offences[1].allowed.count, 2);
        assert_eq!(offences[1].allowed.first.as_ref().unwrap().1, "c");
        assert_eq!(offences[2].allowed.count, 1);
        assert_eq!(offences[2].allowed.first.as_ref().unwrap().0.number, 3);
    }

    #[test]
    fn long_file_lists_are_shortened() {
        assert_eq!(list(&["a", "b"]), "a, b");
        assert_eq!(list(&["a", "b", "c", "d", "e"]), "a, b, c and 2 more files");
    }
}
