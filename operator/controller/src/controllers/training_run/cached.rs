//! The TrainingRun as the shared cache keeps it: its metadata and the two names other
//! objects are matched on, nothing else.
//!
//! At 10,000 TrainingRuns the cache holds 10,000 of them for as long as they exist. Parsed
//! whole (spec, status, run history), one weighed 2.6 KiB; this one about 0.5 KiB. What
//! reads the cache needs only the names: a Dataset's change wakes the runs that train on it
//! (`spec.dataset.name`), and a ModelDeployment asks whether any run registers its model
//! (`spec.model.name`). A reconcile, which needs the whole object, reads it fresh
//! ([`crate::own_writes::read_whole`]): one GET, or none when the object is this process's
//! own last write.

use super::super::slim::Slim;
use ciclo_api::training_run::TrainingRun;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// A cached TrainingRun (see the module). Its status is parsed as nothing.
pub type CachedRun = Slim<TrainingRun, CachedRunSpec, IgnoredAny>;

/// What the cache keeps of a TrainingRun's spec.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct CachedRunSpec {
    /// `spec.dataset`: the Dataset it trains on.
    pub dataset: Named,
    /// `spec.model`: the model it registers.
    pub model: Named,
}

/// An object named by `name`.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct Named {
    pub name: String,
}

/// What no reader of the cache reads of a TrainingRun's metadata: its labels and
/// annotations (the reconcile reads them on the whole object).
pub fn strip(run: &mut CachedRun) {
    run.metadata.labels = None;
    run.metadata.annotations = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource as _;

    #[test]
    fn a_cached_run_keeps_its_names_and_is_requested_as_a_training_run() {
        assert_eq!(
            CachedRun::url_path(&(), Some("ml")),
            TrainingRun::url_path(&(), Some("ml"))
        );
        let mut run: CachedRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "ciclo.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": "iris", "namespace": "ml", "resourceVersion": "7",
                         "labels": {"team": "a"}, "annotations": {"ciclo.dev/git-revision": "f913b6c"}},
            "spec": {"dataset": {"name": "iris-data", "version": "latest"},
                     "model": {"name": "iris", "trainer": {"builtin": "logistic-regression"}},
                     "params": {"C": "1.0"}},
            "status": {"runs": [{"id": "r1"}], "conditions": []}
        }))
        .unwrap();
        strip(&mut run);
        assert_eq!(run.spec.dataset.name, "iris-data");
        assert_eq!(run.spec.model.name, "iris");
        assert_eq!(run.meta().resource_version.as_deref(), Some("7"));
        assert!(run.meta().labels.is_none() && run.meta().annotations.is_none());
        // The struct alone: a whole TrainingRun is over 1 KiB before any string.
        assert!(std::mem::size_of::<CachedRun>() * 2 < std::mem::size_of::<TrainingRun>());
    }
}
