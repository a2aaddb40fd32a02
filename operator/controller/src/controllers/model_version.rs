//! The ModelVersion controller: a ModelVersion is a record, so its controller confirms it is
//! well-formed and judges it, once, against the gates it was registered with (a TFX-style
//! blessing): fixed thresholds, and "must beat the baseline" — the latest blessed earlier
//! version of the same model. Deployment back-references come with serving.

use super::artifact_store;
use super::registry::Registry;
use super::{controller_stripped, run_until};
use crate::context::Context;
use crate::error::Result;
use crate::own_writes::{self, Read};
use crate::status;
use ciclo_api::conditions::{self, Set};
use ciclo_api::labels::GATES as GATES_ANNOTATION;
use ciclo_api::model_version::{BLESSED, ModelVersion, RegisteredGates};
use ciclo_core::metrics::{Baseline, GateVerdict, judge};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const KIND: &str = "ModelVersion";
/// Reason of `Blessed` while an earlier version of the model is not judged yet.
const WAITING: &str = "WaitingForBaseline";

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    let (stores, store_changes) = artifact_store::configs(&ctx);
    let controller = controller_stripped::<ModelVersion>(&ctx, strip);
    // The earlier versions a verdict needs come from this controller's own cache: a model
    // with hundreds of versions is not listed again for each new one.
    let store = controller.store();
    // A namespace's store appearing or changing: its versions' records can be written.
    let controller = controller.watches_stream(store_changes, artifact_store::wakes(store.clone()));
    let ready = super::ready(vec![super::store_ready(&stores)]);
    let reconcile = move |ctx, mv| reconcile(ctx, store.clone(), stores.clone(), ready.clone(), mv);
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

async fn reconcile(
    ctx: Arc<Context>,
    store: Store<DeserializeGuard<ModelVersion>>,
    stores: Store<ConfigMap>,
    ready: super::Ready,
    cached: ModelVersion,
) -> Result<Action> {
    // Judged and recorded once: the cached object must hold this controller's last write.
    let mv = match own_writes::read(&ctx, cached).await? {
        Read::Object(mv) => mv,
        Read::Behind => return Ok(Action::requeue(own_writes::RECHECK)),
        Read::Gone => return Ok(Action::await_change()),
    };
    // A verdict is part of the record: judged once, it stays, even when the baseline it was
    // compared with is deleted or a later version is blessed. Once judged, the version is
    // written to the registry's records in the artifact store, once.
    if judged(&mv) {
        if mv.status.as_ref().is_some_and(|s| s.record.is_some()) {
            return Ok(Action::await_change());
        }
        ready.await;
        return record(&ctx, &stores, &mv).await;
    }
    // A version the cache does not show judged yet (it lags a moment behind) makes this one
    // wait and look again: never a verdict against a wrong baseline.
    let earlier: Vec<ModelVersion> = if needs_baseline(&mv) {
        store
            .state_filter(|g| {
                kube::Resource::meta(g).namespace == mv.metadata.namespace
                    && g.0
                        .as_ref()
                        .is_ok_and(|other| other.spec.model == mv.spec.model)
            })
            .iter()
            .filter_map(|g| g.0.as_ref().ok().cloned())
            .collect()
    } else {
        Vec::new()
    };
    let decision = decide(&mv, &earlier);
    status::update(&ctx, &mv, mv.status.as_ref(), &decision.conditions, |s| {
        s.gates = decision.verdicts.clone();
        s.blessed = decision.blessed;
    })
    .await?;
    Ok(if decision.waiting {
        // Earlier versions are judged in their own reconciles, usually within a second.
        Action::requeue(Duration::from_secs(2))
    } else {
        Action::await_change()
    })
}

/// Writes the registry record of the judged `mv` (read fresh: the cache strips what the record
/// keeps) to its namespace's artifact store, and says where in its status.
async fn record(ctx: &Context, stores: &Store<ConfigMap>, mv: &ModelVersion) -> Result<Action> {
    let ns = mv.namespace().unwrap_or_default();
    let store = match artifact_store::of_namespace(stores, &ns, &ctx.artifact_store) {
        Ok(store) => store,
        Err(problem) => {
            // Its Datasets and TrainingRuns say why; a store appearing makes the next
            // registration, or a restart, write it.
            tracing::debug!(namespace = %ns, version = %mv.name_any(), reason = problem.reason, "no store for the registry's record");
            return Ok(Action::await_change());
        }
    };
    let api: Api<ModelVersion> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(full) = api.get_opt(&mv.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let uri = Registry::open(ctx, &ns, &store).await?.write(&full).await?;
    // A merge patch of this one field: an apply of the status without the conditions would
    // drop them.
    ctx.own_writes
        .write(
            (KIND, &ns, &mv.name_any()),
            api.patch_status(
                &mv.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"record": uri}})),
            ),
        )
        .await?;
    Ok(Action::await_change())
}

