//! Running a TrainingRun: record each finished run (and register its ModelVersion), then
//! start the run the spec and the dataset version call for, one at a time.
//!
//! Every step is idempotent: a run is known by its id (from the spec generation, the dataset
//! version and the trigger), its Job by a name derived from that id, and its ModelVersion by
//! the run id in its lineage — so a restarted operator finds what the previous one started
//! or registered instead of doing it again.

use super::job;
use super::outcome::{self, Phase, Registration};
use crate::context::Context;
use crate::controllers::workload;
use crate::error::Result;
use ciclo_api::dataset::{Dataset, DatasetVersion};
use ciclo_api::labels;
use ciclo_api::model_version::ModelVersion;
use ciclo_api::training_run::{RunRecord, TrainingRun, TrainingRunStatus};
use ciclo_core::train_result::{TrainOutcome, TrainSummary};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource as _, ResourceExt as _};

/// What the runs of a TrainingRun look like now.
pub struct Runs {
    /// The status with every finished run recorded.
    pub status: TrainingRunStatus,
    /// The run in progress (its Job exists and has not finished).
    pub active: Option<RunRecord>,
}

/// Records every finished run not recorded yet (registering the ModelVersion of a successful
/// one), and reports the run in progress.
pub async fn observe(ctx: &Context, tr: &TrainingRun) -> Result<Runs> {
    let ns = tr.namespace().unwrap_or_default();
    let selector = format!("{}={}", labels::TRAINING_RUN, tr.name_any());
    let jobs = workload::owned_jobs(&ctx.client, &ns, &selector, tr).await?;
    let mut status = tr.status.clone().unwrap_or_default();
    let mut active = None;
    for j in &jobs {
        let id = annotation(j, "ciclo.dev/run-id");
        let phase = outcome::phase(j);
        let mut record = RunRecord {
            id: id.clone(),
            job: j.name_any(),
            dataset_version: annotation(j, "ciclo.dev/dataset-version"),
            phase: phase.as_str().into(),
            start_time: j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0.to_string()),
            completion_time: None,
            metrics: Default::default(),
            model_version: None,
            failure: None,
        };
        if matches!(phase, Phase::Pending | Phase::Running) {
            active = Some(record);
            continue;
        }
        if status.runs.iter().any(|r| r.id == id) {
            continue;
        }
        record.completion_time = Some(jiff::Timestamp::now().to_string());
        // A distributed run's result is its rank 0's; a failure is whichever worker ended last.
        let indexed = j.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed");
        let rank0 = phase == Phase::Succeeded && indexed;
        let (last, image_id) =
            workload::last_terminated(&ctx.client, &ns, &j.name_any(), job::CONTAINER, rank0)
                .await?
                .unzip();
        let summary = last
            .as_ref()
            .and_then(|t| t.message.as_deref())
            .and_then(|m| serde_json::from_str::<TrainSummary>(m.trim()).ok());
        let note = match (phase, summary) {
            (Phase::Succeeded, Some(s))
                if s.outcome == TrainOutcome::Succeeded && s.digest.is_some() =>
            {
                let number = register(ctx, tr, &record, &s, image_id.flatten()).await?;
                record.metrics = s.metrics.clone();
                record.model_version = Some(number);
                status.last_model_version = Some(number);
                (
                    EventType::Normal,
                    "RunSucceeded",
                    format!(
                        "run {id} registered {} version {number}",
                        tr.spec.model.name
                    ),
                )
            }
            (Phase::Succeeded, _) => {
                record.phase = Phase::Failed.as_str().into();
                record.failure = Some(format!(
                    "the run exited 0 but reported no result: write a summary ({{\"outcome\": \"Succeeded\", \"metrics\": {{…}}, \"model\": URI, \"digest\": \"blake3:…\"}}) to {}",
                    ciclo_core::contract::TERMINATION_MESSAGE_PATH
                ));
                (
                    EventType::Warning,
                    "RunFailed",
                    format!(
                        "run {id}: {}",
                        record.failure.as_deref().unwrap_or_default()
                    ),
                )
            }
            _ => {
                record.failure = Some(outcome::failure(j, last.as_ref()));
                (
                    EventType::Warning,
                    "RunFailed",
                    format!(
                        "run {id} failed: {}",
                        record.failure.as_deref().unwrap_or_default()
                    ),
                )
            }
        };
        publish(ctx, tr, note.0, note.1, note.2).await;
        status.runs.insert(0, record);
        status.runs.truncate(tr.spec.history_limit.max(1) as usize);
    }
    Ok(Runs { status, active })
}

/// Starts run `run_id` on `version`: its Service first (distributed runs), then its Job.
/// Either already existing is the same run, started before a restart.
pub async fn start(
    ctx: &Context,
    tr: &TrainingRun,
    dataset: &Dataset,
    version: &DatasetVersion,
    run_id: &str,
) -> Result<RunRecord> {
    let ns = tr.namespace().unwrap_or_default();
    let (job, service) = job::build(&job::Run {
        tr,
        dataset,
        version,
        run_id,
        image: &ctx.image,
        store: &ctx.artifact_store,
    });
    if let Some(service) = service {
        ignore_exists(
            Api::<Service>::namespaced(ctx.client.clone(), &ns)
                .create(&PostParams::default(), &service)
                .await,
        )?;
    }
    let name = job.name_any();
    if ignore_exists(
        Api::<Job>::namespaced(ctx.client.clone(), &ns)
            .create(&PostParams::default(), &job)
            .await,
    )? {
        publish(
            ctx,
            tr,
            EventType::Normal,
            "RunStarted",
            format!(
                "run {run_id} on dataset version {} (Job {name})",
                version.id
            ),
        )
        .await;
    }
    Ok(RunRecord {
        id: run_id.into(),
        job: name,
        dataset_version: version.id.clone(),
        phase: Phase::Pending.as_str().into(),
        start_time: None,
        completion_time: None,
        metrics: Default::default(),
        model_version: None,
        failure: None,
    })
}

