//! Triton's HTTP client (`tritonclient[http]`, from PyPI, in the venv `e2e/python/venv.sh`
//! makes) against the server, with its defaults — the binary tensor data extension both ways
//! — and in plain JSON: the answers are the model file's.

use crate::v2::{expected_outputs, iris};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// The venv's Python, made on first use.
fn python() -> String {
    crate::common::script_output("e2e/python/venv.sh")
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tritonclient_infer.py");
    let python = python();
    let rows_json = serde_json::to_string(&rows).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(s.addr.to_string())
            .arg("iris")
            .arg(rows_json)
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
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
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
