//! The ModelVersion controller: a ModelVersion is a record, so its controller confirms it is
//! well-formed and judges it against the gates it was registered with (a TFX-style
//! blessing). Deployment back-references come with serving.

use super::{controller, run_until};
use crate::context::Context;
use crate::error::Result;
use crate::status;
use ciclo_api::conditions::{self, Set};
use ciclo_api::model_version::ModelVersion;
use ciclo_core::metrics::{Gate, GateVerdict, MetricSpec, judge};
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const KIND: &str = "ModelVersion";
/// Condition: whether every gate passed.
pub const BLESSED: &str = "Blessed";
/// Annotation: the gates (and the metrics' directions) a version was registered with, so its
/// verdict never changes when the TrainingRun's gates do later.
pub const GATES_ANNOTATION: &str = "ciclo.dev/gates";

/// What [`GATES_ANNOTATION`] holds.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
pub struct RegisteredGates {
    pub gates: Vec<Gate>,
    pub metrics: Vec<MetricSpec>,
}

pub async fn run(ctx: Arc<Context>, stop: CancellationToken) {
    let controller = controller::<ModelVersion>(&ctx);
    run_until(KIND, controller, reconcile, ctx, stop).await;
}

async fn reconcile(ctx: Arc<Context>, mv: ModelVersion) -> Result<Action> {
    let decision = decide(&mv);
    status::update(&ctx, &mv, mv.status.as_ref(), &decision.conditions, |s| {
        s.gates = decision.verdicts.clone();
        s.blessed = decision.blessed;
    })
    .await?;
    Ok(Action::await_change())
}

/// The record's conditions and gate verdicts.
#[derive(Debug)]
pub struct Decision {
    pub conditions: Vec<Set>,
    pub verdicts: Vec<GateVerdict>,
    pub blessed: bool,
}

/// A record is ready once it names an artifact with a digest; it is blessed when every gate
/// it was registered with passes (a version without gates is blessed).
pub fn decide(mv: &ModelVersion) -> Decision {
    if mv.spec.artifact.digest.trim().is_empty() {
        return Decision {
            conditions: conditions::stalled(
                "MissingDigest",
                "spec.artifact.digest is empty: the artifact cannot be verified",
            ),
            verdicts: Vec::new(),
            blessed: false,
        };
    }
    let registered: RegisteredGates = match mv.annotations().get(GATES_ANNOTATION) {
        Some(json) => match serde_json::from_str(json) {
            Ok(g) => g,
            Err(e) => {
                return Decision {
                    conditions: conditions::stalled(
                        "InvalidGates",
                        format!("annotation {GATES_ANNOTATION}: {e}"),
                    ),
                    verdicts: Vec::new(),
                    blessed: false,
                };
            }
        },
        // Not registered by a TrainingRun (made by hand or by another tool): a record, but
        // nothing says what it must reach, so it is not blessed automatically.
        None => {
            let mut conditions = recorded(mv);
            conditions.push(Set::new(
                BLESSED,
                false,
                "NotJudged",
                format!("registered without gates (annotation {GATES_ANNOTATION}): not blessed automatically"),
            ));
            return Decision {
                conditions,
                verdicts: Vec::new(),
                blessed: false,
            };
        }
    };
    let verdicts = judge(
        &registered.gates,
        &registered.metrics,
        &mv.spec.lineage.metrics,
    );
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| match v.value {
            Some(value) => format!("{} = {value} does not reach {}", v.metric, v.threshold),
            None => format!("{} was not reported", v.metric),
        })
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

    fn mv(annotations: &str, metrics: &str) -> ModelVersion {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {{name: churn-1, annotations: {annotations}}}
spec:
  model: churn
  version: 1
  artifact: {{uri: "s3://a/m", digest: "blake3:00"}}
  lineage: {{trainingRun: tr, runId: r, dataset: {{name: d, version: v}}, image: i, metrics: {metrics}}}
"#
        ))
        .unwrap()
    }

    const GATES: &str = r#"{"ciclo.dev/gates": '{"gates": [{"metric": "accuracy", "threshold": 0.9}], "metrics": [{"name": "accuracy", "direction": "Maximize"}]}'}"#;

    #[test]
    fn a_version_meeting_its_gates_is_blessed_and_one_missing_them_is_kept_unblessed() {
        let good = decide(&mv(GATES, "{accuracy: 0.93}"));
        assert!(good.blessed);
        assert_eq!(good.verdicts[0].value, Some(0.93));
        let bad = decide(&mv(GATES, "{accuracy: 0.85}"));
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
            decide(&mv(no_gates, "{}")).blessed,
            "registered without gates: blessed"
        );
        let by_hand = decide(&mv("{}", "{accuracy: 1.0}"));
        assert!(
            !by_hand.blessed,
            "not registered by ciclo: never blessed automatically"
        );
        assert!(by_hand.conditions.iter().any(|c| c.reason == "NotJudged"));
        let broken = decide(&mv(r#"{"ciclo.dev/gates": "not json"}"#, "{}"));
        assert!(!broken.blessed);
        assert!(broken.conditions.iter().any(|c| c.reason == "InvalidGates"));
    }
}
