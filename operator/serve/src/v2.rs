//! The Open Inference Protocol (KServe v2) over HTTP/JSON: server health and metadata, model
//! metadata and readiness, and inference with named input tensors, batches included.

use crate::binary;
use crate::body;
use crate::capture;
use crate::errors::{ApiError, json};
use crate::state::State;
use crate::tensor::{Data, Output, RequestTensor, Spec, Tensor};
use axum::extract::{RawPathParams, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

type Shared = axum::extract::State<Arc<State>>;

/// 404 unless the path's `{name}` (and, on the `/versions/{version}/…` routes, `{version}`)
/// are the model served. (Raw parameters: read in place, where `Path` would make a map of
/// new strings for every request.)
pub(crate) fn model_of(state: &State, path: &RawPathParams) -> Result<(), ApiError> {
    let param = |key: &str| path.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    state.check_model(param("name").unwrap_or_default(), param("version"))
}

/// `GET /v2/health/live`: the process answers.
pub(crate) async fn live() -> Response {
    json(StatusCode::OK, &json!({"live": true}))
}

/// `GET /v2/health/ready`: the model is loaded and the server is not draining.
pub(crate) async fn ready(axum::extract::State(state): Shared) -> Response {
    readiness(&state, None)
}

fn readiness(state: &State, name: Option<&str>) -> Response {
    let ready = state.ready();
    let mut body = json!({"ready": ready.is_ok()});
    if let Some(name) = name {
        body["name"] = name.into();
    }
    match ready {
        Ok(()) => json(StatusCode::OK, &body),
        Err(why) => {
            body["error"] = why.into();
            json(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}

/// `GET /v2`: the server's metadata.
pub(crate) async fn server_metadata() -> Response {
    json(
        StatusCode::OK,
        &json!({"name": "ciclo", "version": env!("CARGO_PKG_VERSION"), "extensions": [binary::EXTENSION]}),
    )
}

/// `GET /v2/models/{name}/ready`: as the server's readiness, for this model.
pub(crate) async fn model_ready(
    axum::extract::State(state): Shared,
    path: RawPathParams,
) -> Result<Response, ApiError> {
    model_of(&state, &path)?;
    Ok(readiness(&state, Some(&state.name)))
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    versions: Vec<&'a str>,
    platform: &'a str,
    inputs: Vec<Spec>,
    outputs: Vec<Spec>,
    parameters: serde_json::Map<String, Value>,
}

/// `GET /v2/models/{name}`: what the model takes and gives.
pub(crate) async fn model_metadata(
    axum::extract::State(state): Shared,
    path: RawPathParams,
) -> Result<Response, ApiError> {
    model_of(&state, &path)?;
    let loaded = state.loaded()?;
    let mut parameters = loaded.runtime.parameters();
    parameters.insert("digest".into(), loaded.digest.clone().into());
    Ok(json(
        StatusCode::OK,
        &Metadata {
            name: &state.name,
            versions: state.version.iter().map(String::as_str).collect(),
            platform: loaded.format.name(),
            inputs: loaded.runtime.inputs(),
            outputs: loaded.runtime.outputs(),
            parameters,
        },
    ))
}

#[derive(Deserialize)]
struct InferRequest<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow)]
    inputs: Vec<RequestTensor<'a>>,
    /// The outputs wanted; all when absent.
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
    #[serde(default)]
    parameters: RequestParameters,
}

/// The request parameters ciclo reads; others are ignored.
#[derive(Deserialize, Default)]
struct RequestParameters {
    /// Every output as binary data, unless the output says otherwise.
    #[serde(default)]
    binary_data_output: bool,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: OutputParameters,
}

#[derive(Deserialize, Default)]
struct OutputParameters {
    /// This output as binary data (or not), whatever the request's `binary_data_output`.
    #[serde(default)]
    binary_data: Option<bool>,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: Vec<ResponseTensor<'a>>,
}

/// An output: its data in JSON, or the size of its data after the JSON.
#[derive(Serialize)]
struct ResponseTensor<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Data>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    parameters: serde_json::Map<String, Value>,
}

/// `POST /v2/models/{name}/infer`.
pub(crate) async fn infer(
    axum::extract::State(state): Shared,
    path: RawPathParams,
    request: Request,
) -> Result<Response, ApiError> {
    model_of(&state, &path)?;
    body::answer(state, request, answer).await
}

/// `POST /v2/models/{name}/infer` as [`infer`] answers it, for the model `name` the path
/// named: the route [`crate::track`] takes past the router.
pub(crate) async fn infer_named(state: Arc<State>, name: String, request: Request) -> Response {
    let answered = match state.check_model(&name, None) {
        Ok(()) => body::answer(state, request, answer).await,
        Err(e) => Err(e),
    };
    answered.unwrap_or_else(axum::response::IntoResponse::into_response)
}

fn answer(state: &State, headers: &HeaderMap, bytes: &[u8]) -> Result<Response, ApiError> {
    let (json_part, mut binary) = binary::split(headers, bytes)?;
    let request: InferRequest = body::parse(json_part)?;
    let tensors = request
        .inputs
        .into_iter()
        .map(|t| Tensor::decode(t, &mut binary))
        .collect::<Result<Vec<_>, _>>()?;
    binary.finish()?;
    let loaded = state.loaded()?;
    let (outputs, rows) = loaded.infer(&tensors)?;
    let as_binary = request.parameters.binary_data_output;
    // Each output wanted, and whether as binary data.
    let wanted: Vec<(&Output, bool)> = if request.outputs.is_empty() {
        outputs.iter().map(|o| (o, as_binary)).collect()
    } else {
        request
            .outputs
            .iter()
            .map(|o| {
                let output = Output::named(&outputs, &o.name)?;
                Ok((output, o.parameters.binary_data.unwrap_or(as_binary)))
            })
            .collect::<Result<_, ApiError>>()?
    };
    state.metrics.predictions.inc_by(rows as u64);
    let (id, captured) = capture::answering(state.capture.get(), request.id);
    let mut blobs = Vec::new();
    let answered = wanted
        .into_iter()
        .map(|(o, as_binary)| {
            let mut tensor = ResponseTensor {
                name: &o.name,
                datatype: o.datatype,
                shape: &o.shape,
                data: Some(&o.data),
                parameters: o.parameters.clone(),
            };
            if as_binary {
                let blob = binary::encode(o.datatype, &o.data);
                tensor.data = None;
                tensor
                    .parameters
                    .insert("binary_data_size".into(), blob.len().into());
                blobs.push(blob);
            }
            tensor
        })
        .collect();
    let response = InferResponse {
        model_name: &state.name,
        model_version: state.version.as_deref(),
        id,
        outputs: answered,
    };
    let answer = if blobs.is_empty() {
        json(StatusCode::OK, &response)
    } else {
        binary::response(&response, &blobs)?
    };
    state.capture_answered(captured, loaded, tensors, outputs, rows);
    Ok(answer)
}
