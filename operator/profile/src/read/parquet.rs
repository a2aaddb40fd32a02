//! Parquet: the footer first, then row groups in parallel. A row group is one unit of work,
//! or several when there are fewer row groups than cores or when its column chunks are
//! large: each unit then reads a slice of the columns (balanced by compressed size), which
//! also bounds what one unit holds in memory. A unit's bytes are fetched (ranged reads, see
//! [`super::store`]) on the async side while it holds a CPU permit, then decoded, profiled
//! and checked on tokio's blocking pool.

use super::store::StoreReader;
use super::{BATCH_ROWS, Context, internal};
use crate::Error;
use crate::check::{At, ColumnOffences, RowNumbers};
use crate::part::{Part, Unit};
use crate::types;
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::errors::ParquetError;
use std::sync::Arc;

/// Compressed bytes above which a row group's columns are split over several units.
const SLICE_BYTES: u64 = 64 << 20;

/// A unit of work: some columns of one row group.
struct Task {
    id: usize,
    row_group: usize,
    /// The 1-based number of the row group's first row in the file.
    first_row: u64,
    rows: u64,
    /// Top-level field indices, ascending.
    columns: Vec<usize>,
    counts_rows: bool,
}

pub(super) async fn read(ctx: Arc<Context>, file: usize) -> Result<Part, Error> {
    let input = &ctx.inputs[file];
    let mut reader = StoreReader::new(ctx.store.clone(), input.location.clone(), input.size);
    let metadata =
        match ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await {
            Ok(metadata) => metadata,
            Err(e) => {
                let message = format!(
                    "{}: not a readable parquet file: {}",
                    input.relative,
                    data_error(e)?
                );
                return Ok(Part::failed(At { file, number: 0 }, message));
            }
        };
    let metadata = prefer_dictionaries(metadata);
    let schema = metadata.schema().clone();
    let mut part = Part {
        schema: Some(
            schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect(),
        ),
        columns: schema.fields().iter().map(|_| None).collect(),
        offences: vec![ColumnOffences::default(); ctx.checks.columns().len()],
        ..Part::default()
    };
    let tasks = plan(&metadata, &schema, ctx.parallelism);
    if tasks.is_empty() {
        // No column ciclo profiles: the footer knows the rows.
        part.rows = metadata.metadata().file_metadata().num_rows().max(0) as u64;
        return Ok(part);
    }
    let mut running = Vec::with_capacity(tasks.len());
    for task in tasks {
        let permit = ctx.cpu.clone().acquire_owned().await.map_err(internal)?;
        let mask = ProjectionMask::roots(metadata.parquet_schema(), task.columns.iter().copied());
        let fetched =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader.clone(), metadata.clone())
                .with_projection(mask)
                .with_row_groups(vec![task.row_group])
                .with_batch_size(BATCH_ROWS)
                .build();
        let fetched = match fetched {
            Ok(mut stream) => stream.next_row_group().await,
            Err(e) => Err(e),
        };
        match fetched {
            Ok(Some(rows)) => {
                let ctx = ctx.clone();
                let schema = schema.clone();
                running.push(tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    decode(&ctx, file, &schema, task, rows)
                }));
            }
            Ok(None) => {}
            Err(e) => {
                let (first, last) = (task.first_row, task.first_row + task.rows - 1);
                let message = format!(
                    "{} rows {first}-{last}: cannot be read: {}",
                    input.relative,
                    data_error(e)?
                );
                part.failures.push((
                    At {
                        file,
                        number: first,
                    },
                    message,
                ));
            }
        }
    }
    for unit in running {
        part.merge(unit.await.map_err(internal)?);
    }
    Ok(part)
}

