//! A ModelDeployment's capture as a dataset: the requests `ciclo serve` captured joined with
//! the labels sent for them later, by request id and row, into one Parquet file of the
//! labelled rows — each row's inputs and labels, never the model's answers — which the check
//! then versions and validates like any file of a source.
//!
//! The file is named by the BLAKE3 of its bytes and its rows are sorted (by time, request id
//! and row), so the same capture and labels always make the same file, the same manifest and
//! the same version id: a check that finds nothing new is `Unchanged`. A row labelled more
//! than once takes its latest label. Columns are matched by name across files; a column some
//! files lack is null there, and one typed differently in different files becomes Float64 when
//! every type is a number, text otherwise. A label named like an input replaces that input.
//! A column without the role metadata `ciclo serve` writes is taken as an input. Label files
//! put under `labels/` by other tools join too: their keys are read leniently (any text id,
//! any integer row or none, a time in any unit or none).
//!
//! Every file of the capture is read whole into memory at each check: the capture's
//! retention period bounds it.

use arrow::array::{Array, ArrayRef, StringArray, UInt32Array, new_null_array};
use arrow::compute::{cast, concat_batches, interleave};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use ciclo_core::contract::capture;
use ciclo_core::snapshot_result::CapturedRows;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Capture files read at once.
const PARALLEL_FILES: usize = 4;
/// The most model versions a summary names (the ones that answered most labelled rows).
const MODEL_VERSIONS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the capture cannot be read: {0}")]
    Store(#[from] object_store::Error),
    #[error("captured file {file}: {message}")]
    File { file: String, message: String },
    #[error("joining the capture: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing the joined capture: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// The outcome of a join.
#[derive(Debug)]
pub struct Joined {
    /// The joined file's name under the prefix it was written to; none when no captured row
    /// has a label yet.
    pub file: Option<String>,
    pub rows: CapturedRows,
}

/// One captured file, read whole.
struct CapturedFile {
    path: String,
    batch: RecordBatch,
}

/// Joins the requests under `capture` (in `from`) with their labels and writes the labelled
/// rows as one Parquet file under `into` (in `to`), unless a file of the same content is
/// there already.
pub async fn join(
    from: Arc<dyn ObjectStore>,
    capture: &Path,
    to: &dyn ObjectStore,
    into: &Path,
) -> Result<Joined, Error> {
    let labels = read_all(from.clone(), &capture.clone().join(capture::LABELS)).await?;
    let requests = read_all(from, &capture.clone().join(capture::REQUESTS)).await?;

    // The latest label of each (request id, row): later time, then later file, then later row.
    let mut latest: HashMap<(&str, u32), (i64, usize, usize)> = HashMap::new();
    for (f, file) in labels.iter().enumerate() {
        let (ids, rows, times) = keys(file)?;
        for (r, &time) in times.iter().enumerate() {
            let candidate = (time, f, r);
            latest
                .entry((ids.value(r), rows.value(r)))
                .and_modify(|l| *l = (*l).max(candidate))
                .or_insert(candidate);
        }
    }

    // Each labelled request row: its sort key, where it is, where its label is.
    struct Row<'a> {
        time: i64,
        id: &'a str,
        row: u32,
        request: (usize, usize),
        label: (usize, usize),
    }
    let mut joined: Vec<Row> = Vec::new();
    let mut captured = 0u64;
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for (f, file) in requests.iter().enumerate() {
        let (ids, rows, times) = keys(file)?;
        let version = file
            .batch
            .column_by_name(capture::MODEL_VERSION)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        captured += file.batch.num_rows() as u64;
        for (r, &time) in times.iter().enumerate() {
            let (id, row) = (ids.value(r), rows.value(r));
            let Some(&(_, lf, lr)) = latest.get(&(id, row)) else {
                continue;
            };
            if let Some(v) = version.filter(|v| v.is_valid(r)) {
                *versions.entry(v.value(r).to_string()).or_default() += 1;
            }
            joined.push(Row {
                time,
                id,
                row,
                request: (f, r),
                label: (lf, lr),
            });
        }
    }
    joined.sort_by(|a, b| (a.time, a.id, a.row).cmp(&(b.time, b.id, b.row)));

    let mut by_rows: Vec<(String, u64)> = versions.into_iter().collect();
    by_rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rows = CapturedRows {
        captured,
        labelled: joined.len() as u64,
        request_files: requests.len() as u64,
        label_files: labels.len() as u64,
        model_versions: by_rows
            .into_iter()
            .take(MODEL_VERSIONS)
            .map(|(v, _)| v)
            .collect(),
    };
    if joined.is_empty() {
        return Ok(Joined { file: None, rows });
    }

    let label_columns = union_of(&labels, |_| true);
    let input_columns = union_of(&requests, |f| {
        matches!(role(f), Some("input") | None)
            && !label_columns.iter().any(|(name, _)| name == f.name())
    });
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let request_at: Vec<(usize, usize)> = joined.iter().map(|r| r.request).collect();
    let label_at: Vec<(usize, usize)> = joined.iter().map(|r| r.label).collect();
    for (columns, files, at) in [
        (&input_columns, &requests, &request_at),
        (&label_columns, &labels, &label_at),
    ] {
        for (name, data_type) in columns {
            let per_file = files
                .iter()
                .map(|file| column_as(file, name, data_type))
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&dyn Array> = per_file.iter().map(|a| a.as_ref()).collect();
            let array = interleave(&refs, at)?;
            fields.push(Field::new(name, data_type.clone(), array.null_count() > 0));
            arrays.push(array);
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let bytes = encode(&batch)?;
    let name = format!("{}.parquet", &blake3::hash(&bytes).to_hex()[..32]);
    let path = into.clone().join(name.as_str());
    match to.head(&path).await {
        // Content-addressed: what is there is these bytes.
        Ok(_) => {}
        Err(object_store::Error::NotFound { .. }) => {
            to.put(&path, PutPayload::from(bytes)).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Joined {
        file: Some(name),
        rows,
    })
}

/// Every Parquet file under `prefix`, read whole, in path order.
async fn read_all(store: Arc<dyn ObjectStore>, prefix: &Path) -> Result<Vec<CapturedFile>, Error> {
    let mut listed: Vec<Path> = store
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .try_filter(|p| futures::future::ready(p.extension() == Some("parquet")))
        .try_collect()
        .await?;
    listed.sort();
    futures::stream::iter(listed)
        .map(|path| {
            let store = store.clone();
            async move {
                let bytes = store.get(&path).await?.bytes().await?;
                let path = path.to_string();
                let unreadable = |message: String| Error::File {
                    file: path.clone(),
                    message,
                };
                let reader =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                        .map_err(|e| unreadable(e.to_string()))?;
                let schema = reader.schema().clone();
                let batches = reader
                    .build()
                    .map_err(|e| unreadable(e.to_string()))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| unreadable(e.to_string()))?;
                let batch = concat_batches(&schema, &batches)?;
                let batch = with_keys(batch).map_err(|e| unreadable(e.to_string()))?;
                Ok(CapturedFile { path, batch })
            }
        })
        .buffered(PARALLEL_FILES)
        .try_collect()
        .await
}

/// `batch` with its keys as `ciclo serve` writes them, so label files made by other tools
/// (pandas, Spark) join too: `request_id` as text, `row` as uint32 (0 when there is none:
/// one label per request), `time` as UTC milliseconds (0 when there is none: older than any
/// label `ciclo serve` wrote).
fn with_keys(batch: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let millis = DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into()));
    let n = batch.num_rows();
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (key, ty) in [
        (capture::REQUEST_ID, DataType::Utf8),
        (capture::ROW, DataType::UInt32),
        (capture::TIME, millis.clone()),
    ] {
        let column = match batch.column_by_name(key) {
            Some(c) if *c.data_type() == ty => c.clone(),
            // An integer time is taken as milliseconds.
            Some(c) if key == capture::TIME && c.data_type().is_integer() => {
                cast(&cast(c, &DataType::Int64)?, &ty)?
            }
            Some(c) => cast(c, &ty)?,
            None if key == capture::REQUEST_ID => {
                return Err(arrow::error::ArrowError::SchemaError(format!(
                    "column {key:?} is missing"
                )));
            }
            None if key == capture::ROW => Arc::new(UInt32Array::from(vec![0; n])),
            None => Arc::new(
                arrow::array::TimestampMillisecondArray::from(vec![0; n]).with_timezone("UTC"),
            ),
        };
        fields.push(Field::new(key, ty, true));
        columns.push(column);
    }
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if ![capture::REQUEST_ID, capture::ROW, capture::TIME].contains(&field.name().as_str()) {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// A file's `request_id`, `row` and `time` (milliseconds) columns.
fn keys(file: &CapturedFile) -> Result<(&StringArray, &UInt32Array, Vec<i64>), Error> {
    let missing = |column: &str, what: &str| Error::File {
        file: file.path.clone(),
        message: format!("column {column:?} is missing or not {what}"),
    };
    let batch = &file.batch;
    let ids = batch
        .column_by_name(capture::REQUEST_ID)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| missing(capture::REQUEST_ID, "text without nulls"))?;
    let rows = batch
        .column_by_name(capture::ROW)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| missing(capture::ROW, "uint32 without nulls"))?;
    let times = batch
        .column_by_name(capture::TIME)
        .filter(|c| c.null_count() == 0)
        .and_then(|c| cast(c, &DataType::Int64).ok())
        .ok_or_else(|| missing(capture::TIME, "a time without nulls"))?;
    let times = times
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("cast to Int64")
        .values()
        .to_vec();
    Ok((ids, rows, times))
}

