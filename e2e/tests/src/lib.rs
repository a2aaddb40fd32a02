//! What every end-to-end test needs: a client for the local control plane, `kubectl`,
//! a fresh namespace per test that is deleted afterwards, and waiting with a deadline.
#![forbid(unsafe_code)]

pub mod gitops;
pub mod images;
pub mod load;
pub mod operator;
pub mod resources;
pub mod s3;
pub mod tenants;
pub mod wdbc;
pub mod world;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The kubeconfig of the cluster under test: `$KUBECONFIG`, else the local control plane's.
pub fn kubeconfig() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cluster/kubeconfig"))
}

/// `$var` if set, else `binary` in the bin dir `script --dir` prints (the cached builds of
/// e2e/cluster/build.sh and e2e/tools/build.sh).
fn built_tool(var: &str, script: &str, binary: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let out = Command::new(repo_root().join(script))
        .arg("--dir")
        .output()
        .unwrap_or_else(|e| panic!("running {script} --dir: {e}"));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(binary)
}

/// The `kubectl` built with the control plane (or `$KUBECTL`).
pub fn kubectl_path() -> PathBuf {
    built_tool("KUBECTL", "e2e/cluster/build.sh", "kubectl")
}

/// A finished command as (success, stdout, stderr).
fn outcome(out: &std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs kubectl against the cluster under test; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting kubectl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing to kubectl");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("waiting for kubectl");
    outcome(&out)
}

/// The `helm` built from its Go module by e2e/tools/build.sh (or `$HELM`).
pub fn helm_path() -> PathBuf {
    built_tool("HELM", "e2e/tools/build.sh", "helm")
}

/// Runs helm against the cluster under test from the repository root (so `charts/ciclo`
/// resolves); returns (success, stdout, stderr).
pub fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm_path())
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("running helm");
    outcome(&out)
}

/// A script of the repository (`path`, relative to its root) with `args`, run in the host's
/// namespaces: from inside the cluster's network namespace (in-cluster-netns.sh), through
/// the process it was started from (`CICLO_HOST_PID`), since loading an image into the node or
/// installing ciclo (e2e/deploy/install.sh) are done from the host. Returns its standard output;
/// panics, with its standard error, if it fails.
pub fn host_script(path: &str, args: &[&str]) -> String {
    let script = repo_root().join(path);
    let mut cmd = match std::env::var("CICLO_HOST_PID") {
        Ok(pid) if std::env::var("CICLO_NODE_ADDRESS").is_ok() => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/proc/{pid}/ns/net"))
                .arg(format!("--mount=/proc/{pid}/ns/mnt"))
                .arg("--")
                .arg(&script);
            c
        }
        _ => Command::new(&script),
    };
    let out = cmd
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        out.status.success(),
        "{path} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("a script's output is text")
}

/// Runs the `ciclo` binary `make build` made (or `$CICLO_BIN`) against the cluster under
/// test, as a user at a terminal would; returns (success, stdout, stderr).
pub fn ciclo_cli(args: &[&str]) -> (bool, String, String) {
    let bin = std::env::var_os("CICLO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/ciclo"));
    let out = Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    outcome(&out)
}

/// Picks rustls' crypto provider: the workspace compiles two (object_store brings
/// aws-lc-rs), so none is chosen by default.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client for the cluster under test, with a clear error when it is not running.
pub async fn client() -> anyhow::Result<kube::Client> {
    init_tls();
    let path = kubeconfig();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).with_context(|| {
        format!(
            "no cluster: {} is missing (run `make cluster-up`)",
            path.display()
        )
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    client
        .apiserver_version()
        .await
        .context("the cluster does not answer (run `make cluster-up`)")?;
    Ok(client)
}

/// A namespace of its own for one test, labelled `ciclo.dev/e2e`, deleted when dropped
/// (also when the test panics).
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &kube::Client, test: &str) -> anyhow::Result<Self> {
        let suffix: String = format!("{:x}", std::process::id() as u64 * 1_000_003 + nanos());
        let name = format!(
            "e2e-{}-{}",
            test.replace('_', "-"),
            &suffix[suffix.len().saturating_sub(6)..]
        );
        let name: String = name.chars().take(63).collect();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"ciclo.dev/e2e": "true"}}
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        // Pods need the namespace's default ServiceAccount before they can be created.
        let sa_api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait_for(
            Duration::from_secs(30),
            "the default ServiceAccount",
            || async { Ok(sa_api.get_opt("default").await?.is_some()) },
        )
        .await?;
        Ok(Self { name })
    }
}

impl TestNamespace {
    /// A namespace whose pods need only the `baseline` Pod Security profile (the cluster
    /// enforces `restricted` elsewhere): for the tests of the node's own duties, whose pods
    /// are about probes, restarts and volumes, not about their privileges.
    pub async fn baseline(client: &kube::Client, test: &str) -> anyhow::Result<Self> {
        let ns = Self::new(client, test).await?;
        let (ok, _, err) = kubectl(
            &[
                "label",
                "namespace",
                &ns.name,
                "pod-security.kubernetes.io/enforce=baseline",
            ],
            None,
        );
        anyhow::ensure!(ok, "labelling namespace {}: {err}", ns.name);
        Ok(ns)
    }
}

/// True when the cluster's node is the process node (`CLUSTER_NODE=process make
/// cluster-up`), for the tests of what only it does (GPUs it pretends to have, volumes it
/// refuses); they say so and pass on a kubelet node.
pub async fn on_process_node(client: &kube::Client) -> bool {
    let node = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get("ciclo-node")
        .await
        .expect("the node ciclo-node");
    let runtime = node
        .status
        .and_then(|s| s.node_info)
        .map(|i| i.container_runtime_version)
        .unwrap_or_default();
    let process = runtime.starts_with("ciclo-node://");
    if !process {
        eprintln!("the node runs {runtime}, not the process node: nothing to check here");
    }
    process
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Sync on purpose: Drop cannot await, and this also runs after a panic.
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// Waits until `cond` holds for the named object, or fails after `timeout`.
pub async fn wait_until<K>(
    api: Api<K>,
    name: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => bail!("{name} was deleted while waiting"),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten();
            bail!("timed out after {timeout:?} waiting for {name}; it is now: {now:#?}")
        }
    }
}

/// Polls `check` every 200 ms until it returns true, or fails after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = check().await;
        if matches!(last, Ok(true)) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last check: {last:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Parses a YAML manifest into a typed object.
pub fn from_yaml<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
    serde_yaml::from_str(yaml).expect("test manifest parses")
}

/// Waits until an Event with `reason` (and a note starting with `note_prefix`) is recorded
/// in `ns`, and returns it.
pub async fn wait_event(
    client: &kube::Client,
    ns: &str,
    reason: &str,
    note_prefix: &str,
) -> anyhow::Result<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.note
                        .as_deref()
                        .unwrap_or_default()
                        .starts_with(note_prefix)
            });
        if let Some(event) = found {
            return Ok(event);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no {reason} event in {ns} after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a pod has reached `Succeeded` or `Failed`.
pub fn pod_finished(pod: Option<&k8s_openapi::api::core::v1::Pod>) -> bool {
    pod.and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
}

/// The pods matching `selector` that a Service would send traffic to, as the EndpointSlice
/// controller picks them: Ready, and not terminating.
pub async fn serving_pods(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    selector: &str,
) -> kube::Result<Vec<k8s_openapi::api::core::v1::Pod>> {
    Ok(pods
        .list(&kube::api::ListParams::default().labels(selector))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect())
}
