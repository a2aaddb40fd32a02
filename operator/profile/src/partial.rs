//! What a run of consecutive input files adds up to: the fold of their parts, in input order,
//! before anything that needs the whole dataset (the failures only all files can show, the
//! columns' final profiles). Partials of consecutive runs fold into the partial of them all,
//! so a version can be profiled by several workers, each over its share of the files.

use crate::check::{At, ColumnOffences};
use crate::column_fold::ColumnFold;
use crate::part::{MALFORMED_SHOWN, Part};
use crate::read::Context;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The profile of a contiguous range of a version's inputs, not yet finished: serializable
/// (JSON), so that one worker can hand it to another, and mergeable with the partials of the
/// ranges that follow it by [`crate::merge`]. Files are numbered among all the version's
/// inputs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partial {
    /// The index of its first input among all the version's inputs.
    pub(crate) first: usize,
    /// How many inputs it covers.
    pub(crate) files: usize,
    pub(crate) rows: u64,
    /// Columns in order of first appearance.
    pub(crate) columns: Vec<ColumnFold>,
    /// Where each column is in `columns`; rebuilt from it after deserialization.
    #[serde(skip)]
    index: HashMap<String, usize>,
    /// Columns of a type ciclo does not profile, with that type (as the first file gave it).
    pub(crate) unsupported: BTreeMap<String, String>,
    /// For each expectation, the files that lack its column.
    pub(crate) missing: Vec<Vec<usize>>,
    /// Files that were tables (had a schema).
    pub(crate) tables: usize,
    pub(crate) offences: Vec<ColumnOffences>,
    /// Problems with files, in input order.
    pub(crate) failures: Vec<(At, String)>,
}

impl Partial {
    /// Nothing yet of the inputs from `first` on, checked against `expectations` column
    /// expectations.
    pub(crate) fn new(first: usize, expectations: usize) -> Self {
        Partial {
            first,
            files: 0,
            rows: 0,
            columns: Vec::new(),
            index: HashMap::new(),
            unsupported: BTreeMap::new(),
            missing: vec![Vec::new(); expectations],
            tables: 0,
            offences: vec![ColumnOffences::default(); expectations],
            failures: Vec::new(),
        }
    }

    /// The index of its first input among all the version's inputs.
    pub fn first(&self) -> usize {
        self.first
    }

    /// How many inputs it covers.
    pub fn files(&self) -> usize {
        self.files
    }

    /// The rows of its inputs.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The column expectations it was checked against.
    pub(crate) fn expectations(&self) -> usize {
        self.missing.len()
    }

    /// Folds in the next input, `ctx.inputs[file]`, read into `part` (numbered among all
    /// inputs, see [`Part::renumber`]).
    pub(crate) fn add(&mut self, ctx: &Context, file: usize, part: Part) {
        let global = ctx.first + file;
        debug_assert_eq!(global, self.first + self.files, "inputs fold in order");
        self.files += 1;
        self.rows += part.rows;
        self.failures.extend(part.failures);
        let shown = part.malformed.len() as u64;
        self.failures.extend(part.malformed);
        if part.malformed_count > shown {
            let more = part.malformed_count - shown;
            self.failures.push((
                At {
                    file: global,
                    number: u64::MAX,
                },
                format!(
                    "{}: {more} more malformed rows (the first {MALFORMED_SHOWN} are listed)",
                    ctx.inputs[file].relative
                ),
            ));
        }
        let Some(schema) = part.schema else {
            return;
        };
        self.tables += 1;
        for (i, expectation) in ctx.checks.columns().iter().enumerate() {
            if !schema.iter().any(|(name, _)| *name == expectation.name) {
                self.missing[i].push(global);
            }
        }
        for (mine, theirs) in self.offences.iter_mut().zip(part.offences) {
            mine.merge(theirs);
        }
        for (position, ((name, data_type), stats)) in
            schema.into_iter().zip(part.columns).enumerate()
        {
            let Some(stats) = stats else {
                self.unsupported
                    .entry(name)
                    .or_insert_with(|| data_type.to_string());
                continue;
            };
            match self.column(&name) {
                Some(column) => column.add(stats, global, position),
                None => self.push(ColumnFold::new(name, stats, global, position)),
            }
        }
    }

    /// Folds in the partial of the inputs that follow this one's.
    pub(crate) fn absorb(&mut self, next: Partial) {
        debug_assert_eq!(
            next.first,
            self.first + self.files,
            "partials fold in order"
        );
        self.files += next.files;
        self.rows += next.rows;
        for column in next.columns {
            match self.column(&column.name) {
                Some(mine) => mine.merge(column),
                None => self.push(column),
            }
        }
        for (name, data_type) in next.unsupported {
            self.unsupported.entry(name).or_insert(data_type);
        }
        for (mine, theirs) in self.missing.iter_mut().zip(next.missing) {
            mine.extend(theirs);
        }
        self.tables += next.tables;
        for (mine, theirs) in self.offences.iter_mut().zip(next.offences) {
            mine.merge(theirs);
        }
        self.failures.extend(next.failures);
    }

    fn column(&mut self, name: &str) -> Option<&mut ColumnFold> {
        if self.index.len() != self.columns.len() {
            self.index = (self.columns.iter().enumerate())
                .map(|(i, c)| (c.name.clone(), i))
                .collect();
        }
        let &i = self.index.get(name)?;
        Some(&mut self.columns[i])
    }

    fn push(&mut self, column: ColumnFold) {
        self.index.insert(column.name.clone(), self.columns.len());
        self.columns.push(column);
    }
}
