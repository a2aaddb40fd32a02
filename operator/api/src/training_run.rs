//! `TrainingRun`: "there is a model trained by this spec on this dataset". ciclo trains once
//! per (spec generation, dataset version), records each result as a `ModelVersion`, and
//! trains again by itself when a new accepted dataset version arrives.

use ciclo_core::metrics::{Gate, MetricSpec};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How to train a model, on which data, and what a result must reach to be blessed.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ciclo.dev",
    version = "v1alpha1",
    kind = "TrainingRun",
    namespaced,
    status = "TrainingRunStatus",
    shortname = "tr",
    category = "ciclo",
    doc = "Trains a model on an exact dataset version as a Kubernetes Job, records every result as an immutable ModelVersion, and retrains when new accepted data arrives.",
    printcolumn(name = "Dataset", type_ = "string", json_path = ".spec.dataset.name"),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.name"),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.currentRun.phase"
    ),
    // The run in progress is `Phase`, empty between runs; how the latest one ended is here.
    printcolumn(name = "Last Run", type_ = "string", json_path = ".status.runs[0].phase"),
    printcolumn(
        name = "Last Version",
        type_ = "integer",
        json_path = ".status.lastModelVersion"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.gates) || self.gates.all(g, has(self.metrics) && self.metrics.exists(m, m.name == g.metric))").message("every gate's metric must be declared in spec.metrics, which gives its direction").field_path(".gates"))]
#[x_kube(validation = Rule::new("!has(self.gates) || self.gates.all(g, has(g.threshold) != (has(g.mustBeatBaseline) && g.mustBeatBaseline))").message("each gate needs exactly one of threshold (a fixed value) and mustBeatBaseline: true").field_path(".gates"))]
#[x_kube(validation = Rule::new("!has(self.gates) || self.gates.all(g, !has(g.minDelta) || (has(g.mustBeatBaseline) && g.mustBeatBaseline))").message("minDelta applies only to a gate with mustBeatBaseline: true").field_path(".gates"))]
#[x_kube(validation = Rule::new("!has(self.primaryMetric) || (has(self.metrics) && self.metrics.exists(m, m.name == self.primaryMetric))").message("primaryMetric must be declared in spec.metrics, which gives its direction").field_path(".primaryMetric"))]
#[x_kube(validation = Rule::new("has(self.trainer) != has(self.image)").message("give either trainer (the built-in trainer) or image (your own), exactly one"))]
// The built-in trainer runs `ciclo train`: a command or args would be ignored.
#[x_kube(validation = Rule::new("!has(self.trainer) || !has(self.command) || size(self.command) == 0").message("command applies only to your own image, not to the built-in trainer").field_path(".command"))]
#[x_kube(validation = Rule::new("!has(self.trainer) || !has(self.args) || size(self.args) == 0").message("args apply only to your own image, not to the built-in trainer").field_path(".args"))]
#[serde(rename_all = "camelCase")]
pub struct TrainingRunSpec {
    /// The dataset to train on.
    pub dataset: DatasetRef,
    /// The model the results are registered under as ModelVersions.
    pub model: ModelTarget,
    /// The built-in trainer (`ciclo train`). Give this or `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<BuiltinTrainer>,
    /// Your own training image; it gets the workload contract (CICLO_DATASET_URI,
    /// CICLO_DATASET_VERSION, CICLO_OUTPUT_URI, CICLO_PARAMS) as environment. Give this or `trainer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new(r"self.matches('^\\S+$')").message("image must be an image reference, not empty and without spaces"))]
    pub image: Option<String>,
    /// Command of your image (its entrypoint when unset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments of your image's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Hyperparameters, passed to the workload as CICLO_PARAMS (JSON) and recorded in lineage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Compute resources of each worker, including `nvidia.com/gpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::resources)]
    pub resources: Option<ResourceRequirements>,
    /// Number of workers; more than one runs distributed training (an Indexed Job with the
    /// environment torchrun expects).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1024))]
    pub workers: i32,
    /// Retries of a failed run before it counts as failed.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: i32,
    /// Longest a run may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// Also train on this cron schedule (e.g. "0 3 * * *"), on the current dataset version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub schedule: Option<String>,
    /// Node labels the training pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the training pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// ServiceAccount the training pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("serviceAccountName must be a ServiceAccount's name: lowercase letters, digits, '-' and '.'"))]
    pub service_account_name: Option<String>,
    /// Metrics the workload reports in metrics.json, each with the way it improves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub metrics: Vec<MetricSpec>,
    /// The metric new versions are compared on (must be in `metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub primary_metric: Option<String>,
    /// What a version must reach to be blessed (each metric must be in `metrics`): a fixed
    /// threshold, or beating the latest blessed earlier version by `minDelta`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub gates: Vec<Gate>,
    /// The code's git repository and revision, recorded in lineage. When unset, the
    /// annotations `ciclo.dev/git-repository` and `ciclo.dev/git-revision` are used, which a
    /// GitOps tool can fill in when it renders the object (see docs/training.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// Start no new runs; a running one finishes.
    #[serde(default)]
    pub suspend: bool,
    /// How many runs the status keeps.
    #[serde(default = "default_history")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: u32,
    /// Which of the model's versions are removed, with their records and artifacts, as new
    /// ones are registered. Unset: every version is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// What a TrainingRun keeps of the versions of its model.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the newest this many versions that were judged and not blessed; older ones are
    /// removed once a run registers a new version — the ModelVersion, its registry record
    /// and its run's artifacts — unless a ModelDeployment serves it, canaries it or pins it,
    /// or it is the baseline a kept version was judged against. Blessed versions are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub unblessed_versions: Option<u32>,
}

