//! Capture: a sample of the inference requests, kept as Parquet files, so production data can
//! become the next dataset version.
//!
//! Never on the hot path: a request picked by the sampling ratio moves its answered tensors
//! into a bounded queue (`try_send`: a full queue drops the request and counts it in
//! `ciclo_serve_capture_dropped_requests_total`), and one task writes the queue out. A file
//! holds the rows of consecutive requests of one column layout and is written to
//! `<uri>/requests/date=YYYY-MM-DD/hour=HH/<instance>-<ms>-<n>.parquet` when it reaches
//! `max_rows`, when its oldest row is `flush` old, when the layout changes, and when the
//! server stops (after the requests in flight are answered), so an accepted row is not lost to
//! a rolling update. Labels sent later for captured rows ([`crate::feedback`]) go the same
//! way, to `<uri>/labels/…`. With a retention period, files older than it are deleted.
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
use ciclo_core::contract::capture;
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
    /// Columns never written, and columns written hashed.
    pub privacy: Privacy,
    /// How long files are kept; unset: for ever.
    pub retention: Option<Duration>,
}

/// What production data a capture must not keep as it came: columns left out, and columns
/// kept only as a keyed hash (the same value gives the same hash with the same key, so rows
/// can still be grouped or joined by it, but the value cannot be read back without the key).
/// Each names a column, or a tensor (all of its columns).
#[derive(Clone, Debug, Default)]
pub(crate) struct Privacy {
    pub exclude: Arc<[String]>,
    pub hash: Arc<[String]>,
    /// The BLAKE3 key the hashes are made with (derived from the Secret's bytes).
    pub key: [u8; 32],
}

impl Privacy {
    /// The key of `secret`: BLAKE3's key derivation, so any length of secret makes a key.
    pub fn key_of(secret: &[u8]) -> [u8; 32] {
        blake3::derive_key("ciclo capture hash v1", secret)
    }

    fn names(list: &[String], column: &str, tensor: &str) -> bool {
        list.iter().any(|e| e == column || e == tensor)
    }

    /// `value` as it is written when hashed: 32 hex digits of its keyed BLAKE3.
    fn hashed(&self, value: &str) -> String {
        blake3::keyed_hash(&self.key, value.as_bytes()).to_hex()[..32].to_string()
    }
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
    /// Files deleted at the end of their retention period.
    pub pruned: Counter,
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
            Kind::Request => capture::REQUESTS,
            Kind::Labels => capture::LABELS,
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
    pub body: Body,
}

/// What a captured record holds.
#[derive(Debug)]
pub(crate) enum Body {
    /// Its columns (labels).
    Columns(Vec<Column>),
    /// A request's tensors, as they were answered: the writer makes them columns, so a
    /// request pays for a move, not for a copy per column.
    Tensors {
        inputs: Vec<Tensor>,
        outputs: Vec<Output>,
        /// A built-in model's feature names.
        features: Option<Arc<[String]>>,
    },
}

impl Captured {
    /// Request `id`: its input tensors and its outputs.
    pub fn request(
        id: String,
        model_version: Option<String>,
        features: Option<Arc<[String]>>,
        inputs: Vec<Tensor>,
        outputs: Vec<Output>,
        rows: usize,
    ) -> Captured {
        Captured {
            kind: Kind::Request,
            id,
            first_row: 0,
            time: jiff::Timestamp::now().as_millisecond(),
            model_version,
            rows,
            body: Body::Tensors {
                inputs,
                outputs,
                features,
            },
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
            body: Body::Columns(columns),
        }
    }
}

/// With capture on (`capture`), the id a request is answered with (the client's `id`, or a
/// new one: the key its labels are sent with later) and, when the request is picked, the
/// capture to offer it to once answered; without capture, the client's `id` as it is.
pub(crate) fn answering(
    capture: Option<&Capture>,
    id: Option<String>,
) -> (Option<String>, Option<(&Capture, String)>) {
    let Some(capture) = capture else {
        return (id, None);
    };
    let id = id.filter(|i| !i.is_empty()).unwrap_or_else(new_id);
    let picked = capture.picks().then(|| (capture, id.clone()));
    (Some(id), picked)
}