/// Registers the ModelVersion of a successful run, once: found by run id first; a number
/// another writer took meanwhile (409) makes it try the next.
async fn register(
    ctx: &Context,
    tr: &TrainingRun,
    run: &RunRecord,
    summary: &TrainSummary,
    image_id: Option<String>,
) -> Result<i64> {
    let ns = tr.namespace().unwrap_or_default();
    let api: Api<ModelVersion> = Api::namespaced(ctx.client.clone(), &ns);
    let model = &tr.spec.model.name;
    loop {
        let existing = api
            .list(&ListParams::default().labels(&format!("{}={model}", labels::MODEL)))
            .await?
            .items;
        let number = match outcome::registration(&existing, model, &run.id) {
            Registration::Existing(n) => return Ok(n),
            Registration::New(n) => n,
        };
        let mv = model_version(tr, run, summary, image_id.clone(), number);
        match api.create(&PostParams::default(), &mv).await {
            Ok(_) => return Ok(number),
            Err(kube::Error::Api(e)) if e.is_already_exists() => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn model_version(
    tr: &TrainingRun,
    run: &RunRecord,
    summary: &TrainSummary,
    image_id: Option<String>,
    number: i64,
) -> ModelVersion {
    let model = &tr.spec.model.name;
    let (git_repository, git_revision) = git_source(tr);
    let image = tr
        .spec
        .image
        .clone()
        .unwrap_or_else(|| "ciclo (built-in trainer)".into());
    let value = serde_json::json!({
        "apiVersion": "ciclo.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "name": outcome::model_version_name(model, number),
            "namespace": tr.namespace(),
            "labels": {
                labels::MODEL: model,
                labels::VERSION: number.to_string(),
                labels::TRAINING_RUN: tr.name_any(),
                "ciclo.dev/run-id": run.id,
            },
            // Owned by no one: a model version outlives the TrainingRun that made it.
            "annotations": {
                labels::GATES: serde_json::to_string(
                    &ciclo_api::model_version::RegisteredGates {
                        gates: tr.spec.gates.clone(),
                        metrics: tr.spec.metrics.clone(),
                        primary_metric: tr.spec.primary_metric.clone(),
                    },
                ).expect("gates serialize"),
            },
        },
        "spec": {
            "model": model,
            "version": number,
            "artifact": {
                "uri": summary.model.clone().unwrap_or_default(),
                "digest": summary.digest.clone().unwrap_or_default(),
                "format": tr.spec.trainer.as_ref().map(|_| "ciclo.dev/model/v1"),
            },
            "lineage": {
                "trainingRun": tr.name_any(),
                "runId": run.id,
                "dataset": {"name": tr.spec.dataset.name, "version": run.dataset_version},
                "image": image,
                // As the node reported it (`imageID` of the container status).
                "imageDigest": image_id,
                "gitRepository": git_repository,
                "gitRevision": git_revision,
                "params": tr.spec.params,
                "metrics": summary.metrics,
            },
        },
    });
    serde_json::from_value(value).expect("a ModelVersion from its own fields")
}

/// The code's repository and revision: `spec.git`, else the annotations a GitOps tool put
/// on the TrainingRun.
fn git_source(tr: &TrainingRun) -> (Option<String>, Option<String>) {
    match &tr.spec.git {
        Some(g) => (Some(g.repository.clone()), Some(g.revision.clone())),
        None => {
            let get = |k| tr.annotations().get(k).filter(|v| !v.is_empty()).cloned();
            (get(labels::GIT_REPOSITORY), get(labels::GIT_REVISION))
        }
    }
}

fn annotation(j: &Job, key: &str) -> String {
    j.annotations().get(key).cloned().unwrap_or_default()
}

/// Ok(true) when created, Ok(false) when it already existed.
fn ignore_exists<T>(r: kube::Result<T>) -> Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.is_already_exists() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn publish(ctx: &Context, tr: &TrainingRun, type_: EventType, reason: &str, note: String) {
    ctx.publish(&tr.object_ref(&()), type_, reason, &note, "Train")
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_takes_git_from_the_spec_else_from_the_gitops_annotations() {
        let mut tr: TrainingRun = serde_yaml::from_str(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata:
  name: churn
  annotations: {ciclo.dev/git-repository: "https://git.example/ml.git", ciclo.dev/git-revision: f913b6c}
spec: {dataset: {name: d}, model: {name: churn}, image: trainer}
"#,
        )
        .unwrap();
        assert_eq!(
            git_source(&tr),
            (
                Some("https://git.example/ml.git".into()),
                Some("f913b6c".into())
            )
        );
        tr.spec.git = Some(ciclo_api::training_run::GitSource {
            repository: "https://git.example/other.git".into(),
            revision: "v2".into(),
        });
        assert_eq!(git_source(&tr).1.as_deref(), Some("v2"), "the spec wins");
    }
}
