//! The TrainingRun controller: read the TrainingRun whole (its cache is slim) → record finished runs
//! (registering their ModelVersions) → decide (resolve the dataset version, the run due) →
//! start it → status → mark or delete the recorded runs' Jobs.

pub mod cached;
mod code_source;
mod decide;
mod job;
mod outcome;
mod record;
mod retention;
mod runs;
mod schedule;

use super::artifact_store;
use super::workload::{self, CachedJob};
use super::{
    Ready, cache, in_namespace, ready, report_malformed, run_until, store_ready, watch_config,
};
use crate::context::Context;
use crate::error::Result;
use crate::own_writes::{self, Read};
use crate::status;
use cached::CachedRun;
use ciclo_api::dataset::Dataset;
use ciclo_api::labels;
use ciclo_api::training_run::TrainingRun;
use decide::{Facts, decide};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt as _;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const KIND: &str = "TrainingRun";

/// What the TrainingRun controller reads from caches rather than the API server.
#[derive(Clone)]
struct Caches {
    /// ciclo's training Jobs, without their pod templates.
    jobs: Store<CachedJob>,
    datasets: Store<DeserializeGuard<Dataset>>,
    /// The training Jobs' succeeded Pods, without their specs: a run's end is seen on its Pod
    /// first.
    pods: Store<Pod>,
    /// The namespaces' own artifact stores.
    stores: Store<ConfigMap>,
    /// Every cache holds its first list.
    ready: Ready,
}

/// Runs `controller` (over the scope's shared TrainingRun cache) until `stop`.
pub async fn run(
    ctx: Arc<Context>,
    controller: kube::runtime::Controller<DeserializeGuard<CachedRun>>,
    stop: CancellationToken,
) {
    // The cache is slim: the status a reconcile writes is kept for the reconciles that
    // follow it, which would otherwise read the object again.
    ctx.own_writes.keep_objects_of(KIND);
    // Only the training Jobs ciclo made, so other Jobs never wake it.
    let (jobs, job_changes) = cache::<CachedJob>(
        &ctx,
        watch_config().labels("app.kubernetes.io/component=training-run"),
        workload::strip_job,
    );
    let (datasets, dataset_changes) =
        cache::<DeserializeGuard<Dataset>>(&ctx, watch_config(), |_| {});
    let (pods, pod_changes) = cache::<Pod>(
        &ctx,
        super::workload::succeeded_pods("app.kubernetes.io/component=training-run"),
        super::workload::strip_pod,
    );
    let (stores, store_changes) = artifact_store::configs(&ctx);
    let controller = controller.owns_stream(job_changes);
    let store = controller.store();
    let controller = controller.watches_stream(store_changes, artifact_store::wakes(store.clone()));
    // A Dataset appearing, changing or going wakes the runs that train on it.
    let controller = controller.watches_stream(dataset_changes, move |ds| {
        let (ns, name) = (ds.namespace(), ds.name_any());
        store
            .state_filter(|g| {
                kube::Resource::meta(g).namespace == ns
                    && g.0.as_ref().is_ok_and(|tr| tr.spec.dataset.name == name)
            })
            .iter()
            .map(|g| ObjectRef::from_obj(&**g))
            .collect::<Vec<_>>()
    });
    // A run's Pod finishing wakes its TrainingRun (its Job says so only a second later).
    let controller = controller.watches_stream(pod_changes, |pod| {
        let ns = pod.namespace()?;
        let name = pod.labels().get(labels::TRAINING_RUN)?;
        Some(ObjectRef::new(name).within(&ns))
    });
    let ready = ready(vec![
        store_ready(&jobs),
        store_ready(&datasets),
        store_ready(&pods),
        store_ready(&stores),
    ]);
    let caches = Caches {
        jobs,
        datasets,
        pods,
        stores,
        ready,
    };
    let reconcile = move |ctx, tr| reconcile(ctx, caches.clone(), tr);
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

async fn reconcile(ctx: Arc<Context>, caches: Caches, cached: CachedRun) -> Result<Action> {
    let ns = cached.namespace().unwrap_or_default();
    // Whole, once the cache holds this controller's last status write (a run must never be
    // recorded or started twice): that write itself, or read from the API server. The Dataset
    // and the Jobs come from the caches: a change there wakes this reconcile again once the
    // cache holds it.
    let tr = match own_writes::read_whole::<TrainingRun>(&ctx, &cached).await? {
        Read::Object(DeserializeGuard(Ok(tr))) => tr,
        Read::Object(guard @ DeserializeGuard(Err(_))) => {
            if let Err(invalid) = &guard.0 {
                report_malformed(&ctx, KIND, &guard, &invalid.error).await;
            }
            return Ok(Action::await_change());
        }
        Read::Behind => return Ok(Action::requeue(own_writes::RECHECK)),
        Read::Gone => return Ok(Action::await_change()),
    };
    // Until the first list is in, an empty cache would say "no Dataset", "no Job".
    caches.ready.clone().await;
    let dataset = caches
        .datasets
        .get(&ObjectRef::new(&tr.spec.dataset.name).within(&ns))
        .and_then(|g| g.0.as_ref().ok().cloned());
    let pods = in_namespace(&caches.pods, &ns, |p| {
        p.labels().get(labels::TRAINING_RUN) == Some(&tr.name_any())
    });
    let jobs = workload::controlled_by(&caches.jobs, &ns, &tr)
        .iter()
        .map(|j| workload::anticipate(j, &pods))
        .collect();
    let store = artifact_store::of_namespace(&caches.stores, &ns, &ctx.artifact_store);
    let runs = runs::observe(&ctx, &tr, store.as_ref(), jobs).await?;
    let decision = decide(
        &tr,
        &Facts {
            dataset: dataset.as_ref(),
            status: &runs.status,
            active: runs.active.as_ref(),
            store_problem: store.as_ref().err(),
            now: Timestamp::now(),
        },
    );
    let mut conditions = decision.conditions;
    let mut current = decision.current;
    // A refusal that may pass is retried with back-off once the status says so.
    let mut retry = None;
    let mut started = false;
    if let (Some(start), Some(ds), Ok(store)) = (&decision.start, &dataset, &store) {
        match runs::start(&ctx, &tr, ds, store, start).await {
            Ok(created) => started = created,
            Err(e) => {
                conditions = decide::refused(start, &e);
                current = None;
                if e.invalid_object().is_none() {
                    retry = Some(e);
                }
            }
        }
    }
    // The run that just ended was announced by its own Event (RunSucceeded, RunFailed), and
    // so was the run just started (RunStarted): the conditions they bring need no second one.
    let announce = !started
        && !decision
            .verdict
            .as_ref()
            .is_some_and(|id| runs.announced.contains(id));
    status::update_announcing(&ctx, &tr, tr.status.as_ref(), &conditions, announce, |s| {
        if decision.dataset_version.is_some() {
            s.dataset_version = decision.dataset_version.clone();
        }
        s.runs = runs.status.runs.clone();
        s.current_run = current;
        s.last_model_version = runs.status.last_model_version;
    })
    .await?;
    runs::tidy(&ctx, &tr, &runs).await?;
    if runs.registered_now()
        && let Ok(store) = &store
    {
        let registered = runs.status.last_model_version.unwrap_or(i64::MAX);
        retention::apply(&ctx, &tr, store, registered).await?;
    }
    if let Some(e) = retry {
        return Err(e);
    }
    // An invalid Job waits for a change of the spec (or the data): no retry on a timer.
    Ok(decision
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}
