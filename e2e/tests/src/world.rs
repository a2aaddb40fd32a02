//! The world most tests of the cycle start from: a restricted namespace, a bucket on the S3
//! server, and the Dataset `points` over it with a first accepted version; plus the data,
//! a learnable two-feature classification problem.

use crate::resources::{
    STORE_KEYS, TIMEOUT, apply, ciclo, condition, request_reconcile, restricted_namespace,
    s3_dataset, wait_status,
};
use crate::s3::{endpoint, new_bucket, put};
use crate::{TestNamespace, wait_for};
use kube::api::{Api, DynamicObject};
use serde_json::Value;

/// Points (x1, x2) in the unit square labelled by the side of the line x1 + x2 = 1 they fall
/// on, 5 % of labels flipped: a logistic regression learns it, but not perfectly. `seed`
/// makes each batch different and every run of the test the same.
pub fn points(seed: u64, rows: usize, first_id: usize) -> String {
    let mut state = seed;
    let mut next = || {
        // Knuth's MMIX linear congruential generator: deterministic, no dependency.
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut csv = String::from("id,x1,x2,label\n");
    for id in first_id..first_id + rows {
        let (x1, x2) = (next(), next());
        let flip = next() < 0.05;
        let label = u8::from((x1 + x2 > 1.0) != flip);
        csv.push_str(&format!("{id},{x1:.4},{x2:.4},{label}\n"));
    }
    csv
}

/// A v2 inference request to the `points` model for `rows` of (x1, x2): one tensor per
/// feature.
pub fn points_request(rows: &[(f64, f64)]) -> serde_json::Value {
    let column = |f: fn(&(f64, f64)) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    serde_json::json!({"inputs": [
        {"name": "x1", "shape": [rows.len()], "datatype": "FP64", "data": column(|r| r.0)},
        {"name": "x2", "shape": [rows.len()], "datatype": "FP64", "data": column(|r| r.1)},
    ]})
}

pub const BAD_LABELS: &str = "id,x1,x2,label\n9001,0.5,0.5,yes\n9002,0.1,0.2,no\n";

/// The expectations of the Dataset `points`.
pub const POINTS_SCHEMA: &str = r#"    minRows: 20
    columns:
    - {name: id, type: integer, nullable: false}
    - {name: x1, type: float, min: 0, max: 1}
    - {name: x2, type: float, min: 0, max: 1}
    - {name: label, type: integer, nullable: false}
"#;

/// A TrainingRun of the built-in trainer on `points` (label from x1, x2), blessed at 60 %
/// accuracy.
pub const POINTS_TRAINING_RUN: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: points}
spec:
  dataset: {name: points, track: Latest}
  model: {name: points}
  trainer: {algorithm: LogisticRegression, target: label, features: [x1, x2]}
  metrics: [{name: accuracy, direction: Maximize}]
  gates: [{metric: accuracy, threshold: 0.6}]
"#;

/// A test's world: a restricted namespace, a bucket holding `first_batch`, and the Dataset
/// `points` over it with its first version accepted.
pub struct World {
    pub client: kube::Client,
    pub ns: TestNamespace,
    pub bucket: String,
    pub datasets: Api<DynamicObject>,
    pub runs: Api<DynamicObject>,
    pub versions: Api<DynamicObject>,
    /// The first accepted dataset version.
    pub v1: String,
}

pub async fn start(test: &str, first_batch: &str) -> World {
    let files = [("data/batch-1.csv".to_string(), first_batch.to_string())];
    with_dataset(test, "points", &files, POINTS_SCHEMA).await
}

/// A restricted namespace for `test`, a bucket holding `files` (key, content), and the
/// Dataset `dataset` over its `data/` prefix (`*.csv`, with `schema` as in
/// [`s3_dataset`]) with its first version accepted.
pub async fn with_dataset(
    test: &str,
    dataset: &str,
    files: &[(String, String)],
    schema: &str,
) -> World {
    let (client, ns) = restricted_namespace(test).await;
    let bucket = new_bucket(&ns.name).await;
    for (key, content) in files {
        put(&bucket, key, content.clone()).await;
    }
    apply(&ns.name, STORE_KEYS);
    apply(
        &ns.name,
        &s3_dataset(dataset, &bucket, &endpoint(), "*.csv", schema),
    );
    let datasets = ciclo(&client, &ns.name, "Dataset");
    let s = wait_status(&datasets, dataset, "dataset version 1", |s| {
        s["latest"]["id"].is_string()
    })
    .await;
    World {
        runs: ciclo(&client, &ns.name, "TrainingRun"),
        versions: ciclo(&client, &ns.name, "ModelVersion"),
        v1: s["latest"]["id"].as_str().unwrap().to_string(),
        client,
        ns,
        bucket,
        datasets,
    }
}

impl World {
    /// Lands `csv` as a new file and asks for a check, as a bucket notification would; returns
    /// the dataset's newest version once it is recorded.
    pub async fn land(&self, file: &str, csv: &str, at: &str) -> Value {
        put(&self.bucket, &format!("data/{file}"), csv.to_string()).await;
        request_reconcile(&self.ns.name, "dataset", "points", at);
        let s = wait_status(&self.datasets, "points", "the new dataset version", |s| {
            s["lastCheck"]["requestedAt"] == at
        })
        .await;
        s["versions"][0].clone()
    }

    /// Waits until ModelVersion `name` is judged (blessed or not), and returns it.
    pub async fn judged(&self, name: &str) -> Value {
        wait_for(TIMEOUT, &format!("{name} judged"), || async {
            let Some(mv) = self.versions.get_opt(name).await? else {
                return Ok(false);
            };
            Ok(condition(&mv.data["status"], "Blessed")
                .is_some_and(|c| c["reason"] != "WaitingForBaseline"))
        })
        .await
        .unwrap();
        self.versions.get(name).await.unwrap().data
    }
}

/// A user's training image (here the system's `python3` on the process node, which runs the
/// pod as an unprivileged user; standard library only) that
/// follows the workload contract: it reads its parameters and dataset version from the
/// environment and reports its result as JSON in its termination message.
pub const USER_TRAINER: &str = r#"
import json, os
params = json.loads(os.environ["CICLO_PARAMS"])
summary = {
    "outcome": "Succeeded",
    "metrics": {"accuracy": float(params["accuracy"])},
    "model": os.environ["CICLO_OUTPUT_URI"] + "/model.json",
    "digest": "blake3:00ab",
}
with open("/dev/termination-log", "w") as f:
    json.dump(summary, f)
print("trained on", os.environ["CICLO_DATASET_VERSION"], "with", params)
"#;

/// A TrainingRun `name` of [`USER_TRAINER`] (or another `script`) on `points`, reporting
/// `accuracy`, blessed from `gate`.
pub fn user_run(name: &str, script: &str, accuracy: f64, gate: f64) -> String {
    let script = serde_json::to_string(script).unwrap();
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: {name}}}
spec:
  dataset: {{name: points}}
  model: {{name: {name}}}
  image: {python}
  command: [/usr/bin/python3, -c, {script}]
  params: {{accuracy: "{accuracy}"}}
  metrics: [{{name: accuracy, direction: Maximize}}]
  gates: [{{metric: accuracy, threshold: {gate}}}]
"#,
        python = crate::images::PYTHON
    )
}
