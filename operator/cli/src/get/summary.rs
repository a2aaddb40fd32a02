//! What `ciclo get` shows of each object: a [`Summary`] per object, made without I/O, which
//! the table prints and `-o json` prints as it is. Only the status's essentials for someone
//! following the cycle: is it ready and why, and where each object is in it.

use super::Kind;
use super::ready::{Judged, judge};
use ciclo_api::conditions::READY;
use ciclo_api::dataset::{Outcome, Verdict};
use ciclo_api::model_deployment::Phase;
use ciclo_api::model_version::BLESSED;
use ciclo_api::{Dataset, ModelDeployment, ModelVersion, TrainingRun};
use jiff::Timestamp;
use serde::Serialize;

/// One object: who it is, whether it is ready and why, and its kind's essentials.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub namespace: String,
    pub name: String,
    /// The `Ready` condition (Unknown, reason `NotObserved`, when the operator has not
    /// written one for the current spec).
    pub ready: Judged,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// Tagged `kind`, with the kind's fields beside the common ones.
    #[serde(flatten)]
    pub details: Details,
}

/// The essentials of each kind.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind")]
pub enum Details {
    Dataset(DatasetDetails),
    TrainingRun(TrainingRunDetails),
    ModelVersion(ModelVersionDetails),
    ModelDeployment(ModelDeploymentDetails),
}

impl Details {
    pub fn kind(&self) -> Kind {
        match self {
            Details::Dataset(_) => Kind::Dataset,
            Details::TrainingRun(_) => Kind::TrainingRun,
            Details::ModelVersion(_) => Kind::ModelVersion,
            Details::ModelDeployment(_) => Kind::ModelDeployment,
        }
    }
}

/// A Dataset: its latest accepted version, and the verdict on the newest one checked.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetDetails {
    /// The latest accepted version's id.
    pub latest: Option<String>,
    /// Its rows.
    pub rows: Option<i64>,
    /// The newest version checked, accepted or rejected.
    pub newest: Option<String>,
    pub verdict: Option<Verdict>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The last check's outcome (also Unchanged or Failed) and what it said.
    pub last_check: Option<Outcome>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_check_message: String,
}

/// A TrainingRun: the run in progress or the last one, and what it registered.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainingRunDetails {
    pub model: String,
    pub dataset: String,
    /// The dataset version the current or next run uses.
    pub dataset_version: Option<String>,
    /// The current run's phase (Pending, Running), else the last run's (Succeeded, Failed).
    pub phase: Option<String>,
    /// The current run's id, else the last run's.
    pub run: Option<String>,
    /// Runs the status records, the current one included (at most `historyLimit` finished).
    pub runs: usize,
    /// Why the last run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The number of the last ModelVersion a run registered.
    pub last_model_version: Option<i64>,
}

/// A ModelVersion: which model and version, whether it is blessed, the metrics that decide.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersionDetails {
    pub model: String,
    pub version: i64,
    /// The `Blessed` condition.
    pub blessed: Judged,
    /// The metrics that matter: the primary one, else the gated ones, else all.
    pub metrics: Vec<Metric>,
    /// Each gate's verdict, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
    pub dataset: String,
    pub dataset_version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deployed_by: Vec<String>,
}

/// A metric's value.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: f64,
}

/// A ModelDeployment: what serves, and the rollout in flight.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentDetails {
    pub model: String,
    /// `latest-blessed`, or the pinned version number.
    pub selects: String,
    pub serving: Option<i64>,
    pub phase: Option<Phase>,
    /// The version being rolled out, its share of traffic, and its step (1-based) of `steps`.
    pub canary: Option<i64>,
    pub weight: Option<i32>,
    pub step: Option<i32>,
    pub steps: usize,
    pub endpoint: Option<String>,
    /// The last rollout that ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rollout: Option<Rollout>,
}

/// A finished rollout.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub version: i64,
    pub result: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Objects `ciclo get` summarises.
pub trait Summarize {
    fn summarize(&self) -> Summary;
}

/// The fields every kind shares; `status_generation` is the status's `observedGeneration`.
fn summary<S: ciclo_api::conditions::Kstatus>(
    meta: &kube::api::ObjectMeta,
    status: Option<&S>,
    status_generation: Option<i64>,
    details: Details,
) -> Summary {
    Summary {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        ready: judge(meta.generation, status, status_generation, READY),
        created: meta.creation_timestamp.as_ref().map(|t| t.0),
        details,
    }
}

