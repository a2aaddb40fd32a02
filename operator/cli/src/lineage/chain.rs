//! The chain itself: the [`Lineage`] that `-o json` prints, and [`chain`], which links the
//! objects read from the cluster into it without any I/O, so every case of a missing link
//! is tested on plain objects.

use ciclo_api::dataset::DatasetVersion;
use ciclo_api::model_version::{Artifact, BLESSED, RegisteredGates};
use ciclo_api::training_run::RunRecord;
use ciclo_api::{Dataset, ModelVersion, TrainingRun, conditions, labels};
use ciclo_core::metrics::{Direction, GateVerdict};
use kube::ResourceExt as _;
use serde::Serialize;
use std::collections::BTreeMap;

/// The chain from the data to the deployments of one model version; `-o json` prints it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Lineage {
    pub namespace: Option<String>,
    pub dataset: DatasetLink,
    pub run: RunLink,
    pub model: ModelLink,
    /// ModelDeployments serving the version, as its status lists them.
    pub deployed_by: Vec<String>,
    /// Where the TrainingRun's record of the run disagrees with the ModelVersion.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Whether the object a link names still exists and still records the entry.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Found {
    /// The object exists and its status holds the entry.
    Recorded,
    /// The object exists, but the entry was pruned from its status history.
    NotInHistory,
    /// The object no longer exists.
    Gone,
}

/// The dataset version trained on.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetLink {
    pub name: String,
    pub version: String,
    pub found: Found,
    /// The Dataset's record of the version, when `found` is `recorded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<DatasetVersion>,
}

/// The run that trained the model; image, git and params are as the ModelVersion recorded
/// them, so they are known even when the TrainingRun is gone.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunLink {
    pub training_run: String,
    pub run_id: String,
    pub found: Found,
    /// The TrainingRun's record of the run, when `found` is `recorded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RunRecord>,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_revision: Option<String>,
    pub params: BTreeMap<String, String>,
}

/// The model version itself.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelLink {
    /// The ModelVersion object's name.
    pub name: String,
    pub model: String,
    pub version: i64,
    /// When the ModelVersion was created, i.e. registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<String>,
    pub artifact: Artifact,
    pub metrics: BTreeMap<String, f64>,
    /// `status.blessed`; false also while no status is written.
    pub blessed: bool,
    /// Reason and message of the `Blessed` condition, when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blessed_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blessed_message: Option<String>,
    pub gates: Vec<GateLink>,
}

/// One gate's verdict as the status records it, with the metric's direction when known.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateLink {
    #[serde(flatten)]
    pub verdict: GateVerdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

/// Links a ModelVersion to its run and dataset version, and says what is no longer there.
pub fn chain(mv: &ModelVersion, tr: Option<&TrainingRun>, ds: Option<&Dataset>) -> Lineage {
    let lineage = &mv.spec.lineage;
    let status = mv.status.clone().unwrap_or_default();
    let (ds_found, ds_record) = find_dataset_version(ds, &lineage.dataset.version);
    let (run_found, run_record) = find_run(tr, &lineage.run_id);
    let notes = run_record
        .as_ref()
        .map(|r| disagreements(mv, r))
        .unwrap_or_default();
    let blessed_condition = conditions::find(&status.conditions, BLESSED);

    Lineage {
        namespace: mv.namespace(),
        dataset: DatasetLink {
            name: lineage.dataset.name.clone(),
            version: lineage.dataset.version.clone(),
            found: ds_found,
            record: ds_record,
        },
        run: RunLink {
            training_run: lineage.training_run.clone(),
            run_id: lineage.run_id.clone(),
            found: run_found,
            record: run_record,
            image: lineage.image.clone(),
            image_digest: lineage.image_digest.clone(),
            git_repository: lineage.git_repository.clone(),
            git_revision: lineage.git_revision.clone(),
            params: lineage.params.clone(),
        },
        model: ModelLink {
            name: mv.name_any(),
            model: mv.spec.model.clone(),
            version: mv.spec.version,
            registered: mv.creation_timestamp().map(|t| t.0.to_string()),
            artifact: mv.spec.artifact.clone(),
            metrics: lineage.metrics.clone(),
            blessed: status.blessed,
            blessed_reason: blessed_condition.map(|c| c.reason.clone()),
            blessed_message: blessed_condition.map(|c| c.message.clone()),
            gates: gate_links(mv, &status.gates),
        },
        deployed_by: status.deployed_by,
        notes,
    }
}

/// The Dataset's record of the version trained on, if the Dataset still has it.
fn find_dataset_version(ds: Option<&Dataset>, id: &str) -> (Found, Option<DatasetVersion>) {
    let Some(ds) = ds else {
        return (Found::Gone, None);
    };
    // `latest` is kept apart from the history, so it survives being pruned from it.
    let record = ds
        .status
        .as_ref()
        .into_iter()
        .flat_map(|s| s.versions.iter().chain(s.latest.as_ref()))
        .find(|v| v.id == id);
    match record {
        Some(v) => (Found::Recorded, Some(v.clone())),
        None => (Found::NotInHistory, None),
    }
}

