//! The Dataset controller: check the source with a Job (`ciclo dataset snapshot`) on
//! create, on spec change, every `interval` and when `ciclo.dev/reconcile-requested-at`
//! changes — one check at a time — and record each result in the status.
//!
//! Steps: read the Dataset fresh (the cache may not show this controller's own last status
//! write yet, and a check must never be recorded twice) → record a finished check Job's
//! result, then delete the Job → decide (pure) → start the next check Job → conditions.

mod decide;
mod job;
mod record;

use super::workload::CachedJob;
use super::{Ready, cache, controller, in_namespace, ready, run_until, store_ready, watch_config};
use crate::context::Context;
use crate::error::Result;
use crate::own_writes::{self, Read};
use crate::status;
use ciclo_api::dataset::Dataset;
use ciclo_api::labels;
use ciclo_core::snapshot_result::{FailureReason, Outcome, SnapshotSummary};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource as _, ResourceExt as _};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const KIND: &str = "Dataset";

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    // Only the check Jobs ciclo made, so other Jobs in the cluster never wake it.
    let (jobs, changes) = cache::<CachedJob>(
        &ctx,
        watch_config().labels("app.kubernetes.io/component=dataset-check"),
        super::workload::strip_job,
    );
    let (pods, pod_changes) = cache::<Pod>(
        &ctx,
        super::workload::succeeded_pods("app.kubernetes.io/component=dataset-check"),
        super::workload::strip_pod,
    );
    let (stores, store_changes) = super::artifact_store::configs(&ctx);
    // A check's Pod finishing wakes its Dataset (its Job says so only a second later).
    let controller = controller::<Dataset>(&ctx).owns_stream(changes);
    let own = controller.store();
    let controller = controller
        .watches_stream(store_changes, super::artifact_store::wakes(own))
        .watches_stream(pod_changes, |pod| {
            let ns = pod.namespace()?;
            let name = pod.labels().get(labels::DATASET)?;
            Some(ObjectRef::new(name).within(&ns))
        });
    let caches = Checks {
        ready: ready(vec![
            store_ready(&jobs),
            store_ready(&pods),
            store_ready(&stores),
        ]),
        jobs,
        pods,
        stores,
        looked_back: Arc::default(),
    };
    let reconcile = move |ctx, ds| reconcile(ctx, caches.clone(), ds);
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

