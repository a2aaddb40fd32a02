//! `/metrics`: requests by route and status, latency, rows predicted, readiness, and the
//! running statistics of each model input.

use crate::common::http;
use crate::v2::iris;
use serde_json::json;

/// The value of the series `name` whose labels include `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = metric == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().unwrap())
    })
}

#[tokio::test]
async fn metrics_count_requests_by_status_and_keep_input_statistics() {
    let (m, s) = iris(&[]).await;
    let infer = |x1: Vec<f64>, x2: Vec<f64>| {
        json!({"inputs": [
            {"name": "x1", "shape": [x1.len()], "datatype": "FP64", "data": x1},
            {"name": "x2", "shape": [x2.len()], "datatype": "FP64", "data": x2},
        ]})
    };
    let path = "/v2/models/iris/infer";
    for (body, status) in [
        (infer(vec![4.0, -4.0, 0.5], vec![1.0, 2.0, -8.0]), 200),
        (infer(vec![1.0], vec![0.0]), 200),
        (
            json!({"inputs": [{"name": "bogus", "shape": [1], "datatype": "FP64", "data": [1e9]}]}),
            400,
        ),
    ] {
        assert_eq!(http::post(s.addr, path, &body).await.status, status);
    }
    let v1 = json!({"instances": [[2.0, 1.0]]});
    assert_eq!(
        http::post(s.addr, "/v1/models/iris:predict", &v1)
            .await
            .status,
        200
    );
    assert_eq!(http::get(s.addr, "/nope").await.status, 404);

    let reply = http::get(s.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        reply.headers
    );
    let text = reply.body;
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let infer_route = ("route", "/v2/models/{name}/infer");
    let requests = "ciclo_serve_requests_total";
    assert_eq!(get(requests, &[infer_route, ("code", "200")]), 2.0);
    assert_eq!(get(requests, &[infer_route, ("code", "400")]), 1.0);
    assert_eq!(
        get(
            requests,
            &[("route", "/v1/models/{name}:predict"), ("code", "200")]
        ),
        1.0
    );
    assert_eq!(
        get(requests, &[("route", "unmatched"), ("code", "404")]),
        1.0
    );
    assert_eq!(
        get("ciclo_serve_request_duration_seconds_count", &[infer_route]),
        3.0
    );
    assert_eq!(get("ciclo_serve_predictions_total", &[]), 5.0);
    assert_eq!(get("ciclo_serve_model_ready", &[]), 1.0);
    assert_eq!(
        get(
            "ciclo_serve_model_info",
            &[("name", "iris"), ("version", "3"), ("digest", &m.digest)]
        ),
        1.0
    );

    // x1 was sent 4, -4, 0.5, 1 and 2: the mean is sum / count.
    let x1 = [("input", "x1")];
    assert_eq!(get("ciclo_serve_input_value_count", &x1), 5.0);
    assert_eq!(get("ciclo_serve_input_value_sum", &x1), 3.5);
    assert_eq!(get("ciclo_serve_input_min", &x1), -4.0);
    assert_eq!(get("ciclo_serve_input_max", &x1), 4.0);
    let bucket = |le: &str| get("ciclo_serve_input_value_bucket", &[x1[0], ("le", le)]);
    assert_eq!(bucket("0.0"), 1.0);
    assert_eq!(bucket("0.5"), 2.0);
    assert_eq!(bucket("1.0"), 3.0);
    assert_eq!(bucket("5.0"), 5.0);
    let x2 = [("input", "x2")];
    assert_eq!(get("ciclo_serve_input_min", &x2), -8.0);
    assert_eq!(get("ciclo_serve_input_value_count", &x2), 5.0);
    // A name that is no input of the model never becomes a label.
    assert!(!text.contains("bogus"), "{text}");
}
