//! The protocol's gRPC half (`inference.GRPCInferenceService` on `--grpc-port`), called with
//! a gRPC client generated from the same .proto: health, metadata and inference answer as
//! REST does for the same model and inputs, in typed contents and in raw bytes, and errors
//! are gRPC status codes.

use crate::common::http;
use crate::v2::{expected_outputs, iris};
use ciclo_serve::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ciclo_serve::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use ciclo_serve::grpc::proto::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tonic::Code;
use tonic::transport::Channel;

pub async fn client(addr: SocketAddr) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

const ROWS: [[f64; 2]; 3] = [[4.0, 1.0], [-4.0, 2.0], [0.3, -8.0]];

/// An input of the iris model: column `i` of [`ROWS`] as FP64.
pub fn column(name: &str, i: usize) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: "FP64".into(),
        shape: vec![ROWS.len() as i64],
        contents: Some(InferTensorContents {
            fp64_contents: ROWS.iter().map(|r| r[i]).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn request(inputs: Vec<InferInputTensor>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "iris".into(),
        id: "r-1".into(),
        inputs,
        ..Default::default()
    }
}

/// A response's outputs as REST writes them (name, datatype, shape, data).
fn as_json(r: &ModelInferResponse) -> Value {
    let outputs: Vec<Value> = r
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let data = match (&o.contents, r.raw_output_contents.get(i)) {
                (Some(c), None) if o.datatype == "BYTES" => json!(
                    c.bytes_contents
                        .iter()
                        .map(|b| String::from_utf8(b.clone()).unwrap())
                        .collect::<Vec<_>>()
                ),
                (Some(c), None) => json!(c.fp64_contents),
                (None, Some(raw)) if o.datatype == "BYTES" => {
                    let mut strings = Vec::new();
                    let mut rest = &raw[..];
                    while rest.len() >= 4 {
                        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                        strings.push(String::from_utf8(rest[4..4 + n].to_vec()).unwrap());
                        rest = &rest[4 + n..];
                    }
                    json!(strings)
                }
                (None, Some(raw)) => json!(
                    raw.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                        .collect::<Vec<_>>()
                ),
                other => panic!("output {}: contents and raw {other:?}", o.name),
            };
            json!({"name": o.name, "datatype": o.datatype, "shape": o.shape, "data": data})
        })
        .collect();
    json!(outputs)
}

