//! KServe v1 with a real trained model.

use crate::common::{http, model, server};
use crate::v2::iris;
use serde_json::json;

#[tokio::test]
async fn v1_predicts_instances_given_as_arrays_or_objects() {
    let (m, s) = iris(&[]).await;
    let list = http::get(s.addr, "/v1/models").await;
    assert_eq!(
        (list.status, list.json()),
        (200, json!({"models": ["iris"]}))
    );
    let status = http::get(s.addr, "/v1/models/iris").await;
    assert_eq!(
        (status.status, status.json()),
        (200, json!({"name": "iris", "ready": true}))
    );

    let reply = http::post(
        s.addr,
        "/v1/models/iris:predict",
        &json!({"instances": [[4.0, 1.0], {"x2": 2.0, "x1": -4.0}]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (labels, probabilities) = m.classes(&[vec![4.0, 1.0], vec![-4.0, 2.0]]);
    assert_eq!(labels, vec![json!("yes"), json!("no")]);
    assert_eq!(
        reply.json(),
        json!({"predictions": labels, "probabilities": probabilities})
    );
}

#[tokio::test]
async fn v1_regression_predictions_are_numbers() {
    let m = model::regression().await;
    let s = server::start_ready(server::args(&[
        "--model-uri",
        &m.uri(),
        "--model-name",
        "line",
    ]))
    .await;
    // A one-feature model takes bare numbers too.
    let reply = http::post(
        s.addr,
        "/v1/models/line:predict",
        &json!({"instances": [[1.0], 10]}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let values = m.values(&[vec![1.0], vec![10.0]]);
    assert_eq!(reply.json(), json!({"predictions": values}));
}
