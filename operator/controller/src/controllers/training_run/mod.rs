//! The TrainingRun controller: read the TrainingRun fresh → resolve the Dataset and its
//! version → record finished runs (registering their ModelVersions) → start the run the
//! spec and the dataset version call for, one at a time → status.

mod job;
mod outcome;
mod runs;
mod schedule;

use super::{api, controller, run_until, watch_config};
use crate::context::Context;
use crate::error::Result;
use crate::status;
use ciclo_api::conditions::{self, Set};
use ciclo_api::dataset::{Dataset, Verdict};
use ciclo_api::training_run::{TrainingRun, TrainingRunStatus};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const KIND: &str = "TrainingRun";

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    // Only the training Jobs ciclo made, so other Jobs never wake it.
    let jobs = watch_config().labels("app.kubernetes.io/component=training-run");
    let controller = controller::<TrainingRun>(&ctx).owns(api::<Job>(&ctx), jobs);
    let store = controller.store();
    // A Dataset appearing, changing or going wakes the runs that train on it.
    let controller = controller.watches(
        api::<DeserializeGuard<Dataset>>(&ctx),
        watch_config(),
        move |ds| {
            let (ns, name) = (ds.namespace(), ds.name_any());
            store
                .state()
                .into_iter()
                .filter(|g| {
                    g.namespace() == ns && g.0.as_ref().is_ok_and(|tr| tr.spec.dataset.name == name)
                })
                .map(|g| ObjectRef::from_obj(&*g))
                .collect::<Vec<_>>()
        },
    );
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

async fn reconcile(ctx: Arc<Context>, cached: TrainingRun) -> Result<Action> {
    let ns = cached.namespace().unwrap_or_default();
    // The cache may not show this controller's last status write yet; a run must never be
    // recorded or started twice.
    let Some(tr) = Api::<TrainingRun>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&cached.name_any())
        .await?
    else {
        return Ok(Action::await_change());
    };
    let dataset = Api::<Dataset>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&tr.spec.dataset.name)
        .await?;
    let decision = decide(&tr, dataset.as_ref());
    let runs::Runs { mut status, active } = runs::observe(&ctx, &tr).await?;
    let mut conditions = decision.conditions.clone();
    let mut current = active;
    if let (true, None, Some(ds), Some(version_id)) = (
        decision.train,
        &current,
        &dataset,
        &decision.dataset_version,
    ) {
        let run_id = job::run_id(&tr, version_id, &trigger(&tr, &decision, Timestamp::now()));
        let version = ds.status.as_ref().and_then(|s| {
            s.versions
                .iter()
                .chain(s.latest.as_ref())
                .find(|v| &v.id == version_id)
                .cloned()
        });
        match (&ctx.artifact_store.uri, version) {
            (None, _) => {
                conditions = conditions::stalled(
                    "NoArtifactStore",
                    "the operator has no artifact store to write models to: set --artifact-store (CICLO_ARTIFACT_STORE)",
                )
            }
            (Some(_), Some(version)) if !status.runs.iter().any(|r| r.id == run_id) => {
                current = Some(runs::start(&ctx, &tr, ds, &version, &run_id).await?);
            }
            _ => {}
        }
        if current.is_none() && ctx.artifact_store.uri.is_some() {
            conditions = finished_conditions(&status, &run_id).unwrap_or(conditions);
        }
    }
    if let Some(run) = &current {
        conditions = conditions::reconciling(
            "Training",
            format!(
                "run {} (Job {}) on dataset version {}",
                run.id, run.job, run.dataset_version
            ),
        );
    }
    conditions.push(Set::new(
        RUNNING,
        current.is_some(),
        if current.is_some() {
            "RunActive"
        } else {
            "NoActiveRun"
        },
        current
            .as_ref()
            .map(|r| format!("Job {}", r.job))
            .unwrap_or_default(),
    ));
    status::update(&ctx, &tr, tr.status.as_ref(), &conditions, |s| {
        if decision.dataset_version.is_some() {
            s.dataset_version = decision.dataset_version.clone();
        }
        s.runs = status.runs;
        s.current_run = current;
        s.last_model_version = status.last_model_version.take();
    })
    .await?;
    Ok(
        match decision
            .schedule
            .as_ref()
            .and_then(|c| schedule::until_next(c, Timestamp::now()))
        {
            Some(wait) => Action::requeue(wait),
            None => Action::await_change(),
        },
    )
}

