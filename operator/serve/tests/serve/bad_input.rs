//! Every kind of bad request gets a 4xx and the protocol's error body naming what is wrong,
//! and the server goes on serving.

use crate::common::http::{self, Reply};
use crate::v2::iris;
use serde_json::{Value, json};
use std::net::SocketAddr;

fn x(name: &str, shape: Value, datatype: &str, data: Value) -> Value {
    json!({"name": name, "shape": shape, "datatype": datatype, "data": data})
}

fn inputs(tensors: Vec<Value>) -> Vec<u8> {
    json!({ "inputs": tensors }).to_string().into_bytes()
}

/// The server still answers a good request.
async fn still_serving(addr: SocketAddr) {
    assert_eq!(http::get(addr, "/v2/health/live").await.status, 200);
    let ok = http::post_raw(
        addr,
        "/v2/models/iris/infer",
        &inputs(vec![x("input", json!([1, 2]), "FP64", json!([1, 2]))]),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

fn expect(reply: &Reply, status: u16, says: &str, case: &str) {
    assert_eq!(reply.status, status, "{case}: {}", reply.body);
    let error = reply.error();
    assert!(
        error.contains(says),
        "{case}: {error:?} should say {says:?}"
    );
}

#[tokio::test]
async fn malformed_or_misshapen_v2_requests_are_400_with_the_reason() {
    let (_m, s) = iris(&[]).await;
    let x1 = |data: Value| x("x1", json!([2]), "FP64", data);
    let x2 = x("x2", json!([2]), "FP64", json!([1, 2]));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated JSON",
            b"{\"inputs\": [".to_vec(),
            "malformed JSON",
        ),
        ("not JSON", b"x1=1".to_vec(), "malformed JSON"),
        ("an array", b"[1, 2]".to_vec(), "invalid request"),
        (
            "v1 body on v2",
            b"{\"instances\": [[1, 2]]}".to_vec(),
            "missing field `inputs`",
        ),
        (
            "a negative dimension",
            inputs(vec![
                x("x1", json!([-2]), "FP64", json!([1, 2])),
                x2.clone(),
            ]),
            "invalid request",
        ),
        (
            "data not filling the shape",
            inputs(vec![x1(json!([1, 2, 3])), x2.clone()]),
            "input \"x1\": shape [2] holds 2 values, the data has 3",
        ),
        (
            "strings for numbers",
            inputs(vec![x1(json!(["1", "2"])), x2.clone()]),
            "input \"x1\": datatype FP64 takes numbers, got \"1\"",
        ),
        (
            "an unknown datatype",
            inputs(vec![
                x("x1", json!([2]), "DOUBLE", json!([1, 2])),
                x2.clone(),
            ]),
            "unknown datatype \"DOUBLE\"",
        ),
        (
            "text for a feature",
            inputs(vec![
                x("x1", json!([2]), "BYTES", json!(["a", "b"])),
                x2.clone(),
            ]),
            "input \"x1\" is BYTES; the model takes numbers",
        ),
        (
            "a missing feature",
            inputs(vec![x1(json!([1, 2]))]),
            "missing input \"x2\"",
        ),
        (
            "an unknown input",
            inputs(vec![
                x1(json!([1, 2])),
                x2.clone(),
                x("x3", json!([2]), "FP64", json!([1, 2])),
            ]),
            "unknown input \"x3\"; the model's inputs are \"x1\", \"x2\"",
        ),
        (
            "an input given twice",
            inputs(vec![x1(json!([1, 2])), x1(json!([1, 2])), x2.clone()]),
            "input \"x1\" is given twice",
        ),
        (
            "a 2-D feature",
            inputs(vec![
                x("x1", json!([1, 2]), "FP64", json!([1, 2])),
                x2.clone(),
            ]),
            "input \"x1\" has shape [1, 2]; a feature takes [batch] or [batch, 1]",
        ),
        (
            "batches of different sizes",
            inputs(vec![
                x("x1", json!([3]), "FP64", json!([1, 2, 3])),
                x2.clone(),
            ]),
            "input \"x2\" has a batch of 2, input \"x1\" of 3",
        ),
        (
            "a matrix of the wrong width",
            inputs(vec![x(
                "input",
                json!([2, 3]),
                "FP64",
                json!([1, 2, 3, 4, 5, 6]),
            )]),
            "input \"input\" has 3 values per row; the model has 2 features",
        ),
        (
            "an unknown output",
            json!({"inputs": [x1(json!([1, 2])), x2.clone()], "outputs": [{"name": "nope"}]})
                .to_string()
                .into_bytes(),
            "unknown output \"nope\"",
        ),
    ];
    for (case, body, says) in cases {
        let reply = http::post_raw(s.addr, "/v2/models/iris/infer", &body).await;
        expect(&reply, 400, says, case);
    }
    still_serving(s.addr).await;
}

