//! An ONNX model (tests/fixtures/linear.onnx: `scores = x·W + b`, `label = argmax(scores)`)
//! served by tract, its answers checked against the weights it was written with.

use crate::common::{http, model, server};
use serde_json::{Value, json};

const W: [[f64; 2]; 3] = [[1.0, -1.0], [0.5, 2.0], [-2.0, 0.25]];
const B: [f64; 2] = [0.1, -0.2];

fn scores(x: [f64; 3]) -> [f64; 2] {
    [0, 1].map(|k| B[k] + (0..3).map(|j| x[j] * W[j][k]).sum::<f64>())
}

fn close(got: &Value, expected: &[f64]) {
    let got: Vec<f64> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
    }
}

#[tokio::test]
async fn an_onnx_model_infers_as_its_weights_say() {
    let (path, digest) = model::onnx_fixture();
    let s = server::serve_file(&path, "linear").await;
    let meta = http::get(s.addr, "/v2/models/linear").await.json();
    assert_eq!(meta["platform"], "onnx");
    assert_eq!(meta["parameters"]["digest"], digest);
    assert_eq!(
        (meta["inputs"].clone(), meta["outputs"].clone()),
        (
            json!([{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]),
            json!([
                {"name": "label", "datatype": "INT64", "shape": [-1]},
                {"name": "scores", "datatype": "FP32", "shape": [-1, 2]},
            ])
        )
    );

    let (a, b) = ([1.0, 2.0, 3.0], [4.0, 0.0, 0.0]);
    let reply = http::post(
        s.addr,
        "/v2/models/linear/infer",
        &json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [a, b]}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let outputs = &reply.json()["outputs"];
    assert_eq!(outputs[0]["name"], "label");
    assert_eq!(outputs[0]["datatype"], "INT64");
    assert_eq!(outputs[0]["data"], json!([1, 0]));
    assert_eq!(outputs[1]["shape"], json!([2, 2]));
    close(&outputs[1]["data"], &[scores(a), scores(b)].concat());

    // Integers are exact in a float input; a batch of one works too.
    let reply = http::post(
        s.addr,
        "/v2/models/linear/infer",
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT64", "data": [4, 0, 0]}]}),
    )
    .await;
    close(&reply.json()["outputs"][1]["data"], &scores(b));

    // v1: each instance is one row of the single input; predictions are the first output.
    let reply = http::post(
        s.addr,
        "/v1/models/linear:predict",
        &json!({"instances": [a, b, [0.0, 0.0, 0.0]]}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"predictions": [1, 0, 0]}))
    );
}

#[tokio::test]
async fn onnx_inputs_of_the_wrong_shape_or_name_are_400() {
    let (path, _) = model::onnx_fixture();
    let s = server::start_ready(server::args(&[
        "--model-uri",
        &path.display().to_string(),
        "--model-name",
        "linear",
    ]))
    .await;
    for (body, says) in [
        (
            json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}),
            "input \"x\" has shape [1, 4]; the model takes [-1, 3]",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            "input \"x\" has shape [3]; the model takes [-1, 3]",
        ),
        (
            json!({"inputs": [{"name": "y", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            "unknown input \"y\"; the model's inputs are \"x\" (FP32 [-1, 3])",
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BOOL", "data": [true, false, true]}]}),
            "input \"x\" is BOOL; the model takes FP32",
        ),
    ] {
        let reply = http::post(s.addr, "/v2/models/linear/infer", &body).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert!(
            reply.error().contains(says),
            "{} should say {says}",
            reply.body
        );
    }
    let reply = http::post(
        s.addr,
        "/v1/models/linear:predict",
        &json!({"instances": [[1, 2, 3], [1, 2]]}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .error()
            .contains("instance 1 has shape [2], instance 0 [3]"),
        "{}",
        reply.body
    );
}
