//! Capture: a sample of the inference requests, kept as Parquet files, so production data can
//! become the next dataset version.
//!
//! Never on the hot path: a request picked by the sampling ratio is copied into a bounded
//! queue (`try_send`: a full queue drops the request and counts it in
//! `ciclo_serve_capture_dropped_requests_total`), and one task writes the queue out. A file
//! holds the rows of consecutive requests of one column layout and is written to
//! `<uri>/requests/date=YYYY-MM-DD/hour=HH/<instance>-<ms>-<n>.parquet` when it reaches `max_rows`, when its
//! oldest row is `flush` old, when the layout changes, and when the server stops (after the
//! requests in flight are answered), so an accepted row is not lost to a rolling update.
//! Labels sent later for captured rows ([`crate::feedback`]) go the same way, to
//! `<uri>/labels/…`; requests go to `<uri>/requests/…`.
//!
//! One row per row of the request's batch: `request_id`, `row` (its index in the batch),
//! `time` (UTC, milliseconds), `model_version`, then a column per input value and per output
//! value. A tensor of one value per row is a column of its name; one of `k` values per row is
//! `k` columns, `<name>_<j>`, or the built-in model's feature names for its `input` matrix, so
//! a built-in model's capture has the columns of the data it was trained on.

use crate::tensor::{Data, Output, Tensor, Values};
use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::Duration;
// Tokio's clock: the flush period is tested with paused time.
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Where and how much to capture.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The share of requests captured, in [0, 1].
    pub ratio: f64,
    /// The longest a captured row waits before its file is written.
    pub flush: Duration,
    /// The most rows in one file.
    pub max_rows: usize,
    /// The most requests waiting to be written.
    pub queue: usize,
    /// This server's name in file names (the pod's), so servers never write the same file.
    pub instance: String,
}

/// What the queue and the writer count.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    pub captured: Counter,
    /// Rows whose labels were queued.
    pub labels: Counter,
    pub dropped: Counter,
    pub files: Counter,
    pub failed: Counter,
}

/// The request side: picks requests and queues them.
pub(crate) struct Capture {
    sender: mpsc::Sender<Captured>,
    ratio: f64,
    counters: Counters,
}

/// What a captured record is, and the folder under the capture prefix it is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A request's rows: inputs and outputs.
    Request,
    /// Labels sent for a request's rows later.
    Labels,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Request => "requests",
            Kind::Labels => "labels",
        }
    }
}

/// One captured request, or the labels of one of its rows.
#[derive(Debug)]
pub(crate) struct Captured {
    pub kind: Kind,
    pub id: String,
    /// The index in its request's batch of the first row.
    pub first_row: u32,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    pub model_version: Option<String>,
    pub rows: usize,
    pub columns: Vec<Column>,
}

impl Captured {
    /// Request `id`'s columns: each input's values, then each output's; a tensor whose rows
    /// are not the request's rows (a scalar output) is left out, and a name taken already
    /// (by an input, or by `request_id`, `row`, `time`, `model_version`) gets `input_` or
    /// `output_` before it.
    pub fn of(
        id: String,
        model_version: Option<String>,
        features: Option<&[String]>,
        inputs: &[Tensor],
        outputs: &[Output],
        rows: usize,
    ) -> Captured {
        let mut taken: Vec<String> = ["request_id", "row", "time", "model_version"]
            .map(String::from)
            .to_vec();
        let mut columns = Vec::new();
        let tagged = inputs
            .iter()
            .flat_map(|t| input_columns(t, features))
            .map(|c| ("input_", c))
            .chain(
                outputs
                    .iter()
                    .flat_map(output_columns)
                    .map(|c| ("output_", c)),
            );
        for (kind, mut column) in tagged {
            if column.values.len() != rows {
                continue;
            }
            if taken.contains(&column.name) {
                column.name = format!("{kind}{}", column.name);
            }
            while taken.contains(&column.name) {
                column.name.push('_');
            }
            taken.push(column.name.clone());
            columns.push(column);
        }
        Captured {
            kind: Kind::Request,
            id,
            first_row: 0,
            time: jiff::Timestamp::now().as_millisecond(),
            model_version,
            rows,
            columns,
        }
    }

