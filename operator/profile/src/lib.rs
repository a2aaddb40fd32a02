//! Column profiles of a dataset version, its expectations and its drift.
//!
//! [`profile`] reads a version's files (csv, parquet, jsonl) from an object store with
//! arrow-rs, and in one pass over the rows:
//! - profiles every column: type, non-null count, nulls, exact min, max, mean and standard
//!   deviation for numbers (timestamps as epoch seconds), a distinct count (HyperLogLog),
//!   quantiles and an equal-width histogram from a KLL sketch, and the most frequent values
//!   of text and boolean columns (exact counts up to 1000 distinct values, a frequent-items
//!   sketch beyond, see `freq`);
//! - checks the Dataset's expectations on every row, exactly, so that a failure names the
//!   first offending file and line (csv, jsonl) or row (parquet);
//! - reports what is wrong with the data itself: malformed rows, unknown formats, columns
//!   whose type differs between files.
//!
//! [`drift`] compares two profiles column by column (PSI or Jensen-Shannon distance).
//!
//! A version can also be profiled in shares: [`profile_part`] reads a contiguous range of its
//! inputs into a [`Partial`] (JSON, to hand to another worker), and [`merge`] folds the
//! partials of all ranges into the outcome [`profile`] gives. Counts, moments, types,
//! failures and distinct counts come out identical; quantiles and histograms agree within
//! the KLL sketch's error, as do the most frequent values of a text column once it has more
//! than 1000 distinct values (see `freq`).
//!
//! Work runs in parallel: files at once, and parquet row groups (or slices of their columns)
//! at once, on tokio's blocking pool, never more units than cores plus one. csv and jsonl
//! stream through in batches of 8192 rows; parquet holds one unit's column chunks at a time
//! (a unit's compressed bytes are capped at 64 MiB by slicing columns). The sketches are
//! Apache DataSketches (KLL, HLL, frequent items), mergeable across units; the KLL is fed
//! through a sampler on large units (see `sketch` for why and for the error it adds).
#![forbid(unsafe_code)]

mod bins;
mod check;
mod column;
mod column_fold;
mod drift;
mod finish;
mod format;
mod freq;
mod moments;
mod part;
mod partial;
mod profile;
mod read;
mod scan;
mod sketch;
mod stats_serde;
mod types;
mod values;

pub use bins::Baseline;
pub use drift::{ColumnDrift, EPSILON, drift};
pub use format::Format;
pub use partial::Partial;
pub use profile::{
    ColumnProfile, HISTOGRAM_BINS, Histogram, Profile, QUANTILES, Quantile, TOP_VALUES, ValueCount,
};

use ciclo_core::expectations::Expectations;
use object_store::ObjectStore;
use std::sync::Arc;

/// One file of a dataset version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Where the file is in the store.
    pub location: object_store::path::Path,
    /// The path users see in messages (relative to the dataset's source).
    pub relative: String,
    /// Its size in bytes, as listed (parquet reads its footer from the end without asking).
    pub size: u64,
}

/// A version's profile, and what is wrong with its data.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Rows and per-column statistics.
    pub profile: Profile,
    /// Problems a user can act on, each naming the file and line, row or column: malformed
    /// rows, unknown formats, conflicting column types, unmet expectations, an empty dataset.
    /// Empty when the version is valid.
    pub failures: Vec<String>,
}

/// Why a profile could not be made at all (as opposed to data that fails its checks, which
/// [`Outcome::failures`] reports).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be read: unreachable, denied, a missing object.
    #[error("the source cannot be read: {0}")]
    Source(#[from] object_store::Error),
    /// A worker task failed (panicked or was cancelled): a bug, not the data's fault.
    #[error("profiling failed: {0}")]
    Internal(String),
    /// The partials given to [`merge`] do not cover its inputs one after the other, or were
    /// checked against other expectations: a bug in the caller, or partials of another
    /// listing.
    #[error("the partial profiles do not fit together: {0}")]
    Parts(String),
}

/// Profiles `inputs` and checks them against `expectations`. `format` applies to every file;
/// without it each file's extension names its format. Fails only when the store cannot be
/// read (unreachable, denied, missing object); everything wrong with the data is in
/// [`Outcome::failures`].
pub async fn profile(
    store: Arc<dyn ObjectStore>,
    inputs: Vec<Input>,
    format: Option<Format>,
    expectations: Option<&Expectations>,
) -> Result<Outcome, Error> {
    let part = profile_part(store, inputs.clone(), 0, format, expectations).await?;
    merge(vec![part], &inputs, format, expectations)
}

/// Profiles one share of a version's inputs: `inputs` are the version's inputs from index
/// `first` on (a contiguous range of them), read and checked as [`profile`] would, but not
/// finished. Fails as [`profile`] does.
pub async fn profile_part(
    store: Arc<dyn ObjectStore>,
    inputs: Vec<Input>,
    first: usize,
    format: Option<Format>,
    expectations: Option<&Expectations>,
) -> Result<Partial, Error> {
    scan::run(store, inputs, first, format, expectations).await
}

/// Folds the partials of consecutive ranges of `inputs` (all the version's inputs, in the
/// order the partials were made with) and finishes the profile: the [`Outcome`] that
/// [`profile`] gives for `inputs` (see the crate docs for which statistics are sketched).
/// `format` and `expectations` must be those the partials were made with. Fails with
/// [`Error::Parts`] when the partials do not cover `inputs` one after the other.
pub fn merge(
    parts: Vec<Partial>,
    inputs: &[Input],
    format: Option<Format>,
    expectations: Option<&Expectations>,
) -> Result<Outcome, Error> {
    finish::finish(parts, inputs, format, expectations)
}