/// A new request id: 128 random bits in hex.
fn new_id() -> String {
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

/// The column names of a tensor of `width` values per row called `name`: its own name for
/// one, `<name>_<j>` for more, or `features` when they are as many.
fn column_names(name: &str, width: usize, features: Option<&[String]>) -> Vec<String> {
    match features {
        Some(features) if features.len() == width && width > 1 => features.to_vec(),
        _ if width == 1 => vec![name.to_string()],
        _ => (0..width).map(|j| format!("{name}_{j}")).collect(),
    }
}

/// A tensor's values, borrowed, flat in row-major order.
enum Flat<'a> {
    Bool(&'a [bool]),
    I64(&'a [i64]),
    U64(&'a [u64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    Text(&'a [String]),
}

impl Flat<'_> {
    fn of_input(t: &Tensor) -> Flat<'_> {
        match &t.values {
            Values::Bool(v) => Flat::Bool(v),
            Values::Int(v) => Flat::I64(v),
            Values::UInt(v) => Flat::U64(v),
            Values::Float(v) => Flat::F64(v),
            Values::Bytes(v) => Flat::Text(v),
        }
    }

    fn of_output(o: &Output) -> Flat<'_> {
        match &o.data {
            Data::Bool(v) => Flat::Bool(v),
            Data::I64(v) => Flat::I64(v),
            Data::U64(v) => Flat::U64(v),
            Data::F32(v) => Flat::F32(v),
            Data::F64(v) => Flat::F64(v),
            Data::Bytes(v) => Flat::Text(v),
        }
    }

    fn len(&self) -> usize {
        match self {
            Flat::Bool(v) => v.len(),
            Flat::I64(v) => v.len(),
            Flat::U64(v) => v.len(),
            Flat::F32(v) => v.len(),
            Flat::F64(v) => v.len(),
            Flat::Text(v) => v.len(),
        }
    }

    /// The type of a column of these values.
    fn data_type(&self) -> DataType {
        match self {
            Flat::Bool(_) => DataType::Boolean,
            Flat::I64(_) => DataType::Int64,
            Flat::U64(_) => DataType::UInt64,
            Flat::F32(_) => DataType::Float32,
            Flat::F64(_) => DataType::Float64,
            Flat::Text(_) => DataType::Utf8,
        }
    }

    /// Appends value `j` of every row of `width` values to `into`, a column of their type.
    fn append(&self, into: &mut Data, j: usize, width: usize) {
        match (self, into) {
            (Flat::Bool(s), Data::Bool(v)) => v.extend(s.iter().skip(j).step_by(width)),
            (Flat::I64(s), Data::I64(v)) => v.extend(s.iter().skip(j).step_by(width)),
            (Flat::U64(s), Data::U64(v)) => v.extend(s.iter().skip(j).step_by(width)),
            (Flat::F32(s), Data::F32(v)) => v.extend(s.iter().skip(j).step_by(width)),
            (Flat::F64(s), Data::F64(v)) => v.extend(s.iter().skip(j).step_by(width)),
            (Flat::Text(s), Data::Bytes(v)) => v.extend(s.iter().skip(j).step_by(width).cloned()),
            // A file's plan is made from tensors of the same types (`Planned::fits_again`).
            (s, into) => unreachable!(
                "{:?} values into a {:?} column",
                s.data_type(),
                into.data_type()
            ),
        }
    }

    /// Like [`Flat::append`], each value written as the keyed hash of its text.
    fn append_hashed(&self, into: &mut Data, j: usize, width: usize, privacy: &Privacy) {
        let Data::Bytes(v) = into else {
            unreachable!("a hashed column is text");
        };
        fn each<T: ToString>(s: &[T], j: usize, width: usize) -> impl Iterator<Item = String> {
            s.iter().skip(j).step_by(width).map(ToString::to_string)
        }
        let texts: Box<dyn Iterator<Item = String>> = match self {
            Flat::Bool(s) => Box::new(each(s, j, width)),
            Flat::I64(s) => Box::new(each(s, j, width)),
            Flat::U64(s) => Box::new(each(s, j, width)),
            Flat::F32(s) => Box::new(each(s, j, width)),
            Flat::F64(s) => Box::new(each(s, j, width)),
            Flat::Text(s) => Box::new(each(s, j, width)),
        };
        v.extend(texts.map(|t| privacy.hashed(&t)));
    }
}