    /// Labels for row `row` of request `id`, a column each.
    pub fn labels(id: String, row: u32, columns: Vec<Column>) -> Captured {
        Captured {
            kind: Kind::Labels,
            id,
            first_row: row,
            time: jiff::Timestamp::now().as_millisecond(),
            model_version: None,
            rows: 1,
            columns,
        }
    }
}

/// A new request id: 128 random bits in hex.
pub(crate) fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// One column of a captured request: a value per row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub values: Data,
}

/// A column's values: a response tensor's, one per row.
impl Data {
    fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::U64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::Bytes(v) => v.len(),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Data::Bool(_) => DataType::Boolean,
            Data::I64(_) => DataType::Int64,
            Data::U64(_) => DataType::UInt64,
            Data::F32(_) => DataType::Float32,
            Data::F64(_) => DataType::Float64,
            Data::Bytes(_) => DataType::Utf8,
        }
    }

    fn extend(&mut self, other: Data) {
        match (self, other) {
            (Data::Bool(a), Data::Bool(b)) => a.extend(b),
            (Data::I64(a), Data::I64(b)) => a.extend(b),
            (Data::U64(a), Data::U64(b)) => a.extend(b),
            (Data::F32(a), Data::F32(b)) => a.extend(b),
            (Data::F64(a), Data::F64(b)) => a.extend(b),
            (Data::Bytes(a), Data::Bytes(b)) => a.extend(b),
            // Layouts are compared before rows are added: never two types for one column.
            (a, b) => unreachable!("{:?} and {:?} in one column", a.data_type(), b.data_type()),
        }
    }

    fn into_array(self) -> ArrayRef {
        match self {
            Data::Bool(v) => Arc::new(BooleanArray::from(v)),
            Data::I64(v) => Arc::new(Int64Array::from(v)),
            Data::U64(v) => Arc::new(UInt64Array::from(v)),
            Data::F32(v) => Arc::new(Float32Array::from(v)),
            Data::F64(v) => Arc::new(Float64Array::from(v)),
            Data::Bytes(v) => Arc::new(StringArray::from(v)),
        }
    }
}

/// Splits flat row-major `values` of `rows` rows into a column per value of a row.
fn split<T: Clone>(values: &[T], rows: usize, names: &[String]) -> Vec<(String, Vec<T>)> {
    let width = names.len().max(1);
    names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let column = (0..rows)
                .filter_map(|r| values.get(r * width + j).cloned())
                .collect();
            (name.clone(), column)
        })
        .collect()
}

/// The column names of a tensor of `width` values per row called `name`: its own name for
/// one, `<name>_<j>` for more, or `features` when they are as many.
fn column_names(name: &str, width: usize, features: Option<&[String]>) -> Vec<String> {
    match features {
        Some(features) if features.len() == width && width > 1 => features.to_vec(),
        _ if width == 1 => vec![name.to_string()],
        _ => (0..width).map(|j| format!("{name}_{j}")).collect(),
    }
}

/// The columns of an input tensor.
pub(crate) fn input_columns(t: &Tensor, features: Option<&[String]>) -> Vec<Column> {
    let rows = t.shape.first().copied().unwrap_or(1);
    let width = t.shape.iter().skip(1).product::<usize>();
    let names = column_names(&t.name, width, features);
    let columns = |values| split_into(values, rows, &names);
    columns(match &t.values {
        Values::Bool(v) => Flat::Bool(v),
        Values::Int(v) => Flat::I64(v),
        Values::UInt(v) => Flat::U64(v),
        Values::Float(v) => Flat::F64(v),
        Values::Bytes(v) => Flat::Text(v),
    })
}

