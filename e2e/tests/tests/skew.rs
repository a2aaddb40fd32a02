//! The loop closed on the local cluster, from production back to production: version 1 of
//! `points` serves with capture and skew on; requests like its training data are within the
//! limits; then the population shifts (x1 moves up, x2 stays), the deployment reports the skew
//! naming x1 alone, asks the Dataset made of its capture for a new check, the labels sent for
//! the shifted requests make an accepted version of it, a TrainingRun over that Dataset
//! registers version 2 of the model, and version 2 is canaried in under steady load with no
//! request failing. The times from the shift's start to each step are printed.

use ciclo_e2e::resources::{apply, ciclo, condition, status, wait_status};
use ciclo_e2e::world::{POINTS_TRAINING_RUN, points, points_request, start};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{Value, json};
use std::time::Instant;

const DEPLOYMENT: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: points}
spec:
  model: {name: points, track: LatestBlessed}
  replicas: 1
  strategy:
    type: Canary
    steps: [{weight: 50, pause: 4s}]
  analysis: {minRequests: 10, maxErrorRatio: 0.0}
  capture: {ratio: 1, flushSeconds: 1}
  skew: {maxDistance: 0.25, window: 10s, minSamples: 200, onSkew: Retrain, cooldown: 5m}
"#;

/// Production's labelled rows, as a Dataset: checked only when the deployment asks.
const PRODUCTION_DATASET: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: production}
spec:
  source: {capture: {modelDeployment: points}}
  interval: 24h
  schema:
    minRows: 100
    columns:
    - {name: x1, type: float}
    - {name: x2, type: float}
    - {name: label, type: integer, nullable: false, min: 0, max: 1}
"#;

/// The same model, trained on production's rows whenever they make a new accepted version.
const PRODUCTION_TRAINING_RUN: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: points-production}
spec:
  dataset: {name: production, track: Latest}
  model: {name: points}
  trainer: {algorithm: LogisticRegression, target: label, features: [x1, x2]}
  metrics: [{name: accuracy, direction: Maximize}]
  gates: [{metric: accuracy, threshold: 0.6}]
"#;

/// `n` rows of (x1, x2): x1 over [low, low + span), x2 over [0, 1), spread evenly.
fn rows(n: usize, low: f64, span: f64, seed: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let a = ((i * 37 + seed) % n) as f64 / n as f64;
            let b = ((i * 61 + seed * 7) % n) as f64 / n as f64;
            (low + span * a, b)
        })
        .collect()
}

/// A request for `rows` with the client's own `id`.
fn body(id: &str, rows: &[(f64, f64)]) -> Value {
    let mut body = points_request(rows);
    body["id"] = id.into();
    body
}