/// What no controller reads of a cached ModelVersion: its labels, owner, annotations but the
/// registered gates, and of its lineage the parameters, image and code. Versions are the
/// registry and are kept after their runs leave the history, so two caches (this
/// controller's and the ModelDeployment controller's) hold every one; what they cost per
/// version is what stays. The judging reads the model, version, digest, metrics, dataset and
/// gates; serving reads the artifact, metrics and status.
pub fn strip(mv: &mut ModelVersion) {
    let meta = &mut mv.metadata;
    meta.labels = None;
    meta.owner_references = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| k == GATES_ANNOTATION);
    }
    let lineage = &mut mv.spec.lineage;
    lineage.params.clear();
    lineage.image = String::new();
    lineage.image_digest = None;
    lineage.git_repository = None;
    lineage.git_revision = None;
}

/// Whether `mv`'s current generation has its verdict.
fn judged(mv: &ModelVersion) -> bool {
    let Some(status) = &mv.status else {
        return false;
    };
    status.observed_generation == mv.metadata.generation
        && conditions::find(&status.conditions, BLESSED).is_some_and(|c| c.reason != WAITING)
}

fn registered(mv: &ModelVersion) -> Option<serde_json::Result<RegisteredGates>> {
    mv.annotations()
        .get(GATES_ANNOTATION)
        .map(|json| serde_json::from_str(json))
}

fn needs_baseline(mv: &ModelVersion) -> bool {
    matches!(registered(mv), Some(Ok(r)) if r.gates.iter().any(|g| g.must_beat_baseline))
}

/// The record's conditions and gate verdicts.
#[derive(Debug)]
pub struct Decision {
    pub conditions: Vec<Set>,
    pub verdicts: Vec<GateVerdict>,
    pub blessed: bool,
    /// An earlier version of the model is not judged yet, so the baseline is not known.
    pub waiting: bool,
}

impl Decision {
    fn not_blessed(mut conditions: Vec<Set>, reason: &str, message: String) -> Self {
        conditions.push(Set::new(BLESSED, false, reason, message));
        Decision {
            conditions,
            verdicts: Vec::new(),
            blessed: false,
            waiting: false,
        }
    }
}

/// A record is ready once it names an artifact with a digest; it is blessed when every gate
/// it was registered with passes (a version without gates is blessed). `models` are the
/// versions of the same model (any order, may include `mv`); a baseline gate compares with
/// the highest-numbered blessed one below `mv`, once every one below `mv` is judged.
pub fn decide(mv: &ModelVersion, models: &[ModelVersion]) -> Decision {
    if mv.spec.artifact.digest.trim().is_empty() {
        let message = "spec.artifact.digest is empty: the artifact cannot be verified";
        return Decision::not_blessed(
            conditions::stalled("MissingDigest", message),
            "MissingDigest",
            message.into(),
        );
    }
    let registered = match registered(mv) {
        Some(Ok(g)) => g,
        Some(Err(e)) => {
            let message = format!("annotation {GATES_ANNOTATION}: {e}");
            return Decision::not_blessed(
                conditions::stalled("InvalidGates", message.clone()),
                "InvalidGates",
                message,
            );
        }
        // Not registered by a TrainingRun (made by hand or by another tool): a record, but
        // nothing says what it must reach, so it is not blessed automatically.
        None => {
            return Decision::not_blessed(
                recorded(mv),
                "NotJudged",
                format!(
                    "registered without gates (annotation {GATES_ANNOTATION}): not blessed automatically"
                ),
            );
        }
    };
    let earlier: Vec<&ModelVersion> = models
        .iter()
        .filter(|m| m.spec.model == mv.spec.model && m.spec.version < mv.spec.version)
        .collect();
    if registered.gates.iter().any(|g| g.must_beat_baseline) {
        let unjudged: Vec<i64> = earlier
            .iter()
            .filter(|m| !judged(m))
            .map(|m| m.spec.version)
            .collect();
        if !unjudged.is_empty() {
            let list: Vec<String> = unjudged.iter().map(i64::to_string).collect();
            let message = format!(
                "earlier {} {} of {} {} not judged yet; the baseline is the latest blessed one",
                if list.len() == 1 {
                    "version"
                } else {
                    "versions"
                },
                list.join(", "),
                mv.spec.model,
                if list.len() == 1 { "is" } else { "are" },
            );
            let mut conditions = conditions::reconciling(WAITING, message.clone());
            conditions.push(Set::new(BLESSED, false, WAITING, message));
            return Decision {
                conditions,
                verdicts: Vec::new(),
                blessed: false,
                waiting: true,
            };
        }
    }
    let baseline = earlier
        .iter()
        .filter(|m| m.status.as_ref().is_some_and(|s| s.blessed))
        .max_by_key(|m| m.spec.version)
        .map(|m| Baseline {
            version: m.spec.version,
            metrics: m.spec.lineage.metrics.clone(),
        });
    let verdicts = judge(
        &registered.gates,
        &registered.metrics,
        &mv.spec.lineage.metrics,
        baseline.as_ref(),
    );
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.message.as_str())
        .collect();
    let blessed = failed.is_empty();
    let mut conditions = recorded(mv);
    conditions.push(if blessed {
        Set::new(
            BLESSED,
            true,
            "GatesPassed",
            format!("{} of {} gates passed", verdicts.len(), verdicts.len()),
        )
    } else {
        Set::new(BLESSED, false, "GateFailed", failed.join("; "))
    });
    Decision {
        conditions,
        verdicts,
        blessed,
        waiting: false,
    }
}