/// The columns of an output.
pub(crate) fn output_columns(o: &Output) -> Vec<Column> {
    let rows = o.shape.first().copied().unwrap_or(1);
    let width = o.shape.iter().skip(1).product::<usize>();
    let names = column_names(&o.name, width, None);
    split_into(
        match &o.data {
            Data::Bool(v) => Flat::Bool(v),
            Data::I64(v) => Flat::I64(v),
            Data::U64(v) => Flat::U64(v),
            Data::F32(v) => Flat::F32(v),
            Data::F64(v) => Flat::F64(v),
            Data::Bytes(v) => Flat::Text(v),
        },
        rows,
        &names,
    )
}

/// A tensor's values, borrowed.
enum Flat<'a> {
    Bool(&'a [bool]),
    I64(&'a [i64]),
    U64(&'a [u64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Text(&'a [String]),
}

fn split_into(values: Flat<'_>, rows: usize, names: &[String]) -> Vec<Column> {
    fn columns<T: Clone>(
        values: &[T],
        rows: usize,
        names: &[String],
        wrap: fn(Vec<T>) -> Data,
    ) -> Vec<Column> {
        split(values, rows, names)
            .into_iter()
            .map(|(name, v)| Column {
                name,
                values: wrap(v),
            })
            .collect()
    }
    match values {
        Flat::Bool(v) => columns(v, rows, names, Data::Bool),
        Flat::I64(v) => columns(v, rows, names, Data::I64),
        Flat::U64(v) => columns(v, rows, names, Data::U64),
        Flat::F32(v) => columns(v, rows, names, Data::F32),
        Flat::F64(v) => columns(v, rows, names, Data::F64),
        Flat::Text(v) => columns(v, rows, names, Data::Bytes),
    }
}

impl Capture {
    /// The queue, and the task that writes it out until [`Writer::finish`].
    pub fn start(settings: Settings, counters: Counters) -> (Capture, Writer) {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let capture = Capture {
            sender,
            ratio: settings.ratio,
            counters: counters.clone(),
        };
        let task = tokio::spawn(write_out(receiver, stopped, settings, counters));
        (capture, Writer { stop, task })
    }

    /// Whether to capture this request.
    pub fn picks(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && rand::random::<f64>() < self.ratio)
    }

    /// Queues `captured`, or drops and counts it when the queue is full.
    pub fn offer(&self, captured: Captured) {
        match self.sender.try_send(captured) {
            Ok(()) => {
                self.counters.captured.inc();
            }
            Err(_) => {
                self.counters.dropped.inc();
            }
        }
    }
}

/// The queue had no room for the labels sent: none of them was queued.
#[derive(Debug)]
pub(crate) struct Full;

impl Capture {
    /// Queues every one of `labels`, or none when the queue has no room for them all (labels
    /// are sent on purpose: the sender is told, not ignored).
    pub fn offer_labels(&self, labels: Vec<Captured>) -> Result<(), Full> {
        if labels.is_empty() {
            return Ok(());
        }
        let permits = self
            .sender
            .try_reserve_many(labels.len())
            .map_err(|_| Full)?;
        let n = labels.len() as u64;
        for (permit, captured) in permits.zip(labels) {
            permit.send(captured);
        }
        self.counters.labels.inc_by(n);
        Ok(())
    }
}

/// The task writing the queue out.
pub(crate) struct Writer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Closes the queue (a request offered from now on is dropped and counted) and returns
    /// once every request queued before is written.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!("the capture writer stopped: {e}");
        }
    }
}

/// The rows of one file being gathered: one column layout.
struct Pending {
    kind: Kind,
    layout: Vec<(String, DataType)>,
    ids: Vec<String>,
    row: Vec<u32>,
    time: Vec<i64>,
    version: Vec<Option<String>>,
    columns: Vec<Data>,
    since: Instant,
}

impl Pending {
    fn new(c: &Captured) -> Self {
        Pending {
            kind: c.kind,
            layout: layout(c),
            ids: Vec::new(),
            row: Vec::new(),
            time: Vec::new(),
            version: Vec::new(),
            columns: c
                .columns
                .iter()
                .map(|col| empty_like(&col.values))
                .collect(),
            since: Instant::now(),
        }
    }

