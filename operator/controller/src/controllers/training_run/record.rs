//! Recording finished runs in a TrainingRun's status — pure steps, so that what is recorded,
//! kept and deleted never depends on how often or in which order reconciles run.
//!
//! A run is recorded exactly once, whatever the history limit: its Job carries the annotation
//! [`RECORDED`] once its record is in the status, and a finished Job whose run is no longer
//! in the (bounded) history is deleted rather than read again. The order of the writes makes
//! a crash at any point safe:
//! 1. [`triage`]: finished Jobs neither in the history nor marked are to be recorded;
//! 2. their results are read and ModelVersions registered (idempotent by run id);
//! 3. [`fold`] merges the records into the status (newest first by completion time, cut to
//!    the limit; `lastModelVersion` only moves forward), which is written;
//! 4. [`housekeeping`]: Jobs whose run is in the history get the marker; recorded Jobs whose
//!    run is outside it are deleted.
//!
//! A crash after 3 leaves unmarked Jobs whose runs are in the history: step 4 marks them next
//! time. A crash before 3 records the same runs again from the same Jobs, with the same
//! ModelVersions.

use super::outcome::Phase;
use ciclo_api::training_run::{RunRecord, TrainingRunStatus};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt as _;
use std::collections::BTreeSet;

/// The annotation a training Job gets once its run is recorded in the status.
pub const RECORDED: &str = "ciclo.dev/recorded";
/// The annotation naming a training Job's run.
pub const RUN_ID: &str = "ciclo.dev/run-id";
/// The annotation naming the dataset version a training Job trains on.
pub const DATASET_VERSION: &str = "ciclo.dev/dataset-version";

/// What the Jobs of a TrainingRun call for before anything is recorded.
#[derive(Debug, Default)]
pub struct Triage<'a> {
    /// The run in progress (its Job exists and has not finished).
    pub active: Option<RunRecord>,
    /// Finished Jobs whose runs are not recorded yet, oldest first.
    pub to_record: Vec<&'a Job>,
}

/// Sorts `jobs` into the run in progress and the finished runs still to record.
pub fn triage<'a>(status: &TrainingRunStatus, jobs: &'a [Job]) -> Triage<'a> {
    let mut triage = Triage::default();
    for job in jobs {
        let phase = super::outcome::phase(job);
        if matches!(phase, Phase::Pending | Phase::Running) {
            triage.active = Some(record_of(job, phase));
        } else if !in_history(status, &run_id(job)) && !is_marked(job) {
            triage.to_record.push(job);
        }
    }
    triage.to_record.sort_by_key(|j| finished_at(j));
    triage
}

/// A run's record as its Job shows it, before its result is read.
pub fn record_of(job: &Job, phase: Phase) -> RunRecord {
    let status = job.status.as_ref();
    let finished = matches!(phase, Phase::Succeeded | Phase::Failed);
    RunRecord {
        id: run_id(job),
        job: job.name_any(),
        dataset_version: annotation(job, DATASET_VERSION),
        phase,
        start_time: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        completion_time: finished.then(|| finished_at(job)),
        metrics: Default::default(),
        model_version: None,
        failure: None,
    }
}

/// Merges newly finished runs into `status`: the history stays newest first by completion
/// time and at most `limit` long, and `lastModelVersion` never moves back. Returns the ids of
/// the new runs kept in the history (the ones worth announcing: a run that falls outside the
/// history at once is older than all it keeps, e.g. a leftover Job of an earlier release).
pub fn fold(status: &mut TrainingRunStatus, new: Vec<RunRecord>, limit: u32) -> Vec<String> {
    let new_ids: Vec<String> = new.iter().map(|r| r.id.clone()).collect();
    for run in &new {
        if let Some(n) = run.model_version {
            status.last_model_version = Some(status.last_model_version.map_or(n, |l| l.max(n)));
        }
    }
    let mut runs: Vec<RunRecord> = new
        .into_iter()
        .chain(std::mem::take(&mut status.runs))
        .collect();
    // Stable: among runs finished at the same moment the newly recorded come first.
    runs.sort_by_key(|r| std::cmp::Reverse(completed(r)));
    let mut seen = BTreeSet::new();
    runs.retain(|r| seen.insert(r.id.clone()));
    runs.truncate(limit.max(1) as usize);
    status.runs = runs;
    new_ids
        .into_iter()
        .filter(|id| in_history(status, id))
        .collect()
}

/// What the Jobs need once the status holds every record.
#[derive(Debug, Default, PartialEq)]
pub struct Housekeeping {
    /// Jobs whose runs are in the history and do not carry the marker yet.
    pub mark: Vec<String>,
    /// Finished, recorded Jobs whose runs are outside the history.
    pub delete: Vec<String>,
}