/// Reads dictionary-encoded text columns as arrow dictionaries: their values are then
/// counted once per dictionary entry instead of hashed once per row, and never copied out
/// of the dictionary. The schema hint only changes the arrow type, so the profile (and a
/// column's logical type) stays the same.
fn prefer_dictionaries(metadata: ArrowReaderMetadata) -> ArrowReaderMetadata {
    let descriptor = metadata.parquet_schema();
    let row_groups = metadata.metadata().row_groups();
    let schema = metadata.schema();
    let mut changed = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(root, field)| {
            let text = matches!(
                field.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            let leaves: Vec<usize> = (0..descriptor.num_columns())
                .filter(|&leaf| descriptor.get_column_root_idx(leaf) == root)
                .collect();
            let dictionary = text
                && leaves.len() == 1
                && row_groups
                    .iter()
                    .all(|g| g.column(leaves[0]).dictionary_page_offset().is_some());
            if !dictionary {
                return field.as_ref().clone();
            }
            changed = true;
            let data_type =
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            field.as_ref().clone().with_data_type(data_type)
        })
        .collect();
    if !changed {
        return metadata;
    }
    let hint = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let options = ArrowReaderOptions::new().with_schema(hint);
    ArrowReaderMetadata::try_new(metadata.metadata().clone(), options).unwrap_or(metadata)
}

/// Splits the file into units: one per row group, or per slice of its columns.
fn plan(metadata: &ArrowReaderMetadata, schema: &Schema, parallelism: usize) -> Vec<Task> {
    let profiled: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| types::logical(schema.field(i).data_type()).is_some())
        .collect();
    if profiled.is_empty() {
        return Vec::new();
    }
    let descriptor = metadata.parquet_schema();
    let row_groups = metadata.metadata().row_groups();
    let mut tasks = Vec::new();
    let mut first_row = 1u64;
    for (g, row_group) in row_groups.iter().enumerate() {
        let rows = row_group.num_rows().max(0) as u64;
        // Compressed bytes of each top-level column (nested ones have several leaves).
        let mut bytes = vec![0u64; schema.fields().len()];
        for (leaf, chunk) in row_group.columns().iter().enumerate() {
            let root = descriptor.get_column_root_idx(leaf);
            if let Some(b) = bytes.get_mut(root) {
                *b += chunk.compressed_size().max(0) as u64;
            }
        }
        let total: u64 = profiled.iter().map(|&c| bytes[c]).sum();
        let slices = parallelism
            .div_ceil(row_groups.len())
            .max(total.div_ceil(SLICE_BYTES) as usize)
            .clamp(1, profiled.len());
        // Largest first into the lightest slice: balanced enough, and simple.
        let mut by_size = profiled.clone();
        by_size.sort_by_key(|&c| std::cmp::Reverse(bytes[c]));
        let mut groups: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); slices];
        for c in by_size {
            let lightest = groups
                .iter_mut()
                .min_by_key(|(size, _)| *size)
                .expect("at least one slice");
            lightest.0 += bytes[c];
            lightest.1.push(c);
        }
        for (s, (_, mut columns)) in groups.into_iter().enumerate() {
            columns.sort_unstable();
            tasks.push(Task {
                id: tasks.len(),
                row_group: g,
                first_row,
                rows,
                columns,
                counts_rows: s == 0,
            });
        }
        first_row += rows;
    }
    tasks
}

fn decode(
    ctx: &Context,
    file: usize,
    schema: &Schema,
    task: Task,
    reader: ParquetRecordBatchReader,
) -> Part {
    let relative = &ctx.inputs[file].relative;
    let mut unit = Unit::new(
        &ctx.checks,
        file,
        schema,
        task.columns,
        task.counts_rows,
        task.rows,
        ctx.seed(file, task.id),
    );
    let mut next = task.first_row;
    for batch in reader {
        match batch {
            Ok(batch) => {
                unit.add(batch.columns(), &RowNumbers::From(next));
                next += batch.num_rows() as u64;
            }
            Err(e) => {
                let last = task.first_row + task.rows - 1;
                unit.failure(
                    next,
                    format!("{relative} rows {next}-{last}: cannot be decoded: {e}"),
                );
                break;
            }
        }
    }
    unit.finish()
}

/// The message of a parquet error that is the data's fault; the store's own errors (a
/// denied or missing object, an unreachable endpoint) come back as [`Error::Source`].
fn data_error(e: ParquetError) -> Result<String, Error> {
    match e {
        ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
            Ok(source) => Err(Error::Source(*source)),
            Err(other) => Ok(other.to_string()),
        },
        other => Ok(other.to_string()),
    }
}