/// The TrainingRun's record of the run, if the TrainingRun still has it.
fn find_run(tr: Option<&TrainingRun>, id: &str) -> (Found, Option<RunRecord>) {
    let Some(tr) = tr else {
        return (Found::Gone, None);
    };
    let record = tr
        .status
        .as_ref()
        .into_iter()
        .flat_map(|s| s.runs.iter().chain(s.current_run.as_ref()))
        .find(|r| r.id == id);
    match record {
        Some(r) => (Found::Recorded, Some(r.clone())),
        None => (Found::NotInHistory, None),
    }
}

/// Where the TrainingRun's record of the run disagrees with the ModelVersion. The chain
/// shows what the ModelVersion recorded; a disagreement is only noted below it.
fn disagreements(mv: &ModelVersion, run: &RunRecord) -> Vec<String> {
    let lineage = &mv.spec.lineage;
    let mut notes = Vec::new();
    if run.dataset_version != lineage.dataset.version {
        notes.push(format!(
            "the TrainingRun's record of run {} names dataset version {}, but the ModelVersion records {}",
            run.id, run.dataset_version, lineage.dataset.version
        ));
    }
    if let Some(n) = run.model_version.filter(|n| *n != mv.spec.version) {
        notes.push(format!(
            "the TrainingRun's record of run {} names model version {n}, but this is version {}",
            run.id, mv.spec.version
        ));
    }
    notes
}

/// The status's verdicts, each with its metric's direction from the gates the version was
/// registered with (annotation [`labels::GATES`]). Only the directions are read, to print
/// `≥` or `≤`; a missing or unreadable annotation just leaves them out.
fn gate_links(mv: &ModelVersion, verdicts: &[GateVerdict]) -> Vec<GateLink> {
    let directions: BTreeMap<String, Direction> = mv
        .annotations()
        .get(labels::GATES)
        .and_then(|json| serde_json::from_str::<RegisteredGates>(json).ok())
        .unwrap_or_default()
        .metrics
        .into_iter()
        .map(|m| (m.name, m.direction))
        .collect();
    verdicts
        .iter()
        .map(|g| GateLink {
            verdict: g.clone(),
            direction: directions.get(&g.metric).copied(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::fixtures::{
        DATASET_VERSION, RUN_ID, dataset, dataset_version, model_version, recorded_dataset,
        recorded_run, run_record, training_run,
    };
    use crate::lineage::text::render_text;

    #[test]
    fn lineage_finds_the_latest_version_even_when_pruned_from_the_history() {
        let rejected = "{id: eeee, created: \"2026-11-27T00:00:00Z\", rows: 3, bytes: 10, files: 2, verdict: Rejected, reasons: [too few rows]}";
        let ds = dataset(&format!("[{rejected}]"), &dataset_version(DATASET_VERSION));
        let l = chain(&model_version(), Some(&recorded_run()), Some(&ds));
        assert_eq!(l.dataset.found, Found::Recorded);
        assert_eq!(l.dataset.record.unwrap().id, DATASET_VERSION);
    }

    #[test]
    fn lineage_notes_a_run_record_that_disagrees_with_the_model_version() {
        let tr = training_run(&run_record(RUN_ID, "aaaa", 5));
        let l = chain(&model_version(), Some(&tr), Some(&recorded_dataset()));
        assert_eq!(l.notes.len(), 2, "{:?}", l.notes);
        let text = render_text(&l);
        assert!(text.contains(&format!(
            "note: the TrainingRun's record of run {RUN_ID} names dataset version aaaa, but the ModelVersion records {DATASET_VERSION}\n"
        )), "{text}");
        assert!(
            text.ends_with(&format!(
                "note: the TrainingRun's record of run {RUN_ID} names model version 5, but this is version 2\n"
            )),
            "{text}"
        );
    }
    #[test]
    fn lineage_json_names_what_is_missing_and_keeps_the_records() {
        let l = chain(&model_version(), None, Some(&recorded_dataset()));
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["dataset"]["found"], "recorded");
        assert_eq!(json["dataset"]["record"]["files"], 1);
        assert_eq!(json["run"]["found"], "gone");
        assert!(json["run"].get("record").is_none());
        assert_eq!(json["run"]["trainingRun"], "iris-train");
        assert_eq!(
            json["run"]["imageDigest"],
            "ghcr.io/acme/iris-train@sha256:5be1"
        );
        assert_eq!(json["model"]["version"], 2);
        assert_eq!(json["model"]["blessedReason"], "GatesPassed");
        assert_eq!(json["model"]["gates"][0]["metric"], "accuracy");
        assert_eq!(json["model"]["gates"][0]["direction"], "Maximize");
        assert_eq!(json["model"]["gates"][0]["passed"], true);
        assert_eq!(json["deployedBy"], serde_json::json!([]));
    }
}
