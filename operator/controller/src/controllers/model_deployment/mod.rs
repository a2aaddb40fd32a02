//! The ModelDeployment controller: read the ModelDeployment fresh → select the version to
//! serve → observe its version Deployments and their pods → plan the rollout step (reading the
//! canary pods' traffic when a step needs judging) → apply the Service, the Deployments and
//! the autoscaler → status, Events and the ModelVersions' `deployedBy`.

pub(crate) mod analysis;
mod apply;
mod children;
mod deployed_by;
mod rollout;
mod routing;
mod select;
mod skew;
mod skew_watch;
pub(crate) mod traffic;
mod write_back;

use super::training_run::cached::CachedRun;
use super::{
    Ready, cache, controller, in_namespace, owned_by, ready, run_until, store_ready, watch_config,
};
use crate::context::Context;
use crate::error::Result;
use crate::own_writes::{self, Read};
use crate::status;
use apply::{Applied, Live, apply};
use ciclo_api::labels;
use ciclo_api::model_deployment::{ModelDeployment, ModelDeploymentStatus};
use ciclo_api::model_version::ModelVersion;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource as _, ResourceExt as _};
use rollout::{VersionPods, View};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use select::decide;

const KIND: &str = "ModelDeployment";
/// How long a ready canary may not answer for its request counters before the status says so.
const METRICS_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_secs(10);

/// The deployments in `store` that serve `model` in `ns`.
fn serving(
    store: &Store<DeserializeGuard<ModelDeployment>>,
    ns: Option<String>,
    model: &str,
) -> Vec<ObjectRef<DeserializeGuard<ModelDeployment>>> {
    store
        .state_filter(|g| {
            kube::Resource::meta(g).namespace == ns
                && g.0.as_ref().is_ok_and(|md| md.spec.model.name == model)
        })
        .iter()
        .map(|g| ObjectRef::from_obj(&**g))
        .collect()
}

/// What the ModelDeployment controller reads from caches rather than the API server.
#[derive(Clone)]
struct Caches {
    versions: Store<DeserializeGuard<ModelVersion>>,
    /// The scope's TrainingRuns (the cache their controller keeps): who produces a model.
    runs: Store<DeserializeGuard<CachedRun>>,
    /// The serving pods, without their specs.
    pods: Store<Pod>,
    /// The serving Deployments ciclo made.
    deployments: Store<Deployment>,
    /// The namespaces' own artifact stores.
    stores: Store<ConfigMap>,
    /// Every cache holds its first list.
    ready: Ready,
    /// What was last applied of each child: the same object is not sent again.
    applied: Arc<Applied>,
    /// Write-backs that pushed nothing, so they are not tried on every reconcile.
    write_backs: Arc<write_back::Attempts>,
    /// When each model without versions last had its registry records looked for.
    restores: Arc<RestoreAttempts>,
}

/// How often a model without versions has its records looked for (a LIST of its prefix in the
/// store): once per this long per model, not on every reconcile of its deployments.
const RESTORE_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct RestoreAttempts(
    std::sync::Mutex<std::collections::HashMap<(String, String), std::time::Instant>>,
);

impl RestoreAttempts {
    /// Whether `model` in `ns` is due a look (and, if so, notes that it has one now).
    fn due(&self, ns: &str, model: &str) -> bool {
        let mut last = self.0.lock().expect("restores lock");
        let key = (ns.to_string(), model.to_string());
        let now = std::time::Instant::now();
        if last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < RESTORE_EVERY)
        {
            return false;
        }
        last.insert(key, now);
        true
    }
}

/// Restores `model`'s versions from its namespace's registry records, if it has any. A failure
/// is logged: the deployment waits for a version as it would without records.
async fn restore_registry(ctx: &Context, caches: &Caches, ns: &str, model: &str) {
    let Ok(store) = super::artifact_store::of_namespace(&caches.stores, ns, &ctx.artifact_store)
    else {
        return;
    };
    let restored = match super::registry::Registry::open(ctx, ns, &store).await {
        Ok(registry) => registry.restore(ctx, ns, model, 0).await,
        Err(e) => Err(e),
    };
    if let Err(e) = restored {
        tracing::warn!(namespace = %ns, %model, error = %e, "restoring the registry failed");
    }
}

