//! What a TrainingRun calls for, decided from what the reconcile observed: which dataset
//! version it trains on, whether a run starts (and which: its id, its Job), and the
//! conditions that say so. Pure: every policy of the controller is here, tested from inline
//! YAML; the reconcile only gathers the facts and carries the decision out.

use super::{job, schedule};
use crate::controllers::artifact_store::Unusable;
use crate::error::Error;
use ciclo_api::conditions::{self, Set};
use ciclo_api::dataset::{Dataset, DatasetVersion, Verdict};
use ciclo_api::training_run::{RunRecord, TrainingRun, TrainingRunStatus};
use jiff::Timestamp;
use kube::ResourceExt as _;
use std::time::Duration;

/// The condition `Running` (true while a run's Job is active).
pub const RUNNING: &str = "Running";

/// What the reconcile observed.
pub struct Facts<'a> {
    /// The Dataset `spec.dataset.name`, if it exists.
    pub dataset: Option<&'a Dataset>,
    /// The status with every finished run recorded.
    pub status: &'a TrainingRunStatus,
    /// The run whose Job is active, if any.
    pub active: Option<&'a RunRecord>,
    /// Why the namespace has no artifact store to write models to, if it has none.
    pub store_problem: Option<&'a Unusable>,
    pub now: Timestamp,
}

/// A run to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// Its record as it starts (id, Job name, dataset version; phase Pending).
    pub record: RunRecord,
    /// The dataset version it trains on.
    pub version: DatasetVersion,
}

/// What to do.
#[derive(Debug)]
pub struct Decision {
    /// Every condition, `Running` included, as they hold once the decision is carried out.
    pub conditions: Vec<Set>,
    /// The dataset version the next or current run uses, once resolved.
    pub dataset_version: Option<String>,
    /// The run to start, if one is due.
    pub start: Option<Start>,
    /// The run in progress once the decision is carried out.
    pub current: Option<RunRecord>,
    /// The finished run whose result the conditions give.
    pub verdict: Option<String>,
    /// When to look again without a change (the next schedule tick).
    pub requeue: Option<Duration>,
}

