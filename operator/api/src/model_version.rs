//! `ModelVersion`: the immutable registry record of one trained model, with its lineage.
//! Written by the operator; its spec can never change.

use ciclo_core::metrics::{Gate, GateVerdict, MetricSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One version of a model: its artifact and everything that made it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ciclo.dev",
    version = "v1alpha1",
    kind = "ModelVersion",
    namespaced,
    status = "ModelVersionStatus",
    shortname = "mv",
    category = "ciclo",
    doc = "An immutable record of one trained model version: artifact, digest and lineage (data, code, params, metrics). Written by ciclo.",
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model"),
    printcolumn(name = "Version", type_ = "integer", json_path = ".spec.version"),
    printcolumn(
        name = "Dataset Version",
        type_ = "string",
        json_path = ".spec.lineage.dataset.version",
        priority = 1
    ),
    printcolumn(name = "Blessed", type_ = "boolean", json_path = ".status.blessed"),
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
#[x_kube(validation = Rule::new("self == oldSelf").message("ModelVersion spec is immutable: a model version is a record, register a new version instead"))]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionSpec {
    /// The model's name.
    #[schemars(length(min = 1))]
    pub model: String,
    /// The version number, increasing per model in the namespace.
    #[schemars(range(min = 1))]
    pub version: i64,
    /// The trained model.
    pub artifact: Artifact,
    /// What made it.
    pub lineage: Lineage,
}

/// A stored model.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Where the model is stored.
    pub uri: String,
    /// Content digest of the model (`blake3:<hex>`), checked when it is served.
    pub digest: String,
    /// The model's format (`ciclo.dev/model/v1` for the built-in trainer's `model.json`, `onnx`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The data, code, parameters and metrics behind a model version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Lineage {
    /// The TrainingRun that produced it.
    pub training_run: String,
    /// The run's id.
    pub run_id: String,
    /// The exact dataset version it was trained on.
    pub dataset: DatasetLineage,
    /// The training image.
    pub image: String,
    /// The training image's digest, as the node reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The code's git repository, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_repository: Option<String>,
    /// The code's git revision, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_revision: Option<String>,
    /// The hyperparameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The metrics the run reported.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

/// A dataset version in lineage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DatasetLineage {
    /// The Dataset's name.
    pub name: String,
    /// The version id (content digest).
    pub version: String,
}

/// What ciclo concluded about the version.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled (kstatus), Blessed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Whether every gate passed, so deployments following `LatestBlessed` may serve it.
    #[serde(default)]
    pub blessed: bool,
    /// Each gate's outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateVerdict>,
    /// ModelDeployments serving it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployed_by: Vec<String>,
    /// Where its registry record is kept in the namespace's artifact store, once written (after
    /// the verdict): what restores it, with the same number, lineage and verdict, when the
    /// cluster is rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// What the annotation [`crate::labels::GATES`] holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredGates {
    pub gates: Vec<Gate>,
    pub metrics: Vec<MetricSpec>,
    /// The TrainingRun's `primaryMetric`: what a ModelDeployment with `requireImprovement`
    /// compares versions on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_metric: Option<String>,
}

impl ModelVersion {
    /// The gates, metric directions and primary metric it was registered with, if readable.
    pub fn registered(&self) -> Option<RegisteredGates> {
        use kube::ResourceExt as _;
        serde_json::from_str(self.annotations().get(crate::labels::GATES)?).ok()
    }
}

/// Condition of a ModelVersion: whether every gate passed.
pub const BLESSED: &str = "Blessed";
