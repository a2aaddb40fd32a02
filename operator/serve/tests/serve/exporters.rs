//! ONNX files as the standard exporters write them (`tests/fixtures/exporters`, made by its
//! `generate.py`: skl2onnx for scikit-learn with and without ZipMap, onnxmltools for XGBoost
//! and LightGBM; and by `generate_torch.py`: PyTorch's `torch.onnx.export`), served and asked
//! over the protocol: every output equals ONNX Runtime's
//! (the Python package's, recorded beside each file) within 1e-5 relative or 1e-7 absolute,
//! at batch 1 and batch 5. A model with an operator no runtime knows fails when it loads,
//! naming the operator.

use crate::common::{http, server};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exporters")
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-7 + 1e-5 * want.abs()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A class label as the protocol gives it: an integer class as a number, a string as itself.
fn class(key: &str) -> Value {
    key.parse::<i64>()
        .map_or_else(|_| Value::from(key), Value::from)
}

/// Checks one output of a response against what ONNX Runtime gave for the first `batch` rows.
fn check(model: &str, got: &Value, want: &Value, batch: usize) {
    let name = &got["name"];
    let (values, expected): (Vec<f64>, Vec<f64>) = if want["kind"] == "seq_map" {
        // ZipMap: one map per row; served as [rows, classes] with the classes listed.
        let rows = &want["data"].as_array().unwrap()[..batch];
        let mut keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
        // Ascending: numerically for integer classes, by text for strings.
        keys.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => a.cmp(b),
        });
        let classes: Vec<Value> = keys.iter().map(|k| class(k)).collect();
        assert_eq!(
            got["parameters"]["classes"],
            json!(classes),
            "{model} {name}"
        );
        assert_eq!(
            got["shape"],
            json!([batch, classes.len()]),
            "{model} {name}"
        );
        let expected = rows
            .iter()
            .flat_map(|r| keys.iter().map(|k| r[k.as_str()].as_f64().unwrap()))
            .collect();
        (numbers(&got["data"]), expected)
    } else if want["dtype"] == "object" {
        // String labels: exactly the runtime's, as BYTES.
        let all = want["data"].as_array().unwrap();
        assert_eq!(got["datatype"], "BYTES", "{model} {name}");
        assert_eq!(got["data"], json!(all[..batch]), "{model} {name}");
        return;
    } else {
        let all = numbers(&want["data"]);
        let per_row = all.len() / want["shape"][0].as_u64().unwrap() as usize;
        (numbers(&got["data"]), all[..per_row * batch].to_vec())
    };
    assert_eq!(values.len(), expected.len(), "{model} {name}: {got}");
    for (g, w) in values.iter().zip(&expected) {
        assert!(
            close(*g, *w),
            "{model} {name}: {values:?}, ONNX Runtime: {expected:?}"
        );
    }
}

#[tokio::test]
async fn every_exporters_model_answers_as_onnx_runtime_does() {
    let mut checked = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| !p.ends_with("manifest.json"))
        .collect();
    files.sort();
    for doc_path in files {
        let doc: Value = serde_json::from_slice(&std::fs::read(&doc_path).unwrap()).unwrap();
        let model = doc["name"].as_str().unwrap().to_string();
        let s = server::serve_file(&doc_path.with_extension("onnx"), &model).await;
        let meta = http::get(s.addr, &format!("/v2/models/{model}"))
            .await
            .json();
        let features = doc["input"]["shape"][1].as_u64().unwrap();
        assert_eq!(
            meta["inputs"],
            json!([{"name": doc["input_name"], "datatype": "FP32", "shape": [-1, features]}]),
            "{model}: the exporter's input, its batch free"
        );
        let outputs: Vec<&str> = meta["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        let mut expected: Vec<&str> = doc["outputs"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        expected.sort();
        let mut sorted = outputs.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "{model}: the exporter's output names");
        let rows = numbers(&doc["input"]["data"]);
        for batch in [1, 5] {
            let data = &rows[..batch * features as usize];
            let reply = http::post(
                s.addr,
                &format!("/v2/models/{model}/infer"),
                &json!({"inputs": [{"name": doc["input_name"], "shape": [batch, features], "datatype": "FP32", "data": data}]}),
            )
            .await;
            assert_eq!(
                reply.status, 200,
                "{model} at batch {batch}: {}",
                reply.body
            );
            let body = reply.json();
            for got in body["outputs"].as_array().unwrap() {
                let name = got["name"].as_str().unwrap();
                check(&model, got, &doc["outputs"][name], batch);
            }
        }
        checked.push(model);
    }
    // Every family the exporters write: a test that found no fixture proves nothing.
    for family in [
        "logreg",
        "pipeline_scaler_logreg",
        "random_forest",
        "gradient_boosting",
        "mlp",
        "ridge",
        "random_forest_regressor",
        "xgboost",
        "lightgbm",
        "iris_logreg_nozipmap",
        "iris_logreg_string_labels",
        "torch_mlp",
    ] {
        assert!(
            checked.iter().any(|m| m == family),
            "{family} in {checked:?}"
        );
    }
}

#[tokio::test]
async fn a_model_with_an_operator_no_runtime_knows_fails_at_start_naming_it() {
    let onnx = fixtures().join("unsupported_op.onnx");
    let uri = format!("file://{}", onnx.display());
    let s = server::start(server::args(&["--model-uri", &uri, "--model-name", "m"])).await;
    let error = s.ended().await.expect_err("the server stops").to_string();
    assert!(
        error.contains("Frobnicate") && error.contains("com.example.ciclo"),
        "names the operator and its domain: {error}"
    );
}
