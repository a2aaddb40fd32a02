//! What a unit of work (a csv or jsonl file, a parquet row group or a slice of its columns)
//! learns, and how the units of one file add up.

use crate::check::{At, Checks, ColumnOffences, RowNumbers};
use crate::column::ColumnStats;
use crate::types;
use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Schema};

/// Malformed rows reported one by one per file; the rest are counted in one message.
pub(crate) const MALFORMED_SHOWN: usize = 10;

/// One file's columns and what its rows showed.
#[derive(Debug, Default)]
pub(crate) struct Part {
    pub rows: u64,
    /// The file's columns (name, arrow type); `None` when the file is not a table at all
    /// (unknown format, unreadable footer, empty csv).
    pub schema: Option<Vec<(String, DataType)>>,
    /// Accumulators aligned with `schema`; `None` for types ciclo does not profile.
    pub columns: Vec<Option<ColumnStats>>,
    pub offences: Vec<ColumnOffences>,
    /// Problems with the file as a whole.
    pub failures: Vec<(At, String)>,
    /// The first malformed rows, and how many there were in all.
    pub malformed: Vec<(At, String)>,
    pub malformed_count: u64,
}

impl Part {
    /// A file that yields no table, with the reason.
    pub fn failed(at: At, message: String) -> Part {
        Part {
            failures: vec![(at, message)],
            ..Part::default()
        }
    }

    pub fn malformed(&mut self, at: At, message: String) {
        self.malformed_count += 1;
        if self.malformed.len() < MALFORMED_SHOWN {
            self.malformed.push((at, message));
        }
    }

    /// Numbers the file among all the version's inputs: readers number it within their part,
    /// whose first input is `first` among all.
    pub fn renumber(&mut self, first: usize) {
        let shift = |at: &mut At| at.file += first;
        for (at, _) in self.failures.iter_mut().chain(&mut self.malformed) {
            shift(at);
        }
        for o in &mut self.offences {
            for rule in [&mut o.nulls, &mut o.range, &mut o.allowed] {
                if let Some((at, _)) = &mut rule.first {
                    shift(at);
                }
            }
        }
    }

    /// Adds another unit of the same file (same schema).
    pub fn merge(&mut self, other: Part) {
        self.rows += other.rows;
        if self.schema.is_none() {
            self.schema = other.schema;
            self.columns
                .resize_with(self.schema.as_ref().map_or(0, Vec::len), || None);
        }
        for (mine, theirs) in self.columns.iter_mut().zip(other.columns) {
            match (mine.as_mut(), theirs) {
                (Some(m), Some(t)) => m.merge(t),
                (None, Some(t)) => *mine = Some(t),
                (_, None) => {}
            }
        }
        if self.offences.is_empty() {
            self.offences = other.offences;
        } else {
            for (mine, theirs) in self.offences.iter_mut().zip(other.offences) {
                mine.merge(theirs);
            }
        }
        self.failures.extend(other.failures);
        self.malformed.extend(other.malformed);
        self.malformed.sort_by_key(|(at, _)| *at);
        self.malformed.truncate(MALFORMED_SHOWN);
        self.malformed_count += other.malformed_count;
    }
}

/// Profiles and checks the batches of one unit of work.
pub(crate) struct Unit<'a> {
    checks: &'a Checks,
    file: usize,
    /// The file-schema index of each batch column.
    fields: Vec<usize>,
    /// Whether this unit's rows count towards the file's rows (column slices of one row
    /// group count them once).
    counts_rows: bool,
    /// For each expectation, the batch column holding its column.
    expected: Vec<Option<usize>>,
    stats: Vec<Option<ColumnStats>>,
    part: Part,
    numbers: Vec<f64>,
}

impl<'a> Unit<'a> {
    /// A unit reading `fields` (indices into the file's `schema`) of a file expected to hold
    /// about `expected_rows` rows in this unit; `seed` makes its sampling reproducible.
    pub fn new(
        checks: &'a Checks,
        file: usize,
        schema: &Schema,
        fields: Vec<usize>,
        counts_rows: bool,
        expected_rows: u64,
        seed: u64,
    ) -> Self {
        let stats = fields
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                types::logical(schema.field(f).data_type()).map(|t| {
                    ColumnStats::new(
                        t,
                        expected_rows,
                        seed.wrapping_mul(31).wrapping_add(i as u64),
                    )
                })
            })
            .collect();
        let expected = checks
            .columns()
            .iter()
            .map(|c| {
                fields
                    .iter()
                    .position(|&f| schema.field(f).name() == &c.name)
            })
            .collect();
        let part = Part {
            schema: Some(
                schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect(),
            ),
            offences: vec![ColumnOffences::default(); checks.columns().len()],
            ..Part::default()
        };
        Unit {
            checks,
            file,
            fields,
            counts_rows,
            expected,
            stats,
            part,
            numbers: Vec::new(),
        }
    }

    /// Revises the rows this unit is expected to hold.
    pub fn expect(&mut self, rows: u64) {
        for s in self.stats.iter_mut().flatten() {
            s.expect(rows);
        }
    }

    /// Profiles and checks a batch (its columns in this unit's field order).
    pub fn add(&mut self, columns: &[ArrayRef], rows: &RowNumbers<'_>) {
        let Some(first) = columns.first() else {
            return;
        };
        if self.counts_rows {
            self.part.rows += first.len() as u64;
        }
        for (stats, array) in self.stats.iter_mut().zip(columns) {
            if let Some(stats) = stats {
                stats.add(array.as_ref(), &mut self.numbers);
            }
        }
        if !self.checks.columns().is_empty() {
            self.checks.check_batch(
                &self.expected,
                columns,
                rows,
                self.file,
                &mut self.part.offences,
                &mut self.numbers,
            );
        }
    }

    /// Counts rows of a table with no columns.
    pub fn add_rows(&mut self, rows: u64) {
        if self.counts_rows {
            self.part.rows += rows;
        }
    }

    pub fn malformed(&mut self, at: u64, message: String) {
        let at = At {
            file: self.file,
            number: at,
        };
        self.part.malformed(at, message);
    }

    pub fn failure(&mut self, at: u64, message: String) {
        let at = At {
            file: self.file,
            number: at,
        };
        self.part.failures.push((at, message));
    }

    /// The unit's contribution, aligned with the file's schema.
    pub fn finish(self) -> Part {
        let mut part = self.part;
        let width = part.schema.as_ref().map_or(0, Vec::len);
        part.columns = (0..width).map(|_| None).collect();
        for (stats, field) in self.stats.into_iter().zip(self.fields) {
            if let Some(mut stats) = stats {
                stats.close();
                part.columns[field] = Some(stats);
            }
        }
        part
    }
}
