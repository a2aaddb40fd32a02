//! The ModelVersion controller: a ModelVersion is a record, so its controller confirms it is
//! well-formed and reports it. Gate verdicts and deployment back-references come with the
//! training and serving capabilities.

use super::{api, drain, error_policy, guarded};
use crate::context::Context;
use crate::error::Result;
use crate::status;
use ciclo_api::conditions::{self, Set};
use ciclo_api::model_version::ModelVersion;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const KIND: &str = "ModelVersion";

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    let versions = api::<DeserializeGuard<ModelVersion>>(&ctx);
    let controller = Controller::new(versions, watcher::Config::default().any_semantic())
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(
            |g, c| guarded(KIND, g, c, reconcile),
            error_policy(KIND),
            ctx,
        );
    drain(KIND, controller).await;
}

async fn reconcile(ctx: Arc<Context>, mv: ModelVersion) -> Result<Action> {
    status::update(&ctx, &mv, mv.status.as_ref(), &decide(&mv), |_| {}).await?;
    Ok(Action::await_change())
}

/// A record is ready once it names an artifact with a digest.
pub fn decide(mv: &ModelVersion) -> Vec<Set> {
    if mv.spec.artifact.digest.trim().is_empty() {
        return conditions::stalled(
            "MissingDigest",
            "spec.artifact.digest is empty: the artifact cannot be verified",
        );
    }
    let lineage = &mv.spec.lineage.dataset;
    conditions::ready(
        "Recorded",
        format!(
            "model {} version {} trained on {} {}",
            mv.spec.model, mv.spec.version, lineage.name, lineage.version
        ),
    )
}
