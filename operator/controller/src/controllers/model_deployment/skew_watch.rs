//! Watching the skew of a ModelDeployment's serving version on each reconcile: read its
//! ready pods' counts, take a [`skew::step`], and act on it — the Event, the
//! `ciclo_model_deployment_skew` gauge, and with `onSkew: Retrain` a new check of the
//! Datasets made of this deployment's capture.

use super::skew::{self, Step};
use super::{is_ready, version_of};
use crate::context::Context;
use crate::metrics::SkewLabels;
use ciclo_api::dataset::Dataset;
use ciclo_api::labels::{FIELD_MANAGER, RECONCILE_REQUESTED_AT};
use ciclo_api::model_deployment::{ModelDeployment, Skew, SkewStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource as _, ResourceExt as _};

/// The skew status after this look at the serving pods (the previous one when they cannot
/// be read now: a window is not lost to one failed read).
pub async fn watch(
    ctx: &Context,
    md: &ModelDeployment,
    spec: &Skew,
    pods: &[Pod],
    serving: Option<i64>,
    previous: Option<&SkewStatus>,
    now: jiff::Timestamp,
) -> Option<SkewStatus> {
    let version = serving?;
    let ready: Vec<Pod> = pods
        .iter()
        .filter(|p| version_of(p) == Some(version) && is_ready(p))
        .cloned()
        .collect();
    if ready.is_empty() {
        return previous.cloned();
    }
    let counts = match skew::read(&ready, md.spec.runtime.port).await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::info!(deployment = %md.name_any(), error = %e, "skew counts not readable now");
            return previous.cloned();
        }
    };
    let step = skew::step(spec, previous, version, &counts, now);
    act(ctx, md, &step).await;
    Some(step.status)
}

async fn act(ctx: &Context, md: &ModelDeployment, step: &Step) {
    let (ns, name) = (md.namespace().unwrap_or_default(), md.name_any());
    for f in &step.status.features {
        ctx.metrics
            .skew
            .get_or_create(&SkewLabels {
                namespace: ns.clone(),
                name: name.clone(),
                feature: f.feature.clone(),
            })
            .set(f.distance);
    }
    let reference = md.object_ref(&());
    if let Some((warning, reason, note)) = &step.event {
        let type_ = if *warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.publish(&reference, type_, reason, note, "Skew").await;
    }
    if step.retrain {
        let (type_, reason, note) = match request_checks(ctx, &ns, &name).await {
            Ok(asked) if asked.is_empty() => (
                EventType::Warning,
                "NoCaptureDataset",
                format!(
                    "skewed, but no Dataset in {ns} has source.capture.modelDeployment: {name} to retrain from"
                ),
            ),
            Ok(asked) => (
                EventType::Normal,
                "RetrainRequested",
                format!(
                    "skewed: asked Dataset {} for a new check of the captured, labelled data",
                    asked.join(", ")
                ),
            ),
            Err(e) => (
                EventType::Warning,
                "RetrainRequestFailed",
                format!("skewed, but asking for a new check failed: {e}"),
            ),
        };
        ctx.publish(&reference, type_, reason, &note, "Skew").await;
    }
}

/// Annotates the Datasets made of `name`'s capture with a new check request; returns them.
async fn request_checks(ctx: &Context, ns: &str, name: &str) -> Result<Vec<String>, kube::Error> {
    let api: Api<Dataset> = Api::namespaced(ctx.client.clone(), ns);
    let mut asked = Vec::new();
    let now = jiff::Timestamp::now().to_string();
    for ds in api.list(&ListParams::default()).await? {
        let from_capture = ds.spec.source.capture.as_ref();
        if from_capture.is_none_or(|c| c.model_deployment != name) {
            continue;
        }
        let patch = serde_json::json!({
            "apiVersion": "ciclo.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": ds.name_any(), "annotations": {RECONCILE_REQUESTED_AT: now}},
        });
        api.patch(
            &ds.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        asked.push(ds.name_any());
    }
    Ok(asked)
}
