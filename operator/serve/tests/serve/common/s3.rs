//! An S3-compatible endpoint on 127.0.0.1 holding one object, whose GET answers only once the
//! test opens the gate: a model that takes as long to load as the test needs.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::watch;

pub struct SlowStore {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    open: watch::Sender<bool>,
    asked: watch::Receiver<u32>,
}

struct Shared {
    key: String,
    bytes: Vec<u8>,
    open: watch::Receiver<bool>,
    asked: watch::Sender<u32>,
}

/// Serves `bytes` at path-style `/<key>` (`bucket/…`), once opened.
pub async fn slow_store(key: &str, bytes: Vec<u8>) -> SlowStore {
    let (open, open_rx) = watch::channel(false);
    let (asked_tx, asked) = watch::channel(0);
    let shared = Arc::new(Shared {
        key: key.into(),
        bytes,
        open: open_rx,
        asked: asked_tx,
    });
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(object))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    SlowStore {
        endpoint,
        open,
        asked,
    }
}

async fn object(State(s): State<Arc<Shared>>, Path(path): Path<String>) -> Response {
    s.asked.send_modify(|n| *n += 1);
    let mut open = s.open.clone();
    let _ = open.wait_for(|o| *o).await;
    if path != s.key {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::ETAG, "\"1\"".to_string()),
            (
                header::LAST_MODIFIED,
                "Wed, 21 Oct 2015 07:28:00 GMT".to_string(),
            ),
        ],
        s.bytes.clone(),
    )
        .into_response()
}

impl SlowStore {
    /// Waits until a GET has arrived (and is held).
    pub async fn wait_asked(&self) {
        let mut asked = self.asked.clone();
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            asked.wait_for(|n| *n > 0),
        )
        .await
        .expect("the server asks for the model")
        .unwrap();
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// The `CICLO_ARTIFACTS_*` settings of this endpoint, as the operator sets them.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CICLO_ARTIFACTS_AWS_ENDPOINT", self.endpoint.clone()),
            ("CICLO_ARTIFACTS_AWS_ALLOW_HTTP", "true".into()),
            ("CICLO_ARTIFACTS_AWS_REGION", "us-east-1".into()),
            (
                "CICLO_ARTIFACTS_AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
                "false".into(),
            ),
        ]
    }
}
