//! The kubelet node (`make cluster-up`; e2e/cluster/kubelet-node.sh): what a real node does
//! that a user's cluster relies on and the process node never proved — containers from images
//! under containerd as a non-root user with a read-only root filesystem, the restricted Pod
//! Security profile enforced by admission, logs and exec through the kubelet, Services through
//! kube-proxy and names through the cluster's DNS. The tests run inside the cluster's private
//! network namespace (e2e/cluster/in-cluster-netns.sh), as a program on a node would.

use ciclo_e2e::resources::apply;
use ciclo_e2e::{TestNamespace, client, images, kubectl};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use std::collections::BTreeSet;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

/// The pod of every test here: BusyBox under the restricted profile, its root read-only, a
/// writable emptyDir at /tmp.
fn restricted_pod(name: &str, labels: &str, command: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{{labels}}}}}
spec:
  securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}
  containers:
  - name: main
    image: {image}
    imagePullPolicy: IfNotPresent
    command: [sh, -c, '{command}']
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
    volumeMounts: [{{name: tmp, mountPath: /tmp}}]
  volumes: [{{name: tmp, emptyDir: {{}}}}]
"#,
        image = images::BUSYBOX
    )
}

fn wait_ready(ns: &str, what: &str) {
    let (ok, out, err) = kubectl(
        &[
            "-n",
            ns,
            "wait",
            "--for=condition=Ready",
            what,
            "--timeout=90s",
        ],
        None,
    );
    assert!(ok, "{what} did not become Ready: {out}{err}");
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn the_node_is_a_kubelet_on_containerd_at_its_own_address() {
    let client = client().await.unwrap();
    let node = Api::<Node>::all(client).get("ciclo-node").await.unwrap();
    let status = node.status.unwrap();
    let info = status.node_info.unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{info:?}"
    );
    assert_eq!(info.kubelet_version, "v1.36.3");
    assert_eq!(info.kube_proxy_version, "");
    let internal: Vec<_> = status
        .addresses
        .unwrap()
        .into_iter()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .collect();
    assert_eq!(internal, ["10.200.0.1"]);
    // What `kubectl get node -o wide` shows a user.
    let (ok, out, err) = kubectl(&["get", "node", "ciclo-node", "-o", "wide"], None);
    assert!(ok, "{err}");
    assert!(
        out.contains("containerd://") && out.contains("10.200.0.1"),
        "{out}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_container_runs_as_its_image_user_on_a_read_only_root_with_logs_and_exec() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "kubelet-pod").await.unwrap();
    apply(
        &ns.name,
        &restricted_pod(
            "shell",
            "app: shell",
            "echo started as $(id -u); sleep 3600",
        ),
    );
    wait_ready(&ns.name, "pod/shell");

    let (ok, logs, err) = kubectl(&["-n", &ns.name, "logs", "shell"], None);
    assert!(ok, "{err}");
    assert_eq!(logs.trim(), "started as 65532");

    let exec = |script: &str| {
        kubectl(
            &["-n", &ns.name, "exec", "shell", "--", "sh", "-c", script],
            None,
        )
    };
    // The root filesystem refuses a write, as on any cluster; the emptyDir takes it.
    let (ok, out, err) = exec("echo x > /probe");
    assert!(!ok, "a write to the read-only root succeeded: {out}");
    assert!(err.contains("Read-only file system"), "{err}");
    let (ok, out, err) = exec("echo kept > /tmp/probe && cat /tmp/probe");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "kept");
    // Exec's exit code reaches kubectl.
    let (ok, _, err) = exec("exit 3");
    assert!(!ok && err.contains("exit code 3"), "{err}");
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn pod_security_admission_refuses_a_pod_outside_the_restricted_profile() {
    let client = client().await.unwrap();
    // A namespace without any Pod Security label: the cluster's default applies.
    let ns = TestNamespace::new(&client, "kubelet-psa").await.unwrap();
    let (ok, out, err) = kubectl(
        &["-n", &ns.name, "apply", "-f", "-"],
        Some(&format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: root}}, spec: {{containers: [{{name: main, image: '{}', securityContext: {{privileged: true}}}}]}}}}",
            images::BUSYBOX
        )),
    );
    assert!(!ok, "a privileged pod was admitted: {out}");
    assert!(
        err.contains("violates PodSecurity \"restricted:latest\"") && err.contains("privileged"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_service_name_resolves_and_kube_proxy_spreads_requests_over_its_pods() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "kubelet-svc").await.unwrap();
    // Two web servers, each answering with its own pod name.
    for name in ["web-a", "web-b"] {
        apply(
            &ns.name,
            &restricted_pod(
                name,
                "app: web",
                "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
            ),
        );
    }
    apply(
        &ns.name,
        "{apiVersion: v1, kind: Service, metadata: {name: web}, spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}}",
    );
    wait_ready(&ns.name, "pod/web-a");
    wait_ready(&ns.name, "pod/web-b");

    // From the node: the Service's DNS name, through its ClusterIP.
    let url = format!("http://web.{}.svc/", ns.name);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        if let Ok(resp) = http.get(&url).send().await {
            seen.insert(resp.text().await.unwrap_or_default().trim().to_string());
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(seen, BTreeSet::from(["web-a".into(), "web-b".into()]));

    // From a pod: its resolver answers the full name with the ClusterIP, and the short name
    // (through the pod's search path) reaches a server.
    let (ok, out, err) = kubectl(
        &[
            "-n",
            &ns.name,
            "exec",
            "web-a",
            "--",
            "sh",
            "-c",
            &format!(
                "nslookup web.{}.svc.cluster.local; wget -qO- http://web/",
                ns.name
            ),
        ],
        None,
    );
    assert!(ok, "{err}");
    let (ok_ip, svc_ip, err_ip) = kubectl(
        &[
            "-n",
            &ns.name,
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        None,
    );
    assert!(ok_ip, "{err_ip}");
    assert!(out.contains(&format!("Address: {svc_ip}")), "{out}");
    assert!(out.contains("web-a") || out.contains("web-b"), "{out}");
}
