//! The Job of one training run: its identity (so a restarted operator never launches a run
//! twice), the workload contract in its environment, and for `workers > 1` an Indexed Job
//! plus a headless Service with the environment torchrun expects.

use crate::controllers::artifact_store::ArtifactStore;
use crate::controllers::{data_source, pod_security, workload};
use ciclo_api::dataset::{Dataset, DatasetVersion};
use ciclo_api::labels;
use ciclo_api::training_run::TrainingRun;
use ciclo_core::contract::{
    ARTIFACTS_ENV_PREFIX, ENV_DATASET_MANIFEST, ENV_DATASET_URI, ENV_DATASET_VERSION,
    ENV_OUTPUT_URI, ENV_PARAMS, ENV_TRAINER, SOURCE_ENV_PREFIX,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodTemplateSpec, Service,
    ServicePort, ServiceSpec,
};
use kube::api::ObjectMeta;
use kube::{Resource as _, ResourceExt as _};
use std::collections::BTreeMap;

/// The training container's name, which the controller reads the result of.
pub const CONTAINER: &str = "train";
/// The rendezvous port of distributed training (PyTorch's default).
pub const MASTER_PORT: i32 = 29500;
/// Room left in a 63-character name for `-run-` and the id (and an Indexed Job's pod index).
const NAME_PREFIX_MAX: usize = 40;

/// What makes a run: the TrainingRun, its spec generation, the dataset version, and what
/// asked for it (a schedule slot or a `reconcile-requested-at` value; empty for the run a new
/// spec or dataset version calls for). The same inputs always give the same id.
pub fn run_id(tr: &TrainingRun, dataset_version: &str, trigger: &str) -> String {
    let key = format!(
        "{}\n{}\n{dataset_version}\n{trigger}",
        tr.uid().unwrap_or_default(),
        tr.metadata.generation.unwrap_or_default()
    );
    blake3::hash(key.as_bytes()).to_hex()[..10].to_string()
}

/// The run's Job (and, for distributed runs, Service) name.
pub fn name(tr: &TrainingRun, run_id: &str) -> String {
    let base: String = tr.name_any().chars().take(NAME_PREFIX_MAX).collect();
    format!("{}-run-{run_id}", base.trim_end_matches(['-', '.']))
}

/// Where the run writes its model and `metrics.json`.
pub fn output_uri(store: &str, tr: &TrainingRun, run_id: &str) -> String {
    format!(
        "{}/{}/models/{}/runs/{run_id}",
        store.trim_end_matches('/'),
        tr.namespace().unwrap_or_default(),
        tr.spec.model.name
    )
}

/// Everything one run needs.
pub struct Run<'a> {
    pub tr: &'a TrainingRun,
    pub dataset: &'a Dataset,
    pub version: &'a DatasetVersion,
    pub run_id: &'a str,
    /// ciclo's own image, for the built-in trainer.
    pub image: &'a str,
    pub store: &'a ArtifactStore,
    /// Where its code and configuration came from, kept on the Job for its lineage.
    pub code: &'a super::code_source::CodeSource,
}

