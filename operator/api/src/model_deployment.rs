//! `ModelDeployment`: which model version is served and how a new version replaces the old.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::runtime_metrics::{
    LatencyKind, LatencyMetric, MetricsPreset, MetricsQuery, RuntimeMetrics, SeriesSelector,
    TimeUnit,
};

/// Serves a model version, and rolls out new versions by the chosen strategy with
/// automatic analysis, promotion and rollback.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ciclo.dev",
    version = "v1alpha1",
    kind = "ModelDeployment",
    namespaced,
    status = "ModelDeploymentStatus",
    shortname = "md",
    category = "ciclo",
    doc = "Serves a model version over the Open Inference Protocol and rolls out new versions by canary with automatic analysis, promotion and rollback.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model.name"),
    printcolumn(
        name = "Serving",
        type_ = "integer",
        json_path = ".status.servingVersion"
    ),
    printcolumn(
        name = "Canary",
        type_ = "integer",
        json_path = ".status.canaryVersion"
    ),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".status.canaryWeight"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
// A HorizontalPodAutoscaler on CPU utilisation divides usage by the pods' CPU request: without
// one it never scales.
#[x_kube(validation = Rule::new("!has(self.autoscaling) || (has(self.resources) && ((has(self.resources.requests) && 'cpu' in self.resources.requests) || (has(self.resources.limits) && 'cpu' in self.resources.limits)))").message("autoscaling on CPU utilisation needs resources.requests.cpu (or resources.limits.cpu)").field_path(".autoscaling"))]
// Capture is the built-in server's.
#[x_kube(validation = Rule::new("!has(self.capture) || !has(self.runtime) || !has(self.runtime.image)").message("capture is done by the built-in server: it cannot be set with runtime.image").field_path(".capture"))]
// Write-back edits the pin that git holds.
#[x_kube(validation = Rule::new("!has(self.gitWriteBack) || has(self.model.version)").message("gitWriteBack edits the pinned version in git: pin spec.model.version (the version serving now)").field_path(".gitWriteBack"))]
#[x_kube(validation = Rule::new("!has(self.skew) || !has(self.runtime) || !has(self.runtime.image)").message("skew is counted by the built-in server: it cannot be set with runtime.image").field_path(".skew"))]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentSpec {
    /// The model and version to serve.
    pub model: ModelSelector,
    /// What serves it: the built-in server (`ciclo serve`) unless `image` is given.
    #[serde(default)]
    pub runtime: Runtime,
    /// Serving replicas (the starting point when autoscaling).
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Scale between bounds on CPU (a HorizontalPodAutoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Compute resources of each serving pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::schema::resources)]
    pub resources: Option<ResourceRequirements>,
    /// How a new version replaces the serving one.
    #[serde(default)]
    pub strategy: Strategy,
    /// What must hold while a new version takes traffic.
    #[serde(default)]
    pub analysis: Analysis,
    /// Only roll out a version that beats the serving one on the model's primary metric.
    #[serde(default = "yes")]
    pub require_improvement: bool,
    /// Split traffic with a Gateway API HTTPRoute's backend weights instead of replica ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Keep a sample of the requests served (the built-in server's v2 inference, REST and
    /// gRPC: inputs, outputs, request ids) as Parquet files under
    /// `<artifact store>/<namespace>/captures/<name>/`, written with the namespace's store
    /// credentials: the data the next dataset version can be made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
    /// Measure how far the serving version's inputs are from the data it was trained on,
    /// feature by feature (the built-in server counts them into that data's bins), and act
    /// when they are too far: the `Skewed` condition, an Event and a metric, and with
    /// `onSkew: Retrain` a new check of the Datasets made of this deployment's capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.measure) || self.measure == 'PSI' || self.maxDistance <= 1.0").message("a Jensen-Shannon or L-infinity distance is at most 1, so a maxDistance above 1 would never be reached").field_path(".maxDistance"))]
    #[x_kube(validation = Rule::new("!has(self.recoverBelow) || self.recoverBelow < self.maxDistance").message("recoverBelow must be under maxDistance (the skew must fall below it before it can be reported again)").field_path(".recoverBelow"))]
    pub skew: Option<Skew>,
    /// Promote by commit: ciclo edits `spec.model.version` in this ModelDeployment's file in
    /// git when a newer version is blessed (and beats the serving one, with
    /// `requireImprovement`), and when the pinned version fails its canary analysis, and
    /// the GitOps controller that applies the repository rolls the change out. The cluster
    /// changes only through git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_write_back: Option<GitWriteBack>,
}

