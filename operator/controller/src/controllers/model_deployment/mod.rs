//! The ModelDeployment controller: read the ModelDeployment fresh → select the version to
//! serve → observe its version Deployments and their pods → plan the rollout step (reading the
//! canary pods' traffic when a step needs judging) → apply the Service, the Deployments and
//! the autoscaler → status, Events and the ModelVersions' `deployedBy`.

mod analysis;
mod children;
mod deployed_by;
mod rollout;
mod routing;
mod select;
mod traffic;

use super::{api, controller, run_until, watch_config};
use crate::context::Context;
use crate::error::Result;
use crate::status;
use ciclo_api::labels::{self, FIELD_MANAGER};
use ciclo_api::model_deployment::{ModelDeployment, ModelDeploymentStatus};
use ciclo_api::model_version::ModelVersion;
use ciclo_api::training_run::TrainingRun;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource as _, ResourceExt as _};
use rollout::{VersionPods, View};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use select::decide;

const KIND: &str = "ModelDeployment";

/// The deployments in `store` that serve `model` in `ns`.
fn serving(
    store: &Store<DeserializeGuard<ModelDeployment>>,
    ns: Option<String>,
    model: &str,
) -> Vec<ObjectRef<DeserializeGuard<ModelDeployment>>> {
    store
        .state()
        .into_iter()
        .filter(|g| g.namespace() == ns && g.0.as_ref().is_ok_and(|md| md.spec.model.name == model))
        .map(|g| ObjectRef::from_obj(&*g))
        .collect()
}

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    // Only the serving Deployments ciclo made: their readiness moves the rollout on.
    let deployments = watch_config().labels("app.kubernetes.io/component=model-server");
    let controller = controller::<ModelDeployment>(&ctx).owns(api::<Deployment>(&ctx), deployments);
    let (by_version, by_run) = (controller.store(), controller.store());
    // New or changed versions of a model, and TrainingRuns that produce it, wake its deployments.
    let controller = controller
        .watches(
            api::<DeserializeGuard<ModelVersion>>(&ctx),
            watch_config(),
            move |mv| {
                let model =
                    mv.0.as_ref()
                        .map(|mv| mv.spec.model.clone())
                        .unwrap_or_default();
                serving(&by_version, mv.namespace(), &model)
            },
        )
        .watches(
            api::<DeserializeGuard<TrainingRun>>(&ctx),
            watch_config(),
            move |tr| {
                let model =
                    tr.0.as_ref()
                        .map(|tr| tr.spec.model.name.clone())
                        .unwrap_or_default();
                serving(&by_run, tr.namespace(), &model)
            },
        );
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

