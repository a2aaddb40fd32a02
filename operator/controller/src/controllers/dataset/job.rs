//! The Job that checks a Dataset's source once (`ciclo dataset snapshot`): its
//! deterministic name, and its spec under the restricted Pod Security Standard.

use crate::controllers::artifact_store::ArtifactStore;
use crate::controllers::{data_source, pod_security};
use ciclo_api::dataset::Dataset;
use ciclo_api::labels;
use ciclo_core::contract::{ARTIFACTS_ENV_PREFIX, SOURCE_ENV_PREFIX};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use kube::{Resource as _, ResourceExt as _};
use std::collections::BTreeMap;

/// Annotation: the spec generation a check was started for.
pub const GENERATION: &str = "ciclo.dev/generation";
/// The container's name, which the controller reads the result of.
pub const CONTAINER: &str = "check";
/// A check that runs longer than this is stopped and recorded as failed.
const DEADLINE_SECONDS: i64 = 3600;
/// A finished Job is deleted once its result is recorded; this only cleans up after an
/// operator that is gone.
const TTL_AFTER_FINISHED_SECONDS: i32 = 24 * 3600;
/// Room left in a 63-character name for `-check-` and the hash.
const NAME_PREFIX_MAX: usize = 45;

/// The name of the check the Dataset asks for now. It changes exactly when a new check is
/// due — the spec changed, `ciclo.dev/reconcile-requested-at` changed, or the last check's
/// result was recorded — so a restarted operator finds the same Job instead of starting
/// another.
pub fn name(ds: &Dataset) -> String {
    let last = ds.status.as_ref().and_then(|s| s.last_check.as_ref());
    // The time as the status writes it: the name stays what it was when it was a string.
    let key = format!(
        "{}\n{}\n{}\n{}",
        ds.uid().unwrap_or_default(),
        ds.metadata.generation.unwrap_or_default(),
        requested_at(ds).unwrap_or_default(),
        last.map(|c| c.finished.to_string()).unwrap_or_default(),
    );
    let hash = blake3::hash(key.as_bytes()).to_hex();
    let base: String = ds.name_any().chars().take(NAME_PREFIX_MAX).collect();
    format!(
        "{}-check-{}",
        base.trim_end_matches(['-', '.']),
        &hash[..10]
    )
}

/// The value of `ciclo.dev/reconcile-requested-at`, if set.
pub fn requested_at(ds: &Dataset) -> Option<&str> {
    ds.annotations()
        .get(labels::RECONCILE_REQUESTED_AT)
        .map(String::as_str)
}

pub use crate::controllers::data_source::artifacts_uri;

