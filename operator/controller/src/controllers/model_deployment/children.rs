//! What a ModelDeployment owns: one Deployment per served version (`<md>-v<n>`), one Service
//! over every ready serving pod of the ModelDeployment, and with `autoscaling` a
//! HorizontalPodAutoscaler on the stable version.

use crate::controllers::artifact_store::ArtifactStore;
use crate::controllers::{pod_security, workload};
use ciclo_api::labels;
use ciclo_api::model_deployment::ModelDeployment;
use ciclo_api::model_version::ModelVersion;
use ciclo_core::contract::{self, ARTIFACTS_ENV_PREFIX};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec,
    SleepAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource as _, ResourceExt as _};
use std::collections::BTreeMap;

/// The serving container's name.
pub const CONTAINER: &str = "server";
/// Readiness path of the Open Inference Protocol (a user runtime must answer it too).
pub const READY_PATH: &str = "/v2/health/ready";
/// Liveness path of the Open Inference Protocol.
pub const LIVE_PATH: &str = "/v2/health/live";
/// Seconds a stopping serving pod has: its server keeps answering while endpoints update
/// (`ciclo serve --drain-seconds`), then finishes what is in flight.
const GRACE_SECONDS: i64 = 30;
/// Seconds a stopping pod of your own runtime keeps serving before it gets SIGTERM: runtimes
/// such as MLServer and Triton stop at once on the signal, while the Service's endpoints take a
/// moment to drop the pod, and requests sent to it meanwhile would fail. (`ciclo serve` drains
/// by itself.)
const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// The port the built-in server serves the protocol's gRPC half on (KServe's convention).
pub const GRPC_PORT: i32 = 8081;

/// The Deployment serving version `n` of `md`'s model.
pub fn deployment_name(md: &ModelDeployment, n: i64) -> String {
    format!("{}-v{n}", md.name_any())
}

fn labels(md: &ModelDeployment, n: i64) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::DEPLOYMENT.into(), md.name_any()),
        (labels::MODEL.into(), md.spec.model.name.clone()),
        (labels::VERSION.into(), n.to_string()),
        ("app.kubernetes.io/managed-by".into(), "ciclo".into()),
        ("app.kubernetes.io/component".into(), "model-server".into()),
    ])
}