    fn add(&mut self, c: Captured) {
        for r in 0..c.rows as u32 {
            self.ids.push(c.id.clone());
            self.row.push(c.first_row + r);
            self.time.push(c.time);
            self.version.push(c.model_version.clone());
        }
        for (into, col) in self.columns.iter_mut().zip(c.columns) {
            into.extend(col.values);
        }
    }

    fn rows(&self) -> usize {
        self.ids.len()
    }

    fn into_batch(self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut fields = vec![
            Field::new("request_id", DataType::Utf8, false),
            Field::new("row", DataType::UInt32, false),
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ];
        if self.kind == Kind::Request {
            fields.push(Field::new("model_version", DataType::Utf8, true));
        }
        fields.extend(
            self.layout
                .iter()
                .map(|(name, ty)| Field::new(name, ty.clone(), false)),
        );
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.ids)),
            Arc::new(UInt32Array::from(self.row)),
            Arc::new(TimestampMillisecondArray::from(self.time).with_timezone("UTC")),
        ];
        if self.kind == Kind::Request {
            arrays.push(Arc::new(StringArray::from(self.version)));
        }
        arrays.extend(self.columns.into_iter().map(Data::into_array));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
    }
}

fn layout(c: &Captured) -> Vec<(String, DataType)> {
    c.columns
        .iter()
        .map(|col| (col.name.clone(), col.values.data_type()))
        .collect()
}

fn empty_like(v: &Data) -> Data {
    match v {
        Data::Bool(_) => Data::Bool(Vec::new()),
        Data::I64(_) => Data::I64(Vec::new()),
        Data::U64(_) => Data::U64(Vec::new()),
        Data::F32(_) => Data::F32(Vec::new()),
        Data::F64(_) => Data::F64(Vec::new()),
        Data::Bytes(_) => Data::Bytes(Vec::new()),
    }
}

/// Writes the queue out until `stop`, then what is left in it.
async fn write_out(
    mut queue: mpsc::Receiver<Captured>,
    stop: tokio::sync::oneshot::Receiver<()>,
    settings: Settings,
    counters: Counters,
) {
    let mut pending: Option<Pending> = None;
    let mut files = 0u64;
    let mut tick = tokio::time::interval(settings.flush.max(Duration::from_millis(10)) / 2);
    let mut stop = std::pin::pin!(stop);
    loop {
        let next = tokio::select! {
            next = queue.recv() => next,
            _ = &mut stop, if !queue.is_closed() => {
                // What was queued before is still received; then `recv` gives `None`.
                queue.close();
                continue;
            }
            _ = tick.tick() => {
                if pending.as_ref().is_some_and(|p| p.since.elapsed() >= settings.flush) {
                    flush(&mut pending, &settings, &counters, &mut files).await;
                }
                continue;
            }
        };
        let Some(captured) = next else {
            flush(&mut pending, &settings, &counters, &mut files).await;
            return;
        };
        if pending
            .as_ref()
            .is_some_and(|p| p.kind != captured.kind || p.layout != layout(&captured))
        {
            flush(&mut pending, &settings, &counters, &mut files).await;
        }
        pending
            .get_or_insert_with(|| Pending::new(&captured))
            .add(captured);
        if pending
            .as_ref()
            .is_some_and(|p| p.rows() >= settings.max_rows)
        {
            flush(&mut pending, &settings, &counters, &mut files).await;
        }
    }
}

/// Writes the pending rows as one Parquet file. A failed write is logged and counted; its
/// rows are gone (the store is down: holding them would only grow memory without bound).
async fn flush(
    pending: &mut Option<Pending>,
    settings: &Settings,
    counters: &Counters,
    files: &mut u64,
) {
    let Some(p) = pending.take() else {
        return;
    };
    let rows = p.rows();
    let first = p.time.first().copied().unwrap_or_default();
    *files += 1;
    let path = file_path(settings, p.kind, first, *files);
    match encode(p) {
        Ok(bytes) => match settings.store.put(&path, PutPayload::from(bytes)).await {
            Ok(_) => {
                counters.files.inc();
                tracing::debug!(%path, rows, "captured requests written");
            }
            Err(e) => {
                counters.failed.inc();
                tracing::warn!(%path, rows, "cannot write captured requests: {e}");
            }
        },
        Err(e) => {
            counters.failed.inc();
            tracing::warn!(rows, "cannot encode captured requests: {e}");
        }
    }
}

