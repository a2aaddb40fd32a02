//! One column over a run of files, kept so that folding runs in order gives exactly what
//! folding their files in order gives.
//!
//! Folding files one by one, a column takes its type from the first file where it has
//! values; a later file whose values are of a type that does not unify with it is left out
//! and named in a failure. Which type comes first is only known once every earlier file has
//! been folded, and a shard of the files does not know them. So a fold keeps one accumulator
//! per family of unifiable types (integers and floats are one family), each with the runs of
//! files it came from, and [`ColumnFold::resolve`] picks the first family and names the files
//! of the others, as the file-by-file fold would have.

use crate::Input;
use crate::column::ColumnStats;
use crate::types;
use ciclo_core::expectations::ColumnType;
use serde::{Deserialize, Serialize};

/// What the files folded so far hold of one column.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ColumnFold {
    pub name: String,
    /// Its type in the first file that has it: the column's type if no file has a value.
    first_type: ColumnType,
    /// Nulls of the files where it has no value at all: they count whatever its type.
    empty_nulls: u64,
    /// One accumulator per family of unifiable types, in order of their first file.
    families: Vec<Family>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Family {
    stats: ColumnStats,
    /// The files it came from, in order.
    runs: Vec<Run>,
}

/// Consecutive files that hold the column, with values, at the same position of their
/// schema and of the same type: one entry for the common case of files that all look alike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    /// The first file, numbered among all the version's inputs.
    file: usize,
    files: usize,
    /// The column's index in the files' schema.
    position: usize,
    #[serde(rename = "type")]
    type_: ColumnType,
}

impl Run {
    fn start(&self) -> (usize, usize) {
        (self.file, self.position)
    }

    /// Extends the run by `next` if it follows on; returns whether it did.
    fn extend(&mut self, next: &Run) -> bool {
        let follows = self.file + self.files == next.file
            && self.position == next.position
            && self.type_ == next.type_;
        if follows {
            self.files += next.files;
        }
        follows
    }
}

/// A file left out of a column because its type conflicts with the column's: where (file,
/// the column's position in it) and the failure message.
pub(crate) struct Conflict {
    pub file: usize,
    pub position: usize,
    pub message: String,
}

impl ColumnFold {
    /// The column as it first appears, in `file` at `position`.
    pub fn new(name: String, stats: ColumnStats, file: usize, position: usize) -> Self {
        let mut fold = ColumnFold {
            name,
            first_type: stats.type_,
            empty_nulls: 0,
            families: Vec::new(),
        };
        fold.add(stats, file, position);
        fold
    }

    /// Folds in the column of the next file.
    pub fn add(&mut self, stats: ColumnStats, file: usize, position: usize) {
        if stats.count == 0 {
            self.empty_nulls += stats.nulls;
            return;
        }
        let run = Run {
            file,
            files: 1,
            position,
            type_: stats.type_,
        };
        self.add_family(Family {
            stats,
            runs: vec![run],
        });
    }

    /// Folds in the same column of the files that follow this fold's.
    pub fn merge(&mut self, other: ColumnFold) {
        self.empty_nulls += other.empty_nulls;
        for family in other.families {
            self.add_family(family);
        }
    }

    fn add_family(&mut self, family: Family) {
        let same = self
            .families
            .iter_mut()
            .find(|f| types::unify(f.stats.type_, family.stats.type_).is_some());
        let Some(mine) = same else {
            self.families.push(family);
            return;
        };
        mine.stats.merge(family.stats);
        let mut runs = family.runs.into_iter();
        if let Some(first) = runs.next()
            && !mine.runs.last_mut().is_some_and(|last| last.extend(&first))
        {
            mine.runs.push(first);
        }
        mine.runs.extend(runs);
    }

