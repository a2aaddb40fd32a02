//! GitOps for real: the team's repository on the local git server, Flux's source-controller
//! and kustomize-controller applying it (make flux-up), and ciclo acting on what Flux applied —
//! a commit is the only way the training changes, and each ModelVersion's lineage names the
//! commit its TrainingRun came from.

use ciclo_e2e::gitops::{TeamRepo, reconcile_now};
use ciclo_e2e::resources::{
    STORE_KEYS, TIMEOUT, apply, ciclo, condition, restricted_namespace, s3_dataset,
};
use ciclo_e2e::s3::{endpoint, new_bucket, put};
use ciclo_e2e::world::{POINTS_SCHEMA, points};
use ciclo_e2e::{ciclo_cli, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The built-in trainer on the points data, with `iterations` as its one parameter.
fn training_run(iterations: u32) -> String {
    format!(
        r#"apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: points}}
spec:
  dataset: {{name: points, track: Latest}}
  model: {{name: points}}
  trainer: {{algorithm: LogisticRegression, target: label, features: [x1, x2]}}
  params: {{max_iterations: "{iterations}"}}
  metrics: [{{name: accuracy, direction: Maximize}}]
  gates: [{{metric: accuracy, threshold: 0.6}}]
"#
    )
}

/// Serving version 2 of `points` with the built-in server.
const MODEL_DEPLOYMENT: &str = r#"apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: points}
spec:
  model: {name: points, version: 2}
  replicas: 1
"#;

/// ModelVersion `name` once it exists.
async fn registered(versions: &Api<DynamicObject>, name: &str) -> Value {
    wait_for(TIMEOUT, &format!("{name} registered"), || async {
        Ok(versions.get_opt(name).await?.is_some())
    })
    .await
    .unwrap();
    versions.get(name).await.unwrap().data
}

/// Waits for ModelVersion `name` and checks its lineage names `commit` of `repository` and
/// the `iterations` that commit set.
async fn trained_from(
    versions: &Api<DynamicObject>,
    name: &str,
    repository: &str,
    commit: &str,
    iterations: &str,
) {
    let mv = registered(versions, name).await;
    let lineage = &mv["spec"]["lineage"];
    assert_eq!(
        lineage["gitRevision"],
        format!("main@sha1:{commit}"),
        "{lineage}"
    );
    assert_eq!(lineage["gitRepository"], repository, "{lineage}");
    assert_eq!(lineage["params"]["max_iterations"], iterations, "{lineage}");
}

fn kustomizations(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// Waits until Flux's Kustomization is Ready for `commit` (applied, and every object it
/// applied healthy by its kstatus conditions), and returns its status.
async fn applied(api: &Api<DynamicObject>, commit: &str) -> Value {
    let revision = format!("main@sha1:{commit}");
    wait_for(TIMEOUT, &format!("Flux applied {revision}"), || async {
        let k = api.get("team").await?;
        let s = &k.data["status"];
        let ready = condition(s, "Ready").is_some_and(|c| c["status"] == "True");
        if ready && s["lastAppliedRevision"] == revision.as_str() {
            Ok(true)
        } else {
            anyhow::bail!("Kustomization status now: {s}")
        }
    })
    .await
    .unwrap();
    api.get("team").await.unwrap().data["status"].clone()
}

#[tokio::test]
#[ignore = "needs the local cluster, the S3 server and Flux: make e2e"]
async fn commits_flow_through_flux_into_training_and_lineage_names_each_commit() {
    let (client, ns) = restricted_namespace("gitops").await;
    let ns = ns.name.clone();
    let bucket = new_bucket(&ns).await;
    put(&bucket, "data/batch-1.csv", points(19, 60, 0)).await;
    // The store's keys are a Secret: never in git.
    apply(&ns, STORE_KEYS);

    // The team's first commit: the data and how to train on it.
    let repo = TeamRepo::new(&ns);
    repo.write(
        "team/kustomization.yaml",
        "resources: [dataset.yaml, trainingrun.yaml]\n",
    );
    repo.write(
        "team/dataset.yaml",
        &s3_dataset("points", &bucket, &endpoint(), "*.csv", POINTS_SCHEMA),
    );
    repo.write("team/trainingrun.yaml", &training_run(100));
    let first = repo.commit("points: the data and a logistic regression on it");
    apply(&ns, &repo.flux_objects("./team", &ns));

    let versions = ciclo(&client, &ns, "ModelVersion");
    trained_from(&versions, "points-1", &repo.url(), &first, "100").await;
    // wait: true — Flux calls the commit applied once ciclo's kstatus conditions say so.
    let k = kustomizations(&client, &ns);
    let s = applied(&k, &first).await;
    assert!(
        condition(&s, "Ready").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains(&first),
        "{s}"
    );

    // A commit that changes the params retrains; the new version names that commit.
    repo.write("team/trainingrun.yaml", &training_run(300));
    let second = repo.commit("points: more iterations");
    reconcile_now(&ns);
    trained_from(&versions, "points-2", &repo.url(), &second, "300").await;
    let (ok, text, err) = ciclo_cli(&["lineage", "-n", &ns, "points:2"]);
    assert!(ok, "{err}");
    assert!(
        text.contains(&second),
        "ciclo lineage names the commit:\n{text}"
    );
    applied(&k, &second).await;

    // A commit ciclo cannot act on: the TrainingRun is Stalled with ciclo's reason, and Flux's
    // wait fails the Kustomization at once (kstatus) instead of waiting out its timeout.
    repo.write(
        "team/trainingrun.yaml",
        &training_run(300).replace("  gates:", "  schedule: every morning\n  gates:"),
    );
    let bad = repo.commit("points: a schedule that is no cron expression");
    reconcile_now(&ns);
    let failed = format!("main@sha1:{bad}");
    wait_for(
        TIMEOUT,
        "the Kustomization failed by the Stalled TrainingRun",
        || async {
            let s = k.get("team").await?.data["status"].clone();
            let ready = condition(&s, "Ready").cloned().unwrap_or_default();
            if s["lastAttemptedRevision"] == failed.as_str() && ready["status"] == "False" {
                Ok(true)
            } else {
                anyhow::bail!("Kustomization status now: {s}")
            }
        },
    )
    .await
    .unwrap();
    let s = k.get("team").await.unwrap().data["status"].clone();
    let ready = condition(&s, "Ready").unwrap();
    // Flux names the object and its kstatus (its v1.9.6 wait does not copy the object's own
    // message); ciclo's reason is on the TrainingRun, where `kubectl describe` and `ciclo get`
    // show it.
    assert_eq!(ready["reason"], "HealthCheckFailed", "{ready}");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("failed early due to stalled resources")
            && message.contains(&format!("TrainingRun/{ns}/points status: 'Failed'")),
        "{message}"
    );
    let run = ciclo(&client, &ns, "TrainingRun")
        .get("points")
        .await
        .unwrap();
    let stalled = condition(&run.data["status"], "Stalled").unwrap();
    assert_eq!(stalled["reason"], "InvalidSchedule", "{stalled}");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("spec.schedule: \"every morning\" is not a cron expression"),
        "{stalled}"
    );

    // A commit that fixes it and serves version 2: Flux is Ready for it once the
    // ModelDeployment serves (kstatus again).
    repo.write("team/trainingrun.yaml", &training_run(300));
    repo.write("team/modeldeployment.yaml", MODEL_DEPLOYMENT);
    repo.write(
        "team/kustomization.yaml",
        "resources: [dataset.yaml, trainingrun.yaml, modeldeployment.yaml]\n",
    );
    let serving = repo.commit("points: serve version 2");
    reconcile_now(&ns);
    applied(&k, &serving).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let served = deployments
        .list(&ListParams::default().labels("ciclo.dev/deployment=points"))
        .await
        .unwrap()
        .items;
    assert_eq!(served.len(), 1, "one Deployment serves version 2");

    // A commit that deletes the TrainingRun and the ModelDeployment: Flux prunes them, serving
    // stops; the ModelVersions they registered are the registry, not in git, and stay.
    repo.write("team/kustomization.yaml", "resources: [dataset.yaml]\n");
    repo.remove("team/trainingrun.yaml");
    repo.remove("team/modeldeployment.yaml");
    let third = repo.commit("points: training and serving stopped");
    reconcile_now(&ns);
    applied(&k, &third).await;
    let runs = ciclo(&client, &ns, "TrainingRun");
    let mds = ciclo(&client, &ns, "ModelDeployment");
    wait_for(
        TIMEOUT,
        "the TrainingRun and the ModelDeployment pruned, serving stopped",
        || async {
            let left = deployments
                .list(&ListParams::default().labels("ciclo.dev/deployment=points"))
                .await?
                .items;
            Ok(runs.get_opt("points").await?.is_none()
                && mds.get_opt("points").await?.is_none()
                && left.is_empty())
        },
    )
    .await
    .unwrap();
    for name in ["points-1", "points-2"] {
        assert!(
            versions.get_opt(name).await.unwrap().is_some(),
            "{name} is kept when its TrainingRun leaves git"
        );
    }
}
