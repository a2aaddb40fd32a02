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
            // A pin committed before its version is trained (a GitOps repository pins the
            // version it expects next): it comes while a TrainingRun registers the model.
            None if producers > 0 && versions.iter().all(|mv| mv.spec.version < pinned) => {
                return decision(
                    "WaitingForModelVersion",
                    format!(
                        "model {model:?} has no version {pinned} yet; a TrainingRun will register it"
                    ),
                    false,
                    None,
                );
            }
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

/// `requireImprovement`: a floating selection that does not beat the serving version on the
/// primary metric is not rolled out; the serving version stays selected, with why.
pub fn hold_back(
    md: &ModelDeployment,
    versions: &[ModelVersion],
    mut selection: Decision,
    serving_now: Option<i64>,
) -> (Decision, Option<String>) {
    let find = |n: i64| versions.iter().find(|mv| mv.spec.version == n);
    if let (true, None, Some(serving), Some(candidate)) = (
        md.spec.require_improvement,
        md.spec.model.version,
        serving_now.and_then(find),
        selection
            .version
            .filter(|v| Some(*v) != serving_now)
            .and_then(find),
    ) && let Err(why) = improves(candidate, serving)
    {
        selection.version = Some(serving.spec.version);
        return (selection, Some(why));
    }
    (selection, None)
}

/// The conditions a reconcile ends with: the rollout's if it has any, else the selection's;
/// a route that cannot carry the split stalls (the rollout goes on by replica ratio); a held
/// back version is named in `Ready`, which keeps its status.
pub fn conditions(
    selection: Vec<Set>,
    rollout: Vec<Set>,
    routing_problem: Option<String>,
    held_back: Option<String>,
) -> Vec<Set> {
    let mut conditions = if rollout.is_empty() {
        selection
    } else {
        rollout
    };
    if let Some(why) = routing_problem {
        conditions = conditions::stalled("HTTPRouteNotUsable", why);
    }
    if let Some(why) = held_back {
        for c in conditions
            .iter_mut()
            .filter(|c| c.type_ == conditions::READY)
        {
            c.reason = "NotAnImprovement".into();
            c.message = format!("{}; {why}", c.message);
        }
    }
    conditions
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
        // Nothing will register it: no TrainingRun, or the version was skipped.
        let d = decide(&md("{name: iris, version: 7}"), &[mv(1, true)], 0);
        assert!(has_condition(&conds(&d), STALLED, "ModelVersionNotFound"));
        let d = decide(
            &md("{name: iris, version: 2}"),
            &[mv(1, true), mv(3, true)],
            1,
        );
        assert!(has_condition(&conds(&d), STALLED, "ModelVersionNotFound"));
    }

    #[test]
    fn a_pinned_version_newer_than_any_is_awaited_while_a_training_run_registers_the_model() {
        let d = decide(&md("{name: iris, version: 2}"), &[mv(1, true)], 1);
        assert!(has_condition(
            &conds(&d),
            RECONCILING,
            "WaitingForModelVersion"
        ));
        assert_eq!(d.version, None);
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

    #[test]
    fn a_newer_version_that_does_not_beat_the_serving_one_is_held_back_and_ready_says_why() {
        let versions = [scored(1, 0.9), scored(2, 0.85)];
        let mut strict = md("{name: iris}");
        strict.spec.require_improvement = true;
        let (d, why) = hold_back(&strict, &versions, decide(&strict, &versions, 1), Some(1));
        assert_eq!(d.version, Some(1), "the serving version stays");
        let why = why.expect("held back");
        let c = merge(
            &[],
            &conditions(
                conditions::ready("Serving", "version 1 serves all traffic"),
                vec![],
                None,
                Some(why.clone()),
            ),
            Some(1),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let ready = c.iter().find(|c| c.type_ == conditions::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "NotAnImprovement")
        );
        assert!(ready.message.ends_with(&why), "{}", ready.message);
        // Without requireImprovement, or pinned, nothing is held back.
        let mut lax = md("{name: iris}");
        lax.spec.require_improvement = false;
        let (d, why) = hold_back(&lax, &versions, decide(&lax, &versions, 1), Some(1));
        assert_eq!((d.version, why), (Some(2), None));
        let mut pinned = md("{name: iris, version: 2}");
        pinned.spec.require_improvement = true;
        let (d, why) = hold_back(&pinned, &versions, decide(&pinned, &versions, 1), Some(1));
        assert_eq!((d.version, why), (Some(2), None));
    }

    #[test]
    fn the_rollouts_conditions_win_and_an_unusable_route_stalls() {
        let selection = conditions::reconciling("RolloutPending", "version 2 selected");
        let rollout = conditions::reconciling("Canary", "step 1 of 2");
        let c = conditions(selection.clone(), rollout.clone(), None, None);
        assert_eq!(c, rollout);
        assert_eq!(conditions(selection.clone(), vec![], None, None), selection);
        let c = conditions(
            selection,
            rollout,
            Some("HTTPRoute \"web\" not found".into()),
            None,
        );
        assert_eq!(
            c,
            conditions::stalled("HTTPRouteNotUsable", "HTTPRoute \"web\" not found")
        );
    }
}
