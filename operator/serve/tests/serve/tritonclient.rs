//! Triton's HTTP and gRPC clients (`tritonclient[http,grpc]`, from PyPI, in the venv
//! `e2e/python/venv.sh` makes) against the server: over HTTP with its defaults — the binary
//! tensor data extension both ways — and in plain JSON, over gRPC in raw bytes; the answers
//! are the model file's.

use crate::v2::{expected_outputs, iris};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// The venv's Python, made on first use.
fn python() -> String {
    crate::common::script_output("e2e/python/venv.sh")
}

/// What `tests/tritonclient_infer.py` decoded of `model`'s answers for `rows` (see there).
async fn tritonclient(addr: SocketAddr, model: &str, mode: &str, rows: &[Vec<f64>]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tritonclient_infer.py");
    let args = [
        addr.to_string(),
        model.to_string(),
        mode.to_string(),
        serde_json::to_string(rows).unwrap(),
    ];
    let python = python();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "tritonclient failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The exporters' fixtures folder, the record of `logreg.onnx` (inputs and ONNX Runtime's
/// outputs for them) and its input rows.
fn logreg() -> (std::path::PathBuf, Value, Vec<Vec<f64>>) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exporters");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("logreg.json")).unwrap()).unwrap();
    let rows = doc["input"]["data"]
        .as_array()
        .unwrap()
        .chunks(30)
        .map(|r| r.iter().map(|x| x.as_f64().unwrap()).collect())
        .collect();
    (fixtures, doc, rows)
}

#[tokio::test]
async fn tritonclient_with_its_defaults_and_in_json_gets_the_model_files_answers() {
    let (m, s) = iris(&[]).await;
    let rows = vec![
        vec![4.0, 1.0],
        vec![-4.0, 2.0],
        vec![0.3, -8.0],
        vec![1.5, 0.5],
    ];
    let found = tritonclient(s.addr, "iris", "columns", &rows).await;
    assert_eq!(found["extensions"], json!(["binary_tensor_data"]));
    assert_eq!(found["inputs"], json!(["x1", "x2"]));
    let expected = expected_outputs(&m, &rows);
    let (labels, probabilities) = (&expected[0]["data"], &expected[1]["data"]);
    // The client returns the probabilities as rows.
    let probabilities: Vec<Value> = probabilities
        .as_array()
        .unwrap()
        .chunks(2)
        .map(|row| Value::from(row.to_vec()))
        .collect();
    for mode in ["binary", "json"] {
        assert_eq!(&found[mode]["predict"], labels, "{mode}: {found}");
        assert_eq!(
            found[mode]["predict_proba"],
            Value::from(probabilities.clone()),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn tritonclient_with_its_defaults_gets_an_onnx_exports_answers_and_probabilities() {
    let (fixtures, doc, rows) = logreg();
    let s = crate::common::server::serve_file(&fixtures.join("logreg.onnx"), "wdbc").await;
    let found = tritonclient(s.addr, "wdbc", "matrix", &rows).await;
    assert_eq!(
        found["output_label"], doc["outputs"]["output_label"]["data"],
        "{found}"
    );
    // ZipMap's maps, as rows of the classes 0 and 1.
    let expected: Vec<[f64; 2]> = doc["outputs"]["output_probability"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| [m["0"].as_f64().unwrap(), m["1"].as_f64().unwrap()])
        .collect();
    let got: Vec<[f64; 2]> = serde_json::from_value(found["output_probability"].clone()).unwrap();
    assert_eq!(got.len(), expected.len(), "{found}");
    for (g, e) in got.iter().zip(&expected) {
        for k in 0..2 {
            assert!(
                (g[k] - e[k]).abs() <= 1e-7 + 1e-5 * e[k].abs(),
                "{got:?} vs {expected:?}"
            );
        }
    }
}

#[tokio::test]
async fn tritonclients_grpc_client_gets_the_same_answers_as_over_http() {
    let (m, s) = iris(&["--grpc-port", "0"]).await;
    let rows = vec![vec![4.0, 1.0], vec![-4.0, 2.0], vec![0.3, -8.0]];
    let found = tritonclient(s.grpc.unwrap(), "iris", "grpc-columns", &rows).await;
    assert_eq!(
        (
            &found["live"],
            &found["ready"],
            &found["server"],
            &found["id"]
        ),
        (
            &json!(true),
            &json!(true),
            &json!("ciclo"),
            &json!("grpc-1")
        ),
        "{found}"
    );
    assert_eq!(found["inputs"], json!(["x1", "x2"]));
    let expected = expected_outputs(&m, &rows);
    assert_eq!(found["answers"]["predict"], expected[0]["data"], "{found}");
    let probabilities: Vec<Value> = expected[1]["data"]
        .as_array()
        .unwrap()
        .chunks(2)
        .map(|row| Value::from(row.to_vec()))
        .collect();
    assert_eq!(
        found["answers"]["predict_proba"],
        Value::from(probabilities)
    );

    // An exporter's ONNX model through the gRPC client: ONNX Runtime's labels.
    let (fixtures, doc, rows) = logreg();
    let args = crate::common::server::args(&[
        "--model-uri",
        &format!("file://{}", fixtures.join("logreg.onnx").display()),
        "--model-name",
        "wdbc",
        "--grpc-port",
        "0",
    ]);
    let onnx = crate::common::server::start_ready(args).await;
    let found = tritonclient(onnx.grpc.unwrap(), "wdbc", "grpc-matrix", &rows).await;
    assert_eq!(
        found["answers"]["output_label"], doc["outputs"]["output_label"]["data"],
        "{found}"
    );
}
