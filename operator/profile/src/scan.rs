//! A run of consecutive inputs: every file read in parallel, their parts folded in input
//! order into a [`Partial`].

use crate::check::Checks;
use crate::partial::Partial;
use crate::read::{self, Context, internal};
use crate::{Error, Format, Input};
use ciclo_core::expectations::Expectations;
use futures::StreamExt as _;
use object_store::ObjectStore;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Reads `inputs`, the version's inputs from index `first` on.
pub(crate) async fn run(
    store: Arc<dyn ObjectStore>,
    inputs: Vec<Input>,
    first: usize,
    format: Option<Format>,
    expectations: Option<&Expectations>,
) -> Result<Partial, Error> {
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
    let formats = inputs
        .iter()
        .map(|i| format.or_else(|| Format::from_path(&i.relative)))
        .collect();
    let ctx = Arc::new(Context {
        store,
        inputs,
        first,
        formats,
        checks: Checks::new(expectations),
        cpu: Arc::new(Semaphore::new(parallelism + 1)),
        parallelism,
    });
    let mut folded = Partial::new(first, ctx.checks.columns().len());
    // At most `parallelism` files at once, their parts taken in input order: memory holds a
    // few parts, never one per file, and the first offence is the first in input order.
    let mut parts = futures::stream::iter(0..ctx.inputs.len())
        .map(|file| tokio::spawn(read::file(ctx.clone(), file)))
        .buffered(parallelism);
    let mut file = 0;
    while let Some(part) = parts.next().await {
        let mut part = part.map_err(internal)??;
        part.renumber(first);
        folded.add(&ctx, file, part);
        file += 1;
    }
    Ok(folded)
}
