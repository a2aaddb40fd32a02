//! The ciclo.dev API on a real API server: the CRDs install, valid examples are accepted,
//! bad input is refused by `kubectl apply` with a message naming the field (the table in
//! docs/api.md), and `kubectl explain` shows the field docs.

use ciclo_e2e::{TestNamespace, client, kubectl, repo_root};

/// Applies `yaml` in `ns` with kubectl; returns (accepted, stderr).
fn apply(ns: &str, yaml: &str) -> (bool, String) {
    let (ok, _, err) = kubectl(&["apply", "-n", ns, "-f", "-"], Some(yaml));
    (ok, err)
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).expect("example exists")
}

const DATASET: &str = "apiVersion: ciclo.dev/v1alpha1\nkind: Dataset\nmetadata: {name: d}\n";
const TRAINING_RUN: &str =
    "apiVersion: ciclo.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: t}\n";
const DEPLOYMENT: &str =
    "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: m}\n";

/// (what, object, field the message names, message)
fn bad_objects() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "unsupported source scheme",
            format!("{DATASET}spec: {{source: {{uri: 'ftp://host/data'}}}}"),
            "spec.source.uri",
            "uri must start with s3://, gs://, az://, file:// or https://",
        ),
        (
            "zero interval",
            format!("{DATASET}spec: {{source: {{uri: 's3://b/p'}}, interval: 0s}}"),
            "spec.interval",
            "interval must be a positive duration",
        ),
        (
            "negative interval",
            format!("{DATASET}spec: {{source: {{uri: 's3://b/p'}}, interval: -5m}}"),
            "spec.interval",
            "interval must be a positive duration",
        ),
        (
            "workers < 1",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d}}, model: {{name: m}}, image: trainer, workers: 0}}"
            ),
            "spec.workers",
            "should be greater than or equal to 1",
        ),
        (
            "gate on a metric with no direction",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d}}, model: {{name: m}}, image: trainer, gates: [{{metric: accuracy, threshold: 0.9}}]}}"
            ),
            "spec.gates",
            "every gate's metric must be declared in spec.metrics",
        ),
        (
            "gate with both a threshold and a baseline",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d}}, model: {{name: m}}, image: trainer, metrics: [{{name: accuracy, direction: Maximize}}], gates: [{{metric: accuracy, threshold: 0.9, mustBeatBaseline: true}}]}}"
            ),
            "spec.gates",
            "each gate needs exactly one of threshold (a fixed value) and mustBeatBaseline: true",
        ),
        (
            "minDelta without a baseline",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d}}, model: {{name: m}}, image: trainer, metrics: [{{name: accuracy, direction: Maximize}}], gates: [{{metric: accuracy, threshold: 0.9, minDelta: 0.01}}]}}"
            ),
            "spec.gates",
            "minDelta applies only to a gate with mustBeatBaseline: true",
        ),
        (
            "pinned and floating dataset version",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d, version: abc, track: Latest}}, model: {{name: m}}, image: trainer}}"
            ),
            "spec.dataset",
            "give either version (pinned) or track (floating), not both",
        ),
        (
            "both the built-in trainer and an image",
            format!(
                "{TRAINING_RUN}spec: {{dataset: {{name: d}}, model: {{name: m}}, image: trainer, trainer: {{algorithm: LogisticRegression, target: label}}}}"
            ),
            "spec",
            "give either trainer (the built-in trainer) or image (your own), exactly one",
        ),
        (
            "canary weights that do not increase",
            format!(
                "{DEPLOYMENT}spec: {{model: {{name: m}}, strategy: {{type: Canary, steps: [{{weight: 50}}, {{weight: 20}}]}}}}"
            ),
            "spec.strategy.steps",
            "canary step weights must strictly increase",
        ),
        (
            "canary weight over 100",
            format!(
                "{DEPLOYMENT}spec: {{model: {{name: m}}, strategy: {{type: Canary, steps: [{{weight: 50}}, {{weight: 120}}]}}}}"
            ),
            "spec.strategy.steps[1].weight",
            "should be less than or equal to 100",
        ),
        (
            "pinned and floating model version",
            format!("{DEPLOYMENT}spec: {{model: {{name: m, version: 1, track: LatestBlessed}}}}"),
            "spec.model",
            "give either version (pinned) or track (floating), not both",
        ),
    ]
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn each_bad_object_is_refused_with_a_message_naming_the_field() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "admission").await.unwrap();
    let mut failures = Vec::new();
    for (what, yaml, field, message) in bad_objects() {
        let (accepted, err) = apply(&ns.name, &yaml);
        if accepted || !err.contains(&format!("{field}:")) || !err.contains(message) {
            failures.push(format!(
                "{what}: accepted={accepted}, expected `{field}: … {message}`, got: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_model_version_spec_cannot_change() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "immutable").await.unwrap();
    let mv = |digest: &str| {
        format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {{name: iris-1}}
spec:
  model: iris
  version: 1
  artifact: {{uri: "s3://models/iris/1/model.json", digest: "{digest}"}}
  lineage: {{trainingRun: iris, runId: r1, dataset: {{name: iris, version: abc}}, image: ciclo}}
"#
        )
    };
    let (ok, err) = apply(&ns.name, &mv("blake3:aa"));
    assert!(ok, "a valid ModelVersion is accepted: {err}");
    let (ok, err) = apply(&ns.name, &mv("blake3:bb"));
    assert!(!ok, "changing a ModelVersion's spec must be refused");
    assert!(
        err.contains("spec: Invalid value") && err.contains("ModelVersion spec is immutable"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn the_examples_are_accepted() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "examples").await.unwrap();
    // The single-file examples, and the team repository of examples/gitops (its namespace
    // is set by its kustomization, so each file applies anywhere).
    for name in [
        "dataset.yaml",
        "trainingrun.yaml",
        "modeldeployment.yaml",
        "gitops/ml-team/dataset.yaml",
        "gitops/ml-team/trainingrun.yaml",
        "gitops/ml-team/modeldeployment.yaml",
    ] {
        let (ok, err) = apply(&ns.name, &example(name));
        assert!(ok, "examples/{name} refused: {err}");
    }
    let (ok, out, err) = kubectl(
        &[
            "get",
            "datasets,trainingruns,modeldeployments",
            "-n",
            &ns.name,
            "-o",
            "name",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 6, "{out}");
}

#[test]
#[ignore = "needs the local cluster: make e2e"]
fn kubectl_explain_shows_the_field_docs() {
    let (ok, out, err) = kubectl(&["explain", "trainingrun.spec.workers"], None);
    assert!(ok, "{err}");
    assert!(
        out.contains("Number of workers; more than one runs distributed training"),
        "{out}"
    );
    let (ok, out, err) = kubectl(&["explain", "dataset.spec.source.uri"], None);
    assert!(ok, "{err}");
    assert!(out.contains("s3://bucket/prefix"), "{out}");
}
