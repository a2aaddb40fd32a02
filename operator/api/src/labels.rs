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
/// On a ModelVersion: the gates (and the metrics' directions) it was registered with, as JSON
/// ([`crate::model_version::RegisteredGates`]), so its verdict never changes when the
/// TrainingRun's gates do later.
pub const GATES: &str = "ciclo.dev/gates";
/// On a TrainingRun without `spec.git`: the code's git repository and revision, recorded in
/// its ModelVersions' lineage. A GitOps tool sets them when it renders the object (Argo CD:
/// `kustomize.commonAnnotations` with `commonAnnotationsEnvsubst` and
/// `${ARGOCD_APP_SOURCE_REPO_URL}` / `${ARGOCD_APP_REVISION}`; Flux: `postBuild.substitute`).
pub const GIT_REPOSITORY: &str = "ciclo.dev/git-repository";
pub const GIT_REVISION: &str = "ciclo.dev/git-revision";
/// The field manager of every server-side apply ciclo does.
pub const FIELD_MANAGER: &str = "ciclo-operator";