/// Where this ModelDeployment's YAML is in git, and how ciclo may push to it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitWriteBack {
    /// The repository, over HTTP(S) (`https://git.example.com/team/models.git`), without
    /// credentials in it.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/@]+/.+$')").message("url must be an http:// or https:// URL of a repository, with no credentials in it (give them in secretRef)"))]
    pub url: String,
    /// The branch that holds the pin: the one the GitOps controller applies.
    #[serde(default = "main")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._/-]+$') && !self.startsWith('/') && !self.endsWith('/') && !self.contains('..')").message("branch must be a branch name: letters, digits, '.', '_', '-' and '/'"))]
    pub branch: String,
    /// The file holding this ModelDeployment, from the repository's root
    /// (`apps/ml/web.yaml`); its document is found by kind and `metadata.name`.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("!self.startsWith('/') && !self.contains('..')").message("path must be relative to the repository's root, without '..'"))]
    pub path: String,
    /// A Secret in this namespace with `username` and `password` (a token that may push):
    /// the keys Flux reads for HTTP basic auth, so one Secret can serve both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretRef>,
    /// Commit each change to a new branch `<reviewBranchPrefix><name>-v<version>` made from
    /// `branch`, for a person to review and merge (a pull request on a forge), instead of
    /// to `branch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._/-]+$') && !self.startsWith('/') && !self.contains('..')").message("reviewBranchPrefix must be the start of a branch name, such as ciclo/"))]
    pub review_branch_prefix: Option<String>,
}

fn main() -> String {
    "main".into()
}

/// A Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LocalSecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("name must be a Secret's name: lowercase letters, digits, '-' and '.'"))]
    pub name: String,
}

/// When the served inputs are too far from the training data, and what to do then.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Skew {
    /// PSI (default), JensenShannon or LInfinity, as a Dataset's drift.
    #[serde(default)]
    pub measure: ciclo_core::expectations::DriftMeasure,
    /// A feature whose distance is over this is skewed.
    #[schemars(range(min = 0.0))]
    #[x_kube(validation = Rule::new("self > 0.0").message("maxDistance must be over 0"))]
    pub max_distance: f64,
    /// Once skewed, the deployment stays so until every feature is below this (default half
    /// of maxDistance): a skew that hovers at the limit is reported once, not on every
    /// window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub recover_below: Option<f64>,
    /// The served values compared: those of the last window, hours, minutes and seconds
    /// ("10m", "1h"); a window with fewer than minSamples values per feature goes on until it
    /// has them.
    #[serde(default = "default_window")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$') && self != '' && duration(self) >= duration('10s')").message("window must be hours, minutes and seconds, largest first, such as 10m or 1h, and at least 10s"))]
    pub window: String,
    /// Values of a feature a window needs before its distance counts.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: i64,
    /// The features measured; empty: every input the training data has a numeric column of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Alert: the condition, an Event and the metric. Retrain: also ask the Datasets whose
    /// source is this deployment's capture for a new check, at most once per cooldown;
    /// training follows only when the check accepts a new version.
    #[serde(default)]
    pub on_skew: OnSkew,
    /// The least time between two retrain requests.
    #[serde(default = "default_cooldown")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$') && self != ''").message("cooldown must be hours, minutes and seconds, largest first, such as 30m or 1h"))]
    pub cooldown: String,
}

fn default_window() -> String {
    "10m".into()
}

fn default_min_samples() -> i64 {
    1000
}

fn default_cooldown() -> String {
    "1h".into()
}

impl Skew {
    /// The bound the skew must fall below to clear.
    pub fn recover_below(&self) -> f64 {
        self.recover_below.unwrap_or(self.max_distance / 2.0)
    }
}