/// The run's Job, and the headless Service its workers find each other by when distributed.
pub fn build(run: &Run) -> (Job, Option<Service>) {
    let tr = run.tr;
    let spec = &tr.spec;
    let job_name = name(tr, run.run_id);
    let distributed = spec.workers > 1;
    let labels = BTreeMap::from([
        (labels::TRAINING_RUN.to_string(), tr.name_any()),
        (labels::MODEL.to_string(), spec.model.name.clone()),
        ("app.kubernetes.io/managed-by".into(), "ciclo".into()),
        ("app.kubernetes.io/component".into(), "training-run".into()),
    ]);
    let mut annotations = BTreeMap::from([
        (super::record::RUN_ID.to_string(), run.run_id.to_string()),
        (
            super::record::DATASET_VERSION.to_string(),
            run.version.id.clone(),
        ),
        (
            "ciclo.dev/generation".to_string(),
            tr.metadata.generation.unwrap_or_default().to_string(),
        ),
    ]);
    annotations.extend(run.code.annotations());
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: tr.namespace(),
        labels: Some(labels.clone()),
        annotations: Some(annotations.clone()),
        owner_references: tr.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    };

    let (image, command, args) = match (&spec.trainer, &spec.image) {
        (Some(_), _) | (None, None) => (run.image.to_string(), None, Some(vec!["train".into()])),
        (None, Some(image)) => (
            image.clone(),
            (!spec.command.is_empty()).then(|| spec.command.clone()),
            (!spec.args.is_empty()).then(|| spec.args.clone()),
        ),
    };
    let container = Container {
        name: CONTAINER.into(),
        image: Some(image),
        command,
        args,
        env: Some(env(run, &job_name)),
        env_from: Some(env_from(run)).filter(|e| !e.is_empty()),
        resources: spec.resources.clone(),
        // A crash before the summary is written still says why.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(pod_security::container()),
        ..Default::default()
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        containers: vec![container],
        node_selector: Some(spec.node_selector.clone()).filter(|n| !n.is_empty()),
        tolerations: Some(spec.tolerations.clone()).filter(|t| !t.is_empty()),
        // The run's own, else the one the namespace's store names for workload identity.
        service_account_name: spec
            .service_account_name
            .clone()
            .or_else(|| run.store.service_account.clone()),
        // Training needs no API access unless the user gives it a ServiceAccount (workload
        // identity's token is projected by the cloud's webhook, not this one).
        automount_service_account_token: spec.service_account_name.is_none().then_some(false),
        security_context: Some(pod_security::pod()),
        // Workers resolve each other as `<job>-<index>.<service>`.
        subdomain: distributed.then(|| job_name.clone()),
        ..Default::default()
    };
    let job = Job {
        metadata: meta(&job_name),
        spec: Some(JobSpec {
            backoff_limit: Some(spec.backoff_limit),
            active_deadline_seconds: spec.active_deadline_seconds,
            completion_mode: distributed.then(|| "Indexed".into()),
            completions: distributed.then_some(spec.workers),
            parallelism: distributed.then_some(spec.workers),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    annotations: Some(annotations.clone()),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let service = distributed.then(|| Service {
        metadata: meta(&job_name),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Workers must find each other before any is ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(BTreeMap::from([(
                "batch.kubernetes.io/job-name".to_string(),
                job_name.clone(),
            )])),
            ports: Some(vec![ServicePort {
                name: Some("rendezvous".into()),
                port: MASTER_PORT,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    (job, service)
}

/// The workload contract, the stores' settings, and for distributed runs torchrun's variables.
fn env(run: &Run, job_name: &str) -> Vec<EnvVar> {
    let spec = &run.tr.spec;
    let var = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let source = data_source::of(run.dataset, run.store);
    let location = run.version.location.clone().unwrap_or_default();
    let mut env = vec![
        var(ENV_DATASET_URI, source.uri.clone()),
        var(ENV_DATASET_VERSION, run.version.id.clone()),
        var(ENV_DATASET_MANIFEST, format!("{location}/manifest.json")),
        var(
            ENV_OUTPUT_URI,
            output_uri(run.store.uri.as_str(), run.tr, run.run_id),
        ),
        var(
            ENV_PARAMS,
            serde_json::to_string(&spec.params).expect("params serialize"),
        ),
    ];
    if let Some(trainer) = &spec.trainer {
        env.push(var(
            ENV_TRAINER,
            serde_json::to_string(trainer).expect("trainer serializes"),
        ));
    }
    env.extend(workload::store_settings_env(
        SOURCE_ENV_PREFIX,
        source.endpoint.as_deref(),
        source.region.as_deref(),
        source.force_path_style,
    ));
    env.extend(workload::store_settings_env(
        ARTIFACTS_ENV_PREFIX,
        run.store.endpoint.as_deref(),
        run.store.region.as_deref(),
        run.store.force_path_style,
    ));
    if spec.workers > 1 {
        let master = format!("{job_name}-0.{job_name}");
        let index = EnvVar {
            name: "RANK".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                        .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let node_rank = EnvVar {
            name: "PET_NODE_RANK".into(),
            ..index.clone()
        };
        env.extend([
            var("MASTER_ADDR", master.clone()),
            var("MASTER_PORT", MASTER_PORT.to_string()),
            var("WORLD_SIZE", spec.workers.to_string()),
            index,
            // torchrun reads its flags from PET_* variables.
            var("PET_MASTER_ADDR", master),
            var("PET_MASTER_PORT", MASTER_PORT.to_string()),
            var("PET_NNODES", spec.workers.to_string()),
            node_rank,
        ]);
    }
    env
}

fn env_from(run: &Run) -> Vec<k8s_openapi::api::core::v1::EnvFromSource> {
    let mut from = Vec::new();
    if let Some(s) = data_source::of(run.dataset, run.store).secret {
        from.push(workload::secret_env(&s, SOURCE_ENV_PREFIX));
    }
    if let Some(s) = &run.store.secret {
        from.push(workload::secret_env(s, ARTIFACTS_ENV_PREFIX));
    }
    from
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).unwrap()
    }

    const TR: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: churn, namespace: ml, uid: 7d1c0000-0000-0000-0000-000000000001, generation: 2}
spec:
  dataset: {name: customers}
  model: {name: churn}
  image: ghcr.io/acme/train:v3
  command: [python, train.py]
  params: {lr: "0.01"}
  resources: {limits: {nvidia.com/gpu: "1"}}
  nodeSelector: {gpu: "true"}
  tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
  backoffLimit: 2
  activeDeadlineSeconds: 600
"#;

    const DS: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {name: customers, namespace: ml}
spec:
  source: {uri: "s3://data/customers/", endpoint: "http://127.0.0.1:18333", forcePathStyle: true, region: us-east-1, credentialsSecretRef: {name: keys}}
"#;

    fn version() -> DatasetVersion {
        from_yaml(
            "{id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, created: '2026-11-26T10:00:00Z', rows: 1, bytes: 1, files: 1, verdict: Accepted, location: 's3://art/ml/datasets/customers/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}",
        )
    }

    fn store() -> ArtifactStore {
        ArtifactStore {
            uri: "s3://art".into(),
            endpoint: Some("http://127.0.0.1:18333".into()),
            force_path_style: true,
            ..Default::default()
        }
    }

    fn container(job: &Job) -> &Container {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        &pod.containers[0]
    }

    fn env_of(job: &Job) -> BTreeMap<String, String> {
        let c = container(job);
        c.env
            .iter()
            .flatten()
            .map(|e| {
                (
                    e.name.clone(),
                    e.value.clone().unwrap_or_else(|| "<from field>".into()),
                )
            })
            .collect()
    }

    #[test]
    fn a_run_is_identified_by_its_spec_dataset_version_and_trigger() {
        let tr: TrainingRun = from_yaml(TR);
        let id = run_id(&tr, "v1", "");
        assert_eq!(run_id(&tr, "v1", ""), id, "deterministic");
        assert_ne!(run_id(&tr, "v2", ""), id);
        assert_ne!(run_id(&tr, "v1", "2026-11-26T03:00:00Z"), id);
        let mut edited = tr.clone();
        edited.metadata.generation = Some(3);
        assert_ne!(run_id(&edited, "v1", ""), id);
        let mut long = tr.clone();
        long.metadata.name = Some("x".repeat(200));
        assert!(
            name(&long, &id).len() + 6 <= 63,
            "room for an Indexed Job's pod suffix"
        );
    }

    #[test]
    fn the_job_carries_the_contract_the_users_settings_and_restricted_security() {
        let (tr, ds, v) = (
            from_yaml::<TrainingRun>(TR),
            from_yaml::<Dataset>(DS),
            version(),
        );
        let (job, service) = build(&Run {
            tr: &tr,
            dataset: &ds,
            version: &v,
            run_id: "r1",
            image: "ghcr.io/ciclo-dev/ciclo:v1",
            store: &store(),
            code: &super::super::code_source::CodeSource {
                repository: Some("http://git.example/ml-team.git".into()),
                revision: Some("main@sha1:4f1c".into()),
            },
        });
        assert!(service.is_none(), "one worker: no Service");
        assert_eq!(
            job.annotations()[labels::GIT_REVISION],
            "main@sha1:4f1c",
            "the run's code source, resolved when it started, stays on its Job"
        );
        let env = env_of(&job);
        assert_eq!(env[ENV_DATASET_URI], "s3://data/customers/");
        assert_eq!(env[ENV_DATASET_VERSION], v.id);
        assert!(
            env[ENV_DATASET_MANIFEST].ends_with("/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/manifest.json")
        );
        assert_eq!(env[ENV_OUTPUT_URI], "s3://art/ml/models/churn/runs/r1");
        assert_eq!(env[ENV_PARAMS], r#"{"lr":"0.01"}"#);
        assert_eq!(env["CICLO_SOURCE_AWS_ENDPOINT"], "http://127.0.0.1:18333");
        assert_eq!(
            env["CICLO_SOURCE_AWS_VIRTUAL_HOSTED_STYLE_REQUEST"],
            "false"
        );
        assert_eq!(env["CICLO_ARTIFACTS_AWS_ALLOW_HTTP"], "true");
        assert!(
            !env.contains_key(ENV_TRAINER),
            "a user image gets no built-in settings"
        );
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(
            (spec.backoff_limit, spec.active_deadline_seconds),
            (Some(2), Some(600))
        );
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("ghcr.io/acme/train:v3"));
        assert_eq!(
            c.command.as_deref(),
            Some(&["python".to_string(), "train.py".to_string()][..])
        );
        let gpus = &c.resources.as_ref().unwrap().limits.as_ref().unwrap()["nvidia.com/gpu"];
        assert_eq!(gpus.0, "1");
        assert_eq!(pod.node_selector.as_ref().unwrap()["gpu"], "true");
        assert_eq!(
            pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("gpu")
        );
        assert_eq!(
            c.env_from.as_ref().unwrap()[0].prefix.as_deref(),
            Some(SOURCE_ENV_PREFIX)
        );
        pod_security::assert_restricted(pod);
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("TrainingRun", Some(true))
        );
    }

    #[test]
    fn a_team_store_gives_the_job_its_uri_its_keys_and_its_workload_identity() {
        let (mut tr, ds, v) = (
            from_yaml::<TrainingRun>(TR),
            from_yaml::<Dataset>(DS),
            version(),
        );
        let team = ArtifactStore {
            uri: "s3://team-a-models/ciclo".into(),
            secret: Some("team-a-store".into()),
            service_account: Some("ml-workloads".into()),
            ..Default::default()
        };
        let code = super::super::code_source::CodeSource::default();
        let run = |tr: &TrainingRun| {
            build(&Run {
                tr,
                dataset: &ds,
                version: &v,
                run_id: "r1",
                image: "ghcr.io/ciclo-dev/ciclo:v1",
                store: &team,
                code: &code,
            })
            .0
        };
        let job = run(&tr);
        assert_eq!(
            env_of(&job)[ENV_OUTPUT_URI],
            "s3://team-a-models/ciclo/ml/models/churn/runs/r1"
        );
        let from: Vec<_> = container(&job)
            .env_from
            .iter()
            .flatten()
            .map(|f| {
                (
                    f.prefix.clone().unwrap_or_default(),
                    f.secret_ref.as_ref().unwrap().name.clone(),
                )
            })
            .collect();
        assert_eq!(
            from,
            [
                (SOURCE_ENV_PREFIX.to_string(), "keys".to_string()),
                (ARTIFACTS_ENV_PREFIX.to_string(), "team-a-store".to_string())
            ],
            "the namespace's own keys, and no other"
        );
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("ml-workloads"));
        assert_eq!(
            pod.automount_service_account_token,
            Some(false),
            "workload identity needs no API token"
        );
        // A run that names its own ServiceAccount keeps it, and its token.
        tr.spec.service_account_name = Some("trainer".into());
        let pod = run(&tr).spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("trainer"));
        assert_eq!(pod.automount_service_account_token, None);
    }

    #[test]
    fn the_built_in_trainer_runs_ciclo_train_with_its_settings() {
        let mut tr: TrainingRun = from_yaml(TR);
        tr.spec.image = None;
        tr.spec.command.clear();
        tr.spec.trainer = Some(from_yaml(
            "{algorithm: LogisticRegression, target: churned}",
        ));
        let (ds, v) = (from_yaml::<Dataset>(DS), version());
        let (job, _) = build(&Run {
            tr: &tr,
            dataset: &ds,
            version: &v,
            run_id: "r1",
            image: "ciclo:v1",
            store: &store(),
            code: &Default::default(),
        });
        let c = container(&job);
        assert_eq!(c.image.as_deref(), Some("ciclo:v1"));
        assert_eq!(c.args.as_deref(), Some(&["train".to_string()][..]));
        assert!(env_of(&job)[ENV_TRAINER].contains("\"target\":\"churned\""));
    }

    #[test]
    fn several_workers_get_an_indexed_job_a_headless_service_and_torchrun_variables() {
        let mut tr: TrainingRun = from_yaml(TR);
        tr.spec.workers = 2;
        let (ds, v) = (from_yaml::<Dataset>(DS), version());
        let (job, service) = build(&Run {
            tr: &tr,
            dataset: &ds,
            version: &v,
            run_id: "r1",
            image: "i",
            store: &store(),
            code: &Default::default(),
        });
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(2), Some(2)));
        let service = service.expect("a headless Service");
        let ss = service.spec.as_ref().unwrap();
        assert_eq!(ss.cluster_ip.as_deref(), Some("None"));
        assert_eq!(service.metadata.name, job.metadata.name);
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.subdomain.as_deref(), job.metadata.name.as_deref());
        let env = env_of(&job);
        let job_name = job.metadata.name.clone().unwrap();
        assert_eq!(env["MASTER_ADDR"], format!("{job_name}-0.{job_name}"));
        assert_eq!(
            (env["MASTER_PORT"].as_str(), env["WORLD_SIZE"].as_str()),
            ("29500", "2")
        );
        assert_eq!(env["PET_NNODES"], "2");
        let rank = pod.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "RANK")
            .unwrap();
        assert!(
            rank.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path
                .contains("job-completion-index")
        );
    }
}
