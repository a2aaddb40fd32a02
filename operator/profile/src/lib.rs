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
mod drift;
mod format;
mod freq;
mod moments;
mod part;
mod profile;
mod read;
mod scan;
mod sketch;
mod types;
mod values;

pub use bins::Baseline;
pub use drift::{ColumnDrift, EPSILON, drift};
pub use format::Format;
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
    #[error("the source cannot be read: {0}")]
    Source(#[from] object_store::Error),
    /// A worker task failed (panicked or was cancelled): a bug, not the data's fault.
    #[error("profiling failed: {0}")]
    Internal(String),
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
    scan::run(store, inputs, format, expectations).await
}