fn one() -> i32 {
    1
}

fn default_history() -> u32 {
    10
}

/// The dataset a run trains on: a pinned version, or the latest accepted one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.version) && has(self.track))").message("give either version (pinned) or track (floating), not both"))]
pub struct DatasetRef {
    /// The Dataset's name, in the same namespace.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Pin this version id. Without `version` and `track`, the run follows the latest
    /// accepted version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub version: Option<String>,
    /// Follow a moving version: `Latest` (the latest accepted version; new accepted
    /// versions trigger new runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<DatasetTrack>,
}

/// Floating dataset versions.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetTrack {
    Latest,
}

/// Where results are registered.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelTarget {
    /// The model's name; its ModelVersions are numbered 1, 2, … per namespace.
    #[schemars(length(max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("model name must be a lowercase DNS label of at most 40 characters"))]
    pub name: String,
}

/// The built-in trainer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.features) || !(self.target in self.features)").message("features must not include the target").field_path(".features"))]
pub struct BuiltinTrainer {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The column to predict.
    #[schemars(length(min = 1, max = 256))]
    pub target: String,
    /// Feature columns, each once; empty means every column but the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 256)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub features: Vec<String>,
    /// Share of rows held out to compute the metrics.
    #[serde(default = "default_test_fraction")]
    #[schemars(range(min = 0.05, max = 0.5))]
    pub test_fraction: f64,
}

fn default_test_fraction() -> f64 {
    0.2
}

/// Algorithms of the built-in trainer.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    LogisticRegression,
    LinearRegression,
    DecisionTree,
}

/// The code behind a training image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GitSource {
    /// Repository URL.
    #[schemars(length(min = 1))]
    pub repository: String,
    /// Commit, tag or branch.
    #[schemars(length(min = 1))]
    pub revision: String,
}

/// What ciclo has done for the TrainingRun.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainingRunStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled (kstatus), Running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The dataset version the next or current run uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_version: Option<String>,
    /// The run in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_run: Option<RunRecord>,
    /// Recent runs, newest first, at most `historyLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunRecord>,
    /// The number of the last ModelVersion a run registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_model_version: Option<i64>,
}

/// One training run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The run's id, derived from the spec generation and dataset version.
    pub id: String,
    /// The Job that runs it.
    pub job: String,
    /// The dataset version it trains on.
    pub dataset_version: String,
    /// Where the run is.
    pub phase: RunPhase,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::time::Rfc3339>")]
    pub start_time: Option<Timestamp>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::time::Rfc3339>")]
    pub completion_time: Option<Timestamp>,
    /// The metrics it reported.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// The ModelVersion it registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// Where a run is. The names are the status's words since v1alpha1 began (when it was a
/// free string), so records written then read as these.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPhase {
    /// Its Job exists; no pod runs yet.
    Pending,
    /// A pod of its Job runs.
    Running,
    /// It registered a ModelVersion.
    Succeeded,
    /// It failed, or ended without a result.
    Failed,
}

impl RunPhase {
    /// The word the status uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Pending => "Pending",
            RunPhase::Running => "Running",
            RunPhase::Succeeded => "Succeeded",
            RunPhase::Failed => "Failed",
        }
    }

    /// Whether the run has ended, either way.
    pub fn is_finished(self) -> bool {
        matches!(self, RunPhase::Succeeded | RunPhase::Failed)
    }
}
