//! A server in this process, on an ephemeral port of 127.0.0.1, stopped by the test.

use super::http;
use ciclo_serve::{Error, ServeArgs, Server};
use clap::Parser as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

/// `ciclo serve` flags: `extra` after `--port 0 --drain-seconds 0` and the ONNX Runtime
/// library's path.
pub fn args(extra: &[&str]) -> ServeArgs {
    let library = super::onnxruntime::library().to_str().unwrap();
    let base = [
        "serve",
        "--port",
        "0",
        "--drain-seconds",
        "0",
        "--onnxruntime",
        library,
    ];
    Cli::parse_from(base.iter().chain(extra)).serve
}

/// Flags from the environment only, as a pod gets them.
pub fn args_from_env() -> ServeArgs {
    Cli::parse_from(["serve"]).serve
}

pub struct Running {
    pub addr: SocketAddr,
    /// The gRPC port's address, with `--grpc-port`.
    pub grpc: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    done: JoinHandle<Result<(), Error>>,
}

impl Running {
    /// Stops it as SIGTERM would, and returns how `run` ended.
    pub async fn stop(mut self) -> Result<(), Error> {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap()
    }

    /// How `run` ended, when it ends by itself.
    pub async fn ended(self) -> Result<(), Error> {
        tokio::time::timeout(Duration::from_secs(20), self.done)
            .await
            .expect("the server ends in time")
            .unwrap()
    }
}

/// Serves the model file at `path` as `name`, its digest checked, once it is ready.
pub async fn serve_file(path: &std::path::Path, name: &str) -> Running {
    let uri = format!("file://{}", path.display());
    let digest = super::model::digest_of(path);
    start_ready(args(&[
        "--model-uri",
        &uri,
        "--model-digest",
        &digest,
        "--model-name",
        name,
    ]))
    .await
}

pub async fn start(args: ServeArgs) -> Running {
    let server = Server::bind(&args).await.unwrap();
    let addr = server.local_addr();
    let grpc = server.grpc_addr();
    let (tx, rx) = oneshot::channel();
    let done = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        addr,
        grpc,
        stop: Some(tx),
        done,
    }
}

/// Starts and waits until `/v2/health/ready` says 200.
pub async fn start_ready(args: ServeArgs) -> Running {
    let running = start(args).await;
    wait_ready(running.addr).await;
    running
}

pub async fn wait_ready(addr: SocketAddr) {
    for _ in 0..1000 {
        if http::get(addr, "/v2/health/ready").await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} is not ready after 20 s");
}
