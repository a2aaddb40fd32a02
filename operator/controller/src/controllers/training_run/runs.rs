//! Running a TrainingRun: record each finished run (and register its ModelVersion), then
//! start the run the spec and the dataset version call for, one at a time.
//!
//! Every step is idempotent: a run is known by its id (from the spec generation, the dataset
//! version and the trigger), its Job by a name derived from that id, and its ModelVersion by
//! the run id in its lineage — so a restarted operator finds what the previous one started
//! or registered instead of doing it again.

use super::code_source::{self, CodeSource};
use super::job;
use super::outcome::{self, Phase, Registration};
use super::{decide, record};
use crate::context::Context;
use crate::controllers::artifact_store::{ArtifactStore, Unusable};
use crate::controllers::registry::Registry;
use crate::controllers::workload;
use crate::error::Error;
use crate::error::Result;
use ciclo_api::dataset::Dataset;
use ciclo_api::labels::{self, FIELD_MANAGER};
use ciclo_api::model_version::{
    Artifact, DatasetLineage, Lineage, ModelVersion, ModelVersionSpec, RegisteredGates,
};
use ciclo_api::training_run::{RunRecord, TrainingRun, TrainingRunStatus};
use ciclo_core::train_result::{TrainOutcome, TrainSummary};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource as _, ResourceExt as _};
use std::collections::{BTreeMap, BTreeSet};

/// What the runs of a TrainingRun look like now.
pub struct Runs {
    /// The status with every finished run recorded.
    pub status: TrainingRunStatus,
    /// The run in progress (its Job exists and has not finished).
    pub active: Option<RunRecord>,
    /// The TrainingRun's Jobs, as listed.
    jobs: Vec<Job>,
    /// The runs recorded in this pass.
    recorded_now: BTreeSet<String>,
    /// The runs whose end an Event announced in this pass.
    pub announced: Vec<String>,
}

impl Runs {
    /// Whether a run recorded in this pass registered a ModelVersion.
    pub fn registered_now(&self) -> bool {
        self.status
            .runs
            .iter()
            .any(|r| self.recorded_now.contains(&r.id) && r.model_version.is_some())
    }
}

/// Records every finished run of `jobs` (the TrainingRun's) not recorded yet (registering the
/// ModelVersion of a successful one) and reports the run in progress. The caller writes the
/// status, then calls [`tidy`].
pub async fn observe(
    ctx: &Context,
    tr: &TrainingRun,
    store: std::result::Result<&ArtifactStore, &Unusable>,
    jobs: Vec<Job>,
) -> Result<Runs> {
    let mut status = tr.status.clone().unwrap_or_default();
    let triage = record::triage(&status, &jobs);
    let mut new = Vec::new();
    let mut notes = Vec::new();
    for j in &triage.to_record {
        let (run, note) = result(ctx, tr, store, j).await?;
        notes.push((run.id.clone(), note));
        new.push(run);
    }
    let active = triage.active;
    let recorded_now = new.iter().map(|r| r.id.clone()).collect();
    let announced = record::fold(&mut status, new, tr.spec.history_limit);
    for (id, (type_, reason, note)) in notes {
        if announced.contains(&id) {
            publish(ctx, tr, type_, reason, note).await;
        }
    }
    Ok(Runs {
        status,
        active,
        jobs,
        recorded_now,
        announced,
    })
}

