//! Capture on the local cluster: a ModelDeployment with `spec.capture` has its `ciclo serve`
//! pods write the requests they answer, with the ids they answered, as Parquet files to the
//! real S3 store under `<namespace>/captures/<name>/requests/` (without the columns the spec
//! excludes, and the column it hashes only as its keyed hash), and the labels sent later to its `feedback` endpoint under `…/labels/`. A
//! Dataset whose source is that capture joins them into an accepted version of the labelled
//! rows (inputs and labels only) that names the deployment and model version that answered,
//! and the built-in trainer's Job trains a ModelVersion on it.

use arrow::array::{Array, Float64Array, Int64Array, StringArray, UInt32Array};
use arrow::record_batch::RecordBatch;
use ciclo_e2e::resources::{TIMEOUT, apply, ciclo, wait_status};
use ciclo_e2e::s3::{ARTIFACTS, get, list};
use ciclo_e2e::wait_for;
use ciclo_e2e::world::{POINTS_TRAINING_RUN, points, points_request, start};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

const DEPLOYMENT: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: capture-key}
stringData: {key: "not in git, not in a log"}
---
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: points}
spec:
  model: {name: points, track: LatestBlessed}
  replicas: 1
  capture:
    ratio: 1
    flushSeconds: 1
    exclude: [x2]
    hash: [predict]
    hashKeySecretRef: {name: capture-key, key: key}
"#;

/// What the capture writes for a hashed `value`: 32 hex digits of BLAKE3 keyed with the key
/// derived from the Secret's (docs/serving.md).
fn hashed(value: &Value) -> Value {
    let key = blake3::derive_key("ciclo capture hash v1", b"not in git, not in a log");
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), String::from);
    json!(blake3::keyed_hash(&key, text.as_bytes()).to_hex()[..32])
}