/// What to do with each finished Job after the status with `recorded_now` (the runs recorded
/// in this pass) was written.
pub fn housekeeping(
    status: &TrainingRunStatus,
    jobs: &[Job],
    recorded_now: &BTreeSet<String>,
) -> Housekeeping {
    let mut out = Housekeeping::default();
    for job in jobs {
        if matches!(super::outcome::phase(job), Phase::Pending | Phase::Running) {
            continue;
        }
        let id = run_id(job);
        if in_history(status, &id) {
            if !is_marked(job) {
                out.mark.push(job.name_any());
            }
        } else if is_marked(job) || recorded_now.contains(&id) {
            out.delete.push(job.name_any());
        }
    }
    out
}

fn in_history(status: &TrainingRunStatus, id: &str) -> bool {
    status.runs.iter().any(|r| r.id == id)
}

fn is_marked(job: &Job) -> bool {
    job.annotations().contains_key(RECORDED)
}

fn run_id(job: &Job) -> String {
    annotation(job, RUN_ID)
}

fn annotation(job: &Job, key: &str) -> String {
    job.annotations().get(key).cloned().unwrap_or_default()
}

/// When a Job finished: its completion time, else when it was marked failed, else when it
/// started (the oldest bound the Job still shows).
fn finished_at(job: &Job) -> Timestamp {
    let status = job.status.as_ref();
    let failed = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
        })
        .and_then(|c| c.last_transition_time.as_ref());
    status
        .and_then(|s| s.completion_time.as_ref())
        .or(failed)
        .or(status.and_then(|s| s.start_time.as_ref()))
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