/// What a skew leads to.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnSkew {
    #[default]
    Alert,
    Retrain,
}

/// How much of the traffic to keep, and how soon it is written.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.hash) || size(self.hash) == 0 || has(self.hashKeySecretRef)").message("hashed columns need hashKeySecretRef: the key the hashes are made with").field_path(".hashKeySecretRef"))]
pub struct Capture {
    /// The share of requests kept, from 0 to 1.
    #[serde(default = "all")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub ratio: f64,
    /// The longest a kept request waits before its file is written, in seconds (files are
    /// also written when a pod stops).
    #[serde(default = "minute")]
    #[schemars(range(min = 1, max = 86400))]
    pub flush_seconds: i32,
    /// Columns never kept (sensitive ones): a feature's or an output's name, `<tensor>_<j>`,
    /// or a tensor's name for all of its columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = Rule::new("self.all(c, !c.contains(','))").message("an excluded column is a name without ','"))]
    pub exclude: Vec<String>,
    /// Columns kept only as a keyed hash (32 hex digits of BLAKE3 keyed with the Secret's
    /// key), named as for exclude: equal values keep equal hashes, so rows can still be
    /// grouped or joined by them, but the values cannot be read back without the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = Rule::new("self.all(c, !c.contains(','))").message("a hashed column is a name without ','"))]
    pub hash: Vec<String>,
    /// The key of the hashes: a key of a Secret in the deployment's namespace, given to the
    /// serving pods as an environment variable (never in a spec, status, Event or log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key_secret_ref: Option<SecretKeyRef>,
    /// Days a capture file (requests and labels) is kept; the serving pods delete older ones
    /// every hour.
    #[serde(default = "month")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: i32,
}

fn month() -> i32 {
    30
}

/// A key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("name must be a Secret's name: lowercase letters, digits, '-' and '.'"))]
    pub name: String,
    /// The key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn all() -> f64 {
    1.0
}

fn minute() -> i32 {
    60
}

fn one() -> i32 {
    1
}

fn yes() -> bool {
    true
}

/// A model version: pinned, or following the newest blessed one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.version) && has(self.track))").message("give either version (pinned) or track (floating), not both"))]
pub struct ModelSelector {
    /// The model's name, as the TrainingRun that registers it gives it.
    #[schemars(length(max = 40))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("model name must be a lowercase DNS label of at most 40 characters"))]
    pub name: String,
    /// Pin this version number (served even if not blessed). Without `version` and
    /// `track`, the newest blessed version is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
    /// Follow a moving version: `LatestBlessed` (newly blessed versions roll out by themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<ModelTrack>,
}

/// Floating model versions.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelTrack {
    LatestBlessed,
}

/// The serving runtime.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
// The built-in server gets its own arguments: args would be ignored.
#[x_kube(validation = Rule::new("has(self.image) || !has(self.args) || size(self.args) == 0").message("args apply only to your own image (runtime.image), not to the built-in server").field_path(".args"))]
#[x_kube(validation = Rule::new("has(self.image) || !has(self.command) || size(self.command) == 0").message("command applies only to your own image (runtime.image), not to the built-in server").field_path(".command"))]
#[x_kube(validation = Rule::new("has(self.image) || self.port != 8081").message("the built-in server serves gRPC on port 8081: give runtime.port another").field_path(".port"))]
#[x_kube(validation = Rule::new("has(self.image) || !has(self.metrics)").message("metrics describes your own image's metrics (runtime.image); the built-in server's are known").field_path(".metrics"))]
pub struct Runtime {
    /// Your serving image; it gets CICLO_MODEL_URI and CICLO_PORT. Unset: the built-in server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new(r"self.matches('^\\S+$')").message("image must be an image reference, not empty and without spaces"))]
    pub image: Option<String>,
    /// Command of your image (its entrypoint when unset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments of your image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The port it serves on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Where canary analysis reads your image's request counts, errors and latency: a preset
    /// for a known runtime (`MLServer`, `Triton`), or the names of your own. Unset: the names
    /// `ciclo serve` exposes, on `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<RuntimeMetrics>,
}

