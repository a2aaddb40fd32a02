//! Reading a request body into a JSON value of the protocol, within a size and a time limit:
//! a body too large is 413 (at once when its Content-Length says so), one that does not
//! arrive in time is 408, one that is not the JSON expected is 400. Never a hang or a crash.

use crate::errors::ApiError;
use crate::state::State;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// How long a client has to send its whole body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The body's bytes, at most `limit` of them.
pub(crate) async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let mut collect = std::pin::pin!(Limited::new(body, limit).collect());
    // A small body has mostly arrived with its headers: when it is all here, no timer is
    // armed for it (arming and cancelling one was a sixtieth of a small request's time).
    let ready = std::future::poll_fn(|cx| std::task::Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match ready {
        std::task::Poll::Ready(collected) => Ok(collected),
        std::task::Poll::Pending => tokio::time::timeout(BODY_TIMEOUT, collect).await,
    };
    match collected {
        Err(_) => Err(ApiError::timeout(format!(
            "the request body did not arrive within {} seconds",
            BODY_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::too_large(limit))
        }
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Answers an inference request: 503 while the model loads (before the body is read), else
/// `answer` on the headers and body. A small body (a few rows) is answered at once on the
/// connection's thread; parsing a large batch and running the model on it are longer CPU
/// work, so those run on the blocking pool, off the async threads. Either way a panic in a
/// model runtime is a 500, not a crash. (Measured with wrk, one core, the exporters' logistic
/// regression at batch 1: inline, 45-48k req/s at 16 and 256 connections with 3 threads; all
/// through the blocking pool, 39k and 37k with 65 and 267 threads.)
pub(crate) async fn answer(
    state: Arc<State>,
    request: Request,
    answer: fn(&State, &HeaderMap, &[u8]) -> Result<Response, ApiError>,
) -> Result<Response, ApiError> {
    state.loaded()?;
    let admitted = state.admit()?;
    let (parts, body) = request.into_parts();
    let bytes = read(&parts.headers, body, state.max_body_bytes).await?;
    if bytes.len() <= INLINE_BODY_BYTES {
        // Microseconds of work: a hand-off to the blocking pool (two thread switches) would
        // cost more than the answer. A panic is still a 500.
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(&state, &parts.headers, &bytes)
        }))
        .unwrap_or_else(|_| Err(ApiError::internal("inference stopped: the model panicked")));
    }
    let pooled = state.clone();
    let answered = tokio::task::spawn_blocking(move || answer(&pooled, &parts.headers, &bytes))
        .await
        .map_err(|e| ApiError::internal(format!("inference stopped: {e}")))?;
    drop(admitted);
    answered
}

/// Bodies up to this size (a batch of a few rows) are answered on the connection's own thread.
const INLINE_BODY_BYTES: usize = 16 * 1024;

/// `bytes` as a `T`: malformed JSON and JSON of another shape are both 400, told apart.
pub(crate) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::bad_request(format!("invalid request: {e}")),
            _ => ApiError::bad_request(format!("malformed JSON: {e}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Req {
        #[allow(dead_code)]
        inputs: Vec<u8>,
    }

    #[test]
    fn malformed_and_misshapen_json_are_told_apart() {
        let e = parse::<Req>(b"{\"inputs\": [1,").unwrap_err();
        assert!(e.message.starts_with("malformed JSON"), "{e:?}");
        let e = parse::<Req>(b"{\"instances\": []}").unwrap_err();
        assert!(e.message.contains("missing field `inputs`"), "{e:?}");
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_even_without_a_length() {
        let e = read(&HeaderMap::new(), Body::from(vec![b' '; 11]), 10)
            .await
            .unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        let ok = read(&HeaderMap::new(), Body::from(vec![b' '; 10]), 10).await;
        assert_eq!(ok.unwrap().len(), 10);
    }
}
