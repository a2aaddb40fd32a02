//! Reading a training Job: its phase, why it failed, and which ModelVersion number its
//! result gets — pure steps, so that a retried or restarted reconcile reaches the same answer.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ContainerStateTerminated;

/// Where a run is: the status's own type.
pub use ciclo_api::training_run::RunPhase as Phase;

/// The phase of a run's Job, from its conditions and counters.
pub fn phase(job: &Job) -> Phase {
    let Some(status) = &job.status else {
        return Phase::Pending;
    };
    let holds = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if holds("Complete") {
        Phase::Succeeded
    } else if holds("Failed") {
        Phase::Failed
    } else if status.active.unwrap_or(0) > 0 {
        Phase::Running
    } else {
        Phase::Pending
    }
}

/// Why a run failed, for its record: the Job's reason and the last container's exit code and
/// termination message (its summary, or with FallbackToLogsOnError its last log lines).
pub fn failure(job: &Job, last: Option<&ContainerStateTerminated>) -> String {
    let condition = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
        });
    let mut parts = Vec::new();
    if let Some(c) = condition {
        parts.push(format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.as_deref().unwrap_or_default()
        ));
    }
    if let Some(t) = last {
        let mut exit = format!("exit code {}", t.exit_code);
        if let Some(m) = t
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            let tail: String = m.chars().take(500).collect();
            exit.push_str(&format!(": {tail}"));
        }
        parts.push(exit);
    }
    if parts.is_empty() {
        "the Job failed without a reason".into()
    } else {
        parts.join("; ")
    }
}

/// How a successful run's ModelVersion is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Already registered (a retry, or a restart after the create): this version.
    Existing(i64),
    /// Register it as this number: one past the highest of the model in the namespace.
    New(i64),
}

/// The ModelVersion for run `run_id`, given the (number, run id) of the model's registered
/// versions: found by run id first, so a retried registration never makes a second one. A
/// `New` number that another writer took meanwhile makes the create fail with a conflict
/// (the name is the model and the number); the caller lists again and gets the next one.
pub fn registration(existing: &[(i64, String)], recorded: &[i64], run_id: &str) -> Registration {
    if let Some((n, _)) = existing.iter().find(|(_, r)| r == run_id) {
        return Registration::Existing(*n);
    }
    // A number once given is not given again, even if its version was deleted since.
    let highest = existing
        .iter()
        .map(|(n, _)| *n)
        .chain(recorded.iter().copied())
        .max();
    Registration::New(highest.unwrap_or(0) + 1)
}

/// The deterministic name of a model's version `number`.
pub fn model_version_name(model: &str, number: i64) -> String {
    format!("{model}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str) -> Job {
        serde_yaml::from_str(&format!("metadata: {{name: j}}\nstatus: {status}")).unwrap()
    }

    #[test]
    fn the_phase_follows_the_jobs_conditions() {
        assert_eq!(phase(&job("{}")), Phase::Pending);
        assert_eq!(phase(&job("{active: 1}")), Phase::Running);
        assert_eq!(
            phase(&job("{conditions: [{type: Complete, status: 'True'}]}")),
            Phase::Succeeded
        );
        assert_eq!(
            phase(&job(
                "{conditions: [{type: Failed, status: 'True', reason: BackoffLimitExceeded}]}"
            )),
            Phase::Failed
        );
    }

    #[test]
    fn a_failure_names_the_reason_the_exit_code_and_the_message() {
        let j = job(
            "{conditions: [{type: Failed, status: 'True', reason: BackoffLimitExceeded, message: 'Job has reached the specified backoff limit'}]}",
        );
        let t: ContainerStateTerminated =
            serde_yaml::from_str("{exitCode: 3, message: \"Traceback: boom\\n\"}").unwrap();
        let f = failure(&j, Some(&t));
        assert_eq!(
            f,
            "BackoffLimitExceeded: Job has reached the specified backoff limit; exit code 3: Traceback: boom"
        );
        assert_eq!(failure(&job("{}"), None), "the Job failed without a reason");
    }

    #[test]
    fn versions_increase_per_model_and_a_run_is_registered_once() {
        let existing = vec![(1, "r1".to_string()), (2, "r2".to_string())];
        assert_eq!(registration(&existing, &[1, 2], "r3"), Registration::New(3));
        assert_eq!(
            registration(&existing, &[], "r2"),
            Registration::Existing(2)
        );
        assert_eq!(registration(&[], &[], "r1"), Registration::New(1));
        // Versions 3 and 7 recorded in the store, gone from the cluster: never given again.
        assert_eq!(
            registration(&existing, &[1, 2, 3, 7], "r8"),
            Registration::New(8)
        );
        assert_eq!(registration(&[], &[4], "r5"), Registration::New(5));
        assert_eq!(model_version_name("churn", 3), "churn-3");
    }
}