/// Decides what `tr` calls for, given `facts`.
pub fn decide(tr: &TrainingRun, facts: &Facts) -> Decision {
    let resolution = resolve(tr, facts.dataset);
    let requeue = resolution
        .schedule
        .as_ref()
        .and_then(|c| schedule::until_next(c, facts.now));
    let mut conditions = resolution.conditions;
    let mut start = None;
    let mut verdict = None;
    let mut current = facts.active.cloned();
    if let (true, None, Some(ds), Some(version_id)) = (
        resolution.train,
        &current,
        facts.dataset,
        &resolution.dataset_version,
    ) {
        let trigger = trigger(tr, resolution.schedule.as_ref(), facts.now);
        let run_id = job::run_id(tr, version_id, &trigger);
        let version = ds.status.as_ref().and_then(|s| {
            s.versions
                .iter()
                .chain(s.latest.as_ref())
                .find(|v| &v.id == version_id)
        });
        if let Some(problem) = facts.store_problem {
            conditions = conditions::stalled(problem.reason, problem.message.clone());
        } else if let Some(run) = facts.status.runs.iter().find(|r| r.id == run_id) {
            conditions = finished_conditions(run);
            verdict = Some(run.id.clone());
        } else if let Some(version) = version {
            let record = RunRecord {
                id: run_id.clone(),
                job: job::name(tr, &run_id),
                dataset_version: version.id.clone(),
                phase: super::outcome::Phase::Pending,
                start_time: None,
                completion_time: None,
                metrics: Default::default(),
                model_version: None,
                failure: None,
            };
            current = Some(record.clone());
            start = Some(Start {
                record,
                version: version.clone(),
            });
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
    conditions.push(running(current.as_ref()));
    Decision {
        conditions,
        dataset_version: resolution.dataset_version,
        start,
        current,
        verdict,
        requeue,
    }
}

/// The conditions when the API server refused the Job (or Service) of the run `start`
/// planned: stalled with the server's message when the object is invalid (nothing changes
/// until the spec does), else retrying.
pub fn refused(start: &Start, error: &Error) -> Vec<Set> {
    let run = &start.record;
    let mut conditions = match error.invalid_object() {
        Some(why) => conditions::stalled(
            "InvalidSpec",
            format!(
                "the API server refused run {}'s Job {} built from this spec: {why}",
                run.id, run.job
            ),
        ),
        None => conditions::reconciling(
            "JobNotCreated",
            format!(
                "the API server did not create run {}'s Job {} (retrying with back-off): {}",
                run.id,
                run.job,
                error.message()
            ),
        ),
    };
    conditions.push(running(None));
    conditions
}

fn running(current: Option<&RunRecord>) -> Set {
    Set::new(
        RUNNING,
        current.is_some(),
        if current.is_some() {
            "RunActive"
        } else {
            "NoActiveRun"
        },
        current
            .map(|r| format!("Job {}", r.job))
            .unwrap_or_default(),
    )
}

/// What asked for the run beyond the spec and the data: the reconcile-requested-at
/// annotation and the latest `spec.schedule` tick, if any (absent parts add nothing, so the
/// identity of unscheduled runs does not depend on the feature).
fn trigger(tr: &TrainingRun, schedule: Option<&croner::Cron>, now: Timestamp) -> String {
    let mut trigger = requested_at(tr).unwrap_or_default().to_string();
    let created = tr
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    if let Some(tick) = schedule.and_then(|c| schedule::last_tick(c, created, now)) {
        trigger.push_str(&format!("\nschedule {tick}"));
    }
    trigger
}

/// The conditions once the run `run_id` has finished: ready with its model version, or
/// stalled with why it failed (it is not retried beyond its `backoffLimit` until the spec or
/// the data changes, or a new run is requested).
fn finished_conditions(run: &RunRecord) -> Vec<Set> {
    let run_id = &run.id;
    match run.model_version {
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
    }
}

/// The value of `ciclo.dev/reconcile-requested-at`: a new value asks for a new run.
fn requested_at(tr: &TrainingRun) -> Option<&str> {
    tr.annotations()
        .get(ciclo_api::labels::RECONCILE_REQUESTED_AT)
        .map(String::as_str)
}

/// The dataset version a TrainingRun trains on, and whether a run may start.
#[derive(Debug)]
struct Resolution {
    conditions: Vec<Set>,
    /// The dataset version the next run trains on, once resolved.
    dataset_version: Option<String>,
    /// Whether a run may start (resolved, valid, not suspended).
    train: bool,
    /// `spec.schedule`, parsed.
    schedule: Option<croner::Cron>,
}

fn stalled(reason: &str, message: String) -> Resolution {
    Resolution {
        conditions: conditions::stalled(reason, message),
        dataset_version: None,
        train: false,
        schedule: None,
    }
}

/// Resolves the dataset version `tr` trains on and checks what only the controller can.
fn resolve(tr: &TrainingRun, dataset: Option<&Dataset>) -> Resolution {
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
                return Resolution {
                    // Waiting for data that comes from outside (not in progress: kstatus
                    // would keep a GitOps tool's wait going until its timeout).
                    conditions: conditions::idle(
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
        return Resolution {
            conditions: conditions::idle("Suspended", "no new runs start (spec.suspend)"),
            dataset_version: Some(version),
            train: false,
            schedule,
        };
    }
    Resolution {
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
    use ciclo_api::conditions::{READY, RECONCILING, STALLED, merge};

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

    /// Decides with nothing recorded, no run in progress and an artifact store.
    fn decide_on(tr: &TrainingRun, dataset: Option<&Dataset>) -> Decision {
        with(tr, dataset, &TrainingRunStatus::default(), None, true)
    }

    fn with(
        tr: &TrainingRun,
        dataset: Option<&Dataset>,
        status: &TrainingRunStatus,
        active: Option<&RunRecord>,
        artifact_store: bool,
    ) -> Decision {
        let problem = Unusable {
            reason: "NoArtifactStore",
            message: "no artifact store for namespace ml".into(),
        };
        decide(
            tr,
            &Facts {
                dataset,
                status,
                active,
                store_problem: (!artifact_store).then_some(&problem),
                now: "2026-12-01T00:00:00Z".parse().unwrap(),
            },
        )
    }

    fn conds(d: &Decision) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        merge(&[], &d.conditions, Some(3), jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn a_run_whose_dataset_does_not_exist_is_stalled_with_dataset_not_found() {
        let d = decide_on(&tr("{name: iris}"), None);
        let c = conds(&d);
        assert!(has_condition(&c, STALLED, "DatasetNotFound"), "{c:?}");
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn following_latest_resolves_the_latest_accepted_version() {
        let d = decide_on(&tr("{name: iris}"), Some(&ds(ACCEPTED_AND_REJECTED)));
        assert_eq!(d.dataset_version.as_deref(), Some("v2"));
        assert!(!conds(&d).iter().any(|c| c.type_ == STALLED));
    }

    #[test]
    fn a_rejected_dataset_version_is_never_trained_on() {
        let d = decide_on(
            &tr("{name: iris, version: v3}"),
            Some(&ds(ACCEPTED_AND_REJECTED)),
        );
        assert!(has_condition(&conds(&d), STALLED, "DatasetVersionRejected"));
        assert_eq!(d.dataset_version, None);
    }

    #[test]
    fn a_pinned_version_that_does_not_exist_stalls() {
        let d = decide_on(
            &tr("{name: iris, version: nope}"),
            Some(&ds(ACCEPTED_AND_REJECTED)),
        );
        assert!(has_condition(&conds(&d), STALLED, "DatasetVersionNotFound"));
    }

    #[test]
    fn a_dataset_without_accepted_versions_makes_the_run_wait_not_stall() {
        let d = decide_on(&tr("{name: iris}"), Some(&ds("{}")));
        let c = conds(&d);
        let ready = c.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "WaitingForData")
        );
        assert!(
            !c.iter()
                .any(|c| (c.type_ == STALLED || c.type_ == RECONCILING) && c.status == "True")
        );
    }

    #[test]
    fn each_schedule_tick_is_a_new_run_and_no_schedule_keeps_the_trigger_as_it_was() {
        let mut run = tr("{name: iris}");
        run.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-11-20T10:00:00Z".parse().unwrap(),
            ));
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let plain = resolve(&run, Some(&ds(ACCEPTED_AND_REJECTED))).schedule;
        assert_eq!(
            trigger(&run, plain.as_ref(), at("2026-11-22T00:00:00Z")),
            ""
        );
        run.spec.schedule = Some("0 3 * * *".into());
        let d = resolve(&run, Some(&ds(ACCEPTED_AND_REJECTED))).schedule;
        let first = trigger(&run, d.as_ref(), at("2026-11-21T04:00:00Z"));
        assert_eq!(
            first,
            trigger(&run, d.as_ref(), at("2026-11-22T02:59:00Z")),
            "same tick"
        );
        assert_ne!(
            first,
            trigger(&run, d.as_ref(), at("2026-11-22T03:00:00Z")),
            "next tick"
        );
        assert_eq!(
            trigger(&run, d.as_ref(), at("2026-11-20T11:00:00Z")),
            "",
            "no tick yet"
        );
    }

    #[test]
    fn an_invalid_schedule_stalls_naming_the_field() {
        let mut run = tr("{name: iris}");
        run.spec.schedule = Some("every day".into());
        let c = conds(&decide_on(&run, Some(&ds("{}"))));
        assert!(has_condition(&c, STALLED, "InvalidSchedule"));
        assert!(c.iter().any(|c| c.message.starts_with("spec.schedule")));
    }

    fn recorded(yaml: &str) -> TrainingRunStatus {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_resolved_version_with_no_run_yet_starts_one_and_says_training() {
        let run = tr("{name: iris}");
        let d = decide_on(&run, Some(&ds(ACCEPTED_AND_REJECTED)));
        let start = d.start.clone().expect("a run starts");
        assert_eq!(start.version.id, "v2");
        assert_eq!(start.record.job, job::name(&run, &start.record.id));
        assert_eq!(d.current.as_ref(), Some(&start.record));
        let c = conds(&d);
        assert!(has_condition(&c, RECONCILING, "Training"), "{c:?}");
        assert!(has_condition(&c, RUNNING, "RunActive"));
    }

    #[test]
    fn a_run_already_recorded_is_not_started_again_and_its_result_is_the_verdict() {
        let run = tr("{name: iris}");
        let first = decide_on(&run, Some(&ds(ACCEPTED_AND_REJECTED)))
            .start
            .unwrap();
        let id = &first.record.id;
        let ok = recorded(&format!(
            "runs: [{{id: {id}, job: j, datasetVersion: v2, phase: Succeeded, modelVersion: 4}}]"
        ));
        let d = with(&run, Some(&ds(ACCEPTED_AND_REJECTED)), &ok, None, true);
        assert!(d.start.is_none() && d.current.is_none());
        assert_eq!(d.verdict.as_ref(), Some(id));
        let c = conds(&d);
        assert!(has_condition(&c, READY, "RunSucceeded"), "{c:?}");
        assert!(c.iter().any(|c| c.message.contains("model version 4")));
        let failed = recorded(&format!(
            "runs: [{{id: {id}, job: j, datasetVersion: v2, phase: Failed, failure: 'exit code 3'}}]"
        ));
        let d = with(&run, Some(&ds(ACCEPTED_AND_REJECTED)), &failed, None, true);
        assert!(d.start.is_none(), "a failed run is not retried by itself");
        assert!(has_condition(&conds(&d), STALLED, "RunFailed"));
    }

    #[test]
    fn nothing_starts_while_a_run_is_in_progress() {
        let run = tr("{name: iris}");
        let active: RunRecord =
            serde_yaml::from_str("{id: r0, job: iris-run-r0, datasetVersion: v1, phase: Running}")
                .unwrap();
        let d = with(
            &run,
            Some(&ds(ACCEPTED_AND_REJECTED)),
            &TrainingRunStatus::default(),
            Some(&active),
            true,
        );
        assert!(d.start.is_none());
        assert_eq!(d.current.as_ref(), Some(&active));
        assert!(conds(&d).iter().any(|c| c.message.contains("iris-run-r0")));
    }

    #[test]
    fn without_an_artifact_store_no_run_starts_and_the_run_stalls() {
        let run = tr("{name: iris}");
        let d = with(
            &run,
            Some(&ds(ACCEPTED_AND_REJECTED)),
            &TrainingRunStatus::default(),
            None,
            false,
        );
        assert!(d.start.is_none());
        assert!(has_condition(&conds(&d), STALLED, "NoArtifactStore"));
    }

    #[test]
    fn an_invalid_job_stalls_with_the_api_servers_words_and_other_refusals_retry() {
        let run = tr("{name: iris}");
        let start = decide_on(&run, Some(&ds(ACCEPTED_AND_REJECTED)))
            .start
            .unwrap();
        let refusal = |code, reason, message: &str| {
            Error::Kube(kube::Error::Api(Box::new(
                kube::core::Status::failure(message, reason).with_code(code),
            )))
        };
        let invalid = refusal(
            422,
            "Invalid",
            "Job.batch \"iris-run-x\" is invalid: spec.template.spec.containers[0].image: Required value",
        );
        let c = merge(
            &[],
            &refused(&start, &invalid),
            Some(3),
            Timestamp::UNIX_EPOCH,
        );
        assert!(has_condition(&c, STALLED, "InvalidSpec"), "{c:?}");
        assert!(
            c.iter()
                .any(|c| c.message.contains("containers[0].image: Required value"))
        );
        assert!(!conditions::is_true(&c, RUNNING));
        let quota = refusal(403, "Forbidden", "exceeded quota: compute");
        let c = merge(
            &[],
            &refused(&start, &quota),
            Some(3),
            Timestamp::UNIX_EPOCH,
        );
        assert!(has_condition(&c, RECONCILING, "JobNotCreated"), "{c:?}");
        assert!(!c.iter().any(|c| c.type_ == STALLED));
        assert!(c.iter().any(|c| c.message.contains("exceeded quota")));
    }
}