fn encode(p: Pending) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let batch = p.into_batch()?;
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(bytes)
}

/// `<prefix>/<requests|labels>/date=YYYY-MM-DD/hour=HH/<instance>-<ms>-<n>.parquet`, by the
/// first row's time.
fn file_path(settings: &Settings, kind: Kind, first_ms: i64, n: u64) -> Path {
    let time = jiff::Timestamp::from_millisecond(first_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC);
    let name = format!(
        "{}/date={}/hour={:02}/{}-{first_ms}-{n}.parquet",
        kind.folder(),
        time.strftime("%Y-%m-%d"),
        time.hour(),
        settings.instance
    );
    match settings.prefix.as_ref() {
        "" => Path::from(name),
        prefix => Path::from(format!("{prefix}/{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Datatype;
    use futures::TryStreamExt as _;
    use object_store::memory::InMemory;

    fn tensor(name: &str, shape: &[usize], values: Vec<f64>) -> Tensor {
        Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            datatype: Datatype::F64,
            values: Values::Float(values),
        }
    }

    fn output(name: &'static str, shape: &[usize], data: Data) -> Output {
        Output {
            name: name.into(),
            datatype: "FP64",
            shape: shape.to_vec(),
            data,
            parameters: Default::default(),
        }
    }

    fn names(c: &Captured) -> Vec<&str> {
        c.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn tensors_become_columns_by_name_position_or_feature() {
        let inputs = [tensor("input", &[2, 3], vec![1., 2., 3., 4., 5., 6.])];
        let outputs = [output("y", &[2], Data::I64(vec![7, 8]))];
        let c = Captured::of("i".into(), None, None, &inputs, &outputs, 2);
        assert_eq!(names(&c), ["input_0", "input_1", "input_2", "y"]);
        assert_eq!(c.columns[1].values, Data::F64(vec![2., 5.]));
        assert_eq!(c.columns[3].values, Data::I64(vec![7, 8]));
        let features = ["a".to_string(), "b".into(), "c".into()];
        let c = Captured::of("i".into(), None, Some(&features), &inputs, &outputs, 2);
        assert_eq!(names(&c), ["a", "b", "c", "y"]);
        // Features that are not as many as the values of a row are not used.
        let c = Captured::of("i".into(), None, Some(&features[..2]), &inputs, &[], 2);
        assert_eq!(names(&c), ["input_0", "input_1", "input_2"]);
    }

    #[test]
    fn names_taken_are_told_apart_and_tensors_of_other_rows_left_out() {
        let inputs = [
            tensor("predict", &[1], vec![1.]),
            tensor("row", &[1], vec![2.]),
        ];
        let outputs = [
            output("predict", &[1], Data::F64(vec![3.])),
            // A scalar: not a value per row.
            output("total", &[], Data::F64(vec![])),
            output("pair", &[2], Data::F64(vec![1., 2.])),
        ];
        let c = Captured::of("i".into(), None, None, &inputs, &outputs, 1);
        assert_eq!(names(&c), ["predict", "input_row", "output_predict"]);
    }

    fn settings(store: Arc<InMemory>, max_rows: usize, queue: usize) -> Settings {
        Settings {
            store,
            prefix: Path::from("captures"),
            ratio: 1.0,
            flush: Duration::from_secs(60),
            max_rows,
            queue,
            instance: "pod-0".into(),
        }
    }

    fn request(id: &str, column: &str, rows: usize) -> Captured {
        Captured {
            kind: Kind::Request,
            id: id.into(),
            first_row: 0,
            time: 1_700_000_000_000,
            model_version: Some("2".into()),
            rows,
            columns: vec![Column {
                name: column.into(),
                values: Data::F64((0..rows).map(|r| r as f64).collect()),
            }],
        }
    }

    async fn files(store: &InMemory) -> Vec<(String, RecordBatch)> {
        let mut listed: Vec<_> = store.list(None).try_collect().await.unwrap();
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        let mut files = Vec::new();
        for meta in listed {
            let bytes = store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let mut reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap()
                    .build()
                    .unwrap();
            files.push((meta.location.to_string(), reader.next().unwrap().unwrap()));
        }
        files
    }

    #[tokio::test]
    async fn a_file_is_written_at_max_rows_on_a_new_layout_and_on_finish() {
        let store = Arc::new(InMemory::new());
        let (capture, writer) =
            Capture::start(settings(store.clone(), 3, 100), Counters::default());
        capture.offer(request("a", "x", 2));
        capture.offer(request("b", "x", 2));
        capture.offer(request("c", "y", 1));
        capture.offer(request("d", "y", 1));
        writer.finish().await;
        let files = files(&store).await;
        let rows: Vec<usize> = files.iter().map(|(_, b)| b.num_rows()).collect();
        // a+b reach 3 rows (4); c+d, another layout, are written on finish.
        assert_eq!(rows, [4, 2], "{files:?}");
        assert!(
            files[0]
                .0
                .starts_with("captures/requests/date=2023-11-14/hour=22/pod-0-1700000000000-"),
            "{}",
            files[0].0
        );
        assert!(files[1].1.column_by_name("y").is_some());
        // Offered after finish: dropped, counted.
        capture.offer(request("e", "y", 1));
        assert_eq!(capture.counters.dropped.get(), 1);
        assert_eq!(capture.counters.captured.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn rows_are_written_when_the_oldest_waited_the_flush_period() {
        let store = Arc::new(InMemory::new());
        let (capture, writer) =
            Capture::start(settings(store.clone(), 1000, 100), Counters::default());
        capture.offer(request("a", "x", 1));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(files(&store).await.is_empty(), "not before the period");
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert_eq!(files(&store).await.len(), 1);
        writer.finish().await;
        assert_eq!(files(&store).await.len(), 1, "nothing left to write");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let store = Arc::new(InMemory::new());
        let counters = Counters::default();
        let (capture, writer) = Capture::start(settings(store.clone(), 1000, 2), counters.clone());
        // The writer does not run between these: the queue holds two.
        for id in ["a", "b", "c", "d", "e"] {
            capture.offer(request(id, "x", 1));
        }
        assert_eq!((counters.captured.get(), counters.dropped.get()), (2, 3));
        writer.finish().await;
        let files = files(&store).await;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].1.num_rows(), 2);
        assert_eq!(counters.files.get(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn labels_are_queued_all_or_none() {
        let store = Arc::new(InMemory::new());
        let counters = Counters::default();
        let (capture, writer) = Capture::start(settings(store.clone(), 1000, 2), counters.clone());
        let label = |id: &str, row| {
            Captured::labels(
                id.into(),
                row,
                vec![Column {
                    name: "y".into(),
                    values: Data::Bytes(vec!["yes".into()]),
                }],
            )
        };
        assert!(
            capture
                .offer_labels(vec![label("a", 0), label("a", 1), label("b", 0)])
                .is_err()
        );
        assert_eq!(counters.labels.get(), 0, "none of the three");
        capture
            .offer_labels(vec![label("a", 2), label("b", 0)])
            .unwrap();
        assert_eq!(counters.labels.get(), 2);
        writer.finish().await;
        let files = files(&store).await;
        assert_eq!(files.len(), 1);
        assert!(
            files[0].0.starts_with("captures/labels/date="),
            "{}",
            files[0].0
        );
        let rows = files[0].1.column_by_name("row").unwrap();
        let rows = rows.as_any().downcast_ref::<UInt32Array>().unwrap();
        assert_eq!(rows.values().to_vec(), [2, 0]);
    }
}