/// Every row of the Parquet files of the artifact store under `prefix`.
async fn captured(prefix: &str) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for key in list(ARTIFACTS, prefix).await {
        assert!(key.ends_with(".parquet"), "{key}");
        let bytes = get(ARTIFACTS, &key).await.expect("a listed file");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// `(request_id, row)` → the value of `column` as JSON, over every batch.
fn by_key(batches: &[RecordBatch], column: &str) -> Vec<((String, u32), Value)> {
    let mut out = Vec::new();
    for b in batches {
        let ids = b.column_by_name("request_id").unwrap();
        let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
        let row = b.column_by_name("row").unwrap();
        let row = row.as_any().downcast_ref::<UInt32Array>().unwrap();
        let values = b
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no {column} in {:?}", b.schema()));
        for i in 0..b.num_rows() {
            let value = if let Some(a) = values.as_any().downcast_ref::<Float64Array>() {
                json!(a.value(i))
            } else if let Some(a) = values.as_any().downcast_ref::<Int64Array>() {
                json!(a.value(i))
            } else {
                let a = values.as_any().downcast_ref::<StringArray>().unwrap();
                json!(a.value(i))
            };
            out.push(((ids.value(i).to_string(), row.value(i)), value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn served_requests_are_captured_with_their_ids_without_excluded_columns_and_labels_land_beside_them()
 {
    let w = start("capture", &points(23, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, POINTS_TRAINING_RUN);
    apply(&ns, DEPLOYMENT);
    let deployments = ciclo(&w.client, &ns, "ModelDeployment");
    wait_status(&deployments, "points", "version 1 serving", |s| {
        s["servingVersion"] == 1 && s["phase"] == "Promoted"
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &ns);
    let target = ciclo_e2e::load::serving_target(&pods, "points", 1).await;
    let http = reqwest::Client::new();

    // Three requests of two rows, one with the client's own id.
    let mut sent = Vec::new();
    for (i, id) in [Some("client-7"), None, None].into_iter().enumerate() {
        let x1 = [0.1 * i as f64, 0.9];
        let mut body = points_request(&[(x1[0], 0.5), (x1[1], 0.25)]);
        if let Some(id) = id {
            body["id"] = id.into();
        }
        let answer = ciclo_e2e::load::infer(&http, &target, "points", &body).await;
        let answered = answer["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id: {answer}"));
        if let Some(id) = id {
            assert_eq!(answered, id);
        }
        let predicted = ciclo_e2e::load::output(&answer, "predict")["data"].clone();
        sent.push((answered.to_string(), x1, predicted));
    }
    // Labels for every row, later.
    let labels: Vec<Value> = sent
        .iter()
        .flat_map(|(id, _, _)| {
            (0..2).map(move |row| json!({"id": id, "row": row, "values": {"label": (row as i64)}}))
        })
        .collect();
    ciclo_e2e::load::feedback(&http, &target, "points", labels).await;

    // Written within the flush period, to the namespace's captures in the artifact store.
    let prefix = format!("{ns}/captures/points");
    wait_for(TIMEOUT, "6 captured rows and 6 labels in S3", || async {
        let requests = rows(&captured(&format!("{prefix}/requests/")).await);
        let labels = rows(&captured(&format!("{prefix}/labels/")).await);
        Ok(requests == 6 && labels == 6)
    })
    .await
    .unwrap();
    let requests = captured(&format!("{prefix}/requests/")).await;
    let mut expected_x1: Vec<((String, u32), Value)> = sent
        .iter()
        .flat_map(|(id, x1, _)| (0..2).map(move |r| ((id.clone(), r as u32), json!(x1[r]))))
        .collect();
    expected_x1.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(by_key(&requests, "x1"), expected_x1);
    assert!(
        requests.iter().all(|b| b.column_by_name("x2").is_none()),
        "x2 is excluded: {:?}",
        requests[0].schema()
    );
    // The answers only as their keyed hashes, made with the Secret's key.
    let mut expected_predict: Vec<((String, u32), Value)> = sent
        .iter()
        .flat_map(|(id, _, p)| (0..2).map(move |r| ((id.clone(), r as u32), hashed(&p[r]))))
        .collect();
    expected_predict.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(by_key(&requests, "predict"), expected_predict);
    let labelled = captured(&format!("{prefix}/labels/")).await;
    let keys: Vec<(String, u32)> = by_key(&labelled, "label")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let sent_keys: Vec<(String, u32)> = expected_x1.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, sent_keys, "every label joins a captured row");

    // The capture as a Dataset: the labelled rows, their inputs and labels, one accepted
    // version whose lineage names the deployment and the model version that answered.
    apply(&ns, CAPTURED_DATASET);
    let ds = wait_status(
        &w.datasets,
        "seen",
        "an accepted version of the capture",
        |s| s["latest"]["rows"] == 6,
    )
    .await;
    let latest = &ds["latest"];
    assert_eq!(latest["capturedFrom"]["modelDeployment"], "points", "{ds}");
    assert_eq!(latest["capturedFrom"]["capturedRows"], 6, "{ds}");
    assert_eq!(
        latest["capturedFrom"]["modelVersions"],
        json!(["1"]),
        "{ds}"
    );
    let joined = captured(&format!("{ns}/datasets/seen/captured/")).await;
    let columns: Vec<String> = joined[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        columns,
        ["x1", "label"],
        "inputs and labels, not the answers"
    );
    assert_eq!(rows(&joined), 6);

    // A model trained on it, by the built-in trainer in a Job reading the version's file.
    apply(&ns, CAPTURED_TRAINING_RUN);
    let tr = wait_status(
        &w.runs,
        "seen",
        "a model version trained on the capture",
        |s| s["lastModelVersion"] == 1,
    )
    .await;
    assert_eq!(tr["runs"][0]["datasetVersion"], latest["id"], "{tr}");
    let mv = w.versions.get("seen-1").await.unwrap().data;
    assert_eq!(mv["spec"]["lineage"]["dataset"]["name"], "seen", "{mv}");
}

const CAPTURED_DATASET: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: seen}
spec:
  source: {capture: {modelDeployment: points}}
  interval: 10s
  schema:
    minRows: 6
    columns:
    - {name: x1, type: float, min: 0, max: 1}
    - {name: label, type: integer, nullable: false, min: 0, max: 1}
"#;

const CAPTURED_TRAINING_RUN: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: seen}
spec:
  dataset: {name: seen, track: Latest}
  model: {name: seen}
  trainer: {algorithm: DecisionTree, target: label, features: [x1], testFraction: 0.5}
"#;
