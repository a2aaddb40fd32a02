//! The node's kubelet duties beyond the smoke tests: init containers, probes that gate
//! readiness and restart containers, pod deadlines, and (the process node's) GPUs.

use ciclo_e2e::{TestNamespace, client, from_yaml, wait_event, wait_until};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

async fn create(client: &kube::Client, ns: &str, yaml: &str) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &from_yaml(yaml))
        .await
        .unwrap();
    pods
}

fn phase_is(phase: &'static str) -> impl Fn(Option<&Pod>) -> bool {
    move |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some(phase)
    }
}

fn ready(p: Option<&Pod>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn init_containers_run_first_and_a_readiness_probe_gates_ready() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "init-probe")
        .await
        .unwrap();
    let pods = create(
        &client,
        &ns.name,
        r#"
metadata: {name: gated}
spec:
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: prepare, image: localhost/ciclo-e2e/busybox:1.35, command: [sh, -c, 'echo prepared > /work/init'], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - name: main
    image: localhost/ciclo-e2e/busybox:1.35
    command: [sh, -c, 'cat /work/init; sleep 2; touch /work/ready; exec sleep 600']
    volumeMounts: [{name: work, mountPath: /work}]
    readinessProbe: {exec: {command: [test, -f, /work/ready]}, periodSeconds: 1}
"#,
    )
    .await;
    let pod = wait_until(pods, "gated", TIMEOUT, ready).await.unwrap();
    let status = pod.status.unwrap();
    let init = &status.init_container_statuses.unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
    let started = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .running
        .unwrap()
        .started_at
        .unwrap()
        .0;
    let ready_since = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .last_transition_time
        .unwrap()
        .0;
    assert!(
        ready_since.duration_since(started) >= jiff::SignedDuration::from_secs(1),
        "Ready at {ready_since}, only {} after the start: the probe did not gate it",
        ready_since.duration_since(started)
    );
    let (ok, logs, _) = ciclo_e2e::kubectl(&["-n", &ns.name, "logs", "gated", "-c", "main"], None);
    assert!(
        ok && logs.contains("prepared"),
        "the init container's output was not there first: {logs}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_failing_liveness_probe_restarts_the_container() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "liveness").await.unwrap();
    let pods = create(
        &client,
        &ns.name,
        r#"
metadata: {name: unhealthy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/ciclo-e2e/busybox:1.35
    command: [sleep, "600"]
    livenessProbe: {tcpSocket: {port: 9}, periodSeconds: 1, failureThreshold: 2}
"#,
    )
    .await;
    wait_until(pods, "unhealthy", TIMEOUT, |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs[0].restart_count >= 1)
    })
    .await
    .unwrap();
    wait_event(&client, &ns.name, "Unhealthy", "Liveness probe failed")
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_pod_past_its_active_deadline_fails() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "deadline").await.unwrap();
    let pods = create(
        &client,
        &ns.name,
        "metadata: {name: slow}\nspec: {restartPolicy: Never, activeDeadlineSeconds: 2, terminationGracePeriodSeconds: 1, containers: [{name: main, image: localhost/ciclo-e2e/busybox:1.35, command: [sleep, '600']}]}",
    )
    .await;
    let pod = wait_until(pods, "slow", TIMEOUT, phase_is("Failed"))
        .await
        .unwrap();
    assert_eq!(
        pod.status.unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn the_node_offers_gpus_and_a_pod_sees_the_ones_it_got() {
    let client = client().await.unwrap();
    if !ciclo_e2e::on_process_node(&client).await {
        return;
    }
    let node = Api::<Node>::all(client.clone())
        .get("ciclo-node")
        .await
        .unwrap();
    let capacity = node.status.unwrap().capacity.unwrap();
    let gpus: usize = capacity["nvidia.com/gpu"].0.parse().unwrap();
    assert!(gpus >= 1, "make cluster-up gives the node GPUs");
    let ns = TestNamespace::baseline(&client, "gpu").await.unwrap();
    let pods = create(
        &client,
        &ns.name,
        r#"
metadata: {name: trainer}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: localhost/ciclo-e2e/busybox:1.35
    command: [sh, -c, 'echo "$NVIDIA_VISIBLE_DEVICES" > /dev/termination-log']
    resources: {limits: {nvidia.com/gpu: 1}}
"#,
    )
    .await;
    let pod = wait_until(pods, "trainer", TIMEOUT, phase_is("Succeeded"))
        .await
        .unwrap();
    let message = pod.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap()
        .message
        .unwrap_or_default();
    let device: usize = message
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("one GPU index, got {message:?}"));
    assert!(device < gpus);
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_command_that_does_not_exist_is_a_start_error() {
    let client = client().await.unwrap();
    let ns = TestNamespace::baseline(&client, "start-error")
        .await
        .unwrap();
    let pods = create(
        &client,
        &ns.name,
        "metadata: {name: typo}\nspec: {restartPolicy: Never, containers: [{name: main, image: localhost/ciclo-e2e/busybox:1.35, command: [no-such-program]}]}",
    )
    .await;
    let pod = wait_until(pods, "typo", TIMEOUT, phase_is("Failed"))
        .await
        .unwrap();
    let t = pod.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (128, Some("StartError"))
    );
    assert!(
        t.message
            .unwrap_or_default()
            .contains("\"no-such-program\": executable file not found")
    );
}
