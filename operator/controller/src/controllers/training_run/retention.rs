//! Retention of a model's unblessed versions (`spec.retention.unblessedVersions`): once a run
//! registers a new version, the unblessed versions of the model beyond the newest N are
//! removed — the ModelVersion, its registry record and its artifacts (the run's own folder
//! under `<store>/<namespace>/models/<model>/runs/<run id>/`, nothing else) — unless it
//! serves or is a canary, a ModelDeployment pins it, or it is the baseline a kept version was
//! judged against. Blessed versions and versions not judged yet are never removed by it.
//! Each removal is announced by an Event on the TrainingRun.

use crate::context::Context;
use crate::controllers::artifact_store::ArtifactStore;
use crate::controllers::registry::Registry;
use crate::error::Result;
use ciclo_api::labels;
use ciclo_api::model_deployment::ModelDeployment;
use ciclo_api::model_version::ModelVersion;
use ciclo_api::training_run::TrainingRun;
use kube::api::{Api, DeleteParams, ListParams};
use kube::core::DeserializeGuard;
use kube::runtime::events::EventType;
use kube::{Resource as _, ResourceExt as _};
use std::collections::BTreeSet;

/// A version to remove, and why it may go.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    pub name: String,
    pub number: i64,
    pub artifact: String,
}

/// The versions of `model` (among `versions`, the namespace's) that retention removes when
/// version `registered` was just registered: of the versions before it, those judged
/// unblessed beyond the `keep` newest, but no protected one. The new version is not counted
/// whether or not its verdict is in yet, so what goes does not depend on how fast it was
/// judged.
pub fn plan(
    model: &str,
    keep: u32,
    versions: &[ModelVersion],
    deployments: &[ModelDeployment],
    registered: i64,
) -> Vec<Removal> {
    let of_model: Vec<&ModelVersion> = versions
        .iter()
        .filter(|mv| mv.spec.model == model)
        .collect();
    let mut protected = BTreeSet::new();
    for md in deployments.iter().filter(|md| md.spec.model.name == model) {
        protected.extend(md.spec.model.version);
        if let Some(s) = &md.status {
            protected.extend(s.serving_version);
            protected.extend(s.canary_version);
        }
    }
    for mv in &of_model {
        let status = mv.status.clone().unwrap_or_default();
        if !status.deployed_by.is_empty() {
            protected.insert(mv.spec.version);
        }
    }
    let judged_unblessed = |mv: &&&ModelVersion| {
        mv.status.as_ref().is_some_and(|s| {
            !s.blessed
                && s.conditions.iter().any(|c| {
                    c.type_ == ciclo_api::model_version::BLESSED
                        && c.status == "False"
                        && c.reason != "WaitingForBaseline"
                })
        })
    };
    let mut unblessed: Vec<&&ModelVersion> = of_model
        .iter()
        .filter(|mv| mv.spec.version < registered)
        .filter(judged_unblessed)
        .collect();
    unblessed.sort_by_key(|mv| std::cmp::Reverse(mv.spec.version));
    let candidates: Vec<&&ModelVersion> = unblessed.into_iter().skip(keep as usize).collect();
    let mut going: BTreeSet<i64> = candidates
        .iter()
        .map(|mv| mv.spec.version)
        .filter(|n| !protected.contains(n))
        .collect();
    // A kept version's baseline stays (its verdict names it), and so on down the chain: a
    // baseline kept for that reason is a kept version too.
    loop {
        let baselines: BTreeSet<i64> = of_model
            .iter()
            .filter(|mv| !going.contains(&mv.spec.version))
            .flat_map(|mv| mv.status.iter().flat_map(|s| &s.gates))
            .filter_map(|g| g.baseline_version)
            .collect();
        let before = going.len();
        going.retain(|n| !baselines.contains(n));
        if going.len() == before {
            break;
        }
    }
    candidates
        .into_iter()
        .filter(|mv| going.contains(&mv.spec.version))
        .map(|mv| Removal {
            name: mv.name_any(),
            number: mv.spec.version,
            artifact: mv.spec.artifact.uri.clone(),
        })
        .collect()
}

