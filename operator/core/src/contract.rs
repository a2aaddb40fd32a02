//! The workload contract: what every Job ciclo launches (built-in or a user's image) gets
//! in its environment, and where it leaves its results.

/// URI of the dataset version's data (an object-store prefix).
pub const ENV_DATASET_URI: &str = "CICLO_DATASET_URI";
/// The content-derived id of the dataset version being used.
pub const ENV_DATASET_VERSION: &str = "CICLO_DATASET_VERSION";
/// Where the workload writes its output (the model, `metrics.json`).
pub const ENV_OUTPUT_URI: &str = "CICLO_OUTPUT_URI";
/// The run's parameters as a JSON object.
pub const ENV_PARAMS: &str = "CICLO_PARAMS";
/// The metrics file a training workload writes beside its model.
pub const METRICS_FILE: &str = "metrics.json";
/// Where a container's small result goes, read back from the Pod by the operator.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Environment prefix of a dataset source's credentials in a check Job (`CICLO_SOURCE_AWS_…`),
/// passed from the Dataset's Secret with `envFrom.prefix`.
pub const SOURCE_ENV_PREFIX: &str = "CICLO_SOURCE_";
/// Environment prefix of the artifact store's credentials (`CICLO_ARTIFACTS_AWS_…`).
pub const ARTIFACTS_ENV_PREFIX: &str = "CICLO_ARTIFACTS_";
/// URI of the dataset version's `manifest.json`: the exact files (path, size, BLAKE3) of the
/// version, so a workload reads that version even if the source has changed since.
pub const ENV_DATASET_MANIFEST: &str = "CICLO_DATASET_MANIFEST";
/// The built-in trainer's settings (a TrainingRun's `spec.trainer`) as JSON.
pub const ENV_TRAINER: &str = "CICLO_TRAINER";
/// The model file the built-in trainer writes under the output URI.
pub const MODEL_FILE: &str = "model.json";

// A serving pod's environment (a ModelDeployment's version Deployment): `ciclo serve` reads
// its flags from these, and a user's serving image gets the same.
/// The model file's URI (a ModelVersion's `spec.artifact.uri`).
pub const ENV_MODEL_URI: &str = "CICLO_MODEL_URI";
/// Its expected digest, `blake3:<hex>`.
pub const ENV_MODEL_DIGEST: &str = "CICLO_MODEL_DIGEST";
/// The model's name, as clients address it.
pub const ENV_MODEL_NAME: &str = "CICLO_MODEL_NAME";
/// The version number being served.
pub const ENV_MODEL_VERSION: &str = "CICLO_MODEL_VERSION";
/// The model file's format (`ciclo.dev/model/v1`, `onnx`).
pub const ENV_MODEL_FORMAT: &str = "CICLO_MODEL_FORMAT";
/// The port to serve on.
pub const ENV_PORT: &str = "CICLO_PORT";

/// The captured Parquet files' layout, shared by `ciclo serve` (which writes them) and the
/// Dataset check (which joins requests with their labels): folders under a capture prefix,
/// the columns every file has, and the field metadata that says what a column holds
/// (`input`, `output` or `label`), so a dataset made of a capture takes the inputs and the
/// labels and never the model's answers.
pub mod capture {
    pub const REQUESTS: &str = "requests";
    pub const LABELS: &str = "labels";
    pub const REQUEST_ID: &str = "request_id";
    pub const ROW: &str = "row";
    pub const TIME: &str = "time";
    pub const MODEL_VERSION: &str = "model_version";
    pub const ROLE: &str = "ciclo.dev/role";
}