fn default_port() -> i32 {
    8080
}

impl Runtime {
    /// What canary analysis reads: `metrics` with its preset's defaults, or `ciclo serve`'s
    /// names on `port`.
    pub fn metrics_query(&self) -> MetricsQuery {
        match &self.metrics {
            Some(m) => m.query(self.port),
            None => MetricsPreset::Ciclo.query(self.port),
        }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            image: None,
            command: Vec::new(),
            args: Vec::new(),
            port: default_port(),
            metrics: None,
        }
    }
}

/// Autoscaling bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.maxReplicas >= self.minReplicas").message("maxReplicas must be at least minReplicas"))]
pub struct Autoscaling {
    /// Fewest replicas.
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// Most replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Target average CPU utilisation, in percent of requests.
    #[serde(default = "default_cpu")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu() -> i32 {
    80
}

/// Rollout strategy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'Canary' || has(self.steps)").message("a Canary strategy needs steps"))]
#[x_kube(validation = Rule::new("self.type == 'Canary' || !has(self.steps) || size(self.steps) == 0").message("steps apply only to the Canary strategy").field_path(".steps"))]
pub struct Strategy {
    /// `Rolling` (the new version fully up before the old one goes) or `Canary` (traffic moves in steps).
    #[serde(default, rename = "type")]
    pub type_: StrategyType,
    /// Canary steps: the share of traffic the new version gets, and how long it holds there
    /// while the analysis runs. Weights must increase and stay within 1–100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.map(s, s.weight).isSorted() && self.all(s, self.filter(t, t.weight == s.weight).size() == 1)").message("canary step weights must strictly increase"))]
    pub steps: Vec<CanaryStep>,
}

/// Strategy types.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StrategyType {
    #[default]
    Rolling,
    Canary,
}

/// One canary step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CanaryStep {
    /// Percent of traffic to the new version.
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    /// How long to hold at this weight: hours, minutes and seconds, largest first ("30s",
    /// "5m", "1m30s").
    #[serde(default = "default_pause")]
    #[schemars(length(max = 32))]
    // The one form of duration that the operator (jiff) and Go's parser read alike, as for
    // a Dataset's interval; 0s holds no time.
    #[x_kube(validation = Rule::new("self.matches('^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$') && self != ''").message("pause must be hours, minutes and seconds, largest first, such as 30s, 5m or 1m30s"))]
    pub pause: String,
}

fn default_pause() -> String {
    "30s".into()
}

/// Thresholds the new version must hold under real traffic.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Largest share of requests that may fail (5xx), 0–1.
    #[serde(default = "default_error_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_ratio: f64,
    /// Largest 99th-percentile latency, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_p99_latency_ms: Option<i64>,
    /// Fewest inference requests a canary step must see before it is judged; with fewer the
    /// step waits (phase `Paused`). 0: a step that no request reached passes when its pause
    /// ends (on time alone), while requests it did see are still judged by the thresholds.
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 0))]
    pub min_requests: i64,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            max_error_ratio: default_error_ratio(),
            max_p99_latency_ms: None,
            min_requests: default_min_requests(),
        }
    }
}

fn default_error_ratio() -> f64 {
    0.01
}

fn default_min_requests() -> i64 {
    20
}

/// Traffic splitting through the Gateway API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    /// The HTTPRoute (same namespace) whose backend weights ciclo sets.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("httpRoute must be an HTTPRoute's name: lowercase letters, digits, '-' and '.'"))]
    pub http_route: String,
}

/// What is served and how the rollout is going.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled (kstatus); the rollout's progress is `phase`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The version taking (the rest of) the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<i64>,
    /// The version being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_version: Option<i64>,
    /// The canary's share of traffic, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,
    /// Progressing, Paused, Promoted, RolledBack or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The canary step in progress (0-based), during a canary rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<i32>,
    /// When the current step's pods were all ready: its pause and analysis run from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::time::Rfc3339>")]
    pub step_started: Option<Timestamp>,
    /// The canary's request counters when the step started, so the analysis sees only the
    /// step's own traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_baseline: Option<TrafficSample>,
    /// When the rollout in progress started (its deadline counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::time::Rfc3339>")]
    pub rollout_started: Option<Timestamp>,
    /// The Service that fronts the serving pods (`http://<service>.<namespace>.svc:<port>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Recent rollouts, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RolloutRecord>,
    /// How far the serving version's inputs are from its training data (`spec.skew`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew: Option<SkewStatus>,
    /// The last change written back to git (`spec.gitWriteBack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBackStatus>,
}