fn skew_of<'a>(s: &'a Value, feature: &str) -> &'a Value {
    s["skew"]["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["feature"] == feature))
        .unwrap_or_else(|| panic!("no skew of {feature} in {s}"))
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_shifted_population_is_reported_retrained_on_and_the_new_version_canaried_in() {
    let w = start("skew", &points(31, 300, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, POINTS_TRAINING_RUN);
    apply(&ns, DEPLOYMENT);
    apply(&ns, PRODUCTION_DATASET);
    apply(&ns, PRODUCTION_TRAINING_RUN);
    let deployments = ciclo(&w.client, &ns, "ModelDeployment");
    wait_status(
        &deployments,
        "points",
        "version 1 serving, its skew window open",
        |s| s["servingVersion"] == 1 && s["phase"] == "Promoted" && s["skew"]["version"] == 1,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &ns);
    let target = ciclo_e2e::load::serving_target(&pods, "points", 1).await;
    let http = reqwest::Client::new();

    // Like the training data (x1 and x2 over [0, 1)): measured, within the limits.
    for i in 0..3 {
        let b = body(&format!("usual-{i}"), &rows(100, 0.0, 1.0, i));
        ciclo_e2e::load::infer(&http, &target, "points", &b).await;
    }
    let s = wait_status(&deployments, "points", "a window within the limits", |s| {
        s["skew"]["measured"].is_string()
    })
    .await;
    assert_eq!(condition(&s, "Skewed").unwrap()["status"], "False", "{s}");
    assert_eq!(condition(&s, "Skewed").unwrap()["reason"], "WithinLimits");
    for feature in ["x1", "x2"] {
        assert!(
            skew_of(&s, feature)["distance"].as_f64().unwrap() < 0.25,
            "{s}"
        );
    }

    // The population shifts: x1 over [0.6, 1.0), x2 as before. Labelled, later, by the
    // true boundary (x1 + x2 > 1).
    let shifted = Instant::now();
    let mut labels = Vec::new();
    for i in 0..4 {
        let id = format!("shifted-{i}");
        let batch = rows(100, 0.6, 0.4, i);
        ciclo_e2e::load::infer(&http, &target, "points", &body(&id, &batch)).await;
        for (row, (x1, x2)) in batch.iter().enumerate() {
            labels
                .push(json!({"id": id, "row": row, "values": {"label": i64::from(x1 + x2 > 1.0)}}));
        }
    }
    ciclo_e2e::load::feedback(&http, &target, "points", labels).await;
    // Steady shifted traffic from here on, unlabelled: it keeps the skew and carries the
    // canary's analysis.
    let load = ciclo_e2e::load::start(pods.clone(), "points", "points", |i| {
        let x1 = 0.6 + 0.4 * ((i * 37) % 100) as f64 / 100.0;
        let x2 = ((i * 61) % 100) as f64 / 100.0;
        body(&format!("steady-{i}"), &[(x1, x2)])
    });

    let s = wait_status(&deployments, "points", "the skew reported", |s| {
        s["skew"]["skewed"] == true
    })
    .await;
    let reported = shifted.elapsed();
    let skewed = condition(&s, "Skewed").unwrap();
    assert_eq!(skewed["status"], "True", "{s}");
    assert!(skewed["message"].as_str().unwrap().contains("x1"), "{s}");
    assert!(
        skew_of(&s, "x1")["distance"].as_f64().unwrap() > 0.25,
        "{s}"
    );
    assert!(
        skew_of(&s, "x2")["distance"].as_f64().unwrap() < 0.25,
        "x2 did not move: {s}"
    );
    assert!(s["skew"]["retrainRequested"].is_string(), "{s}");

    // The capture's Dataset, checked on request: the 400 labelled rows, answered by version 1.
    let ds = wait_status(
        &w.datasets,
        "production",
        "production's rows accepted",
        |s| s["latest"]["rows"] == 400,
    )
    .await;
    let accepted = shifted.elapsed();
    assert_eq!(
        ds["latest"]["capturedFrom"]["modelVersions"],
        json!(["1"]),
        "{ds}"
    );

    // Trained on them, version 2 is canaried in under the steady load: nothing fails.
    let s = wait_status(&deployments, "points", "version 2 promoted", |s| {
        s["servingVersion"] == 2 && s["canaryVersion"].is_null()
    })
    .await;
    let serving = shifted.elapsed();
    load.stop_after_rollout(1, 2).await;
    assert_eq!(s["history"][0]["result"], "Promoted", "{s}");
    let v2 = status(&w.versions, "points-2").await;
    assert!(v2.is_object());
    let mv = w.versions.get("points-2").await.unwrap().data;
    assert_eq!(
        mv["spec"]["lineage"]["dataset"]["name"], "production",
        "{mv}"
    );
    assert_eq!(
        mv["spec"]["lineage"]["dataset"]["version"], ds["latest"]["id"],
        "{mv}"
    );
    println!(
        "from the shifted stream's start: skew reported {:.1} s, labelled captured version accepted {:.1} s, version 2 serving {:.1} s",
        reported.as_secs_f64(),
        accepted.as_secs_f64(),
        serving.as_secs_f64()
    );
}
