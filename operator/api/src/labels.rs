//! Labels and annotations ciclo puts on (or reads from) objects.

/// Names the Dataset a child belongs to.
pub const DATASET: &str = "ciclo.dev/dataset";
/// Names the TrainingRun a child belongs to.
pub const TRAINING_RUN: &str = "ciclo.dev/training-run";
/// Names the model a ModelVersion or serving child belongs to.
pub const MODEL: &str = "ciclo.dev/model";
/// The model version number a child serves or records.
pub const VERSION: &str = "ciclo.dev/version";
/// Names the ModelDeployment a child belongs to.
pub const DEPLOYMENT: &str = "ciclo.dev/deployment";
/// Set (to any new value, e.g. a timestamp) to ask for an immediate reconcile: a new dataset
/// check or a new training run. CI jobs and bucket notifications use it.
pub const RECONCILE_REQUESTED_AT: &str = "ciclo.dev/reconcile-requested-at";
/// The field manager of every server-side apply ciclo does.
pub const FIELD_MANAGER: &str = "ciclo-operator";
