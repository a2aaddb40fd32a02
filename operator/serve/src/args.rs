//! `ciclo serve`'s flags, each with the environment variable a ModelDeployment's pod sets.

use ciclo_core::contract;
use std::net::IpAddr;

/// The default largest request body: a batch of some ten thousand rows of a few features.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The default most inference requests at once: more than a client pool of a thousand
/// connections has in flight (one each over HTTP/1.1).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 2048;

/// Which model to serve, and how.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// The model file: `s3://bucket/…/model.json`, `file:///…/model.onnx` or a local path.
    /// Store settings and credentials come from `CICLO_ARTIFACTS_AWS_…` variables (endpoint,
    /// region, path-style, keys), as for every artifact-store read.
    #[arg(long, env = contract::ENV_MODEL_URI)]
    pub model_uri: String,
    /// The file's expected digest, `blake3:<hex>` (a ModelVersion's `spec.artifact.digest`).
    /// A file with another digest is never served. Unset: the file is served unchecked, and its
    /// digest is logged and shown in the model's metadata.
    #[arg(long, env = contract::ENV_MODEL_DIGEST)]
    pub model_digest: Option<String>,
    /// The name clients use in `/v2/models/{name}/…` and `/v1/models/{name}:predict`.
    #[arg(long, env = contract::ENV_MODEL_NAME, default_value = "model")]
    pub model_name: String,
    /// The version reported in metadata and responses (a ModelVersion's number).
    #[arg(long, env = contract::ENV_MODEL_VERSION)]
    pub model_version: Option<String>,
    /// `ciclo.dev/model/v1` (the built-in trainer's `model.json`) or `onnx`. Unset: by the
    /// file's extension (`.json`, `.onnx`).
    #[arg(long, env = contract::ENV_MODEL_FORMAT)]
    pub model_format: Option<String>,
    /// The address to listen on. Loopback by default, so a server started by hand is not
    /// reachable from elsewhere; the operator passes the pod's IP.
    #[arg(long, env = "CICLO_ADDRESS", default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// The port to listen on (0: any free port, logged).
    #[arg(long, env = contract::ENV_PORT, default_value_t = 8080)]
    pub port: u16,
    /// Also serve the protocol over gRPC (`inference.GRPCInferenceService`) on this port (0:
    /// any free port, logged). Unset: no gRPC.
    #[arg(long, env = "CICLO_GRPC_PORT")]
    pub grpc_port: Option<u16>,
    /// The largest request body accepted; a larger one is refused with 413.
    #[arg(long, env = "CICLO_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// The most inference requests answered at once (REST and gRPC together, from the first
    /// byte of the body to the last of the answer). One more is refused at once with 503 and
    /// `Retry-After` (gRPC: UNAVAILABLE), so overload is told to clients, and memory stays
    /// bounded, instead of queueing without end. Health, metadata and metrics are never
    /// refused.
    #[arg(long, env = "CICLO_MAX_CONCURRENT_REQUESTS", default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Seconds to keep serving after SIGTERM while not ready (endpoints update lazily, so
    /// requests keep arriving for a while); then in-flight requests finish and it exits 0.
    #[arg(long, env = "CICLO_DRAIN_SECONDS", default_value_t = 5)]
    pub drain_seconds: u64,
    /// ONNX Runtime's shared library (`libonnxruntime.so.1`, onnxruntime 1.32), for ONNX
    /// models. Unset: the one beside the `ciclo` executable (the image has it), else the
    /// dynamic loader's search path.
    #[arg(long, env = "CICLO_ONNXRUNTIME")]
    pub onnxruntime: Option<std::path::PathBuf>,
    /// Capture a sample of the inference requests (the Open Inference Protocol's, REST and
    /// gRPC: inputs, outputs, a request id and the time) as Parquet files under this prefix (`s3://bucket/prefix`, `file:///…`),
    /// with the artifact store's settings and credentials (`CICLO_ARTIFACTS_…`). Every
    /// response then carries its request's `id` (the client's, or a new one), the key labels
    /// are joined by later. Unset: nothing is captured.
    #[arg(long, env = "CICLO_CAPTURE_URI")]
    pub capture_uri: Option<String>,
    /// The share of requests captured, from 0 to 1.
    #[arg(long, env = "CICLO_CAPTURE_RATIO", default_value_t = 1.0)]
    pub capture_ratio: f64,
    /// The longest a captured request waits before its file is written, in seconds (they are
    /// written on stop too).
    #[arg(long, env = "CICLO_CAPTURE_FLUSH_SECONDS", default_value_t = 60)]
    pub capture_flush_seconds: u64,
    /// Columns never captured (sensitive ones), comma-separated: a column's name (a
    /// feature's, `<tensor>_<j>`, an output's), or a tensor's name for all of its columns.
    #[arg(long, env = "CICLO_CAPTURE_EXCLUDE", value_delimiter = ',')]
    pub capture_exclude: Vec<String>,
    /// Columns captured only as a keyed hash (32 hex digits of BLAKE3 keyed with the secret
    /// in the environment variable `CICLO_CAPTURE_HASH_KEY`, never a flag), comma-separated,
    /// named as for `--capture-exclude`: the same value always gives the same hash, so
    /// captured rows can still be grouped by it, but it cannot be read back.
    #[arg(long, env = "CICLO_CAPTURE_HASH", value_delimiter = ',')]
    pub capture_hash: Vec<String>,
    /// Delete capture files (requests and labels) older than this many days, at start and
    /// every hour. Unset: they are kept.
    #[arg(long, env = "CICLO_CAPTURE_RETENTION_DAYS")]
    pub capture_retention_days: Option<u32>,
    /// The most rows in one capture file.
    #[arg(long, env = "CICLO_CAPTURE_MAX_ROWS", default_value_t = 100_000)]
    pub capture_max_rows: usize,
    /// The most captured requests waiting to be written; one more is dropped (and counted in
    /// `ciclo_serve_capture_dropped_requests_total`) rather than slow inference down.
    #[arg(long, env = "CICLO_CAPTURE_QUEUE", default_value_t = 10_000)]
    pub capture_queue: usize,
    /// The profile (`profile.json`) of the dataset version the model was trained on, in the
    /// artifact store: each input named like one of its numeric columns is also counted into
    /// that column's bins (`ciclo_serve_input_baseline_bin_values_total`, beside the
    /// training data's `ciclo_serve_input_baseline_share`), from which the skew between
    /// what is served and what was trained on is measured. Unreadable: served all the same,
    /// without those counts (a warning says why).
    #[arg(long, env = "CICLO_BASELINE_PROFILE")]
    pub baseline_profile: Option<String>,
    /// Log as JSON lines (for log collectors); human-readable otherwise. Levels from RUST_LOG.
    #[arg(long, env = "CICLO_LOG_JSON")]
    pub log_json: bool,
}

