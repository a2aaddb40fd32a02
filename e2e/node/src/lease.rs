//! The node's Lease in `kube-node-lease`: the node lifecycle controller judges the node
//! alive by it, so it is renewed well within its duration.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Resource as _;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const LEASE_DURATION_SECONDS: i32 = 40;
/// A kubelet renews at a quarter of the duration.
const RENEW_INTERVAL: Duration = Duration::from_secs(10);

pub async fn renew(client: kube::Client, node_name: String, shutdown: CancellationToken) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    loop {
        if let Err(e) = renew_once(&leases, &nodes, &node_name).await {
            tracing::warn!(error = %e, "renewing the node lease failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RENEW_INTERVAL) => {}
        }
    }
}

async fn renew_once(leases: &Api<Lease>, nodes: &Api<Node>, node_name: &str) -> anyhow::Result<()> {
    // The Lease is owned by the Node so it goes when the Node is deleted, as a kubelet's does.
    let node = nodes.get(node_name).await?;
    let owner = node.controller_owner_ref(&()).map(|mut o| {
        o.controller = None;
        o.block_owner_deletion = None;
        o
    });
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node_name, "ownerReferences": owner.into_iter().collect::<Vec<_>>()},
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": MicroTime(Timestamp::now()),
        },
    });
    leases
        .patch(
            node_name,
            &PatchParams::apply("ciclo-node").force(),
            &Patch::Apply(lease),
        )
        .await?;
    Ok(())
}
