//! Objects as the operator writes them, shared by the lineage tests: ModelVersion iris-2 of
//! model iris, trained by run 9c1e0a7b42 of TrainingRun iris-train on version
//! 3f2a9c0e5b7d… of Dataset iris, all in namespace ml.

use ciclo_api::{Dataset, ModelVersion, TrainingRun};

pub const DATASET_VERSION: &str = "3f2a9c0e5b7d41a8c6e2f09d1b3a7c55";
pub const RUN_ID: &str = "9c1e0a7b42";

/// ModelVersion iris-2: blessed, both gates passed, registered with accuracy to maximize and
/// loss to minimize; its second verdict has no message, as verdicts recorded before they had one.
pub fn model_version() -> ModelVersion {
    serde_yaml::from_str(&format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata:
  name: iris-2
  namespace: ml
  creationTimestamp: "2026-11-26T10:02:15Z"
  labels: {{ciclo.dev/model: iris, ciclo.dev/version: "2"}}
  annotations:
    ciclo.dev/gates: '{{"gates":[{{"metric":"accuracy","threshold":0.9}},{{"metric":"loss","threshold":0.3}}],"metrics":[{{"name":"accuracy","direction":"Maximize"}},{{"name":"loss","direction":"Minimize"}}]}}'
spec:
  model: iris
  version: 2
  artifact:
    uri: s3://ciclo/ml/models/iris/2/model.json
    digest: blake3:7d9e41c0aa
    format: ciclo.dev/model/v1
  lineage:
    trainingRun: iris-train
    runId: {RUN_ID}
    dataset: {{name: iris, version: {DATASET_VERSION}}}
    image: ghcr.io/acme/iris-train:1.2
    imageDigest: ghcr.io/acme/iris-train@sha256:5be1
    gitRepository: https://github.com/acme/iris
    gitRevision: 4d5e6f7
    params: {{max_depth: "4", seed: "7"}}
    metrics: {{accuracy: 0.95, loss: 0.21}}
status:
  blessed: true
  gates:
  - {{metric: accuracy, threshold: 0.9, value: 0.95, passed: true, message: "accuracy = 0.95 ≥ 0.9"}}
  # Recorded before verdicts carried a message: rendered from the registered direction.
  - {{metric: loss, threshold: 0.3, value: 0.21, passed: true}}
  conditions:
  - {{type: Blessed, status: "True", reason: GatesPassed, message: 2 of 2 gates passed, lastTransitionTime: "2026-11-26T10:02:16Z"}}
"#
    ))
    .unwrap()
}

/// TrainingRun iris-train with `runs` (YAML) as its history.
pub fn training_run(runs: &str) -> TrainingRun {
    serde_yaml::from_str(&format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: iris-train, namespace: ml}}
spec:
  dataset: {{name: iris}}
  model: {{name: iris}}
  image: ghcr.io/acme/iris-train:1.2
status:
  runs: {runs}
"#
    ))
    .unwrap()
}

/// One entry of a TrainingRun's history, as YAML.
pub fn run_record(id: &str, dataset_version: &str, model_version: i64) -> String {
    format!(
        r#"
  - id: {id}
    job: iris-train-run-{id}
    datasetVersion: {dataset_version}
    phase: Succeeded
    startTime: "2026-11-26T10:01:00Z"
    completionTime: "2026-11-26T10:02:10Z"
    metrics: {{accuracy: 0.95, loss: 0.21}}
    modelVersion: {model_version}"#
    )
}

/// Dataset iris with `versions` (YAML) as its history and `latest` as its latest version.
pub fn dataset(versions: &str, latest: &str) -> Dataset {
    serde_yaml::from_str(&format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {{name: iris, namespace: ml}}
spec:
  source: {{uri: "s3://data/iris/"}}
status:
  versions: {versions}
  latest: {latest}
"#
    ))
    .unwrap()
}

/// An accepted dataset version, as YAML.
pub fn dataset_version(id: &str) -> String {
    format!(
        r#"{{id: {id}, created: "2026-11-26T10:00:00Z", rows: 150, bytes: 4300, files: 1, verdict: Accepted, location: "s3://ciclo/ml/datasets/iris/{id}/"}}"#
    )
}

/// Dataset iris, still recording the version iris-2 was trained on.
pub fn recorded_dataset() -> Dataset {
    let v = dataset_version(DATASET_VERSION);
    dataset(&format!("[{v}]"), &v)
}

/// TrainingRun iris-train, still recording the run that registered iris-2.
pub fn recorded_run() -> TrainingRun {
    training_run(&run_record(RUN_ID, DATASET_VERSION, 2))
}
