//! The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`,
//! `proto/grpc_predict_v2.proto`) on a port of its own: the same model, checks and metrics as
//! REST, answers in the protocol's messages, and errors as gRPC status codes
//! (`InvalidArgument` for what REST answers 400, `NotFound` 404, `Unavailable` 503,
//! `DeadlineExceeded` 408, `Internal` 500).
//!
//! Inputs come in `contents` (by datatype) or, as tritonclient sends them, in
//! `raw_input_contents` (little-endian bytes, one entry per input); the answer is in the same
//! form as the request.

use crate::binary;
use crate::capture;
use crate::errors::ApiError;
use crate::state::State;
use crate::tensor::{Data, Datatype, Output, Tensor, Values, declared};
use std::sync::Arc;
use std::time::Instant;
use tonic::{Code, Request, Response, Status};

/// The messages and the service, generated from the .proto by build.rs.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::model_infer_request::InferInputTensor;
use proto::model_infer_response::InferOutputTensor;
use proto::model_metadata_response::TensorMetadata;
use proto::*;

/// The route a gRPC method's calls are counted under in `ciclo_serve_requests_total` (with
/// the HTTP status their answer stands for), as REST's are under their paths.
macro_rules! route {
    ($method:literal) => {
        concat!("/inference.GRPCInferenceService/", $method)
    };
}

/// The service over `state`, taking messages up to `max_bytes` (REST's body limit).
pub(crate) fn service(state: Arc<State>, max_bytes: usize) -> GrpcInferenceServiceServer<Grpc> {
    GrpcInferenceServiceServer::new(Grpc { state })
        .max_decoding_message_size(max_bytes)
        .max_encoding_message_size(usize::MAX)
}

pub(crate) struct Grpc {
    state: Arc<State>,
}

fn status(e: ApiError) -> Status {
    let code = match e.status.as_u16() {
        400 | 413 => Code::InvalidArgument,
        404 => Code::NotFound,
        408 => Code::DeadlineExceeded,
        503 => Code::Unavailable,
        _ => Code::Internal,
    };
    if e.status.is_server_error() {
        tracing::warn!(%code, "{}", e.message);
    }
    Status::new(code, e.message)
}

impl Grpc {
    /// Runs `answer`, counting and timing it under `route`.
    fn counted<T>(
        &self,
        route: &'static str,
        answer: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<Response<T>, Status> {
        let start = Instant::now();
        let result = answer();
        let code = result.as_ref().map_or_else(|e| e.status.as_u16(), |_| 200);
        self.state.metrics.record(route, code, start.elapsed());
        result.map(Response::new).map_err(status)
    }

    fn model(&self, name: &str, version: &str) -> Result<(), ApiError> {
        self.state
            .check_model(name, Some(version).filter(|v| !v.is_empty()))
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        self.counted(route!("ServerLive"), || {
            Ok(ServerLiveResponse { live: true })
        })
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        self.counted(route!("ServerReady"), || {
            Ok(ServerReadyResponse {
                ready: self.state.ready().is_ok(),
            })
        })
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        self.counted(route!("ModelReady"), || {
            self.model(&r.name, &r.version)?;
            Ok(ModelReadyResponse {
                ready: self.state.ready().is_ok(),
            })
        })
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.counted(route!("ServerMetadata"), || {
            Ok(ServerMetadataResponse {
                name: "ciclo".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                extensions: Vec::new(),
            })
        })
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        self.counted(route!("ModelMetadata"), || {
            self.model(&r.name, &r.version)?;
            let loaded = self.state.loaded()?;
            let specs = |specs: Vec<crate::tensor::Spec>| {
                specs
                    .into_iter()
                    .map(|s| TensorMetadata {
                        name: s.name,
                        datatype: s.datatype.into(),
                        shape: s.shape,
                    })
                    .collect()
            };
            Ok(ModelMetadataResponse {
                name: self.state.name.clone(),
                versions: self.state.version.iter().cloned().collect(),
                platform: loaded.format.name().into(),
                inputs: specs(loaded.runtime.inputs()),
                outputs: specs(loaded.runtime.outputs()),
            })
        })
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let admitted = match self.state.admit() {
            Ok(admitted) => admitted,
            Err(overloaded) => return self.counted(route!("ModelInfer"), || Err(overloaded)),
        };
        let request = request.into_inner();
        let elements: u64 = request
            .inputs
            .iter()
            .map(|i| {
                i.shape
                    .iter()
                    .fold(1u64, |n, d| n.saturating_mul((*d).max(0) as u64))
            })
            .fold(0u64, u64::saturating_add);
        if elements <= INLINE_ELEMENTS {
            // Microseconds of work, answered on the connection's task (as REST's small bodies).
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.counted(route!("ModelInfer"), || infer(&self.state, request))
            }))
            .unwrap_or_else(|_| Err(Status::internal("inference stopped: the model panicked")));
        }
        let grpc = Grpc {
            state: self.state.clone(),
        };
        let answered = tokio::task::spawn_blocking(move || {
            grpc.counted(route!("ModelInfer"), || infer(&grpc.state, request))
        })
        .await
        .map_err(|e| Status::internal(format!("inference stopped: {e}")))?;
        drop(admitted);
        answered
    }
}