/// Whether `job` is a sharded check (an Indexed Job).
pub fn is_sharded(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// Where the workers of check `job` hand their shares to worker 0, for
/// `Registry::delete_folder`: the folder's parent under the namespace's store path, and the
/// folder's URI (`<artifacts>/shards/<job>/`, as `ciclo dataset snapshot --shard-dir` names it).
pub fn shares(store_uri: &str, ds: &Dataset, job: &str) -> (String, String) {
    (
        format!("datasets/{}/shards", ds.name_any()),
        format!("{}/shards/{job}/", artifacts_uri(store_uri, ds)),
    )
}

/// How many workers check `ds` now: its `spec.sharding.workers` when the last version
/// recorded was at least `minBytes` or `minFiles` large, else one. The operator never reads
/// the data, so the size is the last check's; a capture (one joined file) is never sharded.
pub fn workers(ds: &Dataset) -> i32 {
    let sharding = ds.spec.sharding.clone().unwrap_or_default();
    let last = ds.status.as_ref().and_then(|s| s.versions.first());
    let large =
        last.is_some_and(|v| v.bytes >= sharding.min_bytes || v.files >= sharding.min_files);
    if large && ds.spec.source.capture.is_none() {
        sharding.workers.max(1)
    } else {
        1
    }
}

/// The check Job `name` for `ds`, run with `image`, writing to `store` (whose `uri` is set).
pub fn build(ds: &Dataset, name: &str, image: &str, store: &ArtifactStore) -> Job {
    let spec = &ds.spec;
    let status = ds.status.as_ref();
    let source = data_source::of(ds, store);
    let mut args: Vec<String> = vec!["dataset".into(), "snapshot".into()];
    let mut flag = |name: &str, value: &str| {
        args.push(format!("--{name}"));
        args.push(value.to_string());
    };
    flag("source", &source.uri);
    if let Some(e) = &source.endpoint {
        flag("source-endpoint", e);
    }
    if let Some(r) = &source.region {
        flag("source-region", r);
    }
    if let Some(c) = &source.capture {
        flag("capture", c);
    }
    for g in &spec.source.include {
        flag("include", g);
    }
    for g in &spec.source.exclude {
        flag("exclude", g);
    }
    if let Some(f) = spec.format {
        let text = serde_json::to_value(f).expect("formats serialize");
        flag("format", text.as_str().unwrap_or_default());
    }
    if let Some(x) = &spec.schema {
        flag(
            "expectations",
            &serde_json::to_string(x).expect("expectations serialize"),
        );
    }
    if let Some(d) = &spec.drift {
        flag(
            "drift",
            &serde_json::to_string(d).expect("drift serializes"),
        );
    }
    let uri = store.uri.as_str();
    flag("artifacts", &artifacts_uri(uri, ds));
    if let Some(e) = &store.endpoint {
        flag("artifacts-endpoint", e);
    }
    if let Some(r) = &store.region {
        flag("artifacts-region", r);
    }
    if let Some(v) = status.and_then(|s| s.versions.first()) {
        flag("previous", &v.id);
    }
    if let Some(v) = status.and_then(|s| s.latest.as_ref()) {
        flag("baseline", &v.id);
    }
    if source.force_path_style {
        args.push("--source-force-path-style".into());
    }
    if store.force_path_style {
        args.push("--artifacts-force-path-style".into());
    }
    // A sharded check: each pod of the Indexed Job takes the share its completion index
    // names; the shares meet under the Job's name in the artifact store.
    let workers = workers(ds);
    if workers > 1 {
        args.extend([
            "--shards".into(),
            workers.to_string(),
            "--shard-dir".into(),
            name.to_string(),
        ]);
    }

    // Credentials reach the container as environment under a prefix per store, straight
    // from the Secrets: they never appear in the Job's spec, the status or an Event.
    use crate::controllers::workload::secret_env;
    let mut env_from = Vec::new();
    if let Some(s) = &source.secret {
        env_from.push(secret_env(s, SOURCE_ENV_PREFIX));
    }
    if let Some(s) = &store.secret {
        env_from.push(secret_env(s, ARTIFACTS_ENV_PREFIX));
    }

    let labels = BTreeMap::from([
        (labels::DATASET.to_string(), ds.name_any()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "ciclo".to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            "dataset-check".to_string(),
        ),
    ]);
    // What the check answers, recorded with its result even if the Dataset changed since.
    let mut annotations = BTreeMap::from([(
        GENERATION.to_string(),
        ds.metadata.generation.unwrap_or_default().to_string(),
    )]);
    if let Some(r) = requested_at(ds) {
        annotations.insert(labels::RECONCILE_REQUESTED_AT.into(), r.into());
    }
    let quantity = |q: &str| Quantity(q.into());
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: ds.namespace(),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            owner_references: ds.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // One attempt: the operator decides when to check again, and records each failure.
            backoff_limit: Some(0),
            completion_mode: (workers > 1).then(|| "Indexed".into()),
            completions: (workers > 1).then_some(workers),
            parallelism: (workers > 1).then_some(workers),
            active_deadline_seconds: Some(DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    // Workload identity, if the namespace's store names a ServiceAccount for it.
                    service_account_name: store.service_account.clone(),
                    // The check talks to object stores only, never to the Kubernetes API.
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security::pod()),
                    containers: vec![Container {
                        name: CONTAINER.into(),
                        image: Some(image.into()),
                        args: Some(args),
                        env_from: (!env_from.is_empty()).then_some(env_from),
                        // A crash before the summary is written still says why.
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".into(), quantity("250m")),
                                ("memory".into(), quantity("128Mi")),
                            ])),
                            limits: Some(BTreeMap::from([("memory".into(), quantity("512Mi"))])),
                            ..Default::default()
                        }),
                        security_context: Some(pod_security::container()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(yaml: &str) -> Dataset {
        serde_yaml::from_str(yaml).unwrap()
    }

    const DS: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: iris, namespace: ml, uid: 0b8c6c1e-1111-2222-3333-444455556666, generation: 3}
