//! The ceilings `ciclo serve` is measured against: a bare axum server and a bare tonic server
//! on the same runtime settings, routes and request messages, that read each request whole
//! and answer a fixed inference response without parsing or predicting (the gRPC twin
//! receives the decoded message, as any tonic service does). What a server can do on the
//! core before any model, JSON or metrics work, and what the load generator can drive.
//!
//!   bench-bare HTTP_PORT [GRPC_PORT]

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

/// The allocator of the `ciclo` binary: the ceiling is built as ciclo serve is.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The answer ciclo gives the logistic regression for one row, as JSON.
const ANSWER: &str = r#"{"model_name":"wdbc","outputs":[{"name":"output_label","datatype":"INT64","shape":[1],"data":[1]},{"name":"output_probability","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]}]}"#;

async fn infer(body: Bytes) -> impl IntoResponse {
    // Read whole, as a server that parses it would.
    std::hint::black_box(body.len());
    ([(header::CONTENT_TYPE, "application/json")], ANSWER)
}

/// The same answer as a gRPC message.
fn answer() -> ModelInferResponse {
    ModelInferResponse {
        model_name: "wdbc".into(),
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
    }
}

struct Bare;

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
        Ok(Response::new(ServerMetadataResponse::default()))
    }

    async fn model_metadata(
        &self,
        _: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        Ok(Response::new(ModelMetadataResponse::default()))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        std::hint::black_box(request.get_ref().inputs.len());
        Ok(Response::new(answer()))
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = |i: usize| {
        args.get(i)
            .map(|p| p.parse::<u16>().expect("a port number"))
    };
    let http = port(1).expect("bench-bare HTTP_PORT [GRPC_PORT]");
    let grpc = port(2);
    // The runtime `ciclo serve` builds for the cores it may use.
    ciclo_serve::serving_runtime()?.block_on(async {
        if let Some(grpc) = grpc {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", grpc)).await?;
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(GrpcInferenceServiceServer::new(Bare))
                    .serve_with_incoming(
                        // As ciclo serve's: without TCP_NODELAY, answers wait on ACKs.
                        tonic::transport::server::TcpIncoming::from(listener)
                            .with_nodelay(Some(true)),
                    ),
            );
        }
        let app = Router::new()
            .route("/v2/health/ready", get(|| async { "{\"ready\":true}" }))
            .route(
                "/v2/models/{name}/ready",
                get(|| async { "{\"ready\":true}" }),
            )
            .route("/v2/models/{name}/infer", post(infer));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", http)).await?;
        axum::serve(listener, app).await
    })
}