/// The model file formats `ciclo serve` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// The built-in trainer's `model.json` (`ciclo.dev/model/v1`).
    Builtin,
    /// ONNX, run by ONNX Runtime.
    Onnx,
}

impl Format {
    /// The name given with `--model-format` and shown as the model's platform.
    pub fn name(self) -> &'static str {
        match self {
            Format::Builtin => ciclo_model::FORMAT,
            Format::Onnx => "onnx",
        }
    }

    /// The format `--model-format` names, or the one the URI's extension implies.
    pub fn choose(flag: Option<&str>, uri: &str) -> Result<Format, String> {
        match flag.map(str::trim).filter(|f| !f.is_empty()) {
            Some(f) if f == ciclo_model::FORMAT => Ok(Format::Builtin),
            Some(f) if f.eq_ignore_ascii_case("onnx") => Ok(Format::Onnx),
            Some(f) => Err(format!(
                "--model-format {f:?} is not {:?} or \"onnx\"",
                ciclo_model::FORMAT
            )),
            None => {
                let path = uri
                    .split(['?', '#'])
                    .next()
                    .unwrap_or(uri)
                    .to_ascii_lowercase();
                if path.ends_with(".onnx") {
                    Ok(Format::Onnx)
                } else if path.ends_with(".json") {
                    Ok(Format::Builtin)
                } else {
                    Err(format!(
                        "{uri} ends neither in .json nor .onnx: set --model-format"
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_flag_wins_over_the_extension() {
        assert_eq!(
            Format::choose(None, "s3://b/m/model.json"),
            Ok(Format::Builtin)
        );
        assert_eq!(Format::choose(None, "/m/Model.ONNX"), Ok(Format::Onnx));
        assert_eq!(
            Format::choose(Some("onnx"), "s3://b/m/model.bin"),
            Ok(Format::Onnx)
        );
        assert_eq!(
            Format::choose(Some(" "), "file:///m/model.json"),
            Ok(Format::Builtin),
            "an empty variable is unset"
        );
        assert!(
            Format::choose(None, "/m/model")
                .unwrap_err()
                .contains("--model-format")
        );
        assert!(
            Format::choose(Some("pickle"), "/m/model.json")
                .unwrap_err()
                .contains("pickle")
        );
    }
}
