//! Smoke tests of the local cluster and its node: what a user of a real cluster relies on —
//! Jobs finish with their exit codes and messages, Deployments become Available and serve,
//! deletion and garbage collection work, and what the process node cannot run is refused out
//! loud. Each test runs in a fresh namespace.

use ciclo_e2e::{
    TestNamespace, client, from_yaml, kubectl, on_process_node, pod_finished, wait_event, wait_for,
    wait_until,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

fn job_finished(job: Option<&Job>) -> bool {
    job.and_then(|j| j.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

fn job_condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// Creates the Job in `yaml`, waits until it completes or fails, and returns it with its pod.
async fn finished_job(client: &kube::Client, ns: &str, yaml: &str) -> (Job, Pod) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job: Job = from_yaml(yaml);
    let name = job.metadata.name.clone().expect("the Job has a name");
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let job = wait_until(jobs, &name, TIMEOUT, job_finished)
        .await
        .unwrap();
    let pod = only_pod(
        &Api::namespaced(client.clone(), ns),
        &format!("job-name={name}"),
    )
    .await;
    (job, pod)
}

async fn only_pod(pods: &Api<Pod>, selector: &str) -> Pod {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .expect("listing pods");
    assert_eq!(
        list.items.len(),
        1,
        "expected one pod for {selector}: {:#?}",
        list.items
    );
    list.items.into_iter().next().unwrap()
}

fn terminated(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .unwrap_or_else(|| panic!("container has not terminated: {pod:#?}"))
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn the_control_plane_runs_the_pinned_release_and_the_node_is_ready() {
    let client = client().await.unwrap();
    assert_eq!(
        client.apiserver_version().await.unwrap().git_version,
        "v1.36.3"
    );
    let (ok, out, err) = kubectl(&["version", "--client", "-o", "json"], None);
    assert!(ok, "{err}");
    assert!(out.contains("\"gitVersion\": \"v1.36.3\""), "{out}");
    let node = Api::<k8s_openapi::api::core::v1::Node>::all(client)
        .get("ciclo-node")
        .await
        .unwrap();
    let status = node.status.unwrap();
    assert!(
        status
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    assert_eq!(status.node_info.unwrap().kubelet_version, "v1.36.3");
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_job_that_succeeds_completes_and_its_logs_are_readable() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "job-ok").await.unwrap();
    let (job, pod) = finished_job(
        &client,
        &ns.name,
        r#"
metadata: {name: ok}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: localhost/ciclo-e2e/busybox:1.35
        command: [sh, -c, 'echo "hello from $POD_NAME at $POD_IP"']
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
"#,
    )
    .await;
    assert!(
        job_condition(&job, "Complete"),
        "job did not complete: {:#?}",
        job.status
    );

    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let ip: std::net::Ipv4Addr = status.pod_ip.as_deref().unwrap().parse().unwrap();
    let t = terminated(&pod);
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));

    let (ok, logs, err) = kubectl(&["-n", &ns.name, "logs", "job/ok"], None);
    assert!(ok, "kubectl logs failed: {err}");
    let name = pod.metadata.name.unwrap();
    assert_eq!(logs.trim(), format!("hello from {name} at {ip}"));
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_failing_job_shows_its_exit_code_and_termination_message() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "job-fail").await.unwrap();
    let (job, pod) = finished_job(
        &client,
        &ns.name,
        r#"
metadata: {name: fail}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: localhost/ciclo-e2e/busybox:1.35
        command: [sh, -c, 'printf "disk full" > /dev/termination-log; exit 3']
"#,
    )
    .await;
    assert!(
        job_condition(&job, "Failed"),
        "job did not fail: {:#?}",
        job.status
    );

    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    let t = terminated(&pod);
    assert_eq!(t.exit_code, 3);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert_eq!(t.message.as_deref(), Some("disk full"));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_container_that_fails_once_is_restarted_and_keeps_its_empty_dir() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "restart").await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pod: Pod = from_yaml(
        r#"
metadata: {name: flaky}
spec:
  restartPolicy: OnFailure
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: main
    image: localhost/ciclo-e2e/busybox:1.35
    command: [sh, -c, 'if [ -f /scratch/ran ]; then exit 0; fi; touch /scratch/ran; exit 1']
    volumeMounts: [{name: scratch, mountPath: /scratch}]
"#,
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pod = wait_until(pods, "flaky", TIMEOUT, pod_finished)
        .await
        .unwrap();
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let c = &status.container_statuses.unwrap()[0];
    assert_eq!(c.restart_count, 1, "{c:#?}");
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("last state");
    assert_eq!(last.exit_code, 1);
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn secrets_and_config_maps_reach_the_container_as_env_and_files() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "config").await.unwrap();
    let secret: Secret =
        from_yaml("metadata: {name: creds}\nstringData: {user: ada, password: s3cret}");
    Api::<Secret>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let cm: ConfigMap = from_yaml("metadata: {name: settings}\ndata: {mode: fast}");
    Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pod: Pod = from_yaml(
        r#"
metadata: {name: reader, labels: {app: reader}}
spec:
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 1000}
  volumes:
  - {name: creds, secret: {secretName: creds, items: [{key: password, path: pw}]}}
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  containers:
  - name: main
    image: localhost/ciclo-e2e/busybox:1.35
    command: [sh, -c, 'printf "%s" "$(id -u) $USER $(cat /etc/creds/pw) $MODE $(cat /etc/info/labels)" > /dev/termination-log']
    env:
    - {name: USER, valueFrom: {secretKeyRef: {name: creds, key: user}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}
    volumeMounts:
    - {name: creds, mountPath: /etc/creds}
    - {name: info, mountPath: /etc/info}
"#,
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pod = wait_until(pods, "reader", TIMEOUT, pod_finished)
        .await
        .unwrap();
    let t = terminated(&pod);
    assert_eq!(
        t.message.as_deref(),
        Some("1000 ada s3cret fast app=\"reader\""),
        "{t:#?}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_deployment_becomes_available_and_each_pod_answers_at_its_address() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "deploy").await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&PostParams::default(), &web_deployment("web", 2))
        .await
        .unwrap();
    let svc: Service = from_yaml(
        "metadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}",
    );
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    services.create(&PostParams::default(), &svc).await.unwrap();
    wait_until(deployments, "web", TIMEOUT, deployment_available(2))
        .await
        .unwrap();

    // Each ready pod the Service selects answers at its own address (what its EndpointSlice
    // lists; kubelet_node.rs goes through the Service itself).
    let answers = service_backends(&client, &ns.name, "web").await;
    assert_eq!(answers.len(), 2, "{answers:?}");
    for (pod, _, body) in &answers {
        assert_eq!(body.trim(), format!("hello from {pod}"));
    }
    assert_ne!(answers[0].1, answers[1].1, "each pod has its own address");
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn deleting_a_deployment_stops_and_removes_its_pods() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "delete").await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deployments
        .create(&PostParams::default(), &web_deployment("gone", 2))
        .await
        .unwrap();
    wait_until(
        deployments.clone(),
        "gone",
        TIMEOUT,
        deployment_available(2),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let addresses: Vec<String> = pods
        .list(&ListParams::default().labels("app=gone"))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(addresses.len(), 2);

    deployments
        .delete("gone", &DeleteParams::background())
        .await
        .unwrap();
    wait_for(TIMEOUT, "the deployment's pods to be removed", || async {
        Ok(pods
            .list(&ListParams::default().labels("app=gone"))
            .await?
            .items
            .is_empty())
    })
    .await
    .unwrap();
    for ip in addresses {
        let answer = http_get(&format!("http://{ip}:8080/")).await;
        assert!(
            answer.is_err(),
            "the server at {ip} still answers after its pod was removed"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn an_object_is_garbage_collected_with_its_owner() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "gc").await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let owner = cms
        .create(
            &PostParams::default(),
            &from_yaml("metadata: {name: owner}"),
        )
        .await
        .unwrap();
    let dependent: ConfigMap = from_yaml(&format!(
        "metadata: {{name: dependent, ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {}}}]}}",
        owner.metadata.uid.unwrap()
    ));
    cms.create(&PostParams::default(), &dependent)
        .await
        .unwrap();
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    wait_for(TIMEOUT, "the dependent to be garbage-collected", || async {
        Ok(cms.get_opt("dependent").await?.is_none())
    })
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_pod_with_an_unsupported_volume_is_reported_and_never_run() {
    let client = client().await.unwrap();
    if !on_process_node(&client).await {
        return;
    }
    let ns = TestNamespace::new(&client, "unsupported").await.unwrap();
    let marker = std::env::temp_dir().join(format!("ciclo-e2e-{}-ran", ns.name));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pod: Pod = from_yaml(&format!(
        r#"
metadata: {{name: hostpath}}
spec:
  restartPolicy: Never
  volumes: [{{name: host, hostPath: {{path: /etc}}}}]
  containers:
  - name: main
    image: localhost/ciclo-e2e/busybox:1.35
    command: [touch, "{}"]
    volumeMounts: [{{name: host, mountPath: /host}}]
"#,
        marker.display()
    ));
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pod = wait_until(pods, "hostpath", TIMEOUT, |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Failed")
    })
    .await
    .unwrap();
    let status = pod.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("UnsupportedPodSpec"));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("spec.volumes[0] (host)") && message.contains("hostPath"),
        "{message}"
    );
    assert!(
        !marker.exists(),
        "the container ran although its pod was refused"
    );

    let event = wait_event(&client, &ns.name, "UnsupportedPodSpec", "")
        .await
        .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

fn web_deployment(name: &str, replicas: i32) -> Deployment {
    from_yaml(&format!(
        r#"
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 5
      securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
      - name: web
        image: localhost/ciclo-e2e/busybox:1.35
        command: [sh, -c, 'echo "hello from $POD_NAME" > /tmp/www/index.html && exec busybox httpd -f -p $POD_IP:8080 -h /tmp/www']
        volumeMounts: [{{name: www, mountPath: /tmp/www}}]
        env:
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /, port: http}}, periodSeconds: 1}}
        securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
      # Each pod's own page (the process node's pods share the host's /tmp).
      volumes: [{{name: www, emptyDir: {{}}}}]
