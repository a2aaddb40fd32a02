//! KServe's v1 protocol, for clients written against it: `POST /v1/models/{name}:predict`
//! with `{"instances": [...]}`, `GET /v1/models/{name}` and `GET /v1/models`.

use crate::body;
use crate::errors::{ApiError, json};
use crate::state::State;
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Shared = axum::extract::State<Arc<State>>;

/// `GET /v1/models`: the one model served.
pub(crate) async fn list(axum::extract::State(state): Shared) -> Response {
    json(StatusCode::OK, &json!({"models": [state.name]}))
}

/// `GET /v1/models/{name}`: whether it is ready (503 while not).
pub(crate) async fn status(
    axum::extract::State(state): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.check_model(&name, None)?;
    Ok(match state.ready() {
        Ok(()) => json(StatusCode::OK, &json!({"name": name, "ready": true})),
        Err(why) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"name": name, "ready": false, "error": why}),
        ),
    })
}

#[derive(Deserialize)]
struct PredictRequest {
    instances: Vec<Value>,
}

/// `POST /v1/models/{name}:predict` (the route's one segment is `{name}:predict`).
pub(crate) async fn predict(
    axum::extract::State(state): Shared,
    Path(target): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(name) = target.strip_suffix(":predict") else {
        return Err(ApiError::not_found(format!(
            "POST /v1/models/{target}: the v1 verb served is :predict"
        )));
    };
    state.check_model(name, None)?;
    body::answer(state, request, answer).await
}

fn answer(state: &State, _: &HeaderMap, bytes: &[u8]) -> Result<Response, ApiError> {
    let request: PredictRequest = body::parse(bytes)?;
    if request.instances.is_empty() {
        return Err(ApiError::bad_request("`instances` is empty"));
    }
    let predictions = state.loaded()?.predict_v1(&request.instances)?;
    state
        .metrics
        .predictions
        .inc_by(request.instances.len() as u64);
    Ok(json(StatusCode::OK, &predictions))
}