#[tokio::test]
async fn bad_v1_instances_are_400_with_the_reason() {
    let (_m, s) = iris(&[]).await;
    let cases = [
        (
            "v2 body on v1",
            json!({"inputs": []}),
            "missing field `instances`",
        ),
        (
            "no instances",
            json!({"instances": []}),
            "`instances` is empty",
        ),
        (
            "too few values",
            json!({"instances": [[1.0]]}),
            "instance 0 has 1 values; the model takes 2, the features \"x1\", \"x2\"",
        ),
        (
            "an unknown feature",
            json!({"instances": [{"x1": 1, "x3": 2}]}),
            "instance 0: unknown feature \"x3\"",
        ),
        (
            "a missing feature",
            json!({"instances": [[1, 2], {"x1": 1}]}),
            "instance 1: missing feature \"x2\"",
        ),
        (
            "text for a number",
            json!({"instances": [[1, "a"]]}),
            "instance 0, feature \"x2\": \"a\" is not a number",
        ),
        (
            "a bare string",
            json!({"instances": ["a"]}),
            "instance 0 is neither an array",
        ),
    ];
    for (case, body, says) in cases {
        let reply = http::post(s.addr, "/v1/models/iris:predict", &body).await;
        expect(&reply, 400, says, case);
    }
    let reply = http::post(
        s.addr,
        "/v1/models/iris:explain",
        &json!({"instances": [[1, 2]]}),
    )
    .await;
    expect(&reply, 404, "the v1 verb served is :predict", ":explain");
    still_serving(s.addr).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_streamed() {
    let (_m, s) = iris(&["--max-body-bytes", "1024"]).await;
    let request = |pad: usize| {
        let mut body = json!({"instances": [[1, 2]]}).to_string().into_bytes();
        body.extend(std::iter::repeat_n(b' ', pad));
        body
    };
    for path in ["/v1/models/iris:predict", "/v2/models/iris/infer"] {
        // Declared: refused from the headers alone, the body never sent.
        let mut stream = http::connect(s.addr).await;
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            http::head("POST", path, Some(10_000_000)).as_bytes(),
        )
        .await
        .unwrap();
        let reply = http::read_reply(&mut stream).await;
        expect(&reply, 413, "larger than 1024 bytes", path);
        // Streamed without a length: refused once the limit is passed.
        let reply = http::send(s.addr, "POST", path, &request(2000), None).await;
        expect(&reply, 413, "larger than 1024 bytes", path);
    }
    // Just under the limit is served.
    let reply = http::post_raw(s.addr, "/v1/models/iris:predict", &request(1000)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn other_models_versions_routes_and_methods_are_4xx_json() {
    let (_m, s) = iris(&[]).await;
    let good = json!({"instances": [[1, 2]]});
    for (reply, status, says) in [
        (
            http::get(s.addr, "/v2/models/other").await,
            404,
            "unknown model \"other\"; this server serves \"iris\"",
        ),
        (
            http::post(s.addr, "/v2/models/other/infer", &good).await,
            404,
            "unknown model \"other\"",
        ),
        (
            http::get(s.addr, "/v2/models/iris/versions/9/ready").await,
            404,
            "model \"iris\" has no version \"9\"; this server serves version \"3\"",
        ),
        (
            http::post(s.addr, "/v1/models/other:predict", &good).await,
            404,
            "unknown model \"other\"",
        ),
        (http::get(s.addr, "/v3/x").await, 404, "no route GET /v3/x"),
        (
            http::get(s.addr, "/v2/models/iris/infer").await,
            405,
            "not allowed",
        ),
    ] {
        expect(&reply, status, says, says);
    }
}

#[tokio::test]
async fn binary_tensor_data_that_does_not_add_up_is_400_with_the_reason() {
    let (_m, s) = iris(&[]).await;
    let binary = |size: usize| json!({"name": "input", "shape": [1, 2], "datatype": "FP64", "parameters": {"binary_data_size": size}});
    let two = [1.0f64.to_le_bytes(), 2.0f64.to_le_bytes()].concat();
    for (json, blob, says) in [
        (
            json!({"inputs": [binary(16)]}),
            &two[..12],
            "binary_data_size 16 runs past the end of the body",
        ),
        (
            json!({"inputs": [binary(12)]}),
            &two[..12],
            "binary_data_size is 12 bytes; the shape holds 2 FP64 values of 8 bytes",
        ),
        (
            json!({"inputs": [binary(8)]}),
            &two[..],
            "binary_data_size is 8 bytes; the shape holds 2 FP64 values",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64"}]}),
            &two[..],
            "has no `data` (nor parameters.binary_data_size",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [1, 2], "parameters": {"binary_data_size": 16}}]}),
            &two[..],
            "has both `data` and parameters.binary_data_size",
        ),
    ] {
        let reply = http::post_binary(s.addr, "/v2/models/iris/infer", &json, blob).await;
        expect(&reply, 400, says, &json.to_string());
    }
    // Data left over after the JSON request.
    let json = json!({"inputs": [x("input", json!([1, 2]), "FP64", json!([1, 2]))]});
    let reply = http::post_binary(s.addr, "/v2/models/iris/infer", &json, &two).await;
    expect(&reply, 400, "16 bytes of binary data follow", "left over");
    // And the same request, well-formed, as binary: answered in JSON (no output asked as binary).
    let reply = http::post_binary(
        s.addr,
        "/v2/models/iris/infer",
        &json!({"inputs": [binary(16)]}),
        &two,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["outputs"][1]["shape"], json!([1, 2]));
    still_serving(s.addr).await;
}