async fn reconcile(ctx: Arc<Context>, cached: ModelDeployment) -> Result<Action> {
    let ns = cached.namespace().unwrap_or_default();
    // The rollout's step lives in the status: act on the latest one, never a cached one, or a
    // step could be judged or advanced twice.
    let Some(md) = Api::<ModelDeployment>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&cached.name_any())
        .await?
    else {
        return Ok(Action::await_change());
    };
    let model = &md.spec.model.name;
    // Every version of the model, also those registered by hand or by another tool without
    // ciclo's labels.
    let versions: Vec<ModelVersion> = Api::<ModelVersion>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|mv| &mv.spec.model == model)
        .collect();
    // Who would register the model matters only while it has no version.
    let producers = if versions.is_empty() {
        Api::<TrainingRun>::namespaced(ctx.client.clone(), &ns)
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|tr| &tr.spec.model.name == model)
            .count()
    } else {
        0
    };
    let mut held_back = None;
    let mut selection = decide(&md, &versions, producers);
    // A floating selection that does not beat what serves is not rolled out.
    let serving_now = md.status.as_ref().and_then(|s| s.serving_version);
    let find = |n: i64| versions.iter().find(|mv| mv.spec.version == n);
    if let (true, None, Some(serving), Some(candidate)) = (
        md.spec.require_improvement,
        md.spec.model.version,
        serving_now.and_then(find),
        selection
            .version
            .filter(|v| Some(*v) != serving_now)
            .and_then(find),
    ) && let Err(why) = select::improves(candidate, serving)
    {
        selection.version = Some(serving.spec.version);
        held_back = Some(why);
    }
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&format!("{}={}", labels::DEPLOYMENT, md.name_any())))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let by_version = observe(&pods);

    let current = md.status.clone().unwrap_or_default();
    let mut view = View {
        md: &md,
        desired: selection.version,
        pods: &by_version,
        sample: None,
        now: jiff::Timestamp::now(),
    };
    let mut next = current.clone();
    let mut plan = rollout::plan(&view, &mut next);
    // Only a step that starts or ends reads the canary's traffic, then plans again with it.
    if plan.needs_sample {
        let canary = next.canary_version.unwrap_or_default();
        let ready: Vec<Pod> = pods
            .iter()
            .filter(|p| version_of(p) == Some(canary) && is_ready(p))
            .cloned()
            .collect();
        match traffic::sample(&ready, md.spec.runtime.port).await {
            Ok(sample) => view.sample = Some(sample),
            Err(e) => {
                // A pod that just became ready may not answer yet: look again shortly.
                tracing::info!(deployment = %md.name_any(), error = %e, "canary metrics not readable yet");
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
        }
        next = current;
        plan = rollout::plan(&view, &mut next);
    }

    let applied = async {
        apply_children(&ctx, &md, &versions, &plan.replicas, next.serving_version).await?;
        if let (Some(_), Some(stable)) = (&md.spec.traffic_routing, next.serving_version) {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
            for s in routing::services(&md, stable, next.canary_version) {
                apply(&services, &s, &params).await?;
            }
        }
        Ok::<_, crate::error::Error>(())
    };
    if let Err(e) = applied.await {
        // The rollout stays where it was (its step is not taken); only the conditions say why.
        let (conditions, retry) = match e.invalid_object() {
            Some(why) => (
                ciclo_api::conditions::stalled(
                    "InvalidSpec",
                    format!("the API server refused an object built from this spec: {why}"),
                ),
                false,
            ),
            None => (
                ciclo_api::conditions::reconciling(
                    "ApplyFailed",
                    format!(
                        "applying the serving objects failed (retrying with back-off): {}",
                        e.message()
                    ),
                ),
                true,
            ),
        };
        status::update(&ctx, &md, md.status.as_ref(), &conditions, |_| {}).await?;
        // An invalid object waits for a change of the spec: no retry on a timer.
        return if retry {
            Err(e)
        } else {
            Ok(Action::await_change())
        };
    }
    let mut routing_problem = None;
    if let (Some(routing), Some(_)) = (&md.spec.traffic_routing, next.serving_version) {
        let weight = next.canary_weight.unwrap_or(0);
        routing_problem = routing::apply_weights(&ctx, &md, &routing.http_route, weight)
            .await?
            .err();
    }
    if let Some((type_, reason, note)) = &plan.event {
        ctx.publish(&md.object_ref(&()), *type_, reason, note, "Rollout")
            .await;
    }
    let mut conditions = if plan.conditions.is_empty() {
        selection.conditions
    } else {
        plan.conditions
    };
    if let Some(why) = routing_problem {
        // The rollout goes on by replica ratio; the route needs fixing.
        conditions = ciclo_api::conditions::stalled("HTTPRouteNotUsable", why);
    }
    if let Some(why) = held_back {
        // Still serving, and saying why the newer version is not.
        for c in conditions
            .iter_mut()
            .filter(|c| c.type_ == ciclo_api::conditions::READY)
        {
            c.reason = "NotAnImprovement".into();
            c.message = format!("{}; {why}", c.message);
        }
    }
    next.endpoint = Some(format!(
        "http://{}.{ns}.svc:{}",
        md.name_any(),
        md.spec.runtime.port
    ));
    status::update(&ctx, &md, md.status.as_ref(), &conditions, |s| {
        let (conditions, observed) = (std::mem::take(&mut s.conditions), s.observed_generation);
        *s = ModelDeploymentStatus {
            conditions,
            observed_generation: observed,
            ..next.clone()
        };
    })
    .await?;
    let served: Vec<i64> = next
        .serving_version
        .into_iter()
        .chain(next.canary_version)
        .collect();
    deployed_by::sync(&ctx, &ns, &md.name_any(), &versions, &served).await?;
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

fn version_of(pod: &Pod) -> Option<i64> {
    pod.labels().get(labels::VERSION)?.parse().ok()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Ready pods and container restarts per version.
fn observe(pods: &[Pod]) -> BTreeMap<i64, VersionPods> {
    let mut by_version: BTreeMap<i64, VersionPods> = BTreeMap::new();
    for pod in pods {
        let Some(v) = version_of(pod) else { continue };
        let entry = by_version.entry(v).or_default();
        entry.ready += i32::from(is_ready(pod));
        entry.restarts += pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
    }
    by_version
}

/// Server-side applies what `replicas` asks for and deletes the version Deployments it does
/// not name (their pods get SIGTERM and drain while endpoints drop them).
async fn apply_children(
    ctx: &Context,
    md: &ModelDeployment,
    versions: &[ModelVersion],
    replicas: &BTreeMap<i64, i32>,
    stable: Option<i64>,
) -> Result<()> {
    let ns = md.namespace().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if replicas.is_empty() && stable.is_none() {
        return Ok(());
    }
    apply(
        &Api::<Service>::namespaced(ctx.client.clone(), &ns),
        &children::service(md),
        &params,
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    for (version, count) in replicas {
        let Some(mv) = versions.iter().find(|mv| mv.spec.version == *version) else {
            continue;
        };
        // The autoscaler owns the stable version's size.
        let size = (md.spec.autoscaling.is_none() || Some(*version) != stable).then_some(*count);
        let d = children::deployment(md, mv, size, &ctx.image, &ctx.artifact_store);
        apply(&deployments, &d, &params).await?;
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(hpa) = stable.and_then(|s| children::autoscaler(md, s)) {
        apply(&hpas, &hpa, &params).await?;
    }
    let selector = format!("{}={}", labels::DEPLOYMENT, md.name_any());
    let uid = md.uid();
    for d in deployments
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let owned = d
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref());
        let version = d.labels().get(labels::VERSION).and_then(|v| v.parse().ok());
        if owned && version.is_some_and(|v: i64| !replicas.contains_key(&v)) {
            match deployments
                .delete(&d.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn apply<K>(api: &Api<K>, obj: &K, params: &PatchParams) -> Result<()>
where
    K: kube::Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let mut value = serde_json::to_value(obj)?;
    value["apiVersion"] = K::api_version(&Default::default()).into();
    value["kind"] = K::kind(&Default::default()).into();
    api.patch(&obj.name_any(), params, &Patch::Apply(&value))
        .await?;
    Ok(())
}