/// A change ciclo committed to git.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WriteBackStatus {
    /// Promotion or Rollback.
    pub change: WriteBackChange,
    /// The version the commit pins.
    pub version: i64,
    /// The commit (its full id) and the branch it is on.
    pub commit: String,
    pub branch: String,
    /// When ciclo pushed it, or found it pushed.
    #[schemars(with = "crate::time::Rfc3339")]
    pub time: Timestamp,
}

/// What a write-back commit does.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteBackChange {
    /// Pins a newer blessed version.
    Promotion,
    /// Pins the version that served before a pinned one failed its analysis.
    Rollback,
}

/// The skew of the serving version's inputs from the data it was trained on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkewStatus {
    /// The serving version measured.
    pub version: i64,
    /// When the window being filled began.
    #[schemars(with = "crate::time::Rfc3339")]
    pub window_started: Timestamp,
    /// The values counted when it began, summed over the serving pods: per feature, per bin
    /// of the training data. The window's values are the counts now minus these.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub window_start: std::collections::BTreeMap<String, Vec<i64>>,
    /// When a window was last measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::time::Rfc3339>")]
    pub measured: Option<Timestamp>,
    /// The last window's distance per feature, the farthest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<FeatureSkew>,
    /// Whether the inputs are skewed (the condition `Skewed`).
    #[serde(default)]
    pub skewed: bool,
    /// When a new check of the capture's Datasets was last asked for (`onSkew: Retrain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::time::Rfc3339>")]
    pub retrain_requested: Option<Timestamp>,
}

/// One feature's distance over a window.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FeatureSkew {
    pub feature: String,
    pub distance: f64,
    /// The window's values of the feature.
    pub samples: i64,
}

/// Where a ModelDeployment's rollout is.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A version is being brought up or a canary step is in progress.
    Progressing,
    /// A canary step holds: waiting for enough traffic to judge it.
    Paused,
    /// The selected version serves all traffic.
    Promoted,
    /// The last rollout failed its analysis and was undone; the previous version serves.
    RolledBack,
    /// Nothing serves: the version's pods do not become ready.
    Degraded,
}

/// Request counters summed over a set of serving pods, read from their `/metrics`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSample {
    /// Requests answered.
    pub requests: f64,
    /// Of those, answered with a 5xx status.
    pub errors: f64,
    /// Cumulative latency histogram: requests at or under each bound (seconds, as text).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub latency_buckets: std::collections::BTreeMap<String, f64>,
    /// The 99th-percentile latency a runtime's own summary reports (seconds; the largest of
    /// the pods'), when latency comes from a summary rather than a histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_p99_seconds: Option<f64>,
}

/// One rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    /// The version rolled out.
    pub version: i64,
    /// The version it replaced, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// How it ended.
    pub result: RolloutResult,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The spec generation it rolled out under: a rolled-back version is not tried again
    /// until the spec changes or a newer version is selected.
    pub generation: i64,
    /// When it ended (RFC 3339).
    #[schemars(with = "crate::time::Rfc3339")]
    pub finished: Timestamp,
}

/// How a rollout ended. The names are the status's words since v1alpha1 began (when it was a
/// free string), so records written then read as these.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutResult {
    /// The version serves all traffic.
    Promoted,
    /// The canary was removed; the version it was to replace serves on.
    RolledBack,
    /// Another version was selected before this one finished rolling out.
    Superseded,
}

impl RolloutResult {
    /// The word the status uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutResult::Promoted => "Promoted",
            RolloutResult::RolledBack => "RolledBack",
            RolloutResult::Superseded => "Superseded",
        }
    }
}