/// What asked for the run beyond the spec and the data: the reconcile-requested-at
/// annotation and the latest `spec.schedule` tick, if any (absent parts add nothing, so the
/// identity of unscheduled runs does not depend on the feature).
fn trigger(tr: &TrainingRun, decision: &Decision, now: Timestamp) -> String {
    let mut trigger = requested_at(tr).unwrap_or_default().to_string();
    let created = tr
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    if let Some(tick) = decision
        .schedule
        .as_ref()
        .and_then(|c| schedule::last_tick(c, created, now))
    {
        trigger.push_str(&format!("\nschedule {tick}"));
    }
    trigger
}

/// The condition `Running` (true while a run's Job is active).
pub const RUNNING: &str = "Running";

/// The conditions once the run `run_id` has finished: ready with its model version, or
/// stalled with why it failed (it is not retried beyond its `backoffLimit` until the spec or
/// the data changes, or a new run is requested).
fn finished_conditions(status: &TrainingRunStatus, run_id: &str) -> Option<Vec<Set>> {
    let run = status.runs.iter().find(|r| r.id == run_id)?;
    Some(match run.model_version {
        Some(n) => conditions::ready(
            "RunSucceeded",
            format!(
                "run {run_id} on dataset version {} registered model version {n}",
                run.dataset_version
            ),
        ),
        None => conditions::stalled(
            "RunFailed",
            format!(
                "run {run_id} failed: {}",
                run.failure.as_deref().unwrap_or("no reason given")
            ),
        ),
    })
}

/// The value of `ciclo.dev/reconcile-requested-at`: a new value asks for a new run.
fn requested_at(tr: &TrainingRun) -> Option<&str> {
    tr.annotations()
        .get(ciclo_api::labels::RECONCILE_REQUESTED_AT)
        .map(String::as_str)
}

/// The outcome of the pure steps.
#[derive(Debug)]
pub struct Decision {
    pub conditions: Vec<Set>,
    /// The dataset version the next run trains on, once resolved.
    pub dataset_version: Option<String>,
    /// Whether a run may start (resolved, valid, not suspended).
    pub train: bool,
    /// `spec.schedule`, parsed.
    pub schedule: Option<croner::Cron>,
}

fn stalled(reason: &str, message: String) -> Decision {
    Decision {
        conditions: conditions::stalled(reason, message),
        dataset_version: None,
        train: false,
        schedule: None,
    }
}

/// Resolves the dataset version `tr` trains on and checks what only the controller can.
pub fn decide(tr: &TrainingRun, dataset: Option<&Dataset>) -> Decision {
    let ns = tr.namespace().unwrap_or_default();
    let spec = &tr.spec;
    let schedule = match spec.schedule.as_deref().map(str::parse::<croner::Cron>) {
        None => None,
        Some(Ok(cron)) => Some(cron),
        Some(Err(e)) => {
            return stalled(
                "InvalidSchedule",
                format!(
                    "spec.schedule: {:?} is not a cron expression: {e}",
                    spec.schedule.as_deref().unwrap_or_default()
                ),
            );
        }
    };
    let Some(ds) = dataset else {
        return stalled(
            "DatasetNotFound",
            format!(
                "spec.dataset.name: Dataset {:?} not found in namespace {ns:?}",
                spec.dataset.name
            ),
        );
    };
    let status = ds.status.clone().unwrap_or_default();
    let version = match &spec.dataset.version {
        Some(pinned) => match status.versions.iter().find(|v| &v.id == pinned) {
            None => {
                return stalled(
                    "DatasetVersionNotFound",
                    format!(
                        "spec.dataset.version: Dataset {:?} has no version {pinned:?}",
                        ds.name_any()
                    ),
                );
            }
            Some(v) if v.verdict == Verdict::Rejected => {
                return stalled(
                    "DatasetVersionRejected",
                    format!(
                        "spec.dataset.version: version {pinned:?} of Dataset {:?} was rejected and is never trained on",
                        ds.name_any()
                    ),
                );
            }
            Some(v) => v.id.clone(),
        },
        None => match &status.latest {
            Some(latest) => latest.id.clone(),
            None => {
                return Decision {
                    conditions: conditions::reconciling(
                        "WaitingForData",
                        format!("Dataset {:?} has no accepted version yet", ds.name_any()),
                    ),
                    dataset_version: None,
                    train: false,
                    schedule,
                };
            }
        },
    };
    if spec.suspend {
        return Decision {
            conditions: conditions::idle("Suspended", "no new runs start (spec.suspend)"),
            dataset_version: Some(version),
            train: false,
            schedule,
        };
    }
    Decision {
        conditions: conditions::reconciling(
            "TrainingPending",
            format!(
                "dataset {:?} version {version} resolved; no run has trained on it yet",
                ds.name_any()
            ),
        ),
        dataset_version: Some(version),
        train: true,
        schedule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::has_condition;
    use ciclo_api::conditions::{RECONCILING, STALLED, merge};

    fn tr(dataset: &str) -> TrainingRun {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: iris, namespace: ml, generation: 3}}
spec:
  dataset: {dataset}
  model: {{name: iris}}
  trainer: {{algorithm: LogisticRegression, target: species}}
"#
        ))
        .unwrap()
    }

    fn ds(status: &str) -> Dataset {
        serde_yaml::from_str(&format!(
            "apiVersion: ciclo.dev/v1alpha1\nkind: Dataset\nmetadata: {{name: iris, namespace: ml}}\nspec: {{source: {{uri: 's3://b/iris'}}}}\nstatus: {status}"
        ))
        .unwrap()
    }

    const ACCEPTED_AND_REJECTED: &str = r#"
  latest: {id: v2, created: "2026-01-02T00:00:00Z", rows: 150, bytes: 5000, files: 1, verdict: Accepted}
  versions:
  - {id: v3, created: "2026-01-03T00:00:00Z", rows: 150, bytes: 5000, files: 1, verdict: Rejected, reasons: ["sepal_length: 3 nulls"]}
  - {id: v2, created: "2026-01-02T00:00:00Z", rows: 150, bytes: 5000, files: 1, verdict: Accepted}
