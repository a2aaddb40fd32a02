//! The ModelVersion controller: a ModelVersion is a record, so its controller confirms it is
//! well-formed and reports it. Gate verdicts and deployment back-references come with the
//! training and serving capabilities.

use super::{controller, run_until};
use crate::context::Context;
use crate::error::Result;
use crate::status;
use ciclo_api::conditions::{self, Set};
use ciclo_api::model_version::ModelVersion;
use kube::runtime::controller::Action;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const KIND: &str = "ModelVersion";

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    let controller = controller::<ModelVersion>(&ctx);
    run_until(KIND, controller, reconcile, ctx, stop).await;
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
