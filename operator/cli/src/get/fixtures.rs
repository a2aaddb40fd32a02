//! Objects as the operator writes them, in the states people watch them in, shared by the
//! `ciclo get` tests; JSON beside this file, as `kubectl get -o json` would show them.
//! Every one is in namespace ml; ages are counted up to [`NOW`].

use ciclo_api::{Dataset, ModelDeployment, ModelVersion, TrainingRun};

/// The moment the tests look at the objects.
pub const NOW: &str = "2026-11-28T12:00:00Z";

/// iris: its one version accepted; churn: its newest version rejected, an older one
/// accepted; edited: Ready for generation 2 while its spec is at generation 3.
pub fn datasets() -> Vec<Dataset> {
    parse(include_str!("fixtures/datasets.json"))
}

/// iris-train: a run in progress after a succeeded one; churn-train: two succeeded runs;
/// fraud-train: its only run failed.
pub fn training_runs() -> Vec<TrainingRun> {
    parse(include_str!("fixtures/training_runs.json"))
}

/// iris-2: blessed; iris-3: a gate failed; iris-10: waiting for its baseline to be judged
/// (registered without a primary metric).
pub fn model_versions() -> Vec<ModelVersion> {
    parse(include_str!("fixtures/model_versions.json"))
}

/// iris: mid-canary, version 3 at step 2 of 4 (25 %) while 2 serves; churn: version 4
/// promoted.
pub fn model_deployments() -> Vec<ModelDeployment> {
    parse(include_str!("fixtures/model_deployments.json"))
}

fn parse<K: serde::de::DeserializeOwned>(json: &str) -> Vec<K> {
    serde_json::from_str(json).expect("fixture parses as its kind")
}