/// The check Jobs and their Pods, cached.
#[derive(Clone)]
struct Checks {
    jobs: Store<CachedJob>,
    pods: Store<Pod>,
    /// The namespaces' own artifact stores.
    stores: Store<ConfigMap>,
    /// Every cache holds its first list.
    ready: Ready,
    /// The Datasets (by uid) whose earlier versions were looked for in the store.
    looked_back: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

async fn reconcile(ctx: Arc<Context>, caches: Checks, cached: Dataset) -> Result<Action> {
    let ns = cached.namespace().unwrap_or_default();
    // From the cache, once it holds this controller's last status write: a check must never
    // be recorded twice. The check Jobs come from their cache, whose changes wake this
    // reconcile.
    let ds = match own_writes::read(&ctx, cached).await? {
        Read::Object(ds) => ds,
        Read::Behind => return Ok(Action::requeue(own_writes::RECHECK)),
        Read::Gone => return Ok(Action::await_change()),
    };
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    // Until the first list is in, an empty cache would say "no check Job".
    caches.ready.clone().await;
    let pods = in_namespace(&caches.pods, &ns, |p| {
        p.labels().get(labels::DATASET) == Some(&ds.name_any())
    });
    let jobs: Vec<Job> = super::workload::controlled_by(&caches.jobs, &ns, &ds)
        .iter()
        .map(|j| super::workload::anticipate(j, &pods))
        .collect();

    let recorded = ds
        .status
        .as_ref()
        .and_then(|s| s.last_check.as_ref())
        .map(|c| c.job.clone());
    for finished in jobs.iter().filter(|j| is_finished(j)) {
        let name = finished.name_any();
        if recorded.as_deref() != Some(name.as_str()) {
            let summary = read_result(&ctx, &ns, finished).await?;
            record_check(&ctx, &ds, &caches.stores, finished, &summary).await?;
            if summary.outcome == Outcome::Failed && job::is_sharded(finished) {
                remove_shares(&ctx, &ds, &caches.stores, &name).await;
            }
        }
        // Recorded: the Job (and its Pod) can go.
        let delete = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        match jobs_api.delete(&name, &delete).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        if recorded.as_deref() != Some(name.as_str()) {
            // Decide the next step from the status just written.
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
    }

    // A new Dataset object over a folder that already holds versions (the cluster rebuilt
    // from git, or the object deleted and applied again) gets its history back before its
    // first check, from the reports its earlier checks left in the store.
    let uid = ds.uid().unwrap_or_default();
    let fresh = ds
        .status
        .as_ref()
        .is_none_or(|s| s.versions.is_empty() && s.last_check.is_none());
    if fresh
        && !caches
            .looked_back
            .lock()
            .expect("looked_back lock")
            .contains(&uid)
        && let Ok(store) =
            super::artifact_store::of_namespace(&caches.stores, &ns, &ctx.artifact_store)
    {
        let restored = restore_history(&ctx, &ds, &store).await?;
        caches
            .looked_back
            .lock()
            .expect("looked_back lock")
            .insert(uid);
        if restored {
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
    }

    let secret_found = match &ds.spec.source.credentials_secret_ref {
        Some(r) => Some(
            Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get_metadata_opt(&r.name)
                .await?
                .is_some(),
        ),
        None => None,
    };
    let running = jobs.iter().find(|j| !is_finished(j)).map(|j| j.name_any());
    let store = super::artifact_store::of_namespace(&caches.stores, &ns, &ctx.artifact_store);
    let decision = decide::decide(
        &ds,
        &decide::Facts {
            secret_found,
            store_problem: store.as_ref().err(),
            running: running.as_deref(),
            now: jiff::Timestamp::now(),
        },
    );
    let mut conditions = decision.conditions;
    let mut action = decision.action;
    let mut retry = None;
    if let (Some(name), Ok(store)) = (&decision.start, &store) {
        let job = job::build(&ds, name, &ctx.image, store);
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(_) => {
                tracing::info!(dataset = %ds.name_any(), namespace = %ns, job = %name, "check started")
            }
            // Started before a restart: the same check, not a second one.
            Err(kube::Error::Api(e)) if e.is_already_exists() => {}
            Err(e) => {
                let e = crate::error::Error::from(e);
                (conditions, action) = match e.invalid_object() {
                    // Built from the spec (its Secret's name, its settings): fixed by a change.
                    Some(why) => (
                        ciclo_api::conditions::stalled(
                            "InvalidSpec",
                            format!(
                                "the API server refused the check Job {name} built from this spec: {why}"
                            ),
                        ),
                        Action::await_change(),
                    ),
                    None => (
                        ciclo_api::conditions::reconciling(
                            "CheckNotStarted",
                            format!(
                                "the API server did not create the check Job {name} (retrying with back-off): {}",
                                e.message()
                            ),
                        ),
                        action,
                    ),
                };
                if e.invalid_object().is_none() {
                    retry = Some(e);
                }
            }
        }
    }
    status::update(&ctx, &ds, ds.status.as_ref(), &conditions, |_| {}).await?;
    match retry {
        Some(e) => Err(e),
        None => Ok(action),
    }
}

/// Whether a Job has finished, either way.
fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

/// Deletes what the workers of the failed sharded check `job` handed to its worker 0, which
/// removes them only once it has written the version. Best effort, once: a failure is
/// logged, and the shares (manifest entries and sketches, never data) stay in the store.
async fn remove_shares(ctx: &Context, ds: &Dataset, stores: &Store<ConfigMap>, job: &str) {
    let ns = ds.namespace().unwrap_or_default();
    let Ok(store) = super::artifact_store::of_namespace(stores, &ns, &ctx.artifact_store) else {
        return;
    };
    let (under, folder) = job::shares(&store.uri, ds, job);
    let removed = async {
        super::registry::Registry::open(ctx, &ns, &store)
            .await?
            .delete_folder(&under, &folder)
            .await
    };
    if let Err(e) = removed.await {
        tracing::warn!(dataset = %ds.name_any(), namespace = %ns, %folder, error = %e, "removing a failed sharded check's shares");
    }
}

/// The check's summary, from its Pod's termination message. Of a sharded check, the last
/// summary that is a check's result: worker 0's (which merged the others' shares), or that of
/// a worker that failed; never a share handed to worker 0.
async fn read_result(ctx: &Context, ns: &str, job: &Job) -> Result<SnapshotSummary> {
    let ended =
        super::workload::terminated(&ctx.client, ns, &job.name_any(), job::CONTAINER, false)
            .await?;
    if let Some(summary) = ended.iter().rev().find_map(|(t, _)| {
        serde_json::from_str::<SnapshotSummary>(t.message.as_deref()?.trim())
            .ok()
            .filter(|s| s.outcome != Outcome::Part)
    }) {
        return Ok(summary);
    }
    let last = ended.last().map(|(t, _)| t);
    let why_failed = || {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Failed"))
            .map(|c| {
                format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Failed"),
                    c.message.as_deref().unwrap_or_default()
                )
            })
    };
    let message = last.and_then(|t| t.message.clone()).unwrap_or_default();
    let exit = last
        .as_ref()
        .map(|t| format!("exit code {}", t.exit_code))
        .unwrap_or_else(|| "no container result".into());
    let tail: String = message
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Ok(SnapshotSummary::failed(
        FailureReason::CheckFailed,
        format!(
            "the check Job {} stopped without a result ({exit}{}){}",
            job.name_any(),
            why_failed().map(|w| format!(", {w}")).unwrap_or_default(),
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        ),
    ))
}

/// Puts the versions the store holds for `ds` (newest first, within `historyLimit`) into its
/// status, and the newest accepted one as `latest`; returns whether there were any.
async fn restore_history(
    ctx: &Context,
    ds: &Dataset,
    store: &super::artifact_store::ArtifactStore,
) -> Result<bool> {
    let ns = ds.namespace().unwrap_or_default();
    let registry = super::registry::Registry::open(ctx, &ns, store).await?;
    let mut versions = registry.dataset_versions(&ds.name_any()).await?;
    if versions.is_empty() {
        return Ok(false);
    }
    let latest = versions
        .iter()
        .find(|v| v.verdict == ciclo_api::dataset::Verdict::Accepted)
        .cloned();
    versions.truncate((ds.spec.history_limit as usize).max(1));
    let mut updated = ds.clone();
    let mut restored = ds.status.clone().unwrap_or_default();
    restored.versions = versions.clone();
    restored.latest = latest.clone();
    updated.status = Some(restored);
    let conditions = decide::status_conditions(&updated, None);
    ctx.publish(
        &ds.object_ref(&()),
        EventType::Normal,
        "VersionsRestored",
        &format!(
            "{} earlier version(s) restored from the artifact store's reports; latest accepted: {}",
            versions.len(),
            latest.as_ref().map_or("none", |v| v.id.as_str())
        ),
        "Restore",
    )
    .await;
    status::update(ctx, ds, ds.status.as_ref(), &conditions, |s| {
        s.versions = versions;
        s.latest = latest;
    })
    .await?;
    Ok(true)
}

/// Deletes the folders of the rejected versions retention `removed` (before the status that
/// drops them is written: a crash in between deletes them again, harmlessly), and says so.
async fn remove_versions(
    ctx: &Context,
    ds: &Dataset,
    stores: &Store<ConfigMap>,
    removed: &[ciclo_api::dataset::DatasetVersion],
    keep: u32,
) -> Result<()> {
    if removed.is_empty() {
        return Ok(());
    }
    let ns = ds.namespace().unwrap_or_default();
    let store = super::artifact_store::of_namespace(stores, &ns, &ctx.artifact_store)
        .map_err(|problem| crate::error::Error::Store(problem.message))?;
    let registry = super::registry::Registry::open(ctx, &ns, &store).await?;
    let mut folders = Vec::new();
    for v in removed {
        // The version's folder by ciclo's layout, whatever its recorded location says.
        let folder = format!(
            "{}/{}/",
            super::data_source::artifacts_uri(&store.uri, ds),
            v.id
        );
        let under = format!("datasets/{}", ds.name_any());
        if let Some(folder) = registry.delete_folder(&under, &folder).await? {
            folders.push(folder);
        }
    }
    let ids: Vec<&str> = removed.iter().map(|v| v.id.as_str()).collect();
    ctx.publish(
        &ds.object_ref(&()),
        EventType::Normal,
        "VersionsRemoved",
        &format!(
            "removed rejected version(s) {} (spec.retention.rejectedVersions keeps the {keep} newest rejected, within historyLimit) and their folders {}",
            ids.join(", "),
            folders.join(", ")
        ),
        "Retention",
    )
    .await;
    Ok(())
}

/// Records `job`'s result: the Event first, then the status (so a crash in between repeats
/// the Event rather than losing it).
async fn record_check(
    ctx: &Context,
    ds: &Dataset,
    stores: &Store<ConfigMap>,
    job: &Job,
    summary: &SnapshotSummary,
) -> Result<()> {
    let mut next = ds.status.clone().unwrap_or_default();
    let note = record::record(
        &mut next,
        &record::Check {
            job: &job.name_any(),
            generation: job_generation(job).unwrap_or(ds.metadata.generation.unwrap_or_default()),
            // Only the request this Job was started for: a request made while it ran (the
            // annotation changed since) is answered by the next check, which sees its data.
            requested_at: job_requested_at(job),
            now: jiff::Timestamp::now(),
            // With retention, rejected versions leave the history below, with their folders.
            history_limit: if ds.spec.retention.is_some() {
                usize::MAX
            } else {
                ds.spec.history_limit as usize
            },
            capture: ds
                .spec
                .source
                .capture
                .as_ref()
                .map(|c| c.model_deployment.as_str()),
        },
        summary,
    );
    if let Some(note) = note {
        let type_ = if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.publish(
            &ds.object_ref(&()),
            type_,
            note.reason,
            &note.message,
            "Check",
        )
        .await;
    }
    tracing::info!(dataset = %ds.name_any(), job = %job.name_any(), outcome = ?summary.outcome, version = ?summary.id, "check recorded");
    if let Some(retention) = &ds.spec.retention {
        let removed = record::retain(
            &mut next,
            retention.rejected_versions as usize,
            ds.spec.history_limit as usize,
        );
        remove_versions(ctx, ds, stores, &removed, retention.rejected_versions).await?;
    }
    let mut updated = ds.clone();
    updated.status = Some(next.clone());
    let conditions = decide::status_conditions(&updated, None);
    status::update(ctx, ds, ds.status.as_ref(), &conditions, |s| {
        s.latest = next.latest;
        s.versions = next.versions;
        s.last_check = next.last_check;
    })
    .await
}

/// The spec generation a check Job was started for (its annotation).
fn job_generation(job: &Job) -> Option<i64> {
    job.annotations()
        .get(job::GENERATION)
        .and_then(|g| g.parse().ok())
}

/// The `reconcile-requested-at` value a check Job answered (its annotation).
fn job_requested_at(job: &Job) -> Option<&str> {
    job.annotations()
        .get(labels::RECONCILE_REQUESTED_AT)
        .map(String::as_str)
}
