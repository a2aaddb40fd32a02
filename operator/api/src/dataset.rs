//! `Dataset`: where a dataset lives and what it must look like. ciclo versions it by
//! content, validates every new version and keeps the accepted ones.

use ciclo_core::expectations::{DriftLimit, Expectations};
pub use ciclo_core::snapshot_result::{FailureReason, Outcome};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A dataset: a source of files in an object store, the format they are in, how often to
/// look for new data, and the expectations every accepted version meets.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ciclo.dev",
    version = "v1alpha1",
    kind = "Dataset",
    namespaced,
    status = "DatasetStatus",
    shortname = "ds",
    category = "ciclo",
    doc = "A versioned, validated dataset: ciclo snapshots its source by content, checks every new version against the expectations and keeps the accepted ones.",
    printcolumn(
        name = "Latest",
        type_ = "string",
        json_path = ".status.latest.id",
        description = "The latest accepted version"
    ),
    printcolumn(name = "Rows", type_ = "integer", json_path = ".status.latest.rows"),
    printcolumn(
        name = "Verdict",
        type_ = "string",
        json_path = ".status.versions[0].verdict",
        description = "The verdict on the newest version checked"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSpec {
    /// Where the data lives.
    pub source: DataSource,
    /// The files' format. When unset, each file's extension decides (.csv, .parquet, .jsonl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
    /// How often to look for new data: hours, minutes and seconds, largest first ("90s",
    /// "30m", "1h30m", "24h"), at least 10s. A change is also looked for at once when the
    /// annotation `ciclo.dev/reconcile-requested-at` changes.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32))]
    // The operator parses jiff's friendly format and ISO 8601, CEL's `duration()` Go's
    // format; the form both read alike is integer hours, minutes and seconds, largest first.
    // Six digits each keep the sum within both (Go's limit is about 2.5 million hours).
    #[x_kube(validation = Rule::new("self.matches('^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$') && self != ''").message("interval must be hours, minutes and seconds, largest first, such as 90s, 30m or 1h30m"))]
    // A shorter interval would start a check Job every few seconds, forever.
    #[x_kube(validation = Rule::new("!self.matches('^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$') || self == '' || duration(self) >= duration('10s')").message("interval must be at least 10s"))]
    pub interval: String,
    /// Expectations every accepted version meets: columns, types, nullability, ranges,
    /// allowed values, minimum rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::expectations)]
    pub schema: Option<Expectations>,
    /// How far a new version may drift from the previous accepted version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.measure) || self.measure == 'PSI' || self.maxDistance <= 1.0").message("a Jensen-Shannon or L-infinity distance is at most 1, so a maxDistance above 1 would never reject a version").field_path(".maxDistance"))]
    pub drift: Option<DriftLimit>,
    /// How many versions (accepted and rejected) the status keeps.
    #[serde(default = "default_history")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: u32,
    /// Which rejected versions are removed, with their folders in the artifact store (the
    /// manifest, profile and report of data that was never used). Unset: rejected versions
    /// leave the status by `historyLimit` and their folders stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<DatasetRetention>,
    /// Stop looking for new data; recorded versions stay.
    #[serde(default)]
    pub suspend: bool,
    /// How a check of a large dataset is split over several pods: an Indexed Job whose
    /// workers each hash and profile a share of the files, and whose worker 0 merges their
    /// manifests and sketches without reading the data again. The version id and profile are
    /// those of a check in one pod. Unset: the defaults of each field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<Sharding>,
}

/// When a check is sharded, and over how many workers. A check is sharded when the last
/// version recorded (accepted or rejected) had at least `minBytes` bytes or `minFiles` files:
/// the operator never reads the data itself, so the first check of a Dataset runs in one
/// pod, and so does a capture's.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sharding {
    /// The workers of a sharded check (pods of its Indexed Job). 1 never shards.
    #[serde(default = "default_shard_workers")]
    #[schemars(range(min = 1, max = 64))]
    pub workers: i32,
    /// Shard when the last version had at least this many bytes. Default 10 GiB
    /// (10737418240).
    #[serde(default = "default_shard_min_bytes")]
    #[schemars(range(min = 0))]
    pub min_bytes: i64,
    /// Shard when the last version had at least this many files. Default 10000.
    #[serde(default = "default_shard_min_files")]
    #[schemars(range(min = 0))]
    pub min_files: i64,
}

impl Default for Sharding {
    fn default() -> Self {
        Sharding {
            workers: default_shard_workers(),
            min_bytes: default_shard_min_bytes(),
            min_files: default_shard_min_files(),
        }
    }
}

fn default_shard_workers() -> i32 {
    4
}

fn default_shard_min_bytes() -> i64 {
    10 << 30
}

fn default_shard_min_files() -> i64 {
    10_000
}

fn default_interval() -> String {
    "1h".into()
}

fn default_history() -> u32 {
    10
}