fn meta(md: &ModelDeployment, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: md.namespace(),
        labels: Some(labels),
        owner_references: md.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// Keeps the pod template `running` serves with in `d` (its replacement), changing only the
/// rest (replicas, labels): while a canary step runs, a new template — an upgraded operator's
/// image, which the built-in runtime runs, or any other change — would replace the pods
/// serving it, so the step would be judged on other pods than those it started with, and a
/// fault of the new image would be blamed on the model. The new template is applied once no
/// rollout is under way.
pub fn keep_pod_template(d: &mut Deployment, running: &Deployment) {
    if let (Some(spec), Some(template)) = (
        d.spec.as_mut(),
        running.spec.as_ref().map(|s| s.template.clone()),
    ) {
        spec.template = template;
    }
}

/// Where the serving pods of `md` write the requests they capture.
pub fn capture_uri(store: &str, md: &ModelDeployment) -> String {
    crate::controllers::data_source::capture_uri(
        store,
        &md.namespace().unwrap_or_default(),
        &md.name_any(),
    )
}

/// The Deployment serving `mv` with `replicas` pods (`None`: left to the autoscaler).
pub fn deployment(
    md: &ModelDeployment,
    mv: &ModelVersion,
    replicas: Option<i32>,
    image: &str,
    store: &ArtifactStore,
) -> Deployment {
    let n = mv.spec.version;
    let labels = labels(md, n);
    let runtime = &md.spec.runtime;
    let port = runtime.port;
    let probe = |path: &str, period| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(3),
        ..Default::default()
    };
    let var = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let mut env = vec![
        // Pods bind their own address: a real pod's interface, or the process node's
        // per-pod loopback address.
        EnvVar {
            name: "CICLO_POD_IP".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        var(contract::ENV_MODEL_URI, mv.spec.artifact.uri.clone()),
        var(contract::ENV_MODEL_DIGEST, mv.spec.artifact.digest.clone()),
        var(contract::ENV_MODEL_NAME, mv.spec.model.clone()),
        var(contract::ENV_MODEL_VERSION, n.to_string()),
        var(contract::ENV_PORT, port.to_string()),
    ];
    if let Some(format) = &mv.spec.artifact.format {
        env.push(var(contract::ENV_MODEL_FORMAT, format.clone()));
    }
    // The built-in server's capture (the API refuses it with a runtime image), under the
    // artifact store, with its credentials.
    let root = (!store.uri.is_empty()).then_some(store.uri.as_str());
    if let (Some(capture), Some(root), None) = (&md.spec.capture, root, &runtime.image) {
        env.extend([
            var("CICLO_CAPTURE_URI", capture_uri(root, md)),
            var("CICLO_CAPTURE_RATIO", capture.ratio.to_string()),
            var(
                "CICLO_CAPTURE_FLUSH_SECONDS",
                capture.flush_seconds.to_string(),
            ),
            var("CICLO_CAPTURE_EXCLUDE", capture.exclude.join(",")),
            var("CICLO_CAPTURE_HASH", capture.hash.join(",")),
            var(
                "CICLO_CAPTURE_RETENTION_DAYS",
                capture.retention_days.to_string(),
            ),
        ]);
        // The hashes' key, straight from the Secret: never a literal value in the spec.
        if let Some(key) = &capture.hash_key_secret_ref {
            env.push(EnvVar {
                name: "CICLO_CAPTURE_HASH_KEY".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(k8s_openapi::api::core::v1::SecretKeySelector {
                        name: key.name.clone(),
                        key: key.key.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    // Skew: the built-in server counts inputs into the bins of the profile of the dataset
    // version this model was trained on (kept where that Dataset's check wrote it).
    if let (Some(_), Some(root), None) = (&md.spec.skew, root, &runtime.image) {
        let dataset = &mv.spec.lineage.dataset;
        env.push(var(
            "CICLO_BASELINE_PROFILE",
            format!(
                "{}/{}/profile.json",
                crate::controllers::data_source::dataset_uri(
                    root,
                    &md.namespace().unwrap_or_default(),
                    &dataset.name
                ),
                dataset.version
            ),
        ));
    }
    env.extend(workload::store_settings_env(
        ARTIFACTS_ENV_PREFIX,
        store.endpoint.as_deref(),
        store.region.as_deref(),
        store.force_path_style,
    ));
    let (image, command, args) = match &runtime.image {
        Some(image) => (
            image.clone(),
            (!runtime.command.is_empty()).then(|| runtime.command.clone()),
            (!runtime.args.is_empty()).then(|| runtime.args.clone()),
        ),
        // `ciclo serve` reads the model settings from the CICLO_MODEL_* variables.
        None => (
            image.to_string(),
            None,
            Some(vec![
                "serve".into(),
                "--address=$(CICLO_POD_IP)".into(),
                format!("--port={port}"),
                format!("--grpc-port={GRPC_PORT}"),
            ]),
        ),
    };
    // The metrics endpoint analysis reads, named when the runtime serves it on a port of
    // its own (MLServer's 8082, Triton's 8002), so scrapers and people see it too.
    let mut ports = vec![ContainerPort {
        name: Some("http".into()),
        container_port: port,
        ..Default::default()
    }];
    if runtime.image.is_none() {
        ports.push(ContainerPort {
            name: Some("grpc".into()),
            container_port: GRPC_PORT,
            ..Default::default()
        });
    }
    let metrics_port = runtime.metrics_query().port;
    if metrics_port != port {
        ports.push(ContainerPort {
            name: Some("metrics".into()),
            container_port: metrics_port,
            ..Default::default()
        });
    }
    let container = Container {
        name: CONTAINER.into(),
        image: Some(image),
        command,
        args,
        env: Some(env),
        env_from: store
            .secret
            .as_ref()
            .map(|s| vec![workload::secret_env(s, ARTIFACTS_ENV_PREFIX)]),
        ports: Some(ports),
        // Every second: a new version's first ready answer is what a rollout waits for, and the
        // probe is one cheap local request.
        readiness_probe: Some(probe(READY_PATH, 1)),
        liveness_probe: Some(probe(LIVE_PATH, 10)),
        resources: md.spec.resources.clone(),
        security_context: Some(pod_security::container()),
        lifecycle: runtime.image.is_some().then(|| Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SLEEP_SECONDS,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Deployment {
        metadata: meta(md, deployment_name(md, n), labels.clone()),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (labels::DEPLOYMENT.into(), md.name_any()),
                    (labels::VERSION.into(), n.to_string()),
                ])),
                ..Default::default()
            },
            // A new pod must be ready before an old one goes, so scaling never drops capacity.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    security_context: Some(pod_security::pod()),
                    // Workload identity, if the namespace's store names a ServiceAccount for it.
                    service_account_name: store.service_account.clone(),
                    // Serving needs no API access.
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(GRACE_SECONDS),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Service over every ready serving pod of `md`, whatever its version: traffic splits
/// between versions by their ready pods (replica ratio).
pub fn service(md: &ModelDeployment) -> Service {
    Service {
        metadata: meta(
            md,
            md.name_any(),
            BTreeMap::from([
                (labels::DEPLOYMENT.into(), md.name_any()),
                ("app.kubernetes.io/managed-by".into(), "ciclo".into()),
            ]),
        ),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(labels::DEPLOYMENT.into(), md.name_any())])),
            ports: Some(service_ports(md)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ports of the Services over the serving pods: `http`, and for the built-in server `grpc`
/// (HTTP/2 without TLS, which `appProtocol` tells Gateways and meshes so they route it as
/// such).
pub fn service_ports(md: &ModelDeployment) -> Vec<ServicePort> {
    let mut ports = vec![ServicePort {
        name: Some("http".into()),
        port: md.spec.runtime.port,
        target_port: Some(IntOrString::String("http".into())),
        ..Default::default()
    }];
    if md.spec.runtime.image.is_none() {
        ports.push(ServicePort {
            name: Some("grpc".into()),
            port: GRPC_PORT,
            target_port: Some(IntOrString::String("grpc".into())),
            app_protocol: Some("kubernetes.io/h2c".into()),
            ..Default::default()
        });
    }
    ports
}

/// The autoscaler of the stable version's Deployment, when `spec.autoscaling` asks for one.
pub fn autoscaler(md: &ModelDeployment, stable: i64) -> Option<HorizontalPodAutoscaler> {
    let a = md.spec.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: meta(
            md,
            md.name_any(),
            BTreeMap::from([(labels::DEPLOYMENT.into(), md.name_any())]),
        ),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: deployment_name(md, stable),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization_percentage),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(spec: &str) -> ModelDeployment {
        serde_yaml::from_str(&format!(
            "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: web, namespace: ml, uid: u1}}\nspec: {spec}"
        ))
        .unwrap()
    }

    fn mv() -> ModelVersion {
        serde_yaml::from_str(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {name: iris-3, namespace: ml}
spec:
  model: iris
  version: 3
  artifact: {uri: "s3://a/ml/models/iris/runs/r3/model.json", digest: "blake3:ab", format: ciclo.dev/model/v1}
  lineage: {trainingRun: iris, runId: r3, dataset: {name: iris, version: d}, image: ciclo}
"#,
        )
        .unwrap()
    }

    fn store() -> ArtifactStore {
        ArtifactStore {
            uri: "s3://a".into(),
            endpoint: Some("http://127.0.0.1:18333".into()),
            region: None,
            force_path_style: true,
            secret: Some("store-keys".into()),
            service_account: None,
        }
    }

    fn env(d: &Deployment) -> BTreeMap<String, String> {
        let c = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        c.env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
            .collect()
    }

    /// A container's ports as (name, number).
    fn named_ports(c: &Container) -> Vec<(&str, i32)> {
        c.ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref().unwrap(), p.container_port))
            .collect()
    }

    #[test]
    fn the_built_in_server_gets_the_model_its_digest_and_restricted_security() {
        let d = deployment(
            &md("{model: {name: iris}}"),
            &mv(),
            Some(2),
            "ciclo:dev",
            &store(),
        );
        assert_eq!(d.metadata.name.as_deref(), Some("web-v3"));
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert!(c.lifecycle.is_none(), "ciclo serve drains by itself");
        assert_eq!(c.image.as_deref(), Some("ciclo:dev"));
        assert_eq!(c.args.as_ref().unwrap()[0], "serve");
        assert!(
            c.args
                .as_ref()
                .unwrap()
                .contains(&"--grpc-port=8081".to_string())
        );
        let ports = named_ports(c);
        assert_eq!(ports, [("http", 8080), ("grpc", 8081)]);
        let env = env(&d);
        assert_eq!(env["CICLO_MODEL_DIGEST"], "blake3:ab");
        assert_eq!(env["CICLO_MODEL_VERSION"], "3");
        assert_eq!(
            env["CICLO_ARTIFACTS_AWS_ENDPOINT"],
            "http://127.0.0.1:18333"
        );
        assert_eq!(
            c.env_from.as_ref().unwrap()[0].prefix.as_deref(),
            Some("CICLO_ARTIFACTS_"),
            "keys come from the Secret, never inline"
        );
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some(READY_PATH)
        );
        pod_security::assert_restricted(pod);
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("ModelDeployment", Some(true))
        );
    }

    /// The Deployment of version `mv()` under the ModelDeployment spec `spec`.
    fn built(spec: &str) -> Deployment {
        deployment(&md(spec), &mv(), Some(1), "ciclo:dev", &store())
    }

    #[test]
    fn capture_goes_under_the_artifact_store_with_its_settings() {
        let d = built("{model: {name: iris}, capture: {ratio: 0.1, exclude: [ssn, input]}}");
        let env = env(&d);
        assert_eq!(env["CICLO_CAPTURE_URI"], "s3://a/ml/captures/web");
        assert_eq!(env["CICLO_CAPTURE_RATIO"], "0.1");
        assert_eq!(env["CICLO_CAPTURE_FLUSH_SECONDS"], "60");
        assert_eq!(env["CICLO_CAPTURE_EXCLUDE"], "ssn,input");
        assert_eq!(env["CICLO_CAPTURE_RETENTION_DAYS"], "30");
        let hashed = built(
            "{model: {name: iris}, capture: {hash: [ssn], hashKeySecretRef: {name: capture-key, key: key}}}",
        );
        assert_eq!(self::env(&hashed)["CICLO_CAPTURE_HASH"], "ssn");
        let container = &hashed.spec.unwrap().template.spec.unwrap().containers[0];
        let key = container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == "CICLO_CAPTURE_HASH_KEY")
            .unwrap();
        assert_eq!(key.value, None, "the key is never a literal value");
        let from = key
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("capture-key", "key")
        );
        let off = built("{model: {name: iris}}");
        assert!(!self::env(&off).contains_key("CICLO_CAPTURE_URI"));
    }

    #[test]
    fn skew_gives_the_server_the_profile_of_the_data_the_model_was_trained_on() {
        let d = built("{model: {name: iris}, skew: {maxDistance: 0.2}}");
        let lineage = &mv().spec.lineage.dataset;
        assert_eq!(
            env(&d)["CICLO_BASELINE_PROFILE"],
            format!(
                "s3://a/ml/datasets/{}/{}/profile.json",
                lineage.name, lineage.version
            )
        );
        let off = built("{model: {name: iris}}");
        assert!(!env(&off).contains_key("CICLO_BASELINE_PROFILE"));
    }

    #[test]
    fn a_user_runtime_gets_its_image_args_and_the_model_settings() {
        let d = deployment(
            &md(
                "{model: {name: iris}, runtime: {image: 'me/torchserve:1', args: [--x], port: 9000}}",
            ),
            &mv(),
            None,
            "ciclo:dev",
            &store(),
        );
        let c = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(c.image.as_deref(), Some("me/torchserve:1"));
        assert_eq!(c.command, None, "the image's entrypoint");
        assert_eq!(c.args, Some(vec!["--x".to_string()]));
        assert_eq!(env(&d)["CICLO_PORT"], "9000");
        let ports: Vec<_> = c.ports.iter().flatten().map(|p| p.container_port).collect();
        assert_eq!(ports, [9000], "metrics on the serving port");
        let sleep = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref()?.sleep.as_ref());
        assert_eq!(
            sleep.map(|s| s.seconds),
            Some(PRE_STOP_SLEEP_SECONDS),
            "it serves a moment longer while the Service drops it"
        );
        assert_eq!(
            env(&d)["CICLO_MODEL_URI"],
            "s3://a/ml/models/iris/runs/r3/model.json"
        );
        assert_eq!(d.spec.unwrap().replicas, None, "left to the autoscaler");
    }

    #[test]
    fn a_runtime_with_its_own_command_and_metrics_port_gets_both() {
        let d = deployment(
            &md(
                "{model: {name: iris}, runtime: {image: 'seldonio/mlserver:1.7.1', command: [mlserver, start, /models], metrics: {preset: MLServer}}}",
            ),
            &mv(),
            Some(1),
            "ciclo:dev",
            &store(),
        );
        let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            c.command.as_deref(),
            Some(&["mlserver".to_string(), "start".into(), "/models".into()][..])
        );
        assert_eq!(c.args, None);
        let ports = named_ports(c);
        assert_eq!(ports, [("http", 8080), ("metrics", 8082)]);
    }

    #[test]
    fn the_service_selects_every_version_and_the_autoscaler_the_stable_one() {
        let m = md("{model: {name: iris}, autoscaling: {minReplicas: 2, maxReplicas: 5}}");
        let s = service(&m).spec.unwrap();
        assert_eq!(
            s.selector.unwrap(),
            BTreeMap::from([(labels::DEPLOYMENT.to_string(), "web".to_string())])
        );
        // gRPC on its own port, marked as HTTP/2 for whatever routes it.
        let ports: Vec<_> = s
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.as_deref().unwrap(),
                    p.port,
                    p.app_protocol.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("http", 8080, None),
                ("grpc", 8081, Some("kubernetes.io/h2c"))
            ]
        );
        let own = md("{model: {name: iris}, runtime: {image: 'me/server:1'}}");
        assert_eq!(service(&own).spec.unwrap().ports.unwrap().len(), 1);
        let hpa = autoscaler(&m, 3).unwrap().spec;
        assert_eq!(hpa.scale_target_ref.name, "web-v3");
        assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(2), 5));
        assert!(autoscaler(&md("{model: {name: iris}}"), 3).is_none());
    }

    #[test]
    fn a_rollout_under_way_keeps_the_template_its_pods_serve_with_and_takes_the_new_size() {
        let (md, mv) = (md("{model: {name: iris, track: LatestBlessed}}"), mv());
        let running = deployment(&md, &mv, Some(2), "ghcr.io/ciclo-dev/ciclo:0.1.0", &store());
        let mut next = deployment(&md, &mv, Some(3), "ghcr.io/ciclo-dev/ciclo:0.2.0", &store());
        keep_pod_template(&mut next, &running);
        let spec = next.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.template,
            running.spec.as_ref().unwrap().template,
            "no pod is replaced"
        );
    }
}