#[tokio::test]
async fn grpc_answers_as_rest_does_for_the_same_model_and_inputs() {
    let (m, s) = iris(&["--grpc-port", "0"]).await;
    let mut c = client(s.grpc.expect("a gRPC port")).await;
    let live = c.server_live(ServerLiveRequest {}).await.unwrap();
    assert!(live.into_inner().live);
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = c
        .model_ready(ModelReadyRequest {
            name: "iris".into(),
            version: "3".into(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);
    let server = c.server_metadata(ServerMetadataRequest {}).await.unwrap();
    assert_eq!(server.into_inner().name, "ciclo");

    // Metadata: what REST says, in the protocol's messages.
    let rest = http::get(s.addr, "/v2/models/iris").await.json();
    let meta = c
        .model_metadata(ModelMetadataRequest {
            name: "iris".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            meta.name.as_str(),
            meta.versions.clone(),
            meta.platform.as_str()
        ),
        (
            "iris",
            vec!["3".to_string()],
            rest["platform"].as_str().unwrap()
        )
    );
    let specs = |t: &[model_metadata_response::TensorMetadata]| -> Value {
        t.iter()
            .map(|t| json!({"name": t.name, "datatype": t.datatype, "shape": t.shape}))
            .collect()
    };
    assert_eq!(specs(&meta.inputs), rest["inputs"]);
    assert_eq!(specs(&meta.outputs), rest["outputs"]);

    // Typed contents in, typed contents out: the model file's answers, as REST gives them.
    let rows: Vec<Vec<f64>> = ROWS.iter().map(|r| r.to_vec()).collect();
    let expected = expected_outputs(&m, &rows);
    let typed = c
        .model_infer(request(vec![column("x1", 0), column("x2", 1)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            typed.model_name.as_str(),
            typed.model_version.as_str(),
            typed.id.as_str()
        ),
        ("iris", "3", "r-1")
    );
    assert!(typed.raw_output_contents.is_empty());
    assert_eq!(as_json(&typed), expected);
    let rest = http::post(
        s.addr,
        "/v2/models/iris/infer",
        &json!({"inputs": [
            {"name": "x1", "shape": [3], "datatype": "FP64", "data": [4.0, -4.0, 0.3]},
            {"name": "x2", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0, -8.0]},
        ]}),
    )
    .await
    .json();
    assert_eq!(rest["outputs"], expected);

    // Raw bytes in (as tritonclient sends them), raw bytes out; one output asked for.
    let raw = |i: usize| -> Vec<u8> { ROWS.iter().flat_map(|r| r[i].to_le_bytes()).collect() };
    let mut inputs = vec![column("x1", 0), column("x2", 1)];
    inputs.iter_mut().for_each(|t| t.contents = None);
    let mut asked = request(inputs);
    asked.raw_input_contents = vec![raw(0), raw(1)];
    asked.outputs = vec![InferRequestedOutputTensor {
        name: "predict_proba".into(),
        ..Default::default()
    }];
    let binary = c.model_infer(asked).await.unwrap().into_inner();
    assert!(binary.outputs[0].contents.is_none());
    assert_eq!(as_json(&binary), json!([expected[1]]));

    // Counted as REST's requests are, under the method's path.
    let metrics = http::get(s.addr, "/metrics").await.body;
    assert!(
        metrics.contains(
            r#"ciclo_serve_requests_total{route="/inference.GRPCInferenceService/ModelInfer",code="200"} 2"#
        ),
        "{metrics}"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn errors_are_grpc_status_codes_naming_what_is_wrong() {
    let (_, s) = iris(&["--grpc-port", "0"]).await;
    let mut c = client(s.grpc.unwrap()).await;
    let mut cases: Vec<(&str, ModelInferRequest, Code, &str)> = Vec::new();
    let mut other = request(vec![column("x1", 0), column("x2", 1)]);
    other.model_name = "churn".into();
    cases.push(("another model", other, Code::NotFound, "churn"));
    let mut bad_type = column("x1", 0);
    bad_type.datatype = "FLOAT".into();
    cases.push((
        "an unknown datatype",
        request(vec![bad_type, column("x2", 1)]),
        Code::InvalidArgument,
        "unknown datatype \"FLOAT\"",
    ));
    let mut short = column("x1", 0);
    short.shape = vec![4];
    cases.push((
        "fewer values than the shape holds",
        request(vec![short, column("x2", 1)]),
        Code::InvalidArgument,
        "the shape holds 4 values, fp64_contents has 3",
    ));
    let mut negative = column("x1", 0);
    negative.shape = vec![-1];
    cases.push((
        "a negative dimension",
        request(vec![negative, column("x2", 1)]),
        Code::InvalidArgument,
        "negative dimension",
    ));
    let mut raw_short = request(vec![column("x1", 0), column("x2", 1)]);
    raw_short.inputs.iter_mut().for_each(|t| t.contents = None);
    raw_short.raw_input_contents = vec![vec![0; 24]];
    cases.push((
        "raw contents for one of two inputs",
        raw_short,
        Code::InvalidArgument,
        "raw_input_contents has 1 entries for 2 inputs",
    ));
    let mut unknown_output = request(vec![column("x1", 0), column("x2", 1)]);
    unknown_output.outputs = vec![InferRequestedOutputTensor {
        name: "score".into(),
        ..Default::default()
    }];
    cases.push((
        "an output the model does not have",
        unknown_output,
        Code::InvalidArgument,
        "unknown output \"score\"",
    ));
    let mut huge = column("x1", 0);
    huge.shape = vec![i64::MAX, i64::MAX];
    cases.push((
        "a shape too large to hold",
        request(vec![huge, column("x2", 1)]),
        Code::InvalidArgument,
        "is too large",
    ));
    cases.push((
        "a missing input",
        request(vec![column("x1", 0)]),
        Code::InvalidArgument,
        "x2",
    ));
    for (what, req, code, message) in cases {
        let e = c.model_infer(req).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {e:?}");
        assert!(e.message().contains(message), "{what}: {}", e.message());
    }
    let e = c
        .model_metadata(ModelMetadataRequest {
            name: "iris".into(),
            version: "9".into(),
        })
        .await
        .expect_err("another version");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let metrics = http::get(s.addr, "/metrics").await.body;
    assert!(
        metrics.contains(
            r#"ciclo_serve_requests_total{route="/inference.GRPCInferenceService/ModelInfer",code="400"} 7"#
        ),
        "{metrics}"
    );
    s.stop().await.unwrap();
}