/// After the status holding `runs` was written: marks the Jobs whose runs it records, and
/// deletes the recorded ones outside the history (with their pods, and a distributed run's
/// Service).
pub async fn tidy(ctx: &Context, tr: &TrainingRun, runs: &Runs) -> Result<()> {
    let ns = tr.namespace().unwrap_or_default();
    let chores = record::housekeeping(&runs.status, &runs.jobs, &runs.recorded_now);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let marker = serde_json::json!({"metadata": {"annotations": {record::RECORDED: "true"}}});
    for name in &chores.mark {
        ignore_gone(
            jobs.patch(
                name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(&marker),
            )
            .await,
        )?;
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    for name in &chores.delete {
        ignore_gone(jobs.delete(name, &DeleteParams::background()).await)?;
        if tr.spec.workers > 1 {
            ignore_gone(services.delete(name, &DeleteParams::background()).await)?;
        }
    }
    Ok(())
}

/// A finished run's record and the Event announcing it: its result read from the Job's pods
/// (rank 0's for a distributed run), the ModelVersion of a successful one registered.
async fn result(
    ctx: &Context,
    tr: &TrainingRun,
    store: std::result::Result<&ArtifactStore, &Unusable>,
    j: &Job,
) -> Result<(RunRecord, Note)> {
    let ns = tr.namespace().unwrap_or_default();
    let phase = outcome::phase(j);
    let mut record = record::record_of(j, phase);
    let id = record.id.clone();
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
            // What the run's Job recorded when it started; a Job an older operator started
            // recorded nothing, and the TrainingRun says it.
            let code = CodeSource::of_job(j).unwrap_or_else(|| CodeSource::declared(tr));
            let number = register(ctx, tr, store, &record, &s, image_id.flatten(), &code).await?;
            record.metrics = s.metrics.clone();
            record.model_version = Some(number);
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
            record.phase = Phase::Failed;
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
    Ok((record, note))
}

/// An Event to record: its type, reason and note.
type Note = (EventType, &'static str, String);

/// Starts the run `start` plans: its Service first (distributed runs), then its Job.
/// Either already existing is the same run, started before a restart. True when this call
/// created the Job (and announced the run with a `RunStarted` Event).
pub async fn start(
    ctx: &Context,
    tr: &TrainingRun,
    dataset: &Dataset,
    store: &ArtifactStore,
    start: &decide::Start,
) -> Result<bool> {
    let ns = tr.namespace().unwrap_or_default();
    let run_id = &start.record.id;
    let code = code_source::resolve(&ctx.client, tr).await;
    let (job, service) = job::build(&job::Run {
        tr,
        dataset,
        version: &start.version,
        run_id,
        image: &ctx.image,
        store,
        code: &code,
    });
    if let Some(service) = service {
        ignore_exists(
            Api::<Service>::namespaced(ctx.client.clone(), &ns)
                .create(&PostParams::default(), &service)
                .await,
        )?;
    }
    let name = job.name_any();
    let created = ignore_exists(
        Api::<Job>::namespaced(ctx.client.clone(), &ns)
            .create(&PostParams::default(), &job)
            .await,
    )?;
    if created {
        publish(
            ctx,
            tr,
            EventType::Normal,
            "RunStarted",
            format!(
                "run {run_id} on dataset version {} (Job {name})",
                start.version.id
            ),
        )
        .await;
    }
    Ok(created)
}

/// Registers the ModelVersion of a successful run, once: found by run id first; a number
/// another writer took meanwhile (409) makes it try the next. A model none of whose versions
/// is in the cluster gets them back from the registry's records first, and a new number comes
/// after every recorded one (controllers/registry.rs).
async fn register(
    ctx: &Context,
    tr: &TrainingRun,
    store: std::result::Result<&ArtifactStore, &Unusable>,
    run: &RunRecord,
    summary: &TrainSummary,
    image_id: Option<String>,
    code: &CodeSource,
) -> Result<i64> {
    let ns = tr.namespace().unwrap_or_default();
    let api: Api<ModelVersion> = Api::namespaced(ctx.client.clone(), &ns);
    let model = &tr.spec.model.name;
    // Without its store, the registry's records cannot be read: a number could be given twice.
    let store = store.map_err(|problem| Error::Store(problem.message.clone()))?;
    let registry = Registry::open(ctx, &ns, store).await?;
    loop {
        // Names and labels only (a model's versions accumulate for months): its number, and
        // the run that registered it.
        let existing: Vec<(i64, String)> = api
            .list_metadata(&ListParams::default().labels(&format!("{}={model}", labels::MODEL)))
            .await?
            .items
            .iter()
            .filter_map(|m| {
                let labels = m.metadata.labels.as_ref()?;
                let number = labels.get(labels::VERSION)?.parse().ok()?;
                Some((
                    number,
                    labels.get(record::RUN_ID).cloned().unwrap_or_default(),
                ))
            })
            .collect();
        if registry.restore(ctx, &ns, model, existing.len()).await? > 0 {
            continue;
        }
        let recorded = registry.numbers(model).await?;
        let number = match outcome::registration(&existing, &recorded, &run.id) {
            Registration::Existing(n) => return Ok(n),
            Registration::New(n) => n,
        };
        let mv = model_version(tr, run, summary, image_id.clone(), number, code)?;
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
    code: &CodeSource,
) -> Result<ModelVersion> {
    let model = &tr.spec.model.name;
    let gates = RegisteredGates {
        gates: tr.spec.gates.clone(),
        metrics: tr.spec.metrics.clone(),
        primary_metric: tr.spec.primary_metric.clone(),
    };
    let mut mv = ModelVersion::new(
        &outcome::model_version_name(model, number),
        ModelVersionSpec {
            model: model.clone(),
            version: number,
            artifact: Artifact {
                uri: summary.model.clone().unwrap_or_default(),
                digest: summary.digest.clone().unwrap_or_default(),
                format: tr
                    .spec
                    .trainer
                    .as_ref()
                    .map(|_| "ciclo.dev/model/v1".into()),
            },
            lineage: Lineage {
                training_run: tr.name_any(),
                run_id: run.id.clone(),
                dataset: DatasetLineage {
                    name: tr.spec.dataset.name.clone(),
                    version: run.dataset_version.clone(),
                },
                image: tr
                    .spec
                    .image
                    .clone()
                    .unwrap_or_else(|| "ciclo (built-in trainer)".into()),
                // As the node reported it (`imageID` of the container status).
                image_digest: image_id,
                git_repository: code.repository.clone(),
                git_revision: code.revision.clone(),
                params: tr.spec.params.clone(),
                metrics: summary.metrics.clone(),
            },
        },
    );
    mv.metadata.namespace = tr.namespace();
    mv.metadata.labels = Some(BTreeMap::from([
        (labels::MODEL.to_string(), model.clone()),
        (labels::VERSION.to_string(), number.to_string()),
        (labels::TRAINING_RUN.to_string(), tr.name_any()),
        (record::RUN_ID.to_string(), run.id.clone()),
    ]));
    // Owned by no one: a model version outlives the TrainingRun that made it. The gates it
    // is judged by travel with it, as the spec said when it was registered.
    mv.metadata.annotations = Some(BTreeMap::from([(
        labels::GATES.to_string(),
        serde_json::to_string(&gates)?,
    )]));
    Ok(mv)
}

/// Ok when done or when the object is already gone.
fn ignore_gone<T>(r: kube::Result<T>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
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
            CodeSource::declared(&tr),
            CodeSource {
                repository: Some("https://git.example/ml.git".into()),
                revision: Some("f913b6c".into())
            }
        );
        tr.spec.git = Some(ciclo_api::training_run::GitSource {
            repository: "https://git.example/other.git".into(),
            revision: "v2".into(),
        });
        assert_eq!(
            CodeSource::declared(&tr).revision.as_deref(),
            Some("v2"),
            "the spec wins"
        );
    }

    #[test]
    fn a_registered_version_carries_its_lineage_labels_and_the_gates_it_is_judged_by() {
        let tr: TrainingRun = serde_yaml::from_str(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: churn, namespace: ml}
spec:
  dataset: {name: events}
  model: {name: churn}
  image: registry.example/train:1
  params: {depth: "4"}
  metrics: [{name: auc, direction: Maximize}]
  gates: [{metric: auc, threshold: 0.8}]
"#,
        )
        .unwrap();
        let run: RunRecord = serde_yaml::from_str(
            "{id: abc, job: churn-run-abc, datasetVersion: d1, phase: Succeeded}",
        )
        .unwrap();
        let summary: TrainSummary = serde_json::from_str(
            r#"{"outcome": "Succeeded", "metrics": {"auc": 0.91}, "model": "s3://a/m.onnx", "digest": "blake3:0f"}"#,
        )
        .unwrap();
        let code = CodeSource {
            repository: Some("http://git.example/ml-team.git".into()),
            revision: Some("main@sha1:4f1c".into()),
        };
        let mv = model_version(&tr, &run, &summary, Some("sha256:1".into()), 3, &code).unwrap();
        assert_eq!(mv.name_any(), "churn-3");
        assert_eq!(mv.namespace().as_deref(), Some("ml"));
        assert_eq!(mv.labels()[labels::VERSION], "3");
        assert_eq!(mv.labels()[record::RUN_ID], "abc");
        let l = &mv.spec.lineage;
        assert_eq!(
            (l.dataset.name.as_str(), l.dataset.version.as_str()),
            ("events", "d1")
        );
        assert_eq!(l.image, "registry.example/train:1");
        assert_eq!(l.image_digest.as_deref(), Some("sha256:1"));
        assert_eq!(l.params["depth"], "4");
        assert_eq!(
            (l.git_repository.as_deref(), l.git_revision.as_deref()),
            (
                Some("http://git.example/ml-team.git"),
                Some("main@sha1:4f1c")
            ),
            "the code source the run's Job recorded"
        );
        assert_eq!(l.metrics["auc"], 0.91);
        assert_eq!(
            mv.spec.artifact.format, None,
            "a user image's format is its own"
        );
        let gates: RegisteredGates =
            serde_json::from_str(&mv.annotations()[labels::GATES]).unwrap();
        assert_eq!(gates.gates.len(), 1);
        assert!(mv.owner_references().is_empty(), "outlives its TrainingRun");
    }
}