/// Runs the controller until `stop`; `runs` is the scope's shared TrainingRun cache.
pub async fn run(
    ctx: Arc<Context>,
    (runs, run_changes): (
        Store<DeserializeGuard<CachedRun>>,
        super::Subscription<CachedRun>,
    ),
    stop: CancellationToken,
) {
    // Only the serving Deployments and pods ciclo made: their readiness moves the rollout on.
    let serving_only = || watch_config().labels("app.kubernetes.io/component=model-server");
    let (deployments, deployment_changes) = cache::<Deployment>(&ctx, serving_only(), |d| {
        apply::forget_if_edited(&mut d.metadata)
    });
    let (pods, pod_changes) = cache::<Pod>(&ctx, serving_only(), |p| p.spec = None);
    let (versions, version_changes) =
        cache::<DeserializeGuard<ModelVersion>>(&ctx, watch_config(), |mv| {
            if let Ok(mv) = mv.0.as_mut() {
                super::model_version::strip(mv);
            }
        });
    let (stores, store_changes) = super::artifact_store::configs(&ctx);
    let controller = controller::<ModelDeployment>(&ctx).owns_stream(deployment_changes);
    let (by_version, by_run, by_store) =
        (controller.store(), controller.store(), controller.store());
    // New or changed versions of a model, and TrainingRuns that produce it, wake its
    // deployments; a serving pod's readiness wakes its deployment at once.
    let controller = controller
        .watches_stream(version_changes, move |mv| {
            let model =
                mv.0.as_ref()
                    .map(|mv| mv.spec.model.clone())
                    .unwrap_or_default();
            serving(&by_version, mv.namespace(), &model)
        })
        .watches_shared_stream(run_changes, move |tr| {
            let model =
                tr.0.as_ref()
                    .map(|tr| tr.spec.model.name.clone())
                    .unwrap_or_default();
            serving(&by_run, tr.namespace(), &model)
        })
        .watches_stream(pod_changes, |pod| {
            let ns = pod.namespace()?;
            let name = pod.labels().get(labels::DEPLOYMENT)?;
            Some(ObjectRef::new(name).within(&ns))
        })
        .watches_stream(store_changes, super::artifact_store::wakes(by_store));
    let caches = Caches {
        ready: ready(vec![
            store_ready(&versions),
            store_ready(&runs),
            store_ready(&pods),
            store_ready(&deployments),
            store_ready(&stores),
        ]),
        versions,
        runs,
        pods,
        deployments,
        stores,
        applied: Arc::default(),
        write_backs: Arc::default(),
        restores: Arc::default(),
    };
    let reconcile = move |ctx, md| reconcile(ctx, caches.clone(), md);
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

/// How often a deployment waiting for a TrainingRun's first version looks whether the run
/// still exists.
const PRODUCERS_RECHECK: Duration = Duration::from_secs(60);

/// The objects of `store` in `ns` that could be read (a malformed one is reported by its own
/// controller) and that `keep` selects, selected before they are cloned (see `in_namespace`).
fn readable<K>(store: &Store<DeserializeGuard<K>>, ns: &str, keep: impl Fn(&K) -> bool) -> Vec<K>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store
        .state_filter(|g| g.namespace().as_deref() == Some(ns) && g.0.as_ref().is_ok_and(&keep))
        .iter()
        .filter_map(|g| g.0.as_ref().ok().cloned())
        .collect()
}

/// Publishes the Event the rollout plan decided on (a rollout started, promoted, rolled back).
async fn publish_plan_event(ctx: &Context, md: &ModelDeployment, plan: &rollout::Plan) {
    if let Some((type_, reason, note)) = &plan.event {
        ctx.publish(&md.object_ref(&()), *type_, reason, note, "Rollout")
            .await;
    }
}

