//! The whole dataset: the partials of all its inputs folded in order, then what only the
//! whole can show (columns' final types and conflicts, missing columns, unmet expectations,
//! too few rows) and every column's profile.

use crate::check::{self, At, Checks, Seen};
use crate::partial::Partial;
use crate::profile::{self, Profile};
use crate::{Error, Format, Input, Outcome};
use ciclo_core::expectations::Expectations;

/// Folds `parts`, which must cover `inputs` in order, and finishes the profile.
pub(crate) fn finish(
    parts: Vec<Partial>,
    inputs: &[Input],
    format: Option<Format>,
    expectations: Option<&Expectations>,
) -> Result<Outcome, Error> {
    let checks = Checks::new(expectations);
    let mut next = 0;
    for part in &parts {
        if part.first() != next || part.expectations() != checks.columns().len() {
            return Err(Error::Parts(format!(
                "a part of inputs {}..{} checked against {} column expectations does not follow inputs 0..{next} checked against {}",
                part.first(),
                part.first() + part.files(),
                part.expectations(),
                checks.columns().len()
            )));
        }
        next += part.files();
    }
    if next != inputs.len() {
        return Err(Error::Parts(format!(
            "the parts cover {next} of {} inputs",
            inputs.len()
        )));
    }
    let mut parts = parts.into_iter();
    let mut all = parts
        .next()
        .unwrap_or_else(|| Partial::new(0, checks.columns().len()));
    for part in parts {
        all.absorb(part);
    }
    Ok(outcome(all, inputs, format, &checks))
}

fn outcome(all: Partial, files: &[Input], format: Option<Format>, checks: &Checks) -> Outcome {
    let mut failures: Vec<(At, usize, String)> = Vec::new();
    let mut columns = Vec::with_capacity(all.columns.len());
    for column in all.columns {
        let name = column.name.clone();
        let (stats, conflicts) = column.resolve(files);
        columns.push((name, stats));
        failures.extend(conflicts.into_iter().map(|c| {
            let at = At {
                file: c.file,
                number: 0,
            };
            // After the file's own failures at the same place, in schema order, as when
            // files were folded one by one.
            (at, 1 + c.position, c.message)
        }));
    }
    failures.extend(all.failures.into_iter().map(|(at, m)| (at, 0, m)));
    // Stable: a file's own failures at one place keep their order.
    failures.sort_by_key(|(at, order, _)| (*at, *order));

    let describe = |at: At| {
        let word = match format.or_else(|| Format::from_path(&files[at.file].relative)) {
            Some(Format::Parquet) => "row",
            _ => "line",
        };
        format!("{} {word} {}", files[at.file].relative, at.number)
    };
    let seen: Vec<Seen<'_>> = checks
        .columns()
        .iter()
        .zip(&all.missing)
        .map(|(expectation, missing)| {
            let merged = columns
                .iter()
                .find(|(name, _)| *name == expectation.name)
                .map(|(_, stats)| stats);
            Seen {
                type_: merged.map(|c| c.type_),
                unsupported: all.unsupported.get(&expectation.name).map(String::as_str),
                count: merged.map_or(0, |c| c.count),
                missing_from: missing
                    .iter()
                    .map(|&f| files[f].relative.as_str())
                    .collect(),
                missing_everywhere: missing.len() == all.tables,
            }
        })
        .collect();
    let finals = check::final_failures(
        &checks.expectations,
        all.rows,
        &seen,
        &all.offences,
        &describe,
    );
    drop(seen);
    let mut failures: Vec<String> = failures.into_iter().map(|(_, _, m)| m).collect();
    failures.extend(finals);
    let columns = columns
        .into_iter()
        .map(|(name, mut stats)| profile::column_profile(name, &mut stats))
        .collect();
    Outcome {
        profile: Profile {
            rows: all.rows,
            columns,
        },
        failures,
    }
}
