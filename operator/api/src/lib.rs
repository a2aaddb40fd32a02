//! ciclo's API, group `ciclo.dev`, version `v1alpha1`: the resources users commit to git
//! (`Dataset`, `TrainingRun`, `ModelDeployment`) and the registry record the operator writes
//! (`ModelVersion`). Doc comments here become the CRD schema descriptions that
//! `kubectl explain` shows; invariants are in the schema (OpenAPI and CEL), so the API server
//! refuses bad input with a message naming the field.
#![forbid(unsafe_code)]
// kube's `printcolumn(...)` is repeated once per column by design; clippy reads the repeated
// `type_ = ".."` inside them as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod conditions;
pub mod dataset;
pub mod labels;
pub mod model_deployment;
pub mod model_version;
pub mod runtime_metrics;
mod schema;
mod time;
pub mod training_run;

pub use dataset::Dataset;
pub use model_deployment::ModelDeployment;
pub use model_version::ModelVersion;
pub use training_run::TrainingRun;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt as _;

/// The API group.
pub const GROUP: &str = "ciclo.dev";

/// Every CRD of the API, in the order `ciclo crds` prints them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Dataset::crd(),
        TrainingRun::crd(),
        ModelVersion::crd(),
        ModelDeployment::crd(),
    ]
}

/// The CRDs as one YAML stream, as `ciclo crds` prints and `crds/` stores them.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD serialises to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}