fn role(field: &Field) -> Option<&str> {
    field.metadata().get(capture::ROLE).map(String::as_str)
}

fn is_key(name: &str) -> bool {
    [
        capture::REQUEST_ID,
        capture::ROW,
        capture::TIME,
        capture::MODEL_VERSION,
    ]
    .contains(&name)
}

/// The columns `keep` takes from any of `files`, in the order they first appear, each with
/// one type for all files: its own when every file agrees, Float64 when each is a number,
/// text otherwise.
fn union_of(files: &[CapturedFile], keep: impl Fn(&Field) -> bool) -> Vec<(String, DataType)> {
    let mut columns: Vec<(String, DataType)> = Vec::new();
    for file in files {
        for field in file.batch.schema().fields() {
            if is_key(field.name()) || !keep(field) {
                continue;
            }
            match columns.iter_mut().find(|(name, _)| name == field.name()) {
                None => columns.push((field.name().clone(), field.data_type().clone())),
                Some((_, ty)) if ty == field.data_type() => {}
                Some((_, ty)) => {
                    *ty = if ty.is_numeric() && field.data_type().is_numeric() {
                        DataType::Float64
                    } else {
                        DataType::Utf8
                    }
                }
            }
        }
    }
    columns
}

/// `file`'s column `name` as `data_type`, or nulls when it has none.
fn column_as(file: &CapturedFile, name: &str, data_type: &DataType) -> Result<ArrayRef, Error> {
    match file.batch.column_by_name(name) {
        None => Ok(new_null_array(data_type, file.batch.num_rows())),
        Some(c) if c.data_type() == data_type => Ok(c.clone()),
        Some(c) => cast(c, data_type).map_err(|e| Error::File {
            file: file.path.clone(),
            message: format!("column {name:?} cannot be read as {data_type}: {e}"),
        }),
    }
}