impl Summarize for Dataset {
    fn summarize(&self) -> Summary {
        let status = self.status.as_ref();
        let latest = status.and_then(|s| s.latest.as_ref());
        let newest = status.and_then(|s| s.versions.first());
        let check = status.and_then(|s| s.last_check.as_ref());
        let details = DatasetDetails {
            latest: latest.map(|v| v.id.clone()),
            rows: latest.map(|v| v.rows),
            newest: newest.map(|v| v.id.clone()),
            verdict: newest.map(|v| v.verdict),
            reasons: newest.map(|v| v.reasons.clone()).unwrap_or_default(),
            last_check: check.map(|c| c.outcome),
            last_check_message: check.map(|c| c.message.clone()).unwrap_or_default(),
        };
        summary(
            &self.metadata,
            status,
            status.and_then(|s| s.observed_generation),
            Details::Dataset(details),
        )
    }
}

impl Summarize for TrainingRun {
    fn summarize(&self) -> Summary {
        let status = self.status.as_ref();
        let current = status.and_then(|s| s.current_run.as_ref());
        let last = status.and_then(|s| s.runs.first());
        let run = current.or(last);
        let details = TrainingRunDetails {
            model: self.spec.model.name.clone(),
            dataset: self.spec.dataset.name.clone(),
            dataset_version: current
                .map(|r| r.dataset_version.clone())
                .or_else(|| status.and_then(|s| s.dataset_version.clone()))
                .or_else(|| self.spec.dataset.version.clone()),
            phase: run.map(|r| r.phase.as_str().to_string()),
            run: run.map(|r| r.id.clone()),
            runs: status.map_or(0, |s| s.runs.len() + usize::from(s.current_run.is_some())),
            failure: current.is_none().then(|| last?.failure.clone()).flatten(),
            last_model_version: status.and_then(|s| s.last_model_version),
        };
        summary(
            &self.metadata,
            status,
            status.and_then(|s| s.observed_generation),
            Details::TrainingRun(details),
        )
    }
}

