//! The registry's copy in each namespace's artifact store: every ModelVersion, once judged, is
//! also written as a record to `<store>/<namespace>/registry/models/<model>/<number>.json`
//! (its name, labels, annotations, spec and verdict). ModelVersions are made by the operator,
//! never kept in git, so a cluster rebuilt from git would otherwise lose them — and number a
//! model's next version 1 again, over artifacts already in the store.
//!
//! Restoring needs no step of its own: before a model's next version is numbered, and when a
//! ModelDeployment finds its model without versions, the model's records are read back and,
//! if the cluster holds none of its versions, recreated with the same names, numbers, digests,
//! lineage and verdicts. A model that still has versions in the cluster is not restored (a
//! version deleted on purpose stays deleted), but its next number comes after every recorded
//! one: a number once given is never given again.
//!
//! This is the operator's only use of a store: it opens the namespace's store with that
//! namespace's own keys (the Secret its store names, read when needed and kept nowhere).

use super::artifact_store::ArtifactStore;
use crate::context::Context;
use crate::error::{Error, Result};
use ciclo_api::dataset::{DatasetVersion, Verdict};
use ciclo_api::model_version::{ModelVersion, ModelVersionStatus};
use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a record holds: the ModelVersion as it was registered and judged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub api_version: String,
    pub kind: String,
    pub metadata: RecordMeta,
    pub spec: ciclo_api::model_version::ModelVersionSpec,
    pub status: RecordStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RecordMeta {
    pub name: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The verdict: whether it was blessed, each gate's outcome, and the conditions that say so.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RecordStatus {
    pub blessed: bool,
    #[serde(default)]
    pub gates: Vec<ciclo_core::metrics::GateVerdict>,
    #[serde(default)]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}

impl Record {
    /// The record of a judged ModelVersion.
    pub fn of(mv: &ModelVersion) -> Self {
        let status = mv.status.clone().unwrap_or_default();
        // Annotations the API server or kubectl add are not the registry's.
        let annotations = mv
            .annotations()
            .iter()
            .filter(|(k, _)| k.starts_with("ciclo.dev/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self {
            api_version: "ciclo.dev/v1alpha1".into(),
            kind: "ModelVersion".into(),
            metadata: RecordMeta {
                name: mv.name_any(),
                labels: mv.labels().clone(),
                annotations,
            },
            spec: mv.spec.clone(),
            status: RecordStatus {
                blessed: status.blessed,
                gates: status.gates,
                conditions: status.conditions,
            },
        }
    }

    /// The ModelVersion to create again from the record (its verdict goes in its status).
    pub fn model_version(&self, namespace: &str) -> ModelVersion {
        ModelVersion {
            metadata: ObjectMeta {
                name: Some(self.metadata.name.clone()),
                namespace: Some(namespace.into()),
                labels: Some(self.metadata.labels.clone()),
                annotations: Some(self.metadata.annotations.clone()),
                ..Default::default()
            },
            spec: self.spec.clone(),
            status: None,
        }
    }
}

/// The fields of a check's `report.json` (ciclo_snapshot's `Report`) a version's record needs.
#[derive(Deserialize)]
struct StoredReport {
    id: String,
    created: jiff::Timestamp,
    verdict: Verdict,
    #[serde(default)]
    reasons: Vec<String>,
    files: u64,
    bytes: u64,
    rows: u64,
}

/// The dataset version a `report.json` (kept at `location`) records, if it is one.
fn version_of_report(bytes: &[u8], location: &str) -> Option<DatasetVersion> {
    let r: StoredReport = serde_json::from_slice(bytes).ok()?;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    Some(DatasetVersion {
        id: r.id,
        created: r.created,
        rows: count(r.rows),
        bytes: count(r.bytes),
        files: count(r.files),
        verdict: r.verdict,
        // As a check records them: the first few; the report keeps every one.
        reasons: r.reasons.into_iter().take(10).collect(),
        location: Some(location.to_string()),
        captured_from: None,
    })
}

/// A namespace's registry records in its artifact store.
pub struct Registry {
    store: Arc<dyn ObjectStore>,
    /// `<prefix>/<namespace>/registry/models`.
    models: Path,
    /// The store's URI of `models`, for status and messages.
    uri: String,
    /// The store's URI of the namespace's folder, `<store>/<namespace>`, and its path: what
    /// retention may delete lies under its `models/`.
    namespace_uri: String,
    namespace_path: Path,
}

impl Registry {
    /// Opens the registry of `namespace` in `store`, with the keys of the Secret it names.
    pub async fn open(ctx: &Context, namespace: &str, store: &ArtifactStore) -> Result<Self> {
        let mut settings = Vec::new();
        if let Some(name) = &store.secret {
            let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
                .get_opt(name)
                .await?
                .ok_or_else(|| {
                    Error::Store(format!(
                        "the store's Secret {name:?} is not in namespace {namespace}"
                    ))
                })?;
            let data = secret.data.unwrap_or_default();
            let text: Vec<(String, String)> = data
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
                .collect();
            settings =
                ciclo_store::secret_settings(text.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        let options = ciclo_store::Options {
            endpoint: store.endpoint.clone(),
            region: store.region.clone(),
            force_path_style: store.force_path_style,
            settings,
            env_prefix: String::new(),
        };
        Self::at(
            format!("{}/{namespace}", store.uri.trim_end_matches('/')),
            &options,
        )
    }

    /// The registry whose namespace folder is `namespace_uri`, opened with `options`.
    pub(crate) fn at(namespace_uri: String, options: &ciclo_store::Options) -> Result<Self> {
        let (store, namespace_path) =
            ciclo_store::open(&namespace_uri, options).map_err(Error::Store)?;
        Ok(Self {
            store,
            models: namespace_path.clone().join("registry").join("models"),
            uri: format!("{namespace_uri}/registry/models"),
            namespace_uri,
            namespace_path,
        })
    }

    /// The versions of the Dataset `dataset` whose folders are in the store
    /// (`<store>/<ns>/datasets/<dataset>/<id>/report.json`: each check writes one for a new
    /// version, with its verdict, size and time), newest first. A report that cannot be read
    /// as one is skipped: it is not a version's record.
    pub async fn dataset_versions(&self, dataset: &str) -> Result<Vec<DatasetVersion>> {
        let folder = self.namespace_path.clone().join("datasets").join(dataset);
        let uri = format!("{}/datasets/{dataset}", self.namespace_uri);
        let objects: Vec<_> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(|e| Error::Store(format!("listing {uri}/: {e}")))?;
        let mut versions = Vec::new();
        for o in objects {
            let parts: Vec<_> = o.location.parts().collect();
            let [.., id, file] = parts.as_slice() else {
                continue;
            };
            let id = id.as_ref();
            let is_version = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
            if file.as_ref() != "report.json" || !is_version || !o.location.prefix_matches(&folder)
            {
                continue;
            }
            let bytes = self
                .store
                .get(&o.location)
                .await
                .map_err(|e| Error::Store(format!("reading {uri}/{id}/report.json: {e}")))?
                .bytes()
                .await
                .map_err(|e| Error::Store(format!("reading {uri}/{id}/report.json: {e}")))?;
            if let Some(v) = version_of_report(&bytes, &format!("{uri}/{id}")) {
                versions.push(v);
            }
        }
        versions.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(versions)
    }

    /// Deletes the record of `model`'s version `number` (gone already is fine).
    pub async fn delete_record(&self, model: &str, number: i64) -> Result<()> {
        match self.store.delete(&self.key(model, number)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::Store(format!(
                "deleting {}: {e}",
                self.uri(model, number)
            ))),
        }
    }

    /// Deletes the folder of the run whose model file is `artifact`, if it is a run's folder
    /// of `model` in this namespace's store (`<store>/<ns>/models/<model>/runs/<run id>/`);
    /// returns its URI. A model kept anywhere else is not ciclo's to delete: `None`.
    pub async fn delete_run_artifacts(
        &self,
        model: &str,
        artifact: &str,
    ) -> Result<Option<String>> {
        self.delete_folder(&format!("models/{model}/runs"), artifact)
            .await
    }

    /// Deletes the folder `<store>/<ns>/<under>/<name>/` that `uri` is in or names, if it is
    /// one; returns its URI. Anything else is not ciclo's to delete: `None`.
    pub async fn delete_folder(&self, under: &str, uri: &str) -> Result<Option<String>> {
        let parent = format!("{}/{under}/", self.namespace_uri);
        let Some(name) = uri
            .strip_prefix(&parent)
            .and_then(|rest| rest.split('/').next())
            .filter(|name| !name.is_empty() && *name != "." && *name != "..")
        else {
            return Ok(None);
        };
        let folder = under
            .split('/')
            .fold(self.namespace_path.clone(), |p, part| p.join(part))
            .join(name);
        let uri = format!("{parent}{name}/");
        let objects: Vec<_> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(|e| Error::Store(format!("listing {uri}: {e}")))?;
        for o in objects {
            match self.store.delete(&o.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::Store(format!("deleting {}: {e}", o.location))),
            }
        }
        Ok(Some(uri))
    }

    fn key(&self, model: &str, number: i64) -> Path {
        self.models
            .clone()
            .join(model)
            .join(format!("{number}.json"))
    }

    /// Where the record of `model`'s version `number` is kept.
    pub fn uri(&self, model: &str, number: i64) -> String {
        format!("{}/{model}/{number}.json", self.uri)
    }

    /// Writes `mv`'s record (again: the same version gives the same record).
    pub async fn write(&self, mv: &ModelVersion) -> Result<String> {
        let record = Record::of(mv);
        let body = serde_json::to_vec_pretty(&record)?;
        let (model, number) = (&mv.spec.model, mv.spec.version);
        self.store
            .put(&self.key(model, number), PutPayload::from(body))
            .await
            .map_err(|e| Error::Store(format!("writing {}: {e}", self.uri(model, number))))?;
        Ok(self.uri(model, number))
    }

    /// The numbers of `model`'s recorded versions.
    pub async fn numbers(&self, model: &str) -> Result<Vec<i64>> {
        let prefix = self.models.clone().join(model);
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::Store(format!("listing {}/{model}/: {e}", self.uri)))?;
        let mut numbers: Vec<i64> = objects
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".json")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// The record of `model`'s version `number`.
    pub async fn read(&self, model: &str, number: i64) -> Result<Record> {
        let what = self.uri(model, number);
        let bytes = self
            .store
            .get(&self.key(model, number))
            .await
            .map_err(|e| Error::Store(format!("reading {what}: {e}")))?
            .bytes()
            .await
            .map_err(|e| Error::Store(format!("reading {what}: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Store(format!("{what} is not a ModelVersion record: {e}")))
    }

    /// Recreates every recorded version of `model` in `namespace`, with its verdict, if the
    /// cluster holds none of them (`in_cluster`: how many it holds). Returns how many were
    /// restored. A version created meanwhile by another writer is left as it is.
    pub async fn restore(
        &self,
        ctx: &Context,
        namespace: &str,
        model: &str,
        in_cluster: usize,
    ) -> Result<usize> {
        if in_cluster > 0 {
            return Ok(0);
        }
        let numbers = self.numbers(model).await?;
        let api: Api<ModelVersion> = Api::namespaced(ctx.client.clone(), namespace);
        let mut restored = 0;
        for number in numbers {
            let record = self.read(model, number).await?;
            let mv = record.model_version(namespace);
            let generation = match api.create(&PostParams::default(), &mv).await {
                Ok(created) => created.metadata.generation,
                Err(kube::Error::Api(e)) if e.is_already_exists() => continue,
                Err(e) => return Err(e.into()),
            };
            restored += 1;
            // Judged as it was, for this object's generation: the verdict is not judged again.
            let mut conditions = record.status.conditions.clone();
            for c in &mut conditions {
                c.observed_generation = generation;
            }
            let status = ModelVersionStatus {
                observed_generation: generation,
                conditions,
                blessed: record.status.blessed,
                gates: record.status.gates.clone(),
                record: Some(self.uri(model, number)),
                ..Default::default()
            };
            let patch = serde_json::json!({
                "apiVersion": "ciclo.dev/v1alpha1",
                "kind": "ModelVersion",
                "status": status,
            });
            api.patch_status(
                &record.metadata.name,
                &PatchParams::apply(ciclo_api::labels::FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        }
        if restored > 0 {
            tracing::info!(%namespace, %model, restored, from = %self.uri, "registry restored from the artifact store");
        }
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MV: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata:
  name: churn-3
  namespace: team-a
  uid: u-1
  resourceVersion: "42"
  labels: {ciclo.dev/model: churn, ciclo.dev/version: "3", ciclo.dev/run-id: r3}
  annotations:
    ciclo.dev/gates: '{"gates":[],"metrics":[]}'
    kubectl.kubernetes.io/last-applied-configuration: '{}'
spec:
  model: churn
  version: 3
  artifact: {uri: "s3://team-a/ciclo/team-a/models/churn/runs/r3/model.json", digest: "blake3:ab"}
  lineage:
    trainingRun: churn
    runId: r3
    dataset: {name: events, version: 0123456789abcdef0123456789abcdef}
    image: "ciclo (built-in trainer)"
    params: {lr: "0.1"}
    metrics: {accuracy: 0.91}
status:
  blessed: true
  gates: [{metric: accuracy, passed: true, value: 0.91, message: "accuracy 0.91 >= 0.9"}]
  deployedBy: [churn]
  conditions:
  - {type: Blessed, status: "True", reason: GatesPassed, message: all gates passed, lastTransitionTime: "2026-12-01T00:00:00Z"}
  - {type: Ready, status: "True", reason: Ready, message: judged, lastTransitionTime: "2026-12-01T00:00:00Z"}
"#;

    #[test]
    fn a_record_restores_the_same_version_with_its_verdict_and_nothing_of_the_cluster() {
        let mv: ModelVersion = serde_yaml::from_str(MV).unwrap();
        let record = Record::of(&mv);
        // Through its JSON, as it is read back from the store.
        let back: Record = serde_json::from_slice(&serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(back, record);
        let restored = back.model_version("team-a");
        assert_eq!(restored.spec, mv.spec, "same number, digest, lineage");
        assert_eq!(restored.name_any(), "churn-3");
        assert_eq!(restored.labels(), mv.labels());
        assert_eq!(
            restored.annotations().keys().collect::<Vec<_>>(),
            ["ciclo.dev/gates"],
            "the registry's annotations only"
        );
        assert_eq!(restored.metadata.uid, None);
        assert_eq!(restored.metadata.resource_version, None);
        assert!(back.status.blessed);
        assert_eq!(back.status.gates, mv.status.as_ref().unwrap().gates);
        assert_eq!(
            back.status
                .conditions
                .iter()
                .map(|c| c.type_.as_str())
                .collect::<Vec<_>>(),
            ["Blessed", "Ready"]
        );
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            !json.contains("deployedBy"),
            "where it serves is not the registry's"
        );
    }

    #[tokio::test]
    async fn records_are_written_listed_and_read_back_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!(
            "file://{}/ciclo/team-a/registry/models",
            dir.path().display()
        );
        std::fs::create_dir_all(dir.path().join("ciclo/team-a/registry/models")).unwrap();
        let ns_uri = format!("file://{}/ciclo/team-a", dir.path().display());
        let registry = Registry::at(ns_uri, &ciclo_store::Options::default()).unwrap();
        let mut mv: ModelVersion = serde_yaml::from_str(MV).unwrap();
        for n in [3, 10, 2] {
            mv.spec.version = n;
            let at = registry.write(&mv).await.unwrap();
            assert_eq!(at, format!("{uri}/churn/{n}.json"));
        }
        assert_eq!(registry.numbers("churn").await.unwrap(), [2, 3, 10]);
        assert!(registry.numbers("other").await.unwrap().is_empty());
        assert_eq!(registry.read("churn", 10).await.unwrap().spec.version, 10);
        let missing = registry.read("churn", 4).await.unwrap_err().to_string();
        assert!(missing.contains("churn/4.json"), "{missing}");
        registry.delete_record("churn", 3).await.unwrap();
        registry.delete_record("churn", 3).await.unwrap();
        assert_eq!(registry.numbers("churn").await.unwrap(), [2, 10]);
    }

    #[tokio::test]
    async fn retention_deletes_a_runs_own_folder_and_nothing_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ciclo/team-a");
        for file in [
            "models/churn/runs/r1/model.json",
            "models/churn/runs/r1/metrics.json",
            "models/churn/runs/r10/model.json",
            "models/other/runs/r1/model.json",
            "datasets/events/v1/manifest.json",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let ns_uri = format!("file://{}", root.display());
        let registry = Registry::at(ns_uri.clone(), &ciclo_store::Options::default()).unwrap();
        let gone = registry
            .delete_run_artifacts(
                "churn",
                &format!("{ns_uri}/models/churn/runs/r1/model.json"),
            )
            .await
            .unwrap();
        assert_eq!(gone, Some(format!("{ns_uri}/models/churn/runs/r1/")));
        assert!(!root.join("models/churn/runs/r1/model.json").exists());
        assert!(!root.join("models/churn/runs/r1/metrics.json").exists());
        for kept in [
            "models/churn/runs/r10/model.json",
            "models/other/runs/r1/model.json",
            "datasets/events/v1/manifest.json",
        ] {
            assert!(root.join(kept).exists(), "{kept}");
        }
        // A model kept outside the namespace's runs is not ciclo's to delete.
        for elsewhere in [
            "s3://team-models/churn/model.onnx".to_string(),
            format!("{ns_uri}/models/churn/model.json"),
            format!("{ns_uri}/models/churn/runs/../../other/runs/r1/model.json"),
        ] {
            assert_eq!(
                registry
                    .delete_run_artifacts("churn", &elsewhere)
                    .await
                    .unwrap(),
                None,
                "{elsewhere}"
            );
        }
        assert!(root.join("models/other/runs/r1/model.json").exists());
    }

    #[tokio::test]
    async fn a_datasets_versions_are_read_back_from_its_checks_reports_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ciclo/team-a");
        let report = |id: &str, created: &str, verdict: &str| {
            // As ciclo_snapshot's Report writes it (operator/snapshot/src/report.rs).
            format!(
                r#"{{"id":"{id}","created":"{created}","source":"s3://data/events/","verdict":"{verdict}","reasons":["column x: 3 nulls"],"files":2,"bytes":2048,"rows":40,"hashed":2,"reused":0,"checks":"c0ffee"}}"#
            )
        };
        let (a, b, c) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
        for (path, body) in [
            (
                format!("datasets/events/{a}/report.json"),
                report(&a, "2026-12-01T10:00:00Z", "Accepted"),
            ),
            (format!("datasets/events/{a}/manifest.json"), "{}".into()),
            (
                format!("datasets/events/{b}/report.json"),
                report(&b, "2026-12-02T10:00:00Z", "Rejected"),
            ),
            (
                format!("datasets/events/{c}/report.json"),
                report(&c, "2026-12-03T10:00:00Z", "Accepted"),
            ),
            // Not versions of this Dataset: a capture's folder, another Dataset, a bad report.
            (
                "datasets/events/captured/report.json".into(),
                report(&a, "2026-12-04T10:00:00Z", "Accepted"),
            ),
            (
                format!("datasets/other/{a}/report.json"),
                report(&a, "2026-12-05T10:00:00Z", "Accepted"),
            ),
            (
                format!("datasets/events/{}/report.json", "d".repeat(32)),
                "not json".into(),
            ),
        ] {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, body).unwrap();
        }
        let ns_uri = format!("file://{}", root.display());
        let registry = Registry::at(ns_uri.clone(), &ciclo_store::Options::default()).unwrap();
        let versions = registry.dataset_versions("events").await.unwrap();
        let ids: Vec<&str> = versions.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, [c.as_str(), b.as_str(), a.as_str()]);
        let newest = &versions[0];
        assert_eq!(newest.verdict, Verdict::Accepted);
        assert_eq!((newest.rows, newest.bytes, newest.files), (40, 2048, 2));
        assert_eq!(newest.created.to_string(), "2026-12-03T10:00:00Z");
        assert_eq!(
            newest.location.as_deref(),
            Some(format!("{ns_uri}/datasets/events/{c}").as_str())
        );
        assert_eq!(versions[1].reasons, ["column x: 3 nulls"]);
        assert!(registry.dataset_versions("none").await.unwrap().is_empty());
    }
}
