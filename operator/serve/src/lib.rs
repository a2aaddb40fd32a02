//! `ciclo serve`: the built-in inference server of a ModelDeployment's pods.
//!
//! 1. Listens at once: `/v2/health/live` answers while the model loads, `/v2/health/ready`
//!    says 503 until it is loaded.
//! 2. Reads the model file from its artifact URI (object store or local path) and verifies its
//!    BLAKE3 digest before parsing it: a file with another digest is never served, the server
//!    exits with the expected and actual digests.
//! 3. Serves it: the built-in trainer's `model.json` (`ciclo.dev/model/v1`) or ONNX (ONNX Runtime),
//!    over the Open Inference Protocol (`/v2/…`) and KServe v1 (`/v1/models/{name}:predict`).
//!    Bad requests get a 4xx with `{"error": "…"}`, never a crash or a hang.
//! 4. Counts requests by status, times them, and keeps running statistics of every model input
//!    on `/metrics`, so serving data can be compared with the training data.
//! 5. On SIGTERM: not ready at once, serving on for `--drain-seconds`, then the requests in
//!    flight finish and it exits 0.
//!
//! Nothing here knows Kubernetes.
#![forbid(unsafe_code)]

mod args;
mod binary;
mod body;
mod builtin;
mod capture;
mod drain;
mod errors;
mod feedback;
pub mod grpc;
mod input_stats;
mod leaves;
mod load;
mod metrics;
mod model;
mod onnx;
mod runtime;
mod scheduler;
mod server;
mod state;
mod tensor;
mod track;
mod v1;
mod v2;

pub use args::{DEFAULT_MAX_BODY_BYTES, ServeArgs};
pub use drain::termination;
pub use scheduler::serving_runtime;
pub use server::Server;

/// Why the server did not start, or stopped other than by a signal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read the model {uri}: {message}")]
    Unavailable { uri: String, message: String },
    #[error(
        "the model {uri} has digest {actual}, not the expected {expected}: refusing to serve it"
    )]
    DigestMismatch {
        uri: String,
        expected: String,
        actual: String,
    },
    #[error("the model {uri} is not a servable {format} model: {message}")]
    InvalidModel {
        uri: String,
        format: &'static str,
        message: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot handle signals: {0}")]
    Signal(std::io::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Serves as `args` say until SIGTERM (then drains) or until the model fails to load.
pub async fn run(args: ServeArgs) -> Result<(), Error> {
    init_logs(args.log_json);
    let stop = termination()?;
    Server::bind(&args).await?.run(stop).await
}

/// Structured logs on stderr: human-readable, or JSON lines with `--log-json`; levels from
/// RUST_LOG (default `info`).
fn init_logs(json: bool) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tract_linalg=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    // A second init (tests) is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
