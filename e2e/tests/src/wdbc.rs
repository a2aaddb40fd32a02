//! The world of the tests that run a team's own code (`examples/trainers/sklearn`,
//! `examples/runtimes/mlserver`): the Breast Cancer Wisconsin data of `examples/data/wdbc` in
//! a bucket, the Dataset `wdbc` over it, and the requests a client of the served model sends.

use crate::world::{World, with_dataset};
use serde_json::{Value, json};

/// The example data's batches, as files of the repository.
fn batch(name: &str) -> String {
    std::fs::read_to_string(crate::repo_root().join("examples/data/wdbc").join(name)).unwrap()
}

/// A restricted namespace, a bucket with the three good batches (569 rows), and the Dataset
/// `wdbc` over them with its first version accepted.
pub async fn world(test: &str) -> World {
    let files: Vec<(String, String)> = ["batch-1.csv", "batch-2.csv", "batch-3.csv"]
        .iter()
        .map(|b| (format!("data/{b}"), batch(b)))
        .collect();
    let schema = r#"    minRows: 500
    columns:
    - {name: diagnosis, type: string, nullable: false, allowedValues: [B, M]}
    - {name: mean_radius, type: float, nullable: false, min: 0}
"#;
    with_dataset(test, "wdbc", &files, schema).await
}

/// The TrainingRun `wdbc` of the scikit-learn example with `params` (a YAML flow mapping of
/// strings), registering into the model `wdbc`, blessed at 90 % accuracy.
pub fn training_run(params: &str) -> String {
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: wdbc}}
spec:
  dataset: {{name: wdbc}}
  model: {{name: wdbc}}
  image: {image}
  params: {params}
  metrics:
  - {{name: accuracy, direction: Maximize}}
  - {{name: roc_auc, direction: Maximize}}
  - {{name: log_loss, direction: Minimize}}
  primaryMetric: accuracy
  gates: [{{metric: accuracy, threshold: 0.9}}]
  activeDeadlineSeconds: 600
"#,
        image = crate::images::SKLEARN_TRAINER
    )
}

/// Rows of a batch as a client sends them: the 30 measurements as FP32 `[rows, 30]` in the
/// exported model's input `input`, and the diagnoses they should get.
pub fn request(rows: usize) -> (Value, Vec<String>) {
    let text = batch("batch-3.csv");
    let mut data = Vec::new();
    let mut truth = Vec::new();
    for line in text.lines().skip(1).take(rows) {
        let mut fields = line.split(',');
        truth.push(fields.next().unwrap().to_string());
        data.extend(fields.map(|v| v.parse::<f64>().unwrap()));
    }
    let request = json!({"inputs": [{
        "name": "input", "shape": [rows, 30], "datatype": "FP32", "data": data
    }]});
    (request, truth)
}
