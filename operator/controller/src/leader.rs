//! Leader election on a `coordination.k8s.io` Lease: only the holder runs the controllers
//! (and so only it writes status); a standby waits. On shutdown the leader stops its
//! controllers and releases the Lease, so a standby takes over at once rather than after
//! the Lease expires.

use crate::args::OperatorArgs;
use crate::context::Context;
use crate::controllers;
use anyhow::Context as _;
use kube_lease_manager::LeaseManagerBuilder;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub async fn run(
    ctx: Arc<Context>,
    args: OperatorArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if !args.leader_elect {
        ctx.metrics.leader.set(1);
        controllers::run_all(ctx, shutdown).await;
        return Ok(());
    }
    let duration = args.lease_duration_seconds.max(3);
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), &args.leader_election_lease)
        .with_namespace(&args.leader_election_namespace)
        .with_identity(args.identity())
        .with_duration(duration)
        // Renew a third of the way before expiry, so one slow renewal does not cost the lease.
        .with_grace((duration / 3).max(1))
        .build()
        .await
        .context("setting up leader election")?;
    let (mut leading, task) = manager.watch().await;
    loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => return release(leading, task).await,
                changed = leading.changed() => changed.context("leader election stopped")?,
            }
        }
        tracing::info!(identity = %args.identity(), "became the leader: starting controllers");
        ctx.metrics.leader.set(1);
        let stop = shutdown.child_token();
        let running = tokio::spawn(controllers::run_all(ctx.clone(), stop.clone()));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = leading.changed() => if changed.is_err() || !*leading.borrow_and_update() { break },
            }
        }
        stop.cancel();
        let _ = running.await;
        ctx.metrics.leader.set(0);
        ctx.metrics.stopped_leading();
        if shutdown.is_cancelled() {
            return release(leading, task).await;
        }
        tracing::warn!("lost the leader Lease: controllers stopped, waiting to lead again");
    }
}

/// Closing the channel makes the manager release the Lease.
async fn release(
    leading: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) -> anyhow::Result<()> {
    drop(leading);
    task.await?.context("releasing the leader Lease")?;
    tracing::info!("leader Lease released");
    Ok(())
}