/// A request's tensors, inputs first, each with its name, whether it is an input, and its
/// values.
fn tensors_of<'a>(
    inputs: &'a [Tensor],
    outputs: &'a [Output],
) -> impl Iterator<Item = (&'a str, bool, &'a [usize], Flat<'a>)> {
    inputs
        .iter()
        .map(|t| (t.name.as_str(), true, t.shape.as_slice(), Flat::of_input(t)))
        .chain(outputs.iter().map(|o| {
            (
                o.name.as_ref(),
                false,
                o.shape.as_slice(),
                Flat::of_output(o),
            )
        }))
}

/// How one tensor of a file's requests becomes columns.
struct Planned {
    name: String,
    /// Values per row.
    width: usize,
    /// The type of its column(s).
    data_type: DataType,
    /// Whether it has a value per row of its request (else it is left out).
    fits: bool,
    /// The column of each value of a row, and whether it is hashed; none for a value left
    /// out.
    columns: Vec<Option<(usize, bool)>>,
}

impl Planned {
    /// Whether a tensor of a later request is made columns as this one: the same name,
    /// width and type, and as many rows as its request or not as before.
    fn fits_again(&self, name: &str, shape: &[usize], values: &Flat<'_>, rows: usize) -> bool {
        let (width, fits) = fit(shape, values, rows);
        self.name == name
            && self.width == width
            && self.data_type == values.data_type()
            && self.fits == fits
    }
}

/// A tensor's values per row, and whether it has one row per row of its request.
fn fit(shape: &[usize], values: &Flat<'_>, rows: usize) -> (usize, bool) {
    let width = shape.iter().skip(1).product::<usize>();
    let tensor_rows = shape.first().copied().unwrap_or(1);
    (
        width,
        !shape.is_empty() && tensor_rows == rows && values.len() == rows * width,
    )
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
        let prune = settings.retention.map(|retention| {
            tokio::spawn(prune_forever(
                settings.store.clone(),
                settings.prefix.clone(),
                retention,
                counters.clone(),
            ))
        });
        let task = tokio::spawn(write_out(receiver, stopped, settings, counters));
        (capture, Writer { stop, task, prune })
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
    prune: Option<tokio::task::JoinHandle<()>>,
}

impl Writer {
    /// Closes the queue (a request offered from now on is dropped and counted) and returns
    /// once every request queued before is written.
    pub async fn finish(self) {
        if let Some(prune) = &self.prune {
            prune.abort();
        }
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!("the capture writer stopped: {e}");
        }
    }
}

/// The rows of one file being gathered: one column layout.
struct Pending {
    kind: Kind,
    /// The columns after `request_id`, `row`, `time` (and `model_version`).
    layout: Vec<(String, DataType, Role)>,
    /// How a request's tensors become the columns (none for labels).
    plan: Vec<Planned>,
    features: Option<Arc<[String]>>,
    privacy: Privacy,
    ids: Vec<String>,
    row: Vec<u32>,
    time: Vec<i64>,
    version: Vec<Option<String>>,
    columns: Vec<Data>,
    since: Instant,
}

/// What a captured column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Input,
    Output,
    Label,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Output => "output",
            Role::Label => "label",
        }
    }
}

/// Names no captured column may take.
const RESERVED: [&str; 4] = [
    capture::REQUEST_ID,
    capture::ROW,
    capture::TIME,
    capture::MODEL_VERSION,
];