/// The files of a dataset: a prefix in an object store, or the capture of a ModelDeployment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.uri) != has(self.capture)").message("a source is either a uri or a capture, exactly one of them"))]
// A capture is kept in ciclo's artifact store, with the namespace's own store credentials:
// no other store's settings apply to it.
#[x_kube(validation = Rule::new("!has(self.capture) || !has(self.endpoint) && !has(self.region) && !has(self.credentialsSecretRef) && (!has(self.forcePathStyle) || !self.forcePathStyle) && (!has(self.include) || size(self.include) == 0) && (!has(self.exclude) || size(self.exclude) == 0)").message("a capture is read from ciclo's artifact store: endpoint, region, forcePathStyle, credentialsSecretRef, include and exclude apply only to a uri"))]
pub struct DataSource {
    /// Prefix of the data, as a URI: `s3://bucket/prefix`, `gs://…`, `az://…`,
    /// `file:///path` or `https://host/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^(s3|gs|az|file|https)://.+')").message("uri must start with s3://, gs://, az://, file:// or https:// and name a location"))]
    pub uri: Option<String>,
    /// The requests a ModelDeployment in this namespace captured (`spec.capture`), joined
    /// with the labels sent for them: each check makes one Parquet file of the labelled rows
    /// (their inputs and labels, never the model's answers) and checks it like any other
    /// version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureSource>,
    /// Globs (relative to the prefix) a file must match to be part of the dataset; empty
    /// means every file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Globs of files to leave out, applied after `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// S3-compatible endpoint URL, for stores other than AWS (MinIO, Ceph, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/]+')").message("endpoint must be an http:// or https:// URL such as http://minio.storage:9000"))]
    pub endpoint: Option<String>,
    /// Region of the bucket (S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Address buckets by path (`endpoint/bucket/key`) rather than by host name (S3).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret in the Dataset's namespace holding the store's credentials, as the
    /// object_store crate's environment names (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `GOOGLE_SERVICE_ACCOUNT_KEY`, `AZURE_STORAGE_ACCOUNT_KEY`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
}

/// A ModelDeployment's capture, as a dataset source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CaptureSource {
    /// The ModelDeployment, in the Dataset's namespace.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("modelDeployment must be a ModelDeployment's name: lowercase letters, digits, '-' and '.'"))]
    pub model_deployment: String,
}

/// What a Dataset keeps of its rejected versions.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DatasetRetention {
    /// Keep the newest this many rejected versions; older ones (and any rejected version
    /// leaving the history by `historyLimit`) are removed from the status and their folders
    /// deleted from the store once a check is recorded. Accepted versions are never removed:
    /// the lineage of a model may name them.
    #[schemars(range(min = 0, max = 100))]
    pub rejected_versions: u32,
}

/// A Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("name must be a Secret's name: lowercase letters, digits, '-' and '.'"))]
    pub name: String,
}

/// Supported file formats.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    Csv,
    Parquet,
    Jsonl,
}

/// What ciclo has seen of the dataset.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled (kstatus), Validated, SourceUnavailable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The latest accepted version; a rejected version never becomes latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<DatasetVersion>,
    /// Recent versions, newest first, accepted and rejected, at most `historyLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<DatasetVersion>,
    /// The last check whose result is recorded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<DatasetCheck>,
}

/// One finished check of the source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetCheck {
    /// The Job that ran it.
    pub job: String,
    /// The spec generation it checked.
    pub generation: i64,
    /// The `ciclo.dev/reconcile-requested-at` value it answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    /// When its result was recorded (RFC 3339); the next periodic check is `interval` later.
    #[schemars(with = "crate::time::Rfc3339")]
    pub finished: Timestamp,
    /// Accepted, Rejected, Unchanged, or Failed (see `failure`).
    pub outcome: Outcome,
    /// The version it found, when the source could be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why it could not run to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReason>,
    /// What happened, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One content-addressed version of a dataset.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetVersion {
    /// The version's id: the hash of its manifest (every file's path, size and BLAKE3 hash).
    pub id: String,
    /// When the version was first seen.
    #[schemars(with = "crate::time::Rfc3339")]
    pub created: Timestamp,
    /// Rows over all files.
    pub rows: i64,
    /// Bytes over all files.
    pub bytes: i64,
    /// Number of files.
    pub files: i64,
    /// Accepted or Rejected.
    pub verdict: Verdict,
    /// Why the version was rejected (the first failed expectations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Where the version's manifest, profile and report are stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For a version made of a ModelDeployment's capture: what it was joined from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_from: Option<CapturedFrom>,
}

/// The production traffic a dataset version was made of: the lineage from the models that
/// served it to the models trained on it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CapturedFrom {
    /// The ModelDeployment whose serving pods captured the rows.
    pub model_deployment: String,
    /// The versions of the deployment's model (`spec.version` of its ModelVersions) that
    /// answered the version's rows, those that answered most first (at most 8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_versions: Vec<String>,
    /// Request rows in the capture when the version was made, labelled or not.
    pub captured_rows: i64,
}

/// The outcome of validating a version.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Rejected,
}