/// A record's completion time; records without a readable one sort as the oldest.
fn completed(r: &RunRecord) -> Timestamp {
    r.completion_time.unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished Job of run `id`, completed at second `at` of the day (failed when `ok` is
    /// false), marked as recorded or not.
    fn job(id: &str, at: u32, ok: bool, marked: bool) -> Job {
        let recorded = if marked {
            format!(", {RECORDED}: 'true'")
        } else {
            String::new()
        };
        let time = format!("2026-12-01T00:00:{at:02}Z");
        let status = if ok {
            format!(
                "{{startTime: '2026-12-01T00:00:00Z', completionTime: '{time}', conditions: [{{type: Complete, status: 'True'}}]}}"
            )
        } else {
            format!(
                "{{startTime: '2026-12-01T00:00:00Z', conditions: [{{type: Failed, status: 'True', lastTransitionTime: '{time}'}}]}}"
            )
        };
        serde_yaml::from_str(&format!(
            "metadata: {{name: tr-run-{id}, annotations: {{{RUN_ID}: {id}, {DATASET_VERSION}: v{at}{recorded}}}}}\nstatus: {status}"
        ))
        .unwrap()
    }

    fn active(id: &str) -> Job {
        serde_yaml::from_str(&format!(
            "metadata: {{name: tr-run-{id}, annotations: {{{RUN_ID}: {id}}}}}\nstatus: {{active: 1}}"
        ))
        .unwrap()
    }

    /// The record a successful run gets once its ModelVersion `n` is registered.
    fn succeeded(job: &Job, n: i64) -> RunRecord {
        RunRecord {
            model_version: Some(n),
            ..record_of(job, Phase::Succeeded)
        }
    }

    /// One reconcile's recording, as the controller runs it, with run `i` registering
    /// version `i`: returns the announced runs and what became of the Jobs.
    fn reconcile(
        status: &mut TrainingRunStatus,
        jobs: &mut Vec<Job>,
        limit: u32,
    ) -> (Vec<String>, Housekeeping) {
        let triage = triage(status, jobs);
        let new: Vec<RunRecord> = triage
            .to_record
            .iter()
            .map(|j| succeeded(j, run_id(j).trim_start_matches('r').parse().unwrap()))
            .collect();
        let now: BTreeSet<String> = new.iter().map(|r| r.id.clone()).collect();
        let announced = fold(status, new, limit);
        let chores = housekeeping(status, jobs, &now);
        jobs.retain(|j| !chores.delete.contains(&j.name_any()));
        for j in jobs.iter_mut() {
            if chores.mark.contains(&j.name_any()) {
                j.annotations_mut().insert(RECORDED.into(), "true".into());
            }
        }
        (announced, chores)
    }

    #[test]
    fn each_run_is_recorded_once_with_more_runs_than_the_history_keeps() {
        let (mut status, mut jobs) = (TrainingRunStatus::default(), Vec::new());
        let mut announced = Vec::new();
        for i in 1..=5u32 {
            jobs.push(job(&format!("r{i}"), i, true, false));
            // Several reconciles per run, as Job, status and Event changes wake it.
            for _ in 0..3 {
                announced.extend(reconcile(&mut status, &mut jobs, 2).0);
            }
        }
        assert_eq!(announced, ["r1", "r2", "r3", "r4", "r5"], "each run once");
        let ids: Vec<&str> = status.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r5", "r4"], "newest first, at most the limit");
        assert_eq!(status.last_model_version, Some(5));
        let names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
        assert_eq!(
            names,
            ["tr-run-r4", "tr-run-r5"],
            "only the history's Jobs remain"
        );
        assert!(jobs.iter().all(is_marked));
        // And once everything is in place, a reconcile changes nothing.
        let before = status.clone();
        let (announced, chores) = reconcile(&mut status, &mut jobs, 2);
        assert!(announced.is_empty());
        assert_eq!(chores, Housekeeping::default());
        assert_eq!(status, before);
    }

    #[test]
    fn a_crash_between_the_status_write_and_the_marker_neither_loses_nor_repeats_a_run() {
        let mut status = TrainingRunStatus::default();
        let jobs = vec![job("r1", 1, true, false)];
        // Recorded and written, then the process died before marking the Job.
        let new = vec![succeeded(&jobs[0], 1)];
        fold(&mut status, new, 2);
        // The next leader: nothing to record again; the Job gets its marker.
        let t = triage(&status, &jobs);
        assert!(t.to_record.is_empty());
        let chores = housekeeping(&status, &jobs, &BTreeSet::new());
        assert_eq!(chores.mark, ["tr-run-r1"]);
        assert!(chores.delete.is_empty());
    }

    #[test]
    fn a_job_outside_the_history_is_deleted_only_once_it_was_recorded() {
        let status = TrainingRunStatus::default();
        let unrecorded = job("r1", 1, true, false);
        let recorded = job("r0", 0, false, true);
        let jobs = vec![unrecorded, recorded];
        let chores = housekeeping(&status, &jobs, &BTreeSet::new());
        assert_eq!(chores.delete, ["tr-run-r0"], "never an unread result");
        let t = triage(&status, &jobs);
        let ids: Vec<String> = t.to_record.iter().map(|j| run_id(j)).collect();
        assert_eq!(ids, ["r1"]);
    }

    #[test]
    fn the_run_in_progress_is_reported_and_never_recorded_or_deleted() {
        let status = TrainingRunStatus::default();
        let jobs = vec![active("r9")];
        let t = triage(&status, &jobs);
        assert_eq!(t.active.map(|r| r.id), Some("r9".into()));
        assert!(t.to_record.is_empty());
        assert_eq!(
            housekeeping(&status, &jobs, &BTreeSet::new()),
            Housekeeping::default()
        );
    }

    #[test]
    fn a_leftover_older_than_the_history_is_recorded_silently_and_the_newest_stay() {
        let mut status = TrainingRunStatus::default();
        let (r5, r6) = (job("r5", 5, true, true), job("r6", 6, true, true));
        fold(&mut status, vec![succeeded(&r5, 5), succeeded(&r6, 6)], 2);
        // A Job from before this release, never marked, finished before both.
        let old = job("r1", 1, false, false);
        let announced = fold(&mut status, vec![record_of(&old, Phase::Failed)], 2);
        assert!(announced.is_empty(), "not announced as news");
        let ids: Vec<&str> = status.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r6", "r5"]);
        assert_eq!(status.last_model_version, Some(6));
        let jobs = vec![old, r5, r6];
        let chores = housekeeping(&status, &jobs, &BTreeSet::from(["r1".to_string()]));
        assert_eq!(chores.delete, ["tr-run-r1"]);
    }

    #[test]
    fn the_last_model_version_never_moves_back() {
        let mut status = TrainingRunStatus {
            last_model_version: Some(7),
            ..Default::default()
        };
        let j = job("r3", 3, true, false);
        fold(&mut status, vec![succeeded(&j, 3)], 10);
        assert_eq!(status.last_model_version, Some(7));
    }

    #[test]
    fn records_written_by_the_previous_release_keep_their_place() {
        // Completion times were the operator's clock with nanoseconds; Jobs give seconds.
        let mut status: TrainingRunStatus = serde_yaml::from_str(
            r#"
runs:
- {id: r2, job: tr-run-r2, datasetVersion: v2, phase: Succeeded, completionTime: "2026-12-01T00:00:02.123456789Z", modelVersion: 2}
- {id: r1, job: tr-run-r1, datasetVersion: v1, phase: Failed, completionTime: "2026-12-01T00:00:01.5Z", failure: boom}
lastModelVersion: 2
"#,
        )
        .unwrap();
        let j = job("r3", 3, true, false);
        fold(&mut status, vec![succeeded(&j, 3)], 10);
        let ids: Vec<&str> = status.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r3", "r2", "r1"]);
        assert_eq!(status.last_model_version, Some(3));
    }
}