/// Requests of up to this many input elements (a few rows) are answered on the connection's
/// task; larger batches on the blocking pool.
const INLINE_ELEMENTS: u64 = 2048;

fn infer(state: &State, request: ModelInferRequest) -> Result<ModelInferResponse, ApiError> {
    state.check_model(
        &request.model_name,
        Some(request.model_version.as_str()).filter(|v| !v.is_empty()),
    )?;
    let loaded = state.loaded()?;
    let raw = !request.raw_input_contents.is_empty();
    let tensors = inputs(request.inputs, request.raw_input_contents)?;
    let (outputs, rows) = loaded.infer(&tensors)?;
    let wanted: Vec<&Output> = if request.outputs.is_empty() {
        outputs.iter().collect()
    } else {
        request
            .outputs
            .iter()
            .map(|o| Output::named(&outputs, &o.name))
            .collect::<Result<_, _>>()?
    };
    state.metrics.predictions.inc_by(rows as u64);
    let (id, captured) = capture::answering(state.capture.get(), Some(request.id));
    let mut response = ModelInferResponse {
        model_name: state.name.clone(),
        model_version: state.version.clone().unwrap_or_default(),
        id: id.unwrap_or_default(),
        ..Default::default()
    };
    for o in wanted {
        let mut tensor = InferOutputTensor {
            name: o.name.to_string(),
            datatype: o.datatype.into(),
            shape: o.shape.iter().map(|d| *d as i64).collect(),
            parameters: parameters(&o.parameters),
            contents: None,
        };
        // Answered as asked: raw bytes to a request in raw bytes (tritonclient), else typed.
        if raw {
            response
                .raw_output_contents
                .push(binary::encode(o.datatype, &o.data));
        } else {
            tensor.contents = Some(contents(o.datatype, &o.data));
        }
        response.outputs.push(tensor);
    }
    state.capture_answered(captured, loaded, tensors, outputs, rows);
    Ok(response)
}

/// The request's input tensors, each checked against its declaration as REST's are.
fn inputs(inputs: Vec<InferInputTensor>, raw: Vec<Vec<u8>>) -> Result<Vec<Tensor>, ApiError> {
    if !raw.is_empty() && raw.len() != inputs.len() {
        return Err(ApiError::bad_request(format!(
            "raw_input_contents has {} entries for {} inputs: give one per input, or none",
            raw.len(),
            inputs.len()
        )));
    }
    let mut raw = raw.into_iter();
    inputs
        .into_iter()
        .map(|input| {
            let name = input.name;
            let bad = |m: String| ApiError::bad_request(format!("input {name:?}: {m}"));
            let shape: Vec<u64> = input
                .shape
                .iter()
                .map(|d| u64::try_from(*d))
                .collect::<Result<_, _>>()
                .map_err(|_| bad(format!("shape {:?} has a negative dimension", input.shape)))?;
            let (datatype, shape, count) = declared(&name, &input.datatype, &shape)?;
            let values = match (raw.next(), input.contents) {
                (Some(bytes), None) => binary::decode(datatype, count, &bytes).map_err(bad)?,
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "has both contents and raw_input_contents: send one".into()
                    ));
                }
                (None, Some(contents)) => typed(datatype, count, contents).map_err(bad)?,
                (None, None) => return Err(bad("has no contents".into())),
            };
            Ok(Tensor {
                name,
                shape,
                datatype,
                values,
            })
        })
        .collect()
}

