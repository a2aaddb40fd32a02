//! `POST /v2/models/{name}/feedback`: labels for requests captured earlier, sent when they are
//! known (a fraud confirmed, a diagnosis made), by the request `id` the answer carried and the
//! row of its batch. They are written beside the capture ([`crate::capture`]), to be joined
//! with the captured rows by `(request_id, row)`.
//!
//! ```json
//! {"labels": [{"id": "4f…", "row": 0, "values": {"diagnosis": "M"}}]}
//! ```
//!
//! Every label of a request is queued, or none (503 with `Retry-After` when the queue is
//! full): a label is sent on purpose, so losing one is said, never silent.

use crate::body;
use crate::capture::{Captured, Column};
use crate::errors::{ApiError, json};
use crate::state::State;
use crate::tensor::Data;
use axum::extract::{RawPathParams, Request};
use axum::http::StatusCode;
use axum::response::Response;
use ciclo_core::contract::capture;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Feedback {
    labels: Vec<Label>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Label {
    /// The `id` the inference answer carried.
    id: String,
    /// The row of the request's batch (0 for a request of one row).
    #[serde(default)]
    row: u32,
    /// The label columns and their values.
    values: Map<String, Value>,
}

/// Columns of the label files that are not labels.
const RESERVED: [&str; 3] = [capture::REQUEST_ID, capture::ROW, capture::TIME];

/// `POST /v2/models/{name}/feedback`.
pub(crate) async fn feedback(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    path: RawPathParams,
    request: Request,
) -> Result<Response, ApiError> {
    crate::v2::model_of(&state, &path)?;
    let capture = state.capture.get().ok_or_else(|| {
        ApiError::bad_request(
            "labels are kept with the capture, which is off: start ciclo serve with --capture-uri (a ModelDeployment's spec.capture)",
        )
    })?;
    let (parts, body) = request.into_parts();
    let bytes = body::read(&parts.headers, body, state.max_body_bytes).await?;
    let feedback: Feedback = body::parse(&bytes)?;
    let labels = feedback
        .labels
        .into_iter()
        .enumerate()
        .map(|(i, label)| captured(i, label))
        .collect::<Result<Vec<_>, _>>()?;
    let accepted = labels.len();
    capture.offer_labels(labels).map_err(|_| {
        ApiError::overloaded_with(
            "the capture queue is full: no label of this request was kept; send them again",
        )
    })?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"accepted": accepted}),
    ))
}

/// `label` (the `i`th of the request) as a record of the label files.
fn captured(i: usize, label: Label) -> Result<Captured, ApiError> {
    let field = |rest: &str| format!("labels[{i}]{rest}");
    if label.id.trim().is_empty() {
        return Err(ApiError::bad_request(format!(
            "{}: the request id is empty",
            field(".id")
        )));
    }
    if label.values.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{}: no label given",
            field(".values")
        )));
    }
    let columns = label
        .values
        .into_iter()
        .map(|(name, value)| {
            let at = field(&format!(".values.{name}"));
            if RESERVED.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "{at}: {name:?} is a column of every label file; name the label otherwise"
                )));
            }
            let values = match value {
                Value::String(s) => Data::Bytes(vec![s]),
                Value::Bool(b) => Data::Bool(vec![b]),
                Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Data::I64(vec![i]),
                    (None, Some(f)) => Data::F64(vec![f]),
                    (None, None) => {
                        return Err(ApiError::bad_request(format!(
                            "{at}: {n} is not a number ciclo keeps"
                        )));
                    }
                },
                other => {
                    return Err(ApiError::bad_request(format!(
                        "{at}: a label is a string, a number or a boolean, not {other}"
                    )));
                }
            };
            Ok(Column { name, values })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Captured::labels(label.id, label.row, columns))
}
