//! The whole dataset: every input read in parallel, their parts folded in input order.

use crate::check::{self, At, Checks, ColumnOffences, Seen};
use crate::column::ColumnStats;
use crate::part::{MALFORMED_SHOWN, Part};
use crate::profile::{self, Profile};
use crate::read::{self, Context, internal};
use crate::types;
use crate::{Error, Format, Input, Outcome};
use ciclo_core::expectations::Expectations;
use futures::StreamExt as _;
use object_store::ObjectStore;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub(crate) async fn run(
    store: Arc<dyn ObjectStore>,
    inputs: Vec<Input>,
    format: Option<Format>,
    expectations: Option<&Expectations>,
) -> Result<Outcome, Error> {
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let formats = inputs
        .iter()
        .map(|i| format.or_else(|| Format::from_path(&i.relative)))
        .collect();
    let ctx = Arc::new(Context {
        store,
        inputs,
        formats,
        checks: Checks::new(expectations),
        cpu: Arc::new(Semaphore::new(parallelism + 1)),
        parallelism,
    });
    let mut folded = Fold::new(ctx.checks.columns().len());
    // At most `parallelism` files at once, their parts taken in input order: memory holds a
    // few parts, never one per file, and the first offence is the first in input order.
    let mut parts = futures::stream::iter(0..ctx.inputs.len())
        .map(|file| tokio::spawn(read::file(ctx.clone(), file)))
        .buffered(parallelism);
    let mut file = 0;
    while let Some(part) = parts.next().await {
        folded.add(&ctx, file, part.map_err(internal)??);
        file += 1;
    }
    Ok(folded.finish(&ctx))
}

/// The parts folded so far.
struct Fold {
    rows: u64,
    /// Columns in order of first appearance, with the file their type came from.
    columns: Vec<(String, ColumnStats, usize)>,
    index: HashMap<String, usize>,
    /// Columns of a type ciclo does not profile, with that type.
    unsupported: HashMap<String, String>,
    /// For each expectation, the files that lack its column.
    missing: Vec<Vec<usize>>,
    /// Files that were tables (had a schema).
    tables: usize,
    offences: Vec<ColumnOffences>,
    failures: Vec<(At, String)>,
}

impl Fold {
    fn new(expectations: usize) -> Self {
        Fold {
            rows: 0,
            columns: Vec::new(),
            index: HashMap::new(),
            unsupported: HashMap::new(),
            missing: vec![Vec::new(); expectations],
            tables: 0,
            offences: vec![ColumnOffences::default(); expectations],
            failures: Vec::new(),
        }
    }

    fn add(&mut self, ctx: &Context, file: usize, part: Part) {
        let relative = &ctx.inputs[file].relative;
        self.rows += part.rows;
        self.failures.extend(part.failures);
        let shown = part.malformed.len() as u64;
        self.failures.extend(part.malformed);
        if part.malformed_count > shown {
            let more = part.malformed_count - shown;
            self.failures.push((
                At {
                    file,
                    number: u64::MAX,
                },
                format!("{relative}: {more} more malformed rows (the first {MALFORMED_SHOWN} are listed)"),
            ));
        }
        let Some(schema) = part.schema else {
            return;
        };
        self.tables += 1;
        for (i, expectation) in ctx.checks.columns().iter().enumerate() {
            if !schema.iter().any(|(name, _)| *name == expectation.name) {
                self.missing[i].push(file);
            }
        }
        for (mine, theirs) in self.offences.iter_mut().zip(part.offences) {
            mine.merge(theirs);
        }
        for ((name, data_type), stats) in schema.into_iter().zip(part.columns) {
            let Some(stats) = stats else {
                self.unsupported
                    .entry(name)
                    .or_insert_with(|| data_type.to_string());
                continue;
            };
            let Some(&at) = self.index.get(&name) else {
                self.index.insert(name.clone(), self.columns.len());
                self.columns.push((name, stats, file));
                continue;
            };
            let (_, existing, from) = &mut self.columns[at];
            if existing.count == 0 || stats.count == 0 {
                if existing.count == 0 && stats.count > 0 {
                    *from = file;
                }
                existing.merge(stats);
            } else if types::unify(existing.type_, stats.type_).is_some() {
                existing.merge(stats);
            } else {
                let message = format!(
                    "column \"{name}\" is {} in {} but {} in {relative}",
                    types::name(existing.type_),
                    ctx.inputs[*from].relative,
                    types::name(stats.type_),
                );
                self.failures.push((At { file, number: 0 }, message));
            }
        }
    }

    fn finish(mut self, ctx: &Context) -> Outcome {
        let files = &ctx.inputs;
        let describe = |at: At| {
            let word = match ctx.formats[at.file] {
                Some(Format::Parquet) => "row",
                _ => "line",
            };
            format!("{} {word} {}", files[at.file].relative, at.number)
        };
        let seen: Vec<Seen<'_>> = ctx
            .checks
            .columns()
            .iter()
            .zip(&self.missing)
            .map(|(expectation, missing)| {
                let merged = self
                    .index
                    .get(&expectation.name)
                    .map(|&i| &self.columns[i].1);
                Seen {
                    type_: merged.map(|c| c.type_),
                    unsupported: self.unsupported.get(&expectation.name).map(String::as_str),
                    count: merged.map_or(0, |c| c.count),
                    missing_from: missing
                        .iter()
                        .map(|&f| files[f].relative.as_str())
                        .collect(),
                    missing_everywhere: missing.len() == self.tables,
                }
            })
            .collect();
        let finals = check::final_failures(
            &ctx.checks.expectations,
            self.rows,
            &seen,
            &self.offences,
            &describe,
        );
        drop(seen);
        self.failures.sort_by_key(|(at, _)| *at);
        let mut failures: Vec<String> = self.failures.into_iter().map(|(_, m)| m).collect();
        failures.extend(finals);
        let columns = self
            .columns
            .into_iter()
            .map(|(name, mut stats, _)| profile::column_profile(name, &mut stats))
            .collect();
        Outcome {
            profile: Profile {
                rows: self.rows,
                columns,
            },
            failures,
        }
    }
}