impl Summarize for ModelVersion {
    fn summarize(&self) -> Summary {
        let status = self.status.as_ref();
        let observed = status.and_then(|s| s.observed_generation);
        let lineage = &self.spec.lineage;
        let details = ModelVersionDetails {
            model: self.spec.model.clone(),
            version: self.spec.version,
            blessed: judge(self.metadata.generation, status, observed, BLESSED),
            metrics: deciding_metrics(self),
            gates: status
                .map(|s| {
                    s.gates
                        .iter()
                        .map(|g| match (g.message.is_empty(), g.value) {
                            (false, _) => g.message.clone(),
                            (true, Some(v)) => format!(
                                "{} = {} ({})",
                                g.metric,
                                number(v),
                                if g.passed { "passed" } else { "failed" }
                            ),
                            (true, None) => format!("{} not reported", g.metric),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            dataset: lineage.dataset.name.clone(),
            dataset_version: lineage.dataset.version.clone(),
            deployed_by: status.map(|s| s.deployed_by.clone()).unwrap_or_default(),
        };
        summary(
            &self.metadata,
            status,
            observed,
            Details::ModelVersion(details),
        )
    }
}

/// The metrics that decide about a version: the primary one it was registered with, else
/// those its gates judge, else every metric it reported.
fn deciding_metrics(mv: &ModelVersion) -> Vec<Metric> {
    let reported = &mv.spec.lineage.metrics;
    let registered = mv.registered().unwrap_or_default();
    let mut names: Vec<&str> = match &registered.primary_metric {
        Some(primary) => vec![primary],
        None => registered.gates.iter().map(|g| g.metric.as_str()).collect(),
    };
    names.dedup();
    if names.is_empty() {
        names = reported.keys().map(String::as_str).collect();
    }
    names
        .into_iter()
        .filter_map(|name| {
            Some(Metric {
                name: name.to_string(),
                value: *reported.get(name)?,
            })
        })
        .collect()
}

impl Summarize for ModelDeployment {
    fn summarize(&self) -> Summary {
        let status = self.status.as_ref();
        let model = &self.spec.model;
        let canary = status.and_then(|s| s.canary_version);
        let details = ModelDeploymentDetails {
            model: model.name.clone(),
            selects: model
                .version
                .map_or_else(|| "latest-blessed".into(), |pinned| pinned.to_string()),
            serving: status.and_then(|s| s.serving_version),
            phase: status.and_then(|s| s.phase),
            canary,
            weight: canary.and(status.and_then(|s| s.canary_weight)),
            step: canary.and(status.and_then(|s| s.step_index)).map(|i| i + 1),
            steps: self.spec.strategy.steps.len(),
            endpoint: status.and_then(|s| s.endpoint.clone()),
            last_rollout: status.and_then(|s| s.history.first()).map(|r| Rollout {
                version: r.version,
                result: r.result.as_str().to_string(),
                reason: r.reason.clone(),
            }),
        };
        summary(
            &self.metadata,
            status,
            status.and_then(|s| s.observed_generation),
            Details::ModelDeployment(details),
        )
    }
}

/// A metric's value as people read it: at most four decimals, no trailing zeros.
pub fn number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Sorts summaries as the tables list them: by kind in the order of the cycle, namespace,
/// then name — model versions by model and number, so `iris-10` comes after `iris-9`.
pub fn sort(summaries: &mut [Summary]) {
    summaries.sort_by(|a, b| key(a).cmp(&key(b)));
}

fn key(s: &Summary) -> (Kind, &str, &str, i64, &str) {
    match &s.details {
        Details::ModelVersion(mv) => (
            Kind::ModelVersion,
            &s.namespace,
            &mv.model,
            mv.version,
            &s.name,
        ),
        d => (d.kind(), &s.namespace, &s.name, 0, ""),
    }
}

/// `-o json`: the summaries as `{"items": [...]}`, each tagged with its `kind`.
pub fn json_list(summaries: &[Summary]) -> String {
    serde_json::to_string_pretty(&List {
        time: None,
        items: summaries,
    })
    .expect("summaries serialise")
}

/// The summaries as JSON prints them, fields in the order they are declared; `time` (when
/// the list was taken) in the lines of `--watch -o json`.
#[derive(Serialize)]
pub struct List<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
    pub items: &'a [Summary],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::fixtures;

    #[test]
    fn json_names_each_object_its_kind_and_the_same_fields_as_the_table() {
        let md = fixtures::model_deployments()[0].summarize();
        let json: serde_json::Value = serde_json::from_str(&json_list(&[md])).unwrap();
        let iris = &json["items"][0];
        assert_eq!(iris["kind"], "ModelDeployment");
        assert_eq!(iris["name"], "iris");
        assert_eq!(iris["namespace"], "ml");
        assert_eq!(
            iris["ready"],
            serde_json::json!({"status": "False", "reason": "Canary", "message": "step 2: version 3 takes 25% of traffic"})
        );
        assert_eq!(iris["created"], "2026-11-28T11:20:00Z");
        assert_eq!(iris["serving"], 2);
        assert_eq!(iris["phase"], "Progressing");
        assert_eq!(iris["canary"], 3);
        assert_eq!(iris["weight"], 25);
        assert_eq!(iris["step"], 2);
        assert_eq!(iris["steps"], 4);
        assert_eq!(iris["selects"], "latest-blessed");
    }

    #[test]
    fn a_dataset_keeps_the_full_version_ids_and_the_rejection_reasons() {
        let churn = fixtures::datasets()
            .into_iter()
            .find(|d| d.metadata.name.as_deref() == Some("churn"))
            .unwrap()
            .summarize();
        let Details::Dataset(d) = churn.details else {
            panic!("a dataset")
        };
        assert_eq!(
            d.latest.as_deref(),
            Some("4b8e2f6a1c3d5e7f90a1b2c3d4e5f607")
        );
        assert_eq!(
            d.newest.as_deref(),
            Some("9d0c7e13b5a2f4e6d8c0b1a2f3e4d5c6")
        );
        assert_eq!(d.verdict, Some(Verdict::Rejected));
        assert_eq!(d.reasons.len(), 2);
        assert_eq!(d.last_check, Some(Outcome::Rejected));
    }

    #[test]
    fn a_blessed_condition_for_an_older_generation_is_not_taken_as_blessed() {
        let mut mv = fixtures::model_versions()
            .into_iter()
            .find(|m| m.metadata.name.as_deref() == Some("iris-2"))
            .unwrap();
        mv.metadata.generation = Some(2);
        let s = mv.summarize();
        let Details::ModelVersion(d) = s.details else {
            panic!("a model version")
        };
        assert!(!d.blessed.observed);
        assert_eq!(d.blessed.status, "Unknown");
        assert_eq!(s.ready.status, "Unknown");
        assert_eq!(
            s.ready.message,
            "Ready was written for generation 1; the spec is at generation 2"
        );
    }

    #[test]
    fn an_object_the_operator_has_not_seen_yet_is_not_observed() {
        let mut ds = fixtures::datasets().remove(0);
        ds.status = None;
        let s = ds.summarize();
        assert_eq!(s.ready.status, "Unknown");
        assert_eq!(s.ready.reason, crate::get::ready::NOT_OBSERVED);
    }
}