spec:
  source:
    uri: s3://data/iris/
    endpoint: http://127.0.0.1:18333
    forcePathStyle: true
    include: ["**/*.csv"]
    credentialsSecretRef: {name: store-keys}
  format: csv
  schema: {minRows: 10, columns: [{name: species, allowedValues: [setosa]}]}
"#;

    fn store() -> ArtifactStore {
        ArtifactStore {
            uri: "s3://ciclo/".into(),
            endpoint: Some("http://127.0.0.1:18333".into()),
            force_path_style: true,
            secret: Some("ciclo-artifacts".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_name_changes_exactly_when_a_new_check_is_due() {
        let ds = dataset(DS);
        let n = name(&ds);
        assert!(n.starts_with("iris-check-") && n.len() <= 63, "{n}");
        assert_eq!(name(&ds), n, "deterministic");
        let mut spec_changed = ds.clone();
        spec_changed.metadata.generation = Some(4);
        let mut requested = ds.clone();
        requested.annotations_mut().insert(
            labels::RECONCILE_REQUESTED_AT.into(),
            "2026-11-26T10:00:00Z".into(),
        );
        let mut recorded = ds.clone();
        recorded.status = serde_yaml::from_str(
            "lastCheck: {job: x, generation: 3, finished: '2026-11-26T10:00:00Z', outcome: Unchanged}",
        )
        .unwrap();
        for other in [spec_changed, requested, recorded] {
            assert_ne!(name(&other), n);
        }
        let mut long = ds.clone();
        long.metadata.name = Some("a".repeat(253));
        assert!(name(&long).len() <= 63);
    }

    #[test]
    fn a_check_is_sharded_once_the_last_version_was_large_and_never_a_capture() {
        let with_last = |bytes: i64, files: i64, sharding: &str| {
            let mut ds = dataset(&format!("{DS}  sharding: {sharding}\n"));
            ds.status = serde_yaml::from_str(&format!(
                "versions: [{{id: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, created: '2026-11-26T10:00:00Z', rows: 1, bytes: {bytes}, files: {files}, verdict: Rejected}}]"
            ))
            .unwrap();
            ds
        };
        assert_eq!(workers(&dataset(DS)), 1, "no version yet: one pod");
        assert_eq!(
            workers(&with_last(11 << 30, 1, "{}")),
            4,
            "the defaults: 10 GiB, 4 workers"
        );
        assert_eq!(workers(&with_last(1 << 30, 9_999, "{}")), 1);
        assert_eq!(workers(&with_last(1, 3, "{workers: 3, minFiles: 3}")), 3);
        assert_eq!(
            workers(&with_last(11 << 30, 1, "{workers: 1}")),
            1,
            "1 never shards"
        );

        let ds = with_last(1, 3, "{workers: 3, minFiles: 3}");
        let job = build(&ds, "iris-check-1", "ghcr.io/ciclo-dev/ciclo:v1", &store());
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(
            (
                spec.completion_mode.as_deref(),
                spec.completions,
                spec.parallelism
            ),
            (Some("Indexed"), Some(3), Some(3))
        );
        let args = spec.template.spec.as_ref().unwrap().containers[0]
            .args
            .as_ref()
            .unwrap()
            .join(" ");
        assert!(
            args.contains("--shards 3 --shard-dir iris-check-1"),
            "the shares meet under the Job's name: {args}"
        );
        let one = build(&dataset(DS), "iris-check-1", "i", &store());
        let spec = one.spec.as_ref().unwrap();
        assert_eq!(
            (spec.completion_mode.as_deref(), spec.completions),
            (None, None)
        );

        let mut capture = with_last(1, 3, "{workers: 3, minFiles: 3}");
        capture.spec.source.uri = None;
        capture.spec.source.capture =
            Some(serde_yaml::from_str("{modelDeployment: churn}").unwrap());
        assert_eq!(workers(&capture), 1, "a capture is one joined file");
    }

    #[tokio::test]
    async fn a_failed_sharded_checks_shares_are_deleted_and_nothing_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let store_uri = format!("file://{}/ciclo", dir.path().display());
        let root = dir.path().join("ciclo/ml/datasets/iris");
        for file in [
            "shards/iris-check-1/1.json",
            "shards/iris-check-1/2.json",
            "shards/iris-check-2/1.json",
            "0123456789abcdef0123456789abcdef/report.json",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "{}").unwrap();
        }
        let ds = dataset(DS);
        let (under, folder) = shares(&store_uri, &ds, "iris-check-1");
        let registry = crate::controllers::registry::Registry::at(
            format!("{store_uri}/ml"),
            &ciclo_store::Options::default(),
        )
        .unwrap();
        let gone = registry.delete_folder(&under, &folder).await.unwrap();
        assert_eq!(gone.as_deref(), Some(folder.as_str()));
        assert!(!root.join("shards/iris-check-1/1.json").exists());
        assert!(!root.join("shards/iris-check-1/2.json").exists());
        assert!(
            root.join("shards/iris-check-2/1.json").exists(),
            "another check's"
        );
        assert!(
            root.join("0123456789abcdef0123456789abcdef/report.json")
                .exists()
        );
    }

    #[test]
    fn the_job_runs_the_check_restricted_with_credentials_only_from_secrets() {
        let mut ds = dataset(DS);
        ds.status = serde_yaml::from_str(
            r#"
latest: {id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, created: '2026-11-26T10:00:00Z', rows: 1, bytes: 1, files: 1, verdict: Accepted}
versions:
- {id: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, created: '2026-11-26T10:00:00Z', rows: 1, bytes: 1, files: 1, verdict: Rejected}
"#,
        )
        .unwrap();
        let job = build(&ds, "iris-check-1", "ghcr.io/ciclo-dev/ciclo:v1", &store());
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        let args = c.args.as_ref().unwrap().join(" ");
        for part in [
            "dataset snapshot --source s3://data/iris/",
            "--source-endpoint http://127.0.0.1:18333",
            "--include **/*.csv",
            "--format csv",
            "--artifacts s3://ciclo/ml/datasets/iris",
            "--previous bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "--baseline aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "--source-force-path-style",
            "--artifacts-force-path-style",
        ] {
            assert!(args.contains(part), "{part:?} not in {args}");
        }
        let expectations = c
            .args
            .as_ref()
            .unwrap()
            .iter()
            .skip_while(|a| *a != "--expectations")
            .nth(1)
            .unwrap();
        assert!(expectations.contains("\"minRows\":10"), "{expectations}");
        let env_from = c.env_from.as_ref().unwrap();
        assert_eq!(env_from[0].prefix.as_deref(), Some("CICLO_SOURCE_"));
        assert_eq!(env_from[0].secret_ref.as_ref().unwrap().name, "store-keys");
        assert_eq!(env_from[1].prefix.as_deref(), Some("CICLO_ARTIFACTS_"));
        assert!(c.env.is_none(), "no literal values that could hold secrets");
        pod_security::assert_restricted(pod);
        assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(0));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Dataset", Some(true))
        );
        assert_eq!(
            job.metadata.labels.as_ref().unwrap()[labels::DATASET],
            "iris"
        );
    }

    #[test]
    fn a_capture_is_joined_from_and_into_the_artifact_store_with_its_secret() {
        let ds = dataset(
            "apiVersion: ciclo.dev/v1alpha1\nkind: Dataset\nmetadata: {name: seen, namespace: ml}\nspec: {source: {capture: {modelDeployment: web}}}",
        );
        let job = build(&ds, "seen-check-1", "ghcr.io/ciclo-dev/ciclo:v1", &store());
        let c = &job.spec.unwrap().template.spec.unwrap().containers[0];
        let args = c.args.as_ref().unwrap().join(" ");
        for part in [
            "--source s3://ciclo/ml/datasets/seen/captured",
            "--source-endpoint http://127.0.0.1:18333",
            "--capture s3://ciclo/ml/captures/web",
            "--artifacts s3://ciclo/ml/datasets/seen",
            "--source-force-path-style",
        ] {
            assert!(args.contains(part), "{part:?} not in {args}");
        }
        let env_from = c.env_from.as_ref().unwrap();
        let secrets: Vec<(&str, &str)> = env_from
            .iter()
            .map(|e| {
                (
                    e.prefix.as_deref().unwrap(),
                    e.secret_ref.as_ref().unwrap().name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            secrets,
            [
                ("CICLO_SOURCE_", "ciclo-artifacts"),
                ("CICLO_ARTIFACTS_", "ciclo-artifacts")
            ]
        );
    }
}
