//! The Node object: registration and status heartbeats.

use crate::args::NodeArgs;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The Kubernetes release this node speaks for; it matches the control plane's pin.
pub const KUBELET_VERSION: &str = "v1.36.3";
/// How often the full node status is re-posted; liveness itself rides on the Lease.
const STATUS_INTERVAL: Duration = Duration::from_secs(30);

/// Creates the Node if it does not exist (a kubelet may only create its own) and posts status.
pub async fn register(client: &kube::Client, args: &NodeArgs) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": args.node_name,
            "labels": {
                "kubernetes.io/hostname": args.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
                "node.kubernetes.io/instance-type": "ciclo-process-node",
            },
        },
    }))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!("registered node {}", args.node_name),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!("node {} already registered", args.node_name)
        }
        Err(e) => return Err(e.into()),
    }
    post_status(&nodes, args).await
}

/// Re-posts the node status so conditions' heartbeat times stay fresh.
pub async fn heartbeat(client: kube::Client, args: NodeArgs, shutdown: CancellationToken) {
    let nodes: Api<Node> = Api::all(client);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(STATUS_INTERVAL) => {}
        }
        if let Err(e) = post_status(&nodes, &args).await {
            tracing::warn!(error = %e, "posting node status failed");
        }
    }
}

async fn post_status(nodes: &Api<Node>, args: &NodeArgs) -> anyhow::Result<()> {
    let now = Time(Timestamp::now());
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    let mut capacity = json!({
        "cpu": args.cpu, "memory": args.memory, "pods": args.pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    if args.gpus > 0 {
        capacity["nvidia.com/gpu"] = json!(args.gpus.to_string());
    }
    let uname = nix::sys::utsname::uname()?;
    let status = json!({
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": args.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": args.kubelet_port}},
            "nodeInfo": {
                "machineID": machine_id(),
                "systemUUID": machine_id(),
                "bootID": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim(),
                "kernelVersion": uname.release().to_string_lossy(),
                "osImage": "ciclo process node",
                "containerRuntimeVersion": concat!("ciclo-node://", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            },
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "ciclo process node is posting ready status"),
            ],
        }
    });
    // A strategic merge keys conditions and addresses by type, so only ours are replaced.
    nodes
        .patch_status(
            &args.node_name,
            &PatchParams::default(),
            &Patch::Strategic(status),
        )
        .await?;
    Ok(())
}

fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "ciclo-process-node".into())
}
