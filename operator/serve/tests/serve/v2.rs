//! The Open Inference Protocol's endpoints with a real trained model.

use crate::common::http;
use crate::common::model::{self, Trained};
use crate::common::server::{self, Running};
use serde_json::{Value, json};

/// The classifier served as model "iris", version 3, its digest checked.
pub async fn iris(extra: &[&str]) -> (Trained, Running) {
    let m = model::classifier().await;
    let uri = m.uri();
    let mut flags = vec![
        "--model-uri",
        &uri,
        "--model-digest",
        &m.digest,
        "--model-name",
        "iris",
        "--model-version",
        "3",
    ];
    flags.extend(extra);
    let s = server::start_ready(server::args(&flags)).await;
    (m, s)
}

/// The `predict` and `predict_proba` outputs the model file gives for `rows`.
pub fn expected_outputs(m: &Trained, rows: &[Vec<f64>]) -> Value {
    let (labels, probabilities) = m.classes(rows);
    let probabilities: Vec<f64> = probabilities.concat();
    json!([
        {"name": "predict", "datatype": "BYTES", "shape": [rows.len()], "data": labels},
        {"name": "predict_proba", "datatype": "FP64", "shape": [rows.len(), 2], "data": probabilities},
    ])
}

const ROWS: [[f64; 2]; 3] = [[4.0, 1.0], [-4.0, 2.0], [0.3, -8.0]];

fn rows() -> Vec<Vec<f64>> {
    ROWS.iter().map(|r| r.to_vec()).collect()
}

#[tokio::test]
async fn health_and_metadata_describe_the_loaded_model() {
    let (m, s) = iris(&[]).await;
    let live = http::get(s.addr, "/v2/health/live").await;
    assert_eq!((live.status, live.json()), (200, json!({"live": true})));
    let ready = http::get(s.addr, "/v2/health/ready").await;
    assert_eq!((ready.status, ready.json()), (200, json!({"ready": true})));
    let server = http::get(s.addr, "/v2").await.json();
    assert_eq!(server["name"], "ciclo");

    let expected = json!({
        "name": "iris",
        "versions": ["3"],
        "platform": "ciclo.dev/model/v1",
        "inputs": [
            {"name": "x1", "datatype": "FP64", "shape": [-1]},
            {"name": "x2", "datatype": "FP64", "shape": [-1]},
        ],
        "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ],
        "parameters": {
            "algorithm": "LogisticRegression",
            "target": "label",
            "classes": ["no", "yes"],
            "dataset_version": m.model.dataset_version,
            "digest": m.digest,
        },
    });
    for path in ["/v2/models/iris", "/v2/models/iris/versions/3"] {
        let meta = http::get(s.addr, path).await;
        assert_eq!(
            (meta.status, meta.json()),
            (200, expected.clone()),
            "{path}"
        );
    }
    for path in ["/v2/models/iris/ready", "/v2/models/iris/versions/3/ready"] {
        let ready = http::get(s.addr, path).await;
        assert_eq!(
            (ready.status, ready.json()),
            (200, json!({"name": "iris", "ready": true})),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_batch_of_named_feature_tensors_is_predicted_as_the_model_file_says() {
    let (m, s) = iris(&[]).await;
    let reply = http::post(
        s.addr,
        "/v2/models/iris/infer",
        &json!({
            "id": "req-1",
            "inputs": [
                {"name": "x1", "shape": [3], "datatype": "FP64", "data": [4.0, -4.0, 0.3]},
                // [batch, 1], nested, another float type: the same column.
                {"name": "x2", "shape": [3, 1], "datatype": "FP32", "data": [[1], [2], [-8]]},
            ],
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["model_name"], "iris");
    assert_eq!(body["model_version"], "3");
    assert_eq!(body["id"], "req-1");
    assert_eq!(body["outputs"], expected_outputs(&m, &rows()));
    // It learned: far on either side of the boundary is clear.
    assert_eq!(body["outputs"][0]["data"][0], "yes");
    assert_eq!(body["outputs"][0]["data"][1], "no");
}

#[tokio::test]
async fn one_matrix_input_in_feature_order_gives_the_same_answer() {
    let (m, s) = iris(&[]).await;
    let request = json!({
        "inputs": [{"name": "input", "shape": [3, 2], "datatype": "FP64", "data": ROWS}],
    });
    let reply = http::post(s.addr, "/v2/models/iris/versions/3/infer", &request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["outputs"], expected_outputs(&m, &rows()));

    // Only the outputs asked for.
    let mut only = request.clone();
    only["outputs"] = json!([{"name": "predict_proba"}]);
    let reply = http::post(s.addr, "/v2/models/iris/infer", &only).await;
    assert_eq!(
        reply.json()["outputs"],
        json!([expected_outputs(&m, &rows())[1]])
    );
}

#[tokio::test]
async fn a_regression_predicts_values() {
    let m = model::regression().await;
    let s = server::start_ready(server::args(&[
        "--model-uri",
        &m.path.display().to_string(),
        "--model-digest",
        &m.digest,
    ]))
    .await;
    let reply = http::post(
        s.addr,
        "/v2/models/model/infer",
        &json!({"inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [1, 10]}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let values = m.values(&[vec![1.0], vec![10.0]]);
    assert!((values[1] - 32.0).abs() < 0.5, "{values:?}");
    assert_eq!(
        reply.json()["outputs"],
        json!([{"name": "predict", "datatype": "FP64", "shape": [2], "data": values}])
    );
    assert_eq!(
        reply.json().get("model_version"),
        None,
        "no version was given"
    );
}
