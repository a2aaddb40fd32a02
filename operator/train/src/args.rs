//! `ciclo train`'s flags, each with the environment variable the operator sets in the Job.

use crate::failure::Failed;
use crate::spec::{Params, TrainerSpec};
use ciclo_profile::Format;

/// What to train on, how, and where the results go.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// The dataset's source prefix, e.g. `s3://bucket/data/` or `file:///dir`. Credentials come
    /// from `CICLO_SOURCE_AWS_…` (`_GOOGLE_…`, `_AZURE_…`) variables.
    #[arg(long, env = "CICLO_DATASET_URI")]
    pub dataset: String,
    /// URI of the version's `manifest.json` in the artifact store: the exact files (path,
    /// size, BLAKE3) of the version. Credentials come from `CICLO_ARTIFACTS_AWS_…` variables.
    #[arg(long, env = "CICLO_DATASET_MANIFEST")]
    pub manifest: String,
    /// The version id, checked against the manifest.
    #[arg(long, env = "CICLO_DATASET_VERSION")]
    pub version: String,
    /// Where to write `model.json` and `metrics.json`: a prefix in the artifact store.
    #[arg(long, env = "CICLO_OUTPUT_URI")]
    pub output: String,
    /// The trainer settings as JSON: `{"algorithm": "LogisticRegression" | "LinearRegression" |
    /// "DecisionTree", "target": "…", "features": […], "testFraction": 0.2}`.
    #[arg(long, env = "CICLO_TRAINER")]
    pub trainer: String,
    /// Hyperparameters as a JSON object of strings, e.g. `{"max_iterations": "100", "alpha":
    /// "0.1", "max_depth": "5", "min_weight_split": "2", "seed": "42"}`; others are ignored
    /// and listed in `metrics.json`.
    #[arg(long, env = "CICLO_PARAMS", default_value = "{}")]
    pub params: String,
    /// The files' format (csv, parquet or jsonl); unset: by each file's extension.
    #[arg(long, env = "CICLO_DATASET_FORMAT")]
    pub format: Option<String>,
}

/// The flags, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub spec: TrainerSpec,
    pub params: Params,
    pub format: Option<Format>,
}

impl Settings {
    pub fn parse(args: &TrainArgs) -> Result<Self, Failed> {
        let spec = TrainerSpec::parse(&args.trainer).map_err(Failed::invalid)?;
        let params = Params::parse(empty_is_none(&args.params).unwrap_or("{}"), spec.algorithm)
            .map_err(Failed::invalid)?;
        let format = match empty_is_none(args.format.as_deref().unwrap_or("")) {
            None => None,
            Some(f) => Some(
                serde_json::from_value(serde_json::Value::String(f.to_ascii_lowercase())).map_err(
                    |_| Failed::invalid(format!("format {f:?} is not csv, parquet or jsonl")),
                )?,
            ),
        };
        for (flag, value) in [
            ("dataset", &args.dataset),
            ("manifest", &args.manifest),
            ("version", &args.version),
            ("output", &args.output),
        ] {
            if value.trim().is_empty() {
                return Err(Failed::invalid(format!("--{flag} is empty")));
            }
        }
        Ok(Self {
            spec,
            params,
            format,
        })
    }
}

fn empty_is_none(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}