/// Applies `tr`'s retention to its model: lists the model's versions and the namespace's
/// ModelDeployments (only when a run has just registered a version: retention is not looked at
/// on every reconcile), removes what [`plan`] says, each with an Event on `tr`.
pub async fn apply(
    ctx: &Context,
    tr: &TrainingRun,
    store: &ArtifactStore,
    registered: i64,
) -> Result<()> {
    let Some(keep) = tr
        .spec
        .retention
        .as_ref()
        .and_then(|r| r.unblessed_versions)
    else {
        return Ok(());
    };
    let ns = tr.namespace().unwrap_or_default();
    let model = &tr.spec.model.name;
    let api: Api<ModelVersion> = Api::namespaced(ctx.client.clone(), &ns);
    let versions = api
        .list(&ListParams::default().labels(&format!("{}={model}", labels::MODEL)))
        .await?
        .items;
    // A ModelDeployment that cannot be read is left out; one that can names what it holds.
    let deployments: Vec<ModelDeployment> =
        Api::<DeserializeGuard<ModelDeployment>>::namespaced(ctx.client.clone(), &ns)
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|g| g.0.ok())
            .collect();
    let removals = plan(model, keep, &versions, &deployments, registered);
    if removals.is_empty() {
        return Ok(());
    }
    let registry = Registry::open(ctx, &ns, store).await?;
    for r in removals {
        // Artifacts, then the record, then the object: a crash in between leaves the
        // ModelVersion, and the next pass removes the rest.
        let folder = registry.delete_run_artifacts(model, &r.artifact).await?;
        registry.delete_record(model, r.number).await?;
        match api.delete(&r.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let artifacts = match &folder {
            Some(uri) => format!("its artifacts under {uri}"),
            None => format!(
                "not its model {} (kept outside the run's folder)",
                r.artifact
            ),
        };
        ctx.publish(
            &tr.object_ref(&()),
            EventType::Normal,
            "ModelVersionRemoved",
            &format!(
                "removed {} (not blessed; spec.retention.unblessedVersions keeps the {keep} newest unblessed versions of {model}), its registry record and {artifacts}",
                r.name
            ),
            "Retention",
        )
        .await;
        tracing::info!(namespace = %ns, version = %r.name, "retention removed a model version");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version `n` of `churn`, judged: blessed or not, with the baseline it was judged
    /// against, and serving somewhere or not.
    fn version(
        n: i64,
        blessed: Option<bool>,
        baseline: Option<i64>,
        deployed: bool,
    ) -> ModelVersion {
        let blessed_condition = match blessed {
            Some(true) => {
                "{type: Blessed, status: 'True', reason: GatesPassed, message: ok, lastTransitionTime: '2026-12-01T00:00:00Z'}"
            }
            Some(false) => {
                "{type: Blessed, status: 'False', reason: GateFailed, message: no, lastTransitionTime: '2026-12-01T00:00:00Z'}"
            }
            None => {
                "{type: Blessed, status: 'False', reason: WaitingForBaseline, message: wait, lastTransitionTime: '2026-12-01T00:00:00Z'}"
            }
        };
        let baseline = baseline.map_or(String::new(), |b| format!(", baselineVersion: {b}"));
        serde_yaml::from_str(&format!(
            r#"
metadata: {{name: churn-{n}, namespace: ml}}
spec:
  model: churn
  version: {n}
  artifact: {{uri: "s3://a/ml/models/churn/runs/r{n}/model.json", digest: "blake3:0{n}"}}
  lineage: {{trainingRun: churn, runId: r{n}, dataset: {{name: d, version: v}}, image: i}}
status:
  blessed: {}
  gates: [{{metric: accuracy, passed: true{baseline}}}]
  deployedBy: [{}]
  conditions: [{blessed_condition}]
"#,
            blessed == Some(true),
            if deployed { "churn" } else { "" },
        ))
        .unwrap()
    }

    fn deployment(spec: &str, status: &str) -> ModelDeployment {
        serde_yaml::from_str(&format!(
            "metadata: {{name: churn, namespace: ml}}\nspec: {spec}\nstatus: {status}"
        ))
        .unwrap()
    }

    fn removed(r: &[Removal]) -> Vec<i64> {
        r.iter().map(|r| r.number).collect()
    }

    #[test]
    fn the_newest_unblessed_versions_stay_and_blessed_or_unjudged_ones_are_never_counted() {
        let versions = vec![
            version(1, Some(false), None, false),
            version(2, Some(true), None, false),
            version(3, Some(false), None, false),
            version(4, Some(false), None, false),
            version(5, Some(false), None, false),
            version(6, None, None, false),
        ];
        assert_eq!(removed(&plan("churn", 2, &versions, &[], i64::MAX)), [3, 1]);
        assert_eq!(
            removed(&plan("churn", 0, &versions, &[], i64::MAX)),
            [5, 4, 3, 1]
        );
        assert!(plan("churn", 10, &versions, &[], i64::MAX).is_empty());
        assert!(
            plan("other", 0, &versions, &[], i64::MAX).is_empty(),
            "another model's"
        );
        let r = &plan("churn", 3, &versions, &[], i64::MAX)[0];
        assert_eq!(
            (r.name.as_str(), r.artifact.as_str()),
            ("churn-1", "s3://a/ml/models/churn/runs/r1/model.json")
        );
    }

    #[test]
    fn nothing_goes_that_serves_is_a_canary_is_pinned_or_is_a_kept_versions_baseline() {
        let versions = vec![
            version(1, Some(false), None, true),
            version(2, Some(false), None, false),
            // Serving, judged against 8 (as though 8 had been blessed then): 8 stays with it.
            version(3, Some(false), Some(8), false),
            version(4, Some(false), None, false),
            version(5, Some(false), None, false),
            version(6, Some(false), None, false),
            // Kept as the newest, judged against 4: 4 stays with it.
            version(7, Some(false), Some(4), false),
            version(8, Some(false), None, false),
            version(9, Some(false), None, false),
        ];
        let deployments = [
            deployment(
                "{model: {name: churn, version: 2}}",
                "{servingVersion: 3, canaryVersion: 5}",
            ),
            deployment("{model: {name: other, version: 6}}", "{servingVersion: 6}"),
        ];
        // Keep 1 (9): 1 serves (deployedBy), 2 is pinned, 3 serves, 5 is a canary, 8 is 3's
        // baseline; 7 and 4, 7's baseline, go together; 6 is pinned by another model's
        // deployment only, so it goes.
        assert_eq!(
            removed(&plan("churn", 1, &versions, &deployments, i64::MAX)),
            [7, 6, 4]
        );
        // Keep 2 (9, 8): 7 is older than both and goes, and its baseline 4 with it.
        assert_eq!(
            removed(&plan("churn", 2, &versions, &deployments, i64::MAX)),
            [7, 6, 4]
        );
        // Keep 3 (9, 8, 7): 4 is a kept version's baseline now.
        assert_eq!(
            removed(&plan("churn", 3, &versions, &deployments, i64::MAX)),
            [6]
        );
    }

    #[test]
    fn the_version_just_registered_is_not_counted_judged_or_not() {
        let versions = vec![
            version(1, Some(false), None, false),
            version(2, Some(false), None, false),
            version(3, Some(false), None, false),
            // Just registered: judged already (a fast verdict) or not, the same removals.
            version(4, Some(false), None, false),
        ];
        assert_eq!(removed(&plan("churn", 1, &versions, &[], 4)), [2, 1]);
        let mut unjudged = versions.clone();
        unjudged[3] = version(4, None, None, false);
        assert_eq!(removed(&plan("churn", 1, &unjudged, &[], 4)), [2, 1]);
        // Without the bound, a judged version 4 would have taken the one place kept.
        assert_eq!(
            removed(&plan("churn", 1, &versions, &[], i64::MAX)),
            [3, 2, 1]
        );
    }

    #[test]
    fn a_baseline_goes_with_the_version_judged_against_it() {
        let versions = vec![
            version(1, Some(false), None, false),
            version(2, Some(false), Some(1), false),
            version(3, Some(false), None, false),
        ];
        // Keeping 1 keeps 3; 2 goes, so its baseline 1 is not held for it.
        assert_eq!(removed(&plan("churn", 1, &versions, &[], i64::MAX)), [2, 1]);
    }
}
