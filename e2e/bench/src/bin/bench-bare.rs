//! The ceiling `ciclo serve` is measured against: a bare axum server on the same runtime
//! settings, routes and request bodies, that reads each request whole and answers a fixed
//! inference response without parsing or predicting. What a server can do on the core before
//! any model, JSON or metrics work. (A gRPC twin waits for a gRPC load generator.)
//!
//!   bench-bare PORT

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// The answer ciclo gives the logistic regression for one row, as JSON.
const ANSWER: &str = r#"{"model_name":"wdbc","outputs":[{"name":"output_label","datatype":"INT64","shape":[1],"data":[1]},{"name":"output_probability","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]}]}"#;

async fn infer(body: Bytes) -> impl IntoResponse {
    // Read whole, as a server that parses it would.
    std::hint::black_box(body.len());
    ([(header::CONTENT_TYPE, "application/json")], ANSWER)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .expect("bench-bare PORT");
    // The runtime `ciclo serve` builds: multi-threaded, as many workers as the cores it may use.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let app = Router::new()
                .route("/v2/health/ready", get(|| async { "{\"ready\":true}" }))
                .route(
                    "/v2/models/{name}/ready",
                    get(|| async { "{\"ready\":true}" }),
                )
                .route("/v2/models/{name}/infer", post(infer));
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            axum::serve(listener, app).await
        })
}