"#
    ))
}

fn deployment_available(replicas: i32) -> impl Fn(Option<&Deployment>) -> bool {
    move |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref()).is_some_and(|s| {
            s.available_replicas == Some(replicas)
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Available" && c.status == "True")
        })
    }
}

/// `(pod, address, answer)` for every ready pod `service` selects, asked at its target port.
async fn service_backends(
    client: &kube::Client,
    ns: &str,
    service: &str,
) -> Vec<(String, std::net::Ipv4Addr, String)> {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(service)
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    let selector = spec
        .selector
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let target = spec.ports.unwrap()[0].target_port.clone().unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap();
    let mut out = Vec::new();
    for pod in pods.items {
        let status = pod.status.as_ref().unwrap();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            continue;
        }
        let port = match &target {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => {
                pod.spec.as_ref().unwrap().containers[0]
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .unwrap()
                    .container_port
            }
        };
        let ip: std::net::Ipv4Addr = status.pod_ip.as_deref().unwrap().parse().unwrap();
        let body = http_get(&format!("http://{ip}:{port}/")).await.unwrap();
        out.push((pod.metadata.name.clone().unwrap(), ip, body));
    }
    out
}

async fn http_get(url: &str) -> anyhow::Result<String> {
    ciclo_e2e::init_tls();
    // Straight to the pod's address: never through a proxy.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    Ok(client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}
