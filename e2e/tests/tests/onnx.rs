//! A team's own trainer that exports ONNX, on the local control plane: its runs write the
//! file scikit-learn's exporter made (`operator/serve/tests/fixtures/exporters`) to the
//! artifact store through the S3 API and report it; the ModelVersions are served by
//! `ciclo serve` on ONNX Runtime, and a second version is canaried in under steady load with
//! no failed request.

use ciclo_e2e::resources::{apply, ciclo, condition, wait_status};
use ciclo_e2e::world::{points, start};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The trainer (the system's `python3`, standard library only): it writes the model file it
/// is given (hex in its parameters, as an exporter would have written it) to
/// `$CICLO_OUTPUT_URI/model.onnx` with an S3 PUT to the artifact store's endpoint, and reports
/// it with its digest under the workload contract.
const ONNX_TRAINER: &str = r#"
import json, os, urllib.request
params = json.loads(os.environ["CICLO_PARAMS"])
model = os.environ["CICLO_OUTPUT_URI"].rstrip("/") + "/model.onnx"
endpoint = os.environ["CICLO_ARTIFACTS_AWS_ENDPOINT"].rstrip("/")
put = urllib.request.Request(endpoint + "/" + model[len("s3://"):],
                             data=bytes.fromhex(params["onnx"]), method="PUT")
urllib.request.urlopen(put, timeout=30).read()
summary = {"outcome": "Succeeded", "metrics": {"accuracy": float(params["accuracy"])},
           "model": model, "digest": params["digest"]}
with open("/dev/termination-log", "w") as f:
    json.dump(summary, f)
"#;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../operator/serve/tests/fixtures/exporters")
        .join(name)
}

/// The TrainingRun `wdbc` of [`ONNX_TRAINER`] handing over the exporter's file `onnx`.
fn training_run(onnx: &str, accuracy: f64) -> String {
    let bytes = std::fs::read(fixture(onnx)).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let digest = format!("blake3:{}", blake3::hash(&bytes).to_hex());
    let script = serde_json::to_string(ONNX_TRAINER).unwrap();
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: wdbc}}
spec:
  dataset: {{name: points}}
  model: {{name: wdbc}}
  image: {python}
  command: [/usr/bin/python3, -c, {script}]
  params: {{accuracy: "{accuracy}", onnx: "{hex}", digest: "{digest}"}}
  metrics: [{{name: accuracy, direction: Maximize}}]
  gates: [{{metric: accuracy, threshold: 0.9}}]
"#,
        python = ciclo_e2e::images::PYTHON
    )
}

const DEPLOYMENT: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: wdbc}
spec:
  model: {name: wdbc, track: LatestBlessed}
  replicas: 2
  strategy:
    type: Canary
    steps: [{weight: 50, pause: 4s}]
  analysis: {minRequests: 10, maxErrorRatio: 0.0}
"#;

/// The exporter's record of `logreg.onnx`: input rows and ONNX Runtime's outputs for them.
fn recorded() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("logreg.json")).unwrap()).unwrap()
}

/// A request of the exporters' model: the first `rows` rows of the breast-cancer data in
/// `doc`, as FP32 `[rows, 30]` in the exporter's input name.
fn request(doc: &Value, rows: usize) -> Value {
    let data: Vec<Value> = doc["input"]["data"].as_array().unwrap()[..rows * 30].to_vec();
    json!({"inputs": [{"name": "input", "shape": [rows, 30], "datatype": "FP32", "data": data}]})
}

/// The JSON answer to `GET url`.
async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn an_exporters_onnx_model_is_served_and_its_next_version_canaried_without_errors() {
    let w = start("onnx", &points(41, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, &training_run("logreg.onnx", 0.95));
    apply(&ns, DEPLOYMENT);
    let deployments = ciclo(&w.client, &ns, "ModelDeployment");
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &ns);
    let mv = w.judged("wdbc-1").await;
    assert!(
        mv["spec"]["artifact"]["uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/model.onnx")),
        "{mv}"
    );
    wait_status(&deployments, "wdbc", "version 1 serving", |s| {
        s["servingVersion"] == 1
    })
    .await;
    let target = ciclo_e2e::load::serving_target(&pods, "wdbc", 2).await;
    let http = reqwest::Client::new();
    let metadata = get(&http, format!("{target}/v2/models/wdbc")).await;
    assert_eq!(metadata["platform"], "onnx", "{metadata}");
    assert_eq!(
        metadata["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 30]}])
    );
    let doc = recorded();
    let answer = ciclo_e2e::load::infer(&http, &target, "wdbc", &request(&doc, 5)).await;
    assert_eq!(
        ciclo_e2e::load::output(&answer, "output_label")["data"],
        doc["outputs"]["output_label"]["data"],
        "the labels ONNX Runtime gave when the file was exported: {answer}"
    );

    // The team's next export (a scaler in front) → version 2, canaried in under load.
    let one_row = request(&doc, 1);
    let load = ciclo_e2e::load::start(pods.clone(), "wdbc", "wdbc", move |_| one_row.clone());
    apply(&ns, &training_run("pipeline_scaler_logreg.onnx", 0.98));
    let s = wait_status(&deployments, "wdbc", "version 2 promoted", |s| {
        s["servingVersion"] == 2 && s["canaryVersion"].is_null()
    })
    .await;
    load.stop_after_rollout(1, 2).await;
    assert_eq!(s["history"][0]["result"], "Promoted", "{s}");
    assert_eq!(condition(&s, "Ready").unwrap()["status"], "True", "{s}");
}