impl Pending {
    /// An empty file for records like `c` ([`plan_of`] its tensors, under `privacy`).
    fn new(c: &Captured, privacy: Privacy) -> Self {
        let mut pending = Pending {
            kind: c.kind,
            layout: Vec::new(),
            plan: Vec::new(),
            features: None,
            privacy,
            ids: Vec::new(),
            row: Vec::new(),
            time: Vec::new(),
            version: Vec::new(),
            columns: Vec::new(),
            since: Instant::now(),
        };
        match &c.body {
            Body::Columns(columns) => {
                let role = match c.kind {
                    Kind::Request => Role::Input,
                    Kind::Labels => Role::Label,
                };
                pending.layout = columns
                    .iter()
                    .map(|col| (col.name.clone(), col.values.data_type(), role))
                    .collect();
                pending.columns = columns
                    .iter()
                    .map(|col| empty_of(&col.values.data_type()))
                    .collect();
            }
            Body::Tensors { features, .. } => {
                pending.features = features.clone();
                let (layout, plan) = plan_of(c, &pending.privacy);
                pending.columns = layout.iter().map(|(_, ty, _)| empty_of(ty)).collect();
                pending.layout = layout;
                pending.plan = plan;
            }
        }
        pending
    }

    /// Whether `c` goes into this file: same kind, same columns. (Requests of other tensors
    /// that make the same columns, such as a built-in model's matrix and its features one by
    /// one, go into one file: the plan is made again for them.)
    fn takes(&mut self, c: &Captured) -> bool {
        if self.kind != c.kind {
            return false;
        }
        match &c.body {
            Body::Columns(columns) => {
                self.plan.is_empty()
                    && self.layout.len() == columns.len()
                    && self.layout.iter().zip(columns).all(|((name, ty, _), col)| {
                        *name == col.name && *ty == col.values.data_type()
                    })
            }
            Body::Tensors {
                inputs,
                outputs,
                features,
            } => {
                let same_features = match (&self.features, features) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a[..] == b[..],
                    (None, None) => true,
                    _ => false,
                };
                let fits = same_features
                    && self.plan.len() == inputs.len() + outputs.len()
                    && self.plan.iter().zip(tensors_of(inputs, outputs)).all(
                        |(p, (name, _, shape, values))| p.fits_again(name, shape, &values, c.rows),
                    );
                if fits {
                    return true;
                }
                let (layout, plan) = plan_of(c, &self.privacy);
                if layout != self.layout {
                    return false;
                }
                self.plan = plan;
                self.features = features.clone();
                true
            }
        }
    }

    /// Adds `c`, which [`Pending::takes`].
    fn add(&mut self, c: Captured) {
        for r in 0..c.rows as u32 {
            self.ids.push(c.id.clone());
            self.row.push(c.first_row + r);
            self.time.push(c.time);
            self.version.push(c.model_version.clone());
        }
        match c.body {
            Body::Columns(columns) => {
                for (into, col) in self.columns.iter_mut().zip(columns) {
                    into.extend(col.values);
                }
            }
            Body::Tensors {
                inputs, outputs, ..
            } => {
                for (planned, (_, _, _, values)) in
                    self.plan.iter().zip(tensors_of(&inputs, &outputs))
                {
                    for (j, column) in planned.columns.iter().enumerate() {
                        match column {
                            Some((column, false)) => {
                                values.append(&mut self.columns[*column], j, planned.width)
                            }
                            Some((column, true)) => values.append_hashed(
                                &mut self.columns[*column],
                                j,
                                planned.width,
                                &self.privacy,
                            ),
                            None => {}
                        }
                    }
                }
            }
        }
    }

    fn rows(&self) -> usize {
        self.ids.len()
    }

    fn into_batch(self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let mut fields = vec![
            Field::new(capture::REQUEST_ID, DataType::Utf8, false),
            Field::new(capture::ROW, DataType::UInt32, false),
            Field::new(
                capture::TIME,
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ];
        if self.kind == Kind::Request {
            fields.push(Field::new(capture::MODEL_VERSION, DataType::Utf8, true));
        }
        fields.extend(self.layout.iter().map(|(name, ty, role)| {
            Field::new(name, ty.clone(), false).with_metadata(std::collections::HashMap::from([(
                capture::ROLE.to_string(),
                role.as_str().to_string(),
            )]))
        }));
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

/// The columns a request's tensors make, and how: each input's values, then each output's;
/// a tensor whose rows are not the request's rows (a scalar output) is left out, and a name
/// taken already (by an input, or by `request_id`, `row`, `time`, `model_version`) gets
/// `input_` or `output_` before it.
/// Columns `privacy` excludes are left out; those it hashes are text.
fn plan_of(c: &Captured, privacy: &Privacy) -> (Vec<(String, DataType, Role)>, Vec<Planned>) {
    let Body::Tensors {
        inputs,
        outputs,
        features,
    } = &c.body
    else {
        return (Vec::new(), Vec::new());
    };
    let mut layout: Vec<(String, DataType, Role)> = Vec::new();
    let mut plan = Vec::new();
    let mut taken: Vec<String> = RESERVED.map(String::from).to_vec();
    for (name, is_input, shape, values) in tensors_of(inputs, outputs) {
        let (width, fits) = fit(shape, &values, c.rows);
        let data_type = values.data_type();
        let mut columns = Vec::new();
        if fits {
            let features = features.as_deref().filter(|_| is_input);
            for mut column in column_names(name, width, features) {
                if Privacy::names(&privacy.exclude, &column, name) {
                    columns.push(None);
                    continue;
                }
                let hashed = Privacy::names(&privacy.hash, &column, name);
                if taken.contains(&column) {
                    let kind = if is_input { "input_" } else { "output_" };
                    column = format!("{kind}{column}");
                }
                while taken.contains(&column) {
                    column.push('_');
                }
                taken.push(column.clone());
                columns.push(Some((layout.len(), hashed)));
                let role = if is_input { Role::Input } else { Role::Output };
                let ty = if hashed {
                    DataType::Utf8
                } else {
                    data_type.clone()
                };
                layout.push((column, ty, role));
            }
        }
        plan.push(Planned {
            name: name.to_string(),
            width,
            data_type,
            fits,
            columns,
        });
    }
    (layout, plan)
}

/// An empty column of type `ty` (one a captured tensor gives).
fn empty_of(ty: &DataType) -> Data {
    match ty {
        DataType::Boolean => Data::Bool(Vec::new()),
        DataType::Int64 => Data::I64(Vec::new()),
        DataType::UInt64 => Data::U64(Vec::new()),
        DataType::Float32 => Data::F32(Vec::new()),
        DataType::Float64 => Data::F64(Vec::new()),
        _ => Data::Bytes(Vec::new()),
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
        if pending.as_mut().is_some_and(|p| !p.takes(&captured)) {
            flush(&mut pending, &settings, &counters, &mut files).await;
        }
        pending
            .get_or_insert_with(|| Pending::new(&captured, settings.privacy.clone()))
            .add(captured);
        if pending
            .as_ref()
            .is_some_and(|p| p.rows() >= settings.max_rows)
        {
            flush(&mut pending, &settings, &counters, &mut files).await;
        }
    }
}

/// Deletes the capture's files older than `retention` now, and every hour from now on:
/// production data is kept no longer than it may be. Every pod of a deployment does it (a
/// delete is idempotent), with the store credentials it writes with.
async fn prune_forever(
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    retention: Duration,
    counters: Counters,
) {
    loop {
        match prune(store.as_ref(), &prefix, retention).await {
            Ok(0) => {}
            Ok(n) => {
                counters.pruned.inc_by(n as u64);
                tracing::info!(files = n, %prefix, "captured files past their retention deleted");
            }
            Err(e) => {
                tracing::warn!(%prefix, "cannot delete captured files past their retention: {e}")
            }
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// Deletes the files under `<prefix>/requests/` and `<prefix>/labels/` last written more than
/// `retention` ago (nothing else under the prefix); returns how many.
pub(crate) async fn prune(
    store: &dyn ObjectStore,
    prefix: &Path,
    retention: Duration,
) -> Result<usize, object_store::Error> {
    use futures::TryStreamExt as _;
    let cutoff = jiff::Timestamp::now().as_millisecond()
        - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let mut deleted = 0;
    for kind in [Kind::Request, Kind::Labels] {
        let folder = match prefix.as_ref() {
            "" => Path::from(kind.folder()),
            p => Path::from(format!("{p}/{}", kind.folder())),
        };
        let old: Vec<Path> = store
            .list(Some(&folder))
            .try_filter(|meta| std::future::ready(meta.last_modified.timestamp_millis() < cutoff))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        for path in old {
            store.delete(&path).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
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
    // Milliseconds of CPU for a file of many rows: off the threads that answer requests.
    let encoded = tokio::task::spawn_blocking(move || encode(p))
        .await
        .unwrap_or_else(|e| Err(parquet::errors::ParquetError::General(e.to_string())));
    match encoded {
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

    /// The columns a file of `c` has after `request_id`, `row`, `time`, `model_version`,
    /// and `c`'s values in them.
    fn columns(c: Captured) -> (Vec<String>, Vec<Data>) {
        columns_without(c, &[])
    }

    fn columns_without(c: Captured, exclude: &[&str]) -> (Vec<String>, Vec<Data>) {
        columns_under(
            c,
            Privacy {
                exclude: exclude.iter().map(|e| e.to_string()).collect(),
                ..Default::default()
            },
        )
    }

    fn columns_under(c: Captured, privacy: Privacy) -> (Vec<String>, Vec<Data>) {
        let mut p = Pending::new(&c, privacy);
        p.add(c);
        (p.layout.into_iter().map(|(n, _, _)| n).collect(), p.columns)
    }

    fn of_tensors(
        features: Option<&[String]>,
        inputs: Vec<Tensor>,
        outputs: Vec<Output>,
        rows: usize,
    ) -> Captured {
        Captured::request(
            "i".into(),
            None,
            features.map(Arc::from),
            inputs,
            outputs,
            rows,
        )
    }

    #[test]
    fn tensors_become_columns_by_name_position_or_feature() {
        let inputs = || vec![tensor("input", &[2, 3], vec![1., 2., 3., 4., 5., 6.])];
        let outputs = || vec![output("y", &[2], Data::I64(vec![7, 8]))];
        let (names, values) = columns(of_tensors(None, inputs(), outputs(), 2));
        assert_eq!(names, ["input_0", "input_1", "input_2", "y"]);
        assert_eq!(values[1], Data::F64(vec![2., 5.]));
        assert_eq!(values[3], Data::I64(vec![7, 8]));
        let features = ["a".to_string(), "b".into(), "c".into()];
        let (names, _) = columns(of_tensors(Some(&features), inputs(), outputs(), 2));
        assert_eq!(names, ["a", "b", "c", "y"]);
        // Features that are not as many as the values of a row are not used.
        let (names, _) = columns(of_tensors(Some(&features[..2]), inputs(), vec![], 2));
        assert_eq!(names, ["input_0", "input_1", "input_2"]);
    }

    #[test]
    fn excluded_columns_and_tensors_are_never_written() {
        let features = ["age".to_string(), "ssn".into(), "income".into()];
        let inputs = || vec![tensor("input", &[1, 3], vec![40., 123456789., 5e4])];
        let outputs = || vec![output("score", &[1], Data::F64(vec![0.7]))];
        let (names, values) = columns_without(
            of_tensors(Some(&features), inputs(), outputs(), 1),
            &["ssn", "score"],
        );
        assert_eq!(names, ["age", "income"]);
        assert_eq!(values, [Data::F64(vec![40.]), Data::F64(vec![5e4])]);
        // A tensor's name leaves out all its columns.
        let (names, _) = columns_without(of_tensors(None, inputs(), outputs(), 1), &["input"]);
        assert_eq!(names, ["score"]);
    }

    #[test]
    fn hashed_columns_keep_equal_values_equal_and_nothing_readable() {
        let features = ["age".to_string(), "ssn".into(), "income".into()];
        let inputs = |ssn: f64| vec![tensor("input", &[2, 3], vec![40., ssn, 5e4, 41., 7., 6e4])];
        let privacy = |secret: &str| Privacy {
            hash: Arc::from(vec!["ssn".to_string()]),
            key: Privacy::key_of(secret.as_bytes()),
            ..Default::default()
        };
        let hashed = |ssn: f64, secret: &str| {
            let (names, values) = columns_under(
                of_tensors(Some(&features), inputs(ssn), vec![], 2),
                privacy(secret),
            );
            assert_eq!(names, ["age", "ssn", "income"]);
            assert_eq!(
                values[0],
                Data::F64(vec![40., 41.]),
                "other columns as they came"
            );
            match &values[1] {
                Data::Bytes(v) => v.clone(),
                other => panic!("{other:?}"),
            }
        };
        let a = hashed(123456789., "k1");
        assert!(
            a.iter()
                .all(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        assert!(!a[0].contains("123456789"));
        assert_ne!(a[0], a[1], "different values, different hashes");
        assert_eq!(
            hashed(123456789., "k1"),
            a,
            "the same value and key, the same hash"
        );
        assert_ne!(
            hashed(123456789., "k2")[0],
            a[0],
            "another key, another hash"
        );
        // A whole tensor, and text values, by the tensor's name.
        let text = vec![Tensor {
            name: "email".into(),
            shape: vec![1],
            datatype: Datatype::Bytes,
            values: Values::Bytes(vec!["a@example.com".into()]),
        }];
        let p = Privacy {
            hash: Arc::from(vec!["email".to_string()]),
            key: Privacy::key_of(b"k1"),
            ..Default::default()
        };
        let expected = p.hashed("a@example.com");
        let (_, values) = columns_under(of_tensors(None, text, vec![], 1), p);
        assert_eq!(values[0], Data::Bytes(vec![expected]));
    }

    #[test]
    fn names_taken_are_told_apart_and_tensors_of_other_rows_left_out() {
        let inputs = vec![
            tensor("predict", &[1], vec![1.]),
            tensor("row", &[1], vec![2.]),
        ];
        let outputs = vec![
            output("predict", &[1], Data::F64(vec![3.])),
            // A scalar: not a value per row.
            output("total", &[], Data::F64(vec![])),
            output("pair", &[2], Data::F64(vec![1., 2.])),
        ];
        let (names, values) = columns(of_tensors(None, inputs, outputs, 1));
        assert_eq!(names, ["predict", "input_row", "output_predict"]);
        assert_eq!(
            values,
            [
                Data::F64(vec![1.]),
                Data::F64(vec![2.]),
                Data::F64(vec![3.])
            ]
        );
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
            privacy: Privacy::default(),
            retention: None,
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
            body: Body::Columns(vec![Column {
                name: column.into(),
                values: Data::F64((0..rows).map(|r| r as f64).collect()),
            }]),
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

    #[test]
    fn requests_of_other_tensors_that_make_the_same_columns_share_a_file() {
        let features: Arc<[String]> = Arc::from(vec!["x1".to_string(), "x2".into()]);
        let out = |n| vec![output("y", &[n], Data::I64(vec![1; n]))];
        let matrix = Captured::request(
            "a".into(),
            None,
            Some(features.clone()),
            vec![tensor("input", &[2, 2], vec![1., 2., 3., 4.])],
            out(2),
            2,
        );
        let one_by_one = Captured::request(
            "b".into(),
            None,
            Some(features.clone()),
            vec![tensor("x1", &[1], vec![5.]), tensor("x2", &[1], vec![6.])],
            out(1),
            1,
        );
        let mut p = Pending::new(&matrix, Privacy::default());
        p.add(matrix);
        assert!(p.takes(&one_by_one));
        p.add(one_by_one);
        assert_eq!(p.columns[0], Data::F64(vec![1., 3., 5.]));
        assert_eq!(p.columns[1], Data::F64(vec![2., 4., 6.]));
        let other = Captured::request(
            "c".into(),
            None,
            Some(features),
            vec![tensor("x1", &[1], vec![5.])],
            out(1),
            1,
        );
        assert!(!p.takes(&other), "other columns: another file");
    }

    #[tokio::test]
    async fn files_past_their_retention_are_deleted_and_nothing_else() {
        let store = InMemory::new();
        let put = |key: &str| {
            let key = Path::from(key);
            let store = &store;
            async move {
                store
                    .put(&key, PutPayload::from_static(b"x"))
                    .await
                    .unwrap()
            }
        };
        put("captures/requests/date=2026-01-01/hour=00/old.parquet").await;
        put("captures/labels/date=2026-01-01/hour=00/old.parquet").await;
        put("captures/notes.txt").await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        put("captures/requests/date=2026-01-01/hour=01/new.parquet").await;
        let deleted = prune(&store, &Path::from("captures"), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(deleted, 2);
        let left: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        assert_eq!(
            left,
            [
                "captures/notes.txt",
                "captures/requests/date=2026-01-01/hour=01/new.parquet"
            ]
        );
    }
}
