//! The ceiling `ciclo serve` is measured against: a bare axum server (and, with `--grpc`, a
//! bare tonic server) on the same runtime settings, routes and request bodies, that reads
//! each request whole and answers a fixed inference response without parsing or predicting.
//! What a server can do on the core before any model, JSON or metrics work.
//!
//!   bench-bare PORT [--grpc PORT]

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use ciclo_serve::grpc::proto::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use ciclo_serve::grpc::proto::model_infer_response::InferOutputTensor;
use ciclo_serve::grpc::proto::*;
use tonic::{Request, Response, Status};

/// The answer ciclo gives the logistic regression for one row, as JSON.
const ANSWER: &str = r#"{"model_name":"wdbc","outputs":[{"name":"output_label","datatype":"INT64","shape":[1],"data":[1]},{"name":"output_probability","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]}]}"#;

async fn infer(body: Bytes) -> impl IntoResponse {
    // Read whole, as a server that parses it would.
    std::hint::black_box(body.len());
    ([(header::CONTENT_TYPE, "application/json")], ANSWER)
}

struct Bare;

fn unimplemented() -> Status {
    Status::unimplemented("bare")
}

#[tonic::async_trait]
impl GrpcInferenceService for Bare {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }
    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: true }))
    }
    async fn model_ready(
        &self,
        _: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        Ok(Response::new(ModelReadyResponse { ready: true }))
    }
    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Err(unimplemented())
    }
    async fn model_metadata(
        &self,
        _: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        Err(unimplemented())
    }
    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let request = request.into_inner();
        std::hint::black_box(request.inputs.len());
        Ok(Response::new(ModelInferResponse {
            model_name: request.model_name,
            outputs: vec![
                InferOutputTensor {
                    name: "output_label".into(),
                    datatype: "INT64".into(),
                    shape: vec![1],
                    contents: Some(InferTensorContents {
                        int64_contents: vec![1],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                InferOutputTensor {
                    name: "output_probability".into(),
                    datatype: "FP32".into(),
                    shape: vec![1, 2],
                    contents: Some(InferTensorContents {
                        fp32_contents: vec![0.25, 0.75],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }))
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .expect("bench-bare PORT [--grpc PORT]");
    let grpc: Option<u16> = match args.get(2).map(String::as_str) {
        Some("--grpc") => args.get(3).and_then(|p| p.parse().ok()),
        _ => None,
    };
    // The runtime `ciclo serve` builds: multi-threaded, as many workers as the cores it may use.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            if let Some(grpc) = grpc {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], grpc));
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .add_service(GrpcInferenceServiceServer::new(Bare))
                        .serve(addr),
                );
            }
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
