//! Which version of the model a ModelDeployment serves: a pinned version (blessed or not),
//! else the newest blessed one; and what to say while there is none.

use ciclo_api::conditions::{self, Set};
use ciclo_api::model_deployment::ModelDeployment;
use ciclo_api::model_version::ModelVersion;

/// The outcome of the pure steps.
#[derive(Debug)]
pub struct Decision {
    pub conditions: Vec<Set>,
    /// The version to serve, once resolved.
    pub version: Option<i64>,
}

fn decision(reason: &str, message: String, stalled: bool, version: Option<i64>) -> Decision {
    let conditions = if stalled {
        conditions::stalled(reason, message)
    } else {
        conditions::reconciling(reason, message)
    };
    Decision {
        conditions,
        version,
    }
}

/// Picks the version to serve from the model's `versions`; `producers` counts the
/// TrainingRuns that register the model (so "not trained yet" differs from "no such model").
pub fn decide(md: &ModelDeployment, versions: &[ModelVersion], producers: usize) -> Decision {
    let model = &md.spec.model.name;
    if versions.is_empty() {
        return if producers == 0 {
            decision(
                "ModelNotFound",
                format!(
                    "spec.model.name: no ModelVersion of model {model:?} exists and no TrainingRun in this namespace registers it"
                ),
                true,
                None,
            )
        } else {
            decision(
                "WaitingForModelVersion",
                format!("model {model:?} has no version yet; a TrainingRun will register one"),
                false,
                None,
            )
        };
    }
    let blessed = |mv: &&ModelVersion| mv.status.as_ref().is_some_and(|s| s.blessed);
    let chosen = match md.spec.model.version {
        Some(pinned) => match versions.iter().find(|mv| mv.spec.version == pinned) {
            Some(mv) => mv,
            None => {
                return decision(
                    "ModelVersionNotFound",
                    format!("spec.model.version: model {model:?} has no version {pinned}"),
                    true,
                    None,
                );
            }
        },
        None => match versions
            .iter()
            .filter(blessed)
            .max_by_key(|mv| mv.spec.version)
        {
            Some(mv) => mv,
            None => {
                return decision(
                    "WaitingForBlessedVersion",
                    format!(
                        "model {model:?} has {} version(s), none blessed; only blessed versions are served unless pinned",
                        versions.len()
                    ),
                    false,
                    None,
                );
            }
        },
    };
    let v = chosen.spec.version;
    decision(
        "RolloutPending",
        format!("version {v} of model {model:?} is selected and not yet serving"),
        false,
        Some(v),
    )
}

/// With `requireImprovement`, whether `candidate` beats `serving` on the primary metric its
/// TrainingRun named (in that metric's direction): `Err` says why not. Versions registered
/// without a primary metric, or without the value, are not held back.
pub fn improves(candidate: &ModelVersion, serving: &ModelVersion) -> Result<(), String> {
    let Some(registered) = candidate.registered() else {
        return Ok(());
    };
    let Some(metric) = registered.primary_metric else {
        return Ok(());
    };
    let Some(direction) = registered
        .metrics
        .iter()
        .find(|m| m.name == metric)
        .map(|m| m.direction)
    else {
        return Ok(());
    };
    let value = |mv: &ModelVersion| mv.spec.lineage.metrics.get(&metric).copied();
    match (value(candidate), value(serving)) {
        (Some(new), Some(old)) if new != old && direction.at_least_as_good(new, old) => Ok(()),
        (Some(new), Some(old)) => Err(format!(
            "version {} ({metric} = {new}) does not beat the serving version {} ({metric} = {old}); spec.requireImprovement",
            candidate.spec.version, serving.spec.version
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::has_condition;
    use ciclo_api::conditions::{RECONCILING, STALLED, merge};

    fn md(model: &str) -> ModelDeployment {
        serde_yaml::from_str(&format!(
            "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: web, namespace: ml}}\nspec: {{model: {model}}}"
        ))
        .unwrap()
    }

    fn mv(version: i64, blessed: bool) -> ModelVersion {
        serde_yaml::from_str(&format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {{name: iris-v{version}, namespace: ml}}
spec:
  model: iris
  version: {version}
  artifact: {{uri: "s3://m/iris/{version}", digest: "blake3:00"}}
  lineage: {{trainingRun: iris, runId: r{version}, dataset: {{name: iris, version: d}}, image: ciclo}}
status: {{blessed: {blessed}}}
"#
        ))
        .unwrap()
    }

    fn conds(d: &Decision) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        merge(&[], &d.conditions, Some(1), jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn an_unknown_model_is_stalled_and_says_so() {
        let d = decide(&md("{name: iris}"), &[], 0);
        let c = conds(&d);
        assert!(has_condition(&c, STALLED, "ModelNotFound"), "{c:?}");
        assert!(c.iter().any(|c| c.message.contains("\"iris\"")));
    }

    #[test]
    fn a_model_a_training_run_will_produce_is_awaited_not_stalled() {
        let c = conds(&decide(&md("{name: iris}"), &[], 1));
        assert!(has_condition(&c, RECONCILING, "WaitingForModelVersion"));
        assert!(!c.iter().any(|c| c.type_ == STALLED));
    }

    #[test]
    fn following_latest_blessed_picks_the_newest_blessed_version() {
        let versions = [mv(1, true), mv(2, true), mv(3, false)];
        assert_eq!(decide(&md("{name: iris}"), &versions, 1).version, Some(2));
        assert_eq!(
            decide(&md("{name: iris, track: LatestBlessed}"), &versions, 1).version,
            Some(2)
        );
    }

    #[test]
    fn an_unblessed_version_is_served_only_when_pinned() {
        let versions = [mv(1, false)];
        let d = decide(&md("{name: iris}"), &versions, 1);
        assert_eq!(d.version, None);
        assert!(has_condition(
            &conds(&d),
            RECONCILING,
            "WaitingForBlessedVersion"
        ));
        assert_eq!(
            decide(&md("{name: iris, version: 1}"), &versions, 1).version,
            Some(1)
        );
    }

    #[test]
    fn a_pinned_version_that_does_not_exist_stalls() {
        let d = decide(&md("{name: iris, version: 7}"), &[mv(1, true)], 1);
        assert!(has_condition(&conds(&d), STALLED, "ModelVersionNotFound"));
    }

    fn scored(version: i64, accuracy: f64) -> ModelVersion {
        let mut m = mv(version, true);
        m.metadata.annotations = Some(
            [(
                ciclo_api::labels::GATES.to_string(),
                r#"{"gates": [], "metrics": [{"name": "accuracy", "direction": "Maximize"}], "primaryMetric": "accuracy"}"#.to_string(),
            )]
            .into(),
        );
        m.spec.lineage.metrics = [("accuracy".to_string(), accuracy)].into();
        m
    }

    #[test]
    fn a_version_must_beat_the_serving_one_on_the_primary_metric() {
        assert!(improves(&scored(2, 0.95), &scored(1, 0.9)).is_ok());
        let tie = improves(&scored(2, 0.9), &scored(1, 0.9)).unwrap_err();
        assert!(tie.contains("does not beat the serving version 1"), "{tie}");
        assert!(improves(&scored(2, 0.85), &scored(1, 0.9)).is_err());
        assert!(
            improves(&mv(2, true), &scored(1, 0.9)).is_ok(),
            "registered without a primary metric: not held back"
        );
    }
}
