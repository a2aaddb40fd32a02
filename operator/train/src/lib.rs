//! The built-in trainer, `ciclo train`: fits a real model on one dataset version and writes
//! it where the operator registers it from.
//!
//! 1. Reads the version's manifest from the artifact store and checks its id.
//! 2. Reads exactly the manifest's files from the dataset's source, each verified against its
//!    BLAKE3 before it is parsed (csv, parquet, jsonl, with Arrow): a source changed since the
//!    snapshot is `DatasetChanged`, never a model of other data.
//! 3. Builds a numeric table (the listed features, or every numeric column but the target),
//!    dropping and counting rows with nulls, and splits it into training and validation rows
//!    by a hash of each row's index (reproducible, independent of threads).
//! 4. Fits with linfa: logistic regression (binary or multinomial), linear regression, or a
//!    decision tree; writes the model as `model.json` (format `ciclo.dev/model/v1`, see
//!    operator/model/MODEL_FORMAT.md), which [`predict`] (crate `ciclo-model`) runs without linfa.
//! 5. Computes the validation metrics from the model file's own predictions, writes
//!    `model.json` then `metrics.json`, and returns the [`TrainSummary`] the Job reports.
//!
//! Nothing here knows Kubernetes.
#![forbid(unsafe_code)]

mod args;
mod failure;
mod fetch;
mod fit;
mod metrics;
mod output;
mod parse;
mod prepare;
mod run;
mod spec;
mod split;
mod table;

pub use args::TrainArgs;
pub use ciclo_core::train_result::TrainSummary;
pub use ciclo_model::Algorithm;
pub use ciclo_model::{Class, FORMAT, Linear, Link, Model, Node, Prediction, Tree, predict};
pub use run::run;
pub use spec::{Params, TrainerSpec};