    /// The column's accumulator over every file whose values agree with its type, and a
    /// conflict for every other file with values. `inputs` are all the version's inputs.
    pub fn resolve(self, inputs: &[Input]) -> (ColumnStats, Vec<Conflict>) {
        let mut families = self.families.into_iter();
        let Some(kept) = families.next() else {
            let mut stats = ColumnStats::new(self.first_type, 0, 0);
            stats.nulls = self.empty_nulls;
            return (stats, Vec::new());
        };
        let first = kept.runs[0];
        // The file-by-file fold names the column's type as it stood when it met the file:
        // integers turn float at the first float file.
        let first_float = kept
            .runs
            .iter()
            .filter(|r| r.type_ == ColumnType::Float)
            .map(Run::start)
            .min();
        let mut conflicts = Vec::new();
        for run in families.flat_map(|f| f.runs) {
            for file in run.file..run.file + run.files {
                let type_then = if first_float.is_some_and(|f| f < (file, run.position)) {
                    ColumnType::Float
                } else {
                    first.type_
                };
                conflicts.push(Conflict {
                    file,
                    position: run.position,
                    message: format!(
                        "column \"{}\" is {} in {} but {} in {}",
                        self.name,
                        types::name(type_then),
                        inputs[first.file].relative,
                        types::name(run.type_),
                        inputs[file].relative,
                    ),
                });
            }
        }
        let mut stats = kept.stats;
        stats.nulls += self.empty_nulls;
        (stats, conflicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, Int64Array, StringArray};

    fn stats(type_: ColumnType, array: &dyn Array) -> ColumnStats {
        let mut s = ColumnStats::new(type_, 10, 1);
        s.add(array, &mut Vec::new());
        s.close();
        s
    }

    fn inputs(n: usize) -> Vec<Input> {
        (0..n)
            .map(|i| Input {
                location: format!("f{i}").into(),
                relative: format!("f{i}"),
                size: 1,
            })
            .collect()
    }

    /// The files of one column: (type, values) where a value of None is a null.
    fn files() -> Vec<ColumnStats> {
        let ints = |v: Vec<Option<i64>>| stats(ColumnType::Integer, &Int64Array::from(v));
        let floats = |v: Vec<f64>| stats(ColumnType::Float, &Float64Array::from(v));
        let text = |v: Vec<&str>| stats(ColumnType::String, &StringArray::from(v));
        vec![
            text(vec![]),
            ints(vec![None, None]),
            ints(vec![Some(1), None]),
            text(vec!["a"]),
            floats(vec![2.5]),
            text(vec!["b"]),
            ints(vec![Some(3)]),
        ]
    }

    fn fold(range: std::ops::Range<usize>) -> Option<ColumnFold> {
        let mut fold: Option<ColumnFold> = None;
        for (file, s) in files().into_iter().enumerate() {
            if !range.contains(&file) {
                continue;
            }
            match &mut fold {
                None => fold = Some(ColumnFold::new("c".into(), s, file, 0)),
                Some(f) => f.add(s, file, 0),
            }
        }
        fold
    }

    #[test]
    fn the_first_type_with_values_wins_and_later_types_name_the_type_as_it_stood() {
        let (stats, conflicts) = fold(0..7).unwrap().resolve(&inputs(7));
        // Files 2, 4 and 6 (1 + 2.5 + 3), the nulls of files 1 and 2 and of the empty file 0.
        assert_eq!(
            (stats.type_, stats.count, stats.nulls),
            (ColumnType::Float, 3, 3)
        );
        let messages: Vec<_> = conflicts.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "column \"c\" is integer in f2 but string in f3",
                "column \"c\" is float in f2 but string in f5",
            ]
        );
    }

    #[test]
    fn folds_of_consecutive_files_merge_into_the_fold_of_all() {
        let whole = fold(0..7).unwrap().resolve(&inputs(7));
        for cut in 1..7 {
            let mut left = fold(0..cut).unwrap();
            left.merge(fold(cut..7).unwrap());
            let (stats, conflicts) = left.resolve(&inputs(7));
            assert_eq!(
                (stats.type_, stats.count, stats.nulls),
                (whole.0.type_, whole.0.count, whole.0.nulls),
                "cut at {cut}"
            );
            let message =
                |c: &Vec<Conflict>| c.iter().map(|c| c.message.clone()).collect::<Vec<_>>();
            assert_eq!(message(&conflicts), message(&whole.1), "cut at {cut}");
        }
    }

    #[test]
    fn alike_files_fold_into_one_run() {
        let mut f = ColumnFold::new(
            "c".into(),
            stats(ColumnType::Integer, &Int64Array::from(vec![1])),
            0,
            2,
        );
        for file in 1..100 {
            f.add(
                stats(ColumnType::Integer, &Int64Array::from(vec![1])),
                file,
                2,
            );
        }
        let mut tail = ColumnFold::new(
            "c".into(),
            stats(ColumnType::Integer, &Int64Array::from(vec![1])),
            100,
            2,
        );
        tail.add(
            stats(ColumnType::Integer, &Int64Array::from(vec![1])),
            101,
            2,
        );
        f.merge(tail);
        assert_eq!(f.families.len(), 1);
        assert_eq!(
            f.families[0].runs,
            [Run {
                file: 0,
                files: 102,
                position: 2,
                type_: ColumnType::Integer
            }]
        );
    }
}