async fn reconcile(ctx: Arc<Context>, caches: Caches, cached: ModelDeployment) -> Result<Action> {
    let ns = cached.namespace().unwrap_or_default();
    // The rollout's step lives in the status: act on the cached object only once it holds
    // this controller's last status write, or a step could be judged or advanced twice.
    // Versions, runs, pods and Deployments come from caches whose changes wake this reconcile.
    let md = match own_writes::read(&ctx, cached).await? {
        Read::Object(md) => md,
        Read::Behind => return Ok(Action::requeue(own_writes::RECHECK)),
        Read::Gone => return Ok(Action::await_change()),
    };
    caches.ready.clone().await;
    let model = &md.spec.model.name;
    // Every version of the model, also those registered by hand or by another tool without
    // ciclo's labels.
    let versions = readable(&caches.versions, &ns, |mv| &mv.spec.model == model);
    // A model without versions in the cluster (rebuilt from git) gets them back from the
    // registry's records; the new versions reach this reconcile through the cache.
    if versions.is_empty() && caches.restores.due(&ns, model) {
        restore_registry(&ctx, &caches, &ns, model).await;
    }
    // Who would register the model matters only while it has no version.
    let producers = caches
        .runs
        .state_filter(|g| {
            g.namespace().as_deref() == Some(&ns)
                && g.0.as_ref().is_ok_and(|tr| &tr.spec.model.name == model)
        })
        .len();
    let serving_now = md.status.as_ref().and_then(|s| s.serving_version);
    let (selection, held_back) = select::hold_back(
        &md,
        &versions,
        decide(&md, &versions, producers),
        serving_now,
    );
    let pods: Vec<Pod> = in_namespace(&caches.pods, &ns, |p| {
        p.labels().get(labels::DEPLOYMENT) == Some(&md.name_any())
            && p.metadata.deletion_timestamp.is_none()
    });
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
        let sampled = match traffic::Reader::new(&md.spec.runtime.metrics_query()) {
            Ok(reader) => reader.sample(&ready).await,
            Err(e) => Err(e),
        };
        match sampled {
            Ok(sample) => view.sample = Some(sample),
            Err(e) => {
                // A pod that just became ready may not answer yet: look again shortly. Past
                // that, the status says so: a runtime whose counters cannot be read holds the
                // step, and that must not show only in the operator's log.
                tracing::info!(deployment = %md.name_any(), error = %e, "canary metrics not readable yet");
                let ready_for = ready
                    .iter()
                    .filter_map(ready_since)
                    .max()
                    .map(|t| view.now.duration_since(t));
                if ready_for.is_some_and(|d| d > METRICS_GRACE) {
                    let conditions = ciclo_api::conditions::reconciling(
                        "MetricsNotReadable",
                        format!(
                            "the canary step of version {canary} waits: its request counters cannot be read ({e})"
                        ),
                    );
                    // What the plan decided before it needed the counters is recorded too: a
                    // rollout it starts here (a leader that died after applying the canary's
                    // Deployment, before recording it) shows its canary while the step waits.
                    publish_plan_event(&ctx, &md, &plan).await;
                    status::update(&ctx, &md, md.status.as_ref(), &conditions, |s| {
                        *s = next.clone()
                    })
                    .await?;
                }
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
        }
        next = current;
        plan = rollout::plan(&view, &mut next);
    }

    let applied = async {
        apply_children(
            &ctx,
            &caches,
            &md,
            &versions,
            &plan.replicas,
            next.serving_version,
            next.canary_version.is_some(),
        )
        .await?;
        if let (Some(_), Some(stable)) = (&md.spec.traffic_routing, next.serving_version) {
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
            for s in routing::services(&md, stable, next.canary_version) {
                let owner_has_status = md.status.is_some();
                apply(
                    &services,
                    &s,
                    &caches.applied,
                    Live::Unwatched { owner_has_status },
                )
                .await?;
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
    publish_plan_event(&ctx, &md, &plan).await;
    let mut conditions = select::conditions(
        selection.conditions,
        plan.conditions,
        routing_problem,
        held_back,
    );
    let mut requeue = plan.requeue;
    // A producer's deletion wakes nothing here (the shared TrainingRun cache tells its
    // readers of changes, not deletions): while the deployment waits for a version a
    // TrainingRun is to register, it looks again now and then.
    let awaited = md.spec.model.version.map_or(versions.is_empty(), |pinned| {
        !versions.iter().any(|mv| mv.spec.version == pinned)
    });
    if producers > 0 && awaited {
        requeue = Some(requeue.map_or(PRODUCERS_RECHECK, |r| r.min(PRODUCERS_RECHECK)));
    }
    next.skew = match &md.spec.skew {
        Some(spec) => {
            let watched = skew_watch::watch(
                &ctx,
                &md,
                spec,
                &pods,
                next.serving_version,
                md.status.as_ref().and_then(|s| s.skew.as_ref()),
                view.now,
            )
            .await;
            conditions.push(skew::condition(spec, watched.as_ref()));
            requeue = Some(requeue.map_or(skew::poll(spec), |r| r.min(skew::poll(spec))));
            watched
        }
        None => None,
    };
    // After the rollout's step: a rollback it just made is in `next`'s history.
    if let Some(spec) = &md.spec.git_write_back {
        let mut seen = md.clone();
        seen.status = Some(next.clone());
        let (condition, written) =
            write_back::run(&ctx, &caches.write_backs, &seen, spec, &versions).await;
        if !condition.status {
            let retry = write_back::RETRY_AFTER;
            requeue = Some(requeue.map_or(retry, |r| r.min(retry)));
        }
        conditions.push(condition);
        if let Some(w) = written {
            next.write_back = Some(w);
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
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn version_of(pod: &Pod) -> Option<i64> {
    pod.labels().get(labels::VERSION)?.parse().ok()
}

/// When `pod` last became ready, if it is.
fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    ready.last_transition_time.as_ref().map(|t| t.0)
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

/// Server-side applies what `replicas` asks for (each child only if it changed, see
/// [`Applied`]) and deletes the version Deployments it does not name (their pods get SIGTERM
/// and drain while endpoints drop them).
async fn apply_children(
    ctx: &Context,
    caches: &Caches,
    md: &ModelDeployment,
    versions: &[ModelVersion],
    replicas: &BTreeMap<i64, i32>,
    stable: Option<i64>,
    rolling_out: bool,
) -> Result<()> {
    let ns = md.namespace().unwrap_or_default();
    if replicas.is_empty() && stable.is_none() {
        return Ok(());
    }
    let applied = &caches.applied;
    // The serving pods read models and write captures with the namespace's store settings.
    // Without a usable store they still serve models they can read without them; the
    // Datasets and TrainingRuns of the namespace say why it is unusable.
    let store = super::artifact_store::of_namespace(&caches.stores, &ns, &ctx.artifact_store)
        .unwrap_or_else(|problem| {
            tracing::warn!(namespace = %ns, reason = problem.reason, message = %problem.message, "serving without an artifact store");
            super::artifact_store::ArtifactStore::default()
        });
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    // A new ModelDeployment's children are not read first: no earlier process applied them.
    let unwatched = Live::Unwatched {
        owner_has_status: md.status.is_some(),
    };
    apply(&services, &children::service(md), applied, unwatched).await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let live = owned_by(
        &caches.deployments,
        &ns,
        labels::DEPLOYMENT,
        &md.name_any(),
        md,
    );
    for (version, count) in replicas {
        let Some(mv) = versions.iter().find(|mv| mv.spec.version == *version) else {
            continue;
        };
        // The autoscaler owns the stable version's size.
        let size = (md.spec.autoscaling.is_none() || Some(*version) != stable).then_some(*count);
        let mut d = children::deployment(md, mv, size, &ctx.image, &store);
        let running = live.iter().find(|l| l.name_any() == d.name_any());
        if rolling_out && let Some(running) = running {
            children::keep_pod_template(&mut d, running);
        }
        // A Deployment not in the cache (deleted, or not seen yet) is applied.
        apply(
            &deployments,
            &d,
            applied,
            Live::Cached(running.map(|l| &l.metadata)),
        )
        .await?;
    }
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(hpa) = stable.and_then(|s| children::autoscaler(md, s)) {
        apply(&hpas, &hpa, applied, unwatched).await?;
    }
    for d in &live {
        let version = d.labels().get(labels::VERSION).and_then(|v| v.parse().ok());
        if version.is_some_and(|v: i64| !replicas.contains_key(&v)) {
            match deployments
                .delete(&d.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => applied.forget(d),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