/// Ready: a well-formed record.
fn recorded(mv: &ModelVersion) -> Vec<Set> {
    let lineage = &mv.spec.lineage.dataset;
    conditions::ready(
        "Recorded",
        format!(
            "model {} version {} trained on {} {}",
            mv.spec.model, mv.spec.version, lineage.name, lineage.version
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciclo_api::conditions::merge;

    fn mv(version: i64, annotations: &str, metrics: &str) -> ModelVersion {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {{name: churn-{version}, generation: 1, annotations: {annotations}}}
spec:
  model: churn
  version: {version}
  artifact: {{uri: "s3://a/m", digest: "blake3:00"}}
  lineage: {{trainingRun: tr, runId: r, dataset: {{name: d, version: v}}, image: i, metrics: {metrics}}}
"#
        ))
        .unwrap()
    }

    /// `m` with the status its own decision gives, as the controller would write it.
    fn judged_as(mut m: ModelVersion, models: &[ModelVersion]) -> ModelVersion {
        let d = decide(&m, models);
        m.status = Some(ciclo_api::model_version::ModelVersionStatus {
            observed_generation: Some(1),
            conditions: merge(&[], &d.conditions, Some(1), jiff::Timestamp::UNIX_EPOCH),
            blessed: d.blessed,
            gates: d.verdicts,
            deployed_by: Vec::new(),
            record: None,
        });
        m
    }

    fn blessed_reason(d: &Decision) -> &str {
        &d.conditions
            .iter()
            .find(|c| c.type_ == BLESSED)
            .unwrap()
            .reason
    }

    const GATES: &str = r#"{"ciclo.dev/gates": '{"gates": [{"metric": "accuracy", "threshold": 0.9}], "metrics": [{"name": "accuracy", "direction": "Maximize"}]}'}"#;
    const BEAT: &str = r#"{"ciclo.dev/gates": '{"gates": [{"metric": "accuracy", "mustBeatBaseline": true, "minDelta": 0.01}], "metrics": [{"name": "accuracy", "direction": "Maximize"}]}'}"#;

    #[test]
    fn a_cached_version_stripped_of_what_no_one_reads_is_judged_the_same() {
        let full = |version, accuracy| {
            let mut m = mv(version, BEAT, &format!("{{accuracy: {accuracy}}}"));
            m.metadata.labels = Some([("ciclo.dev/model".into(), "churn".into())].into());
            m.annotations_mut().insert("note".into(), "x".repeat(500));
            m.spec.lineage.params = [("epochs".into(), "30".into())].into();
            m.spec.lineage.git_revision = Some("0123abc".into());
            m
        };
        let stripped = |mut m: ModelVersion| {
            strip(&mut m);
            m
        };
        let first = judged_as(full(1, 0.90), &[]);
        for accuracy in [0.905, 0.95] {
            let second = full(2, accuracy);
            let as_read = decide(&second, std::slice::from_ref(&first));
            let as_cached = decide(&stripped(second), &[stripped(first.clone())]);
            assert_eq!(as_cached.conditions, as_read.conditions);
            assert_eq!(as_cached.verdicts, as_read.verdicts);
            assert_eq!(as_cached.blessed, as_read.blessed);
        }
        let m = stripped(full(3, 0.9));
        assert_eq!(m.annotations().len(), 1, "only the registered gates stay");
        assert!(m.registered().is_some());
        assert!(m.spec.lineage.params.is_empty() && m.labels().is_empty());
    }

    #[test]
    fn a_version_meeting_its_gates_is_blessed_and_one_missing_them_is_kept_unblessed() {
        let good = decide(&mv(1, GATES, "{accuracy: 0.93}"), &[]);
        assert!(good.blessed);
        assert_eq!(good.verdicts[0].value, Some(0.93));
        let bad = decide(&mv(1, GATES, "{accuracy: 0.85}"), &[]);
        assert!(!bad.blessed);
        let blessed = bad.conditions.iter().find(|c| c.type_ == BLESSED).unwrap();
        assert_eq!(blessed.reason, "GateFailed");
        assert_eq!(blessed.message, "accuracy = 0.85 does not reach 0.9");
        assert!(
            bad.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status),
            "a failing version is still a valid record"
        );
    }

    #[test]
    fn gates_decide_only_for_registered_versions_and_bad_gates_stall() {
        let no_gates = r#"{"ciclo.dev/gates": '{"gates": [], "metrics": []}'}"#;
        assert!(
            decide(&mv(1, no_gates, "{}"), &[]).blessed,
            "registered without gates: blessed"
        );
        let by_hand = decide(&mv(1, "{}", "{accuracy: 1.0}"), &[]);
        assert!(
            !by_hand.blessed,
            "not registered by ciclo: never blessed automatically"
        );
        assert_eq!(blessed_reason(&by_hand), "NotJudged");
        let broken = decide(&mv(1, r#"{"ciclo.dev/gates": "not json"}"#, "{}"), &[]);
        assert!(!broken.blessed);
        assert_eq!(blessed_reason(&broken), "InvalidGates");
    }

    #[test]
    fn a_baseline_gate_compares_with_the_latest_blessed_earlier_version() {
        let v1 = judged_as(mv(1, BEAT, "{accuracy: 0.80}"), &[]);
        assert!(v1.status.as_ref().unwrap().blessed, "nothing to beat yet");
        let v2 = judged_as(mv(2, BEAT, "{accuracy: 0.805}"), std::slice::from_ref(&v1));
        assert!(
            !v2.status.as_ref().unwrap().blessed,
            "0.805 does not beat 0.80 by 0.01"
        );
        // v2 was not blessed, so v3 is held to v1 — the latest *blessed* version.
        let v3 = decide(&mv(3, BEAT, "{accuracy: 0.82}"), &[v2.clone(), v1.clone()]);
        assert!(v3.blessed, "{:?}", v3.verdicts);
        assert_eq!(v3.verdicts[0].baseline_version, Some(1));
        // Later versions do not count as baselines of earlier ones.
        let v4 = judged_as(mv(4, BEAT, "{accuracy: 0.95}"), &[]);
        let again = decide(&mv(3, BEAT, "{accuracy: 0.82}"), &[v4, v1]);
        assert_eq!(again.verdicts[0].baseline_version, Some(1));
    }

    #[test]
    fn a_baseline_gate_waits_until_every_earlier_version_is_judged() {
        let unjudged = mv(1, BEAT, "{accuracy: 0.9}");
        let d = decide(&mv(2, BEAT, "{accuracy: 0.95}"), &[unjudged]);
        assert!(d.waiting && !d.blessed);
        assert_eq!(blessed_reason(&d), WAITING);
        assert_eq!(
            d.conditions[0].message,
            "earlier version 1 of churn is not judged yet; the baseline is the latest blessed one"
        );
        let d = decide(
            &mv(3, BEAT, "{accuracy: 0.95}"),
            &[mv(1, BEAT, "{}"), mv(2, BEAT, "{}")],
        );
        assert!(
            d.conditions[0]
                .message
                .starts_with("earlier versions 1, 2 of churn are not judged yet"),
            "{}",
            d.conditions[0].message
        );
        assert!(
            !judged(&judged_as(mv(2, BEAT, "{}"), &[mv(1, BEAT, "{}")])),
            "a waiting verdict is not final"
        );
        // A version that can never be blessed still counts as judged.
        let broken = judged_as(mv(1, r#"{"ciclo.dev/gates": "not json"}"#, "{}"), &[]);
        assert!(judged(&broken));
        assert!(!decide(&mv(2, BEAT, "{accuracy: 0.5}"), &[broken]).waiting);
    }
}