/// The batch as Parquet, the same bytes for the same batch.
fn encode(batch: &RecordBatch) -> Result<Vec<u8>, Error> {
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, TimestampMillisecondArray};
    use object_store::memory::InMemory;

    /// A column of a captured file: its name, role and values.
    fn column(name: &str, role: Option<&str>, values: ArrayRef) -> (Field, ArrayRef) {
        let field = Field::new(name, values.data_type().clone(), true);
        let field = match role {
            Some(r) => field.with_metadata(HashMap::from([(capture::ROLE.into(), r.into())])),
            None => field,
        };
        (field, values)
    }

    fn floats(v: &[f64]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    /// A file as `ciclo serve` writes it: the keys (`model_version` for requests), then
    /// `columns`.
    async fn put(
        store: &InMemory,
        path: &str,
        keys: &[(&str, u32, i64)],
        version: Option<&str>,
        columns: Vec<(Field, ArrayRef)>,
    ) {
        let mut all = vec![
            column(
                capture::REQUEST_ID,
                None,
                Arc::new(StringArray::from_iter_values(keys.iter().map(|k| k.0))),
            ),
            column(
                capture::ROW,
                None,
                Arc::new(UInt32Array::from_iter_values(keys.iter().map(|k| k.1))),
            ),
            column(
                capture::TIME,
                None,
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(keys.iter().map(|k| k.2))
                        .with_timezone("UTC"),
                ),
            ),
        ];
        if let Some(v) = version {
            all.push(column(
                capture::MODEL_VERSION,
                None,
                Arc::new(StringArray::from_iter_values(keys.iter().map(|_| v))),
            ));
        }
        all.extend(columns);
        let (fields, arrays): (Vec<_>, Vec<_>) = all.into_iter().unzip();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
        store
            .put(&Path::from(path), encode(&batch).unwrap().into())
            .await
            .unwrap();
    }

    async fn read(store: &InMemory, name: &str) -> RecordBatch {
        let bytes = store
            .get(&Path::from(format!("joined/{name}")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
        let c = batch
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no {name}"));
        let c = c.as_any().downcast_ref::<Float64Array>().unwrap();
        c.iter().collect()
    }

    async fn join_in(store: &Arc<InMemory>) -> Joined {
        join(
            store.clone(),
            &Path::from("capture"),
            store.as_ref(),
            &Path::from("joined"),
        )
        .await
        .unwrap()
    }

    async fn requests(store: &InMemory) {
        // Two requests of 2 rows (model 1), one of 1 row (model 2), in two files.
        put(
            store,
            "capture/requests/date=2026-12-06/hour=10/a-1-0.parquet",
            &[
                ("r2", 0, 2000),
                ("r2", 1, 2000),
                ("r1", 0, 1000),
                ("r1", 1, 1000),
            ],
            Some("1"),
            vec![
                column("x", Some("input"), floats(&[20., 21., 10., 11.])),
                column("p", Some("output"), floats(&[0.2, 0.3, 0.4, 0.5])),
            ],
        )
        .await;
        put(
            store,
            "capture/requests/date=2026-12-06/hour=11/a-2-0.parquet",
            &[("r3", 0, 3000)],
            Some("2"),
            vec![column("x", Some("input"), floats(&[30.]))],
        )
        .await;
    }

    #[tokio::test]
    async fn labelled_rows_keep_their_inputs_and_latest_labels_sorted_by_time() {
        let store = Arc::new(InMemory::new());
        requests(&store).await;
        let label = |v: &[i64]| -> ArrayRef { Arc::new(Int64Array::from(v.to_vec())) };
        put(
            &store,
            "capture/labels/date=2026-12-06/hour=12/a-3-0.parquet",
            &[
                ("r1", 1, 5000),
                ("r2", 0, 5000),
                ("r3", 0, 5000),
                ("r9", 0, 5000),
            ],
            None,
            vec![column("y", Some("label"), label(&[1, 0, 0, 1]))],
        )
        .await;
        // r3 relabelled later: the latest label counts.
        put(
            &store,
            "capture/labels/date=2026-12-06/hour=13/a-4-0.parquet",
            &[("r3", 0, 6000)],
            None,
            vec![column("y", Some("label"), label(&[1]))],
        )
        .await;
        let joined = join_in(&store).await;
        assert_eq!(
            joined.rows,
            CapturedRows {
                captured: 5,
                labelled: 3,
                request_files: 2,
                label_files: 2,
                model_versions: vec!["1".into(), "2".into()],
            }
        );
        let batch = read(&store, joined.file.as_deref().unwrap()).await;
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        // No keys, no answers: the columns of the data a model trains on.
        assert_eq!(names, ["x", "y"]);
        // r1 row 1 (t=1000), r2 row 0 (t=2000), r3 (t=3000); unlabelled rows and the label
        // of no captured row are left out.
        assert_eq!(f64s(&batch, "x"), [Some(11.), Some(20.), Some(30.)]);
        let y = batch.column_by_name("y").unwrap();
        let y = y.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(y.values().to_vec(), [1, 0, 1]);
    }

    #[tokio::test]
    async fn the_same_capture_makes_the_same_file_and_a_new_label_another() {
        let store = Arc::new(InMemory::new());
        requests(&store).await;
        let label = |path: &str, id: &'static str, t: i64| {
            let store = store.clone();
            let path = path.to_string();
            async move {
                put(
                    &store,
                    &path,
                    &[(id, 0, t)],
                    None,
                    vec![column("y", Some("label"), floats(&[1.]))],
                )
                .await
            }
        };
        let none = join_in(&store).await;
        assert_eq!(none.file, None, "no label yet: no file");
        assert_eq!(none.rows.captured, 5);
        label("capture/labels/l-1.parquet", "r1", 9000).await;
        let first = join_in(&store).await;
        let again = join_in(&store).await;
        assert_eq!(first.file, again.file);
        let listed: Vec<_> = store
            .list(Some(&Path::from("joined")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        label("capture/labels/l-2.parquet", "r3", 9000).await;
        let more = join_in(&store).await;
        assert_ne!(more.file, first.file);
        assert_eq!(more.rows.labelled, 2);
    }

    #[tokio::test]
    async fn columns_are_matched_by_name_across_files_and_typed_once() {
        let store = Arc::new(InMemory::new());
        put(
            &store,
            "capture/requests/a.parquet",
            &[("a", 0, 1)],
            Some("1"),
            vec![
                column("n", Some("input"), Arc::new(Int64Array::from(vec![7]))),
                column("only_a", None, floats(&[0.5])),
            ],
        )
        .await;
        put(
            &store,
            "capture/requests/b.parquet",
            &[("b", 0, 2)],
            Some("1"),
            vec![column("n", Some("input"), floats(&[2.5]))],
        )
        .await;
        put(
            &store,
            "capture/labels/l.parquet",
            &[("a", 0, 3), ("b", 0, 3)],
            None,
            vec![column("y", Some("label"), floats(&[1., 0.]))],
        )
        .await;
        let joined = join_in(&store).await;
        let batch = read(&store, joined.file.as_deref().unwrap()).await;
        // An integer in one file, a float in the other: Float64.
        assert_eq!(f64s(&batch, "n"), [Some(7.), Some(2.5)]);
        // A column without role metadata is an input; null where a file lacks it.
        assert_eq!(f64s(&batch, "only_a"), [Some(0.5), None]);
    }

    #[tokio::test]
    async fn label_files_dropped_by_other_tools_join_too() {
        let store = Arc::new(InMemory::new());
        requests(&store).await;
        // As pandas writes a DataFrame: int64 rows, large text ids, no time, no metadata.
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("request_id", DataType::LargeUtf8, true),
                Field::new("row", DataType::Int64, true),
                Field::new("y", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(arrow::array::LargeStringArray::from(vec!["r1", "r3"])),
                Arc::new(Int64Array::from(vec![1, 0])),
                Arc::new(StringArray::from(vec!["from-a-file", "from-a-file"])),
            ],
        )
        .unwrap();
        store
            .put(
                &Path::from("capture/labels/from-the-lab.parquet"),
                encode(&batch).unwrap().into(),
            )
            .await
            .unwrap();
        // A label sent to the server for r3 later: the newer one counts.
        put(
            &store,
            "capture/labels/date=2026-12-06/hour=12/a-3-0.parquet",
            &[("r3", 0, 5000)],
            None,
            vec![column(
                "y",
                Some("label"),
                Arc::new(StringArray::from(vec!["from-feedback"])),
            )],
        )
        .await;
        let joined = join_in(&store).await;
        let batch = read(&store, joined.file.as_deref().unwrap()).await;
        assert_eq!(f64s(&batch, "x"), [Some(11.), Some(30.)]);
        let y = batch.column_by_name("y").unwrap();
        let y = y.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            y.iter().collect::<Vec<_>>(),
            [Some("from-a-file"), Some("from-feedback")]
        );
    }

    #[tokio::test]
    async fn label_files_written_by_pandas_and_pyarrow_join() {
        // tests/fixtures/labels/generate.py: pandas' to_parquet (int64 rows, no time) and
        // pyarrow's write_table (no row, a nanosecond time, a float label).
        let store = Arc::new(InMemory::new());
        requests(&store).await;
        for (name, bytes) in [
            (
                "pandas.parquet",
                &include_bytes!("../tests/fixtures/labels/pandas.parquet")[..],
            ),
            (
                "pyarrow.parquet",
                &include_bytes!("../tests/fixtures/labels/pyarrow.parquet")[..],
            ),
        ] {
            store
                .put(
                    &Path::from(format!("capture/labels/{name}")),
                    bytes.to_vec().into(),
                )
                .await
                .unwrap();
        }
        let joined = join_in(&store).await;
        assert_eq!(joined.rows.labelled, 3);
        let batch = read(&store, joined.file.as_deref().unwrap()).await;
        // r1 row 1, r2 row 0, r3 row 0, by the requests' time.
        assert_eq!(f64s(&batch, "x"), [Some(11.), Some(20.), Some(30.)]);
        // Text in one file, a float in the other: one text column.
        let y = batch.column_by_name("y").unwrap();
        let y = cast(y, &DataType::Utf8).unwrap();
        let y = y.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            y.iter().collect::<Vec<_>>(),
            [Some("from-pandas"), Some("0.5"), Some("from-pandas")]
        );
    }

    #[tokio::test]
    async fn more_model_versions_than_a_summary_names_keep_those_that_answered_most() {
        let store = Arc::new(InMemory::new());
        // Versions 1..=12, version v answering v rows, every row labelled.
        for v in 1..=12usize {
            let keys: Vec<(String, u32, i64)> = (0..v)
                .map(|r| (format!("v{v}"), r as u32, v as i64))
                .collect();
            let keys: Vec<(&str, u32, i64)> = keys
                .iter()
                .map(|(id, r, t)| (id.as_str(), *r, *t))
                .collect();
            let version = v.to_string();
            put(
                &store,
                &format!("capture/requests/{v:02}.parquet"),
                &keys,
                Some(&version),
                vec![column("x", Some("input"), floats(&vec![1.0; v]))],
            )
            .await;
            put(
                &store,
                &format!("capture/labels/{v:02}.parquet"),
                &keys,
                None,
                vec![column("y", Some("label"), floats(&vec![0.0; v]))],
            )
            .await;
        }
        let joined = join_in(&store).await;
        assert_eq!(joined.rows.labelled, (1..=12).sum::<u64>());
        assert_eq!(
            joined.rows.model_versions,
            ["12", "11", "10", "9", "8", "7", "6", "5"]
        );
    }

    #[tokio::test]
    async fn a_file_without_the_keys_is_named_in_the_error() {
        let store = Arc::new(InMemory::new());
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)])),
            vec![floats(&[1.])],
        )
        .unwrap();
        store
            .put(
                &Path::from("capture/labels/bad.parquet"),
                encode(&batch).unwrap().into(),
            )
            .await
            .unwrap();
        let err = join(
            store.clone(),
            &Path::from("capture"),
            store.as_ref(),
            &Path::from("joined"),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("capture/labels/bad.parquet") && err.contains("\"request_id\""),
            "{err}"
        );
    }
}