/// The `count` values of `datatype` in the field of `contents` the protocol puts them in.
fn typed(datatype: Datatype, count: usize, c: InferTensorContents) -> Result<Values, String> {
    let name = datatype.name();
    let (values, field, given) = match datatype {
        Datatype::Bool => {
            let n = c.bool_contents.len();
            (Values::Bool(c.bool_contents), "bool_contents", n)
        }
        Datatype::I8 | Datatype::I16 | Datatype::I32 => {
            let n = c.int_contents.len();
            let (min, max) = datatype.signed_range().expect("a signed integer datatype");
            let v = c
                .int_contents
                .into_iter()
                .map(|x| {
                    let x = i64::from(x);
                    (min..=max)
                        .contains(&x)
                        .then_some(x)
                        .ok_or_else(|| format!("{x} is not an {name}"))
                })
                .collect::<Result<_, _>>()?;
            (Values::Int(v), "int_contents", n)
        }
        Datatype::I64 => {
            let n = c.int64_contents.len();
            (Values::Int(c.int64_contents), "int64_contents", n)
        }
        Datatype::U8 | Datatype::U16 | Datatype::U32 => {
            let n = c.uint_contents.len();
            let max = datatype
                .unsigned_max()
                .expect("an unsigned integer datatype");
            let v = c
                .uint_contents
                .into_iter()
                .map(|x| {
                    let x = u64::from(x);
                    (x <= max)
                        .then_some(x)
                        .ok_or_else(|| format!("{x} is not a {name}"))
                })
                .collect::<Result<_, _>>()?;
            (Values::UInt(v), "uint_contents", n)
        }
        Datatype::U64 => {
            let n = c.uint64_contents.len();
            (Values::UInt(c.uint64_contents), "uint64_contents", n)
        }
        Datatype::F32 => {
            let n = c.fp32_contents.len();
            let v = c.fp32_contents.into_iter().map(f64::from).collect();
            (Values::Float(v), "fp32_contents", n)
        }
        Datatype::F64 => {
            let n = c.fp64_contents.len();
            (Values::Float(c.fp64_contents), "fp64_contents", n)
        }
        Datatype::F16 => {
            return Err("FP16 has no contents field: send it in raw_input_contents".into());
        }
        Datatype::Bytes => {
            let n = c.bytes_contents.len();
            let strings = c
                .bytes_contents
                .into_iter()
                .map(|b| {
                    String::from_utf8(b).map_err(|_| "a BYTES element is not UTF-8".to_string())
                })
                .collect::<Result<_, _>>()?;
            (Values::Bytes(strings), "bytes_contents", n)
        }
    };
    if given != count {
        return Err(format!(
            "the shape holds {count} values, {field} has {given}"
        ));
    }
    Ok(values)
}

/// An output's data in the contents field of its datatype.
fn contents(datatype: &str, data: &Data) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    // INT8/16/32 and UINT8/16/32 travel in the 32-bit fields.
    let narrow = Datatype::parse(datatype).is_some_and(|d| binary::width(d) < 8);
    match data {
        Data::Bool(v) => c.bool_contents = v.clone(),
        Data::I64(v) if narrow => c.int_contents = v.iter().map(|x| *x as i32).collect(),
        Data::I64(v) => c.int64_contents = v.clone(),
        Data::U64(v) if narrow => {
            c.uint_contents = v.iter().map(|x| *x as u32).collect();
        }
        Data::U64(v) => c.uint64_contents = v.clone(),
        Data::F32(v) => c.fp32_contents = v.clone(),
        Data::F64(v) => c.fp64_contents = v.clone(),
        Data::Bytes(v) => c.bytes_contents = v.iter().map(|s| s.clone().into_bytes()).collect(),
    }
    c
}

/// An output's parameters (a probability map's `classes`, as JSON text) as the protocol's.
fn parameters(
    p: &serde_json::Map<String, serde_json::Value>,
) -> std::collections::HashMap<String, InferParameter> {
    use proto::infer_parameter::ParameterChoice;
    p.iter()
        .map(|(k, v)| {
            let choice = match v {
                serde_json::Value::Bool(b) => ParameterChoice::BoolParam(*b),
                serde_json::Value::Number(n) if n.is_i64() => {
                    ParameterChoice::Int64Param(n.as_i64().unwrap_or_default())
                }
                serde_json::Value::String(s) => ParameterChoice::StringParam(s.clone()),
                other => ParameterChoice::StringParam(other.to_string()),
            };
            (
                k.clone(),
                InferParameter {
                    parameter_choice: Some(choice),
                },
            )
        })
        .collect()
}