"#;

    fn conds(d: &Decision) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        merge(&[], &d.conditions, Some(3), jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn a_run_whose_dataset_does_not_exist_is_stalled_with_dataset_not_found() {
        let d = decide(&tr("{name: iris}"), None);
        let c = conds(&d);
        assert!(has_condition(&c, STALLED, "DatasetNotFound"), "{c:?}");
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn following_latest_resolves_the_latest_accepted_version() {
        let d = decide(&tr("{name: iris}"), Some(&ds(ACCEPTED_AND_REJECTED)));
        assert_eq!(d.dataset_version.as_deref(), Some("v2"));
        assert!(!conds(&d).iter().any(|c| c.type_ == STALLED));
    }

    #[test]
    fn a_rejected_dataset_version_is_never_trained_on() {
        let d = decide(
            &tr("{name: iris, version: v3}"),
            Some(&ds(ACCEPTED_AND_REJECTED)),
        );
        assert!(has_condition(&conds(&d), STALLED, "DatasetVersionRejected"));
        assert_eq!(d.dataset_version, None);
    }

    #[test]
    fn a_pinned_version_that_does_not_exist_stalls() {
        let d = decide(
            &tr("{name: iris, version: nope}"),
            Some(&ds(ACCEPTED_AND_REJECTED)),
        );
        assert!(has_condition(&conds(&d), STALLED, "DatasetVersionNotFound"));
    }

    #[test]
    fn a_dataset_without_accepted_versions_makes_the_run_wait_not_stall() {
        let d = decide(&tr("{name: iris}"), Some(&ds("{}")));
        let c = conds(&d);
        assert!(has_condition(&c, RECONCILING, "WaitingForData"), "{c:?}");
        assert!(!c.iter().any(|c| c.type_ == STALLED));
    }

    #[test]
    fn each_schedule_tick_is_a_new_run_and_no_schedule_keeps_the_trigger_as_it_was() {
        let mut run = tr("{name: iris}");
        run.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-11-20T10:00:00Z".parse().unwrap(),
            ));
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let plain = decide(&run, Some(&ds(ACCEPTED_AND_REJECTED)));
        assert_eq!(trigger(&run, &plain, at("2026-11-22T00:00:00Z")), "");
        run.spec.schedule = Some("0 3 * * *".into());
        let d = decide(&run, Some(&ds(ACCEPTED_AND_REJECTED)));
        let first = trigger(&run, &d, at("2026-11-21T04:00:00Z"));
        assert_eq!(
            first,
            trigger(&run, &d, at("2026-11-22T02:59:00Z")),
            "same tick"
        );
        assert_ne!(
            first,
            trigger(&run, &d, at("2026-11-22T03:00:00Z")),
            "next tick"
        );
        assert_eq!(
            trigger(&run, &d, at("2026-11-20T11:00:00Z")),
            "",
            "no tick yet"
        );
    }

    #[test]
    fn an_invalid_schedule_stalls_naming_the_field() {
        let mut run = tr("{name: iris}");
        run.spec.schedule = Some("every day".into());
        let c = conds(&decide(&run, Some(&ds("{}"))));
        assert!(has_condition(&c, STALLED, "InvalidSchedule"));
        assert!(c.iter().any(|c| c.message.starts_with("spec.schedule")));
    }
}
