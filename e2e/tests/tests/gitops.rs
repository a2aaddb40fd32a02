//! GitOps for real: the team's repository on the local git server, Flux's source-controller
//! and kustomize-controller applying it (make flux-up), and ciclo acting on what Flux applied —
//! a commit is the only way the training changes, and each ModelVersion's lineage names the
//! commit its TrainingRun came from.

use ciclo_e2e::gitops::{TeamRepo, reconcile_now};
use ciclo_e2e::resources::{
    BROKEN_TRAINING_RUN, STORE_KEYS, TIMEOUT, apply, ciclo, condition, request_reconcile,
    restricted_namespace, s3_dataset, wait_status,
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

/// A test's team: its namespace, bucket and repository, after the first commit trained
/// version 1 of `points`.
struct Team {
    client: kube::Client,
    /// Deleted when dropped.
    _ns: ciclo_e2e::TestNamespace,
    ns: String,
    bucket: String,
    repo: TeamRepo,
    /// The first commit: the data and how to train on it.
    first: String,
    versions: Api<DynamicObject>,
}

/// A namespace, a bucket with a first batch (`seed`), and the team's first commit — the
/// Dataset and the TrainingRun — applied by Flux, until version 1 is registered from it.
async fn first_version(test: &str, seed: u64) -> Team {
    let (client, test_ns) = restricted_namespace(test).await;
    let ns = test_ns.name.clone();
    let bucket = new_bucket(&ns).await;
    put(&bucket, "data/batch-1.csv", points(seed, 60, 0)).await;
    // The store's keys are a Secret: never in git.
    apply(&ns, STORE_KEYS);
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
    apply(&ns, &repo.flux_objects("./team", &ns, "1m"));
    let versions = ciclo(&client, &ns, "ModelVersion");
    trained_from(&versions, "points-1", &repo.url(), &first, "100").await;
    Team {
        client,
        _ns: test_ns,
        ns,
        bucket,
        repo,
        first,
        versions,
    }
}

#[tokio::test]
#[ignore = "needs the local cluster, the S3 server and Flux: make e2e"]
async fn commits_flow_through_flux_into_training_and_lineage_names_each_commit() {
    let Team {
        client,
        _ns: _keep,
        ns,
        bucket: _,
        repo,
        first,
        versions,
    } = first_version("gitops", 19).await;
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
    // The failed status as the wait saw it: Flux reconciles again on its interval, so a
    // second read may find the next attempt in progress (Ready Unknown, Progressing).
    let seen = std::sync::Mutex::new(serde_json::Value::Null);
    wait_for(
        TIMEOUT,
        "the Kustomization failed by the Stalled TrainingRun",
        || async {
            let s = k.get("team").await?.data["status"].clone();
            let ready = condition(&s, "Ready").cloned().unwrap_or_default();
            if s["lastAttemptedRevision"] == failed.as_str() && ready["status"] == "False" {
                *seen.lock().unwrap() = ready;
                Ok(true)
            } else {
                anyhow::bail!("Kustomization status now: {s}")
            }
        },
    )
    .await
    .unwrap();
    let ready = seen.into_inner().unwrap();
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

/// A ModelDeployment in write-back mode: git pins the version, and ciclo moves the pin by
/// commit. A canary of one step that passes on time alone.
fn written_back_deployment(url: &str) -> String {
    format!(
        r#"apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {{name: points}}
spec:
  model:
    name: points
    version: 1   # moved by ciclo's write-back, a commit per promotion
  replicas: 1
  requireImprovement: false
  strategy:
    type: Canary
    steps: [{{weight: 50, pause: 5s}}]
  analysis: {{minRequests: 0}}
  gitWriteBack:
    url: {url}
    path: team/modeldeployment.yaml
    secretRef: {{name: git-credentials}}
"#
    )
}

/// The commits on `main` that promote `version` of the deployment `ns/points`.
fn promotions(repo: &TeamRepo, ns: &str, version: i64) -> Vec<(String, String)> {
    let trailers = format!("Ciclo-Deployment: {ns}/points\nCiclo-Promoted-Version: {version}");
    repo.messages("main")
        .into_iter()
        .filter(|(_, m)| m.ends_with(&trailers))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local cluster, the S3 server and Flux: make e2e"]
async fn promotions_and_rollbacks_are_commits_made_once_even_when_the_operator_dies_pushing() {
    let Team {
        client,
        _ns: _keep,
        ns,
        bucket,
        repo,
        versions,
        ..
    } = first_version("writeback", 23).await;

    // Serve version 1, pinned in git, in write-back mode.
    repo.write(
        "team/modeldeployment.yaml",
        &written_back_deployment(&repo.url()),
    );
    repo.write(
        "team/kustomization.yaml",
        "resources: [dataset.yaml, trainingrun.yaml, modeldeployment.yaml]\n",
    );
    let serving = repo.commit("points: serve version 1, promotions by commit");
    reconcile_now(&ns);
    let k = kustomizations(&client, &ns);
    applied(&k, &serving).await;
    let mds = ciclo(&client, &ns, "ModelDeployment");

    // New data: version 2 is trained and blessed, and ciclo pushes the promotion. The git
    // server applies the push but holds its answer; the operator is killed before it learns
    // the push landed.
    repo.hold_push_answers(Some(40));
    put(&bucket, "data/batch-2.csv", points(29, 60, 60)).await;
    request_reconcile(&ns, "dataset", "points", "batch-2");
    let landed = std::time::Instant::now();
    wait_for(
        std::time::Duration::from_secs(240),
        "ciclo's promotion commit on the server",
        || async { Ok(!promotions(&repo, &ns, 2).is_empty()) },
    )
    .await
    .unwrap();
    let killed = ciclo_e2e::operator::kill_leader(&client).await;
    repo.hold_push_answers(None);
    eprintln!(
        "killed {killed} with its push landed, {:?} after the data",
        landed.elapsed()
    );

    // The next leader finds the commit in the branch's history and records it: no second one.
    let s = wait_status(&mds, "points", "the promotion recorded", |s| {
        s["writeBack"]["version"] == 2
    })
    .await;
    let commits = promotions(&repo, &ns, 2);
    assert_eq!(
        commits.len(),
        1,
        "exactly one promotion commit: {commits:?}"
    );
    let (commit, message) = &commits[0];
    assert_eq!(s["writeBack"]["commit"], commit.as_str(), "{s}");
    assert_eq!(s["writeBack"]["change"], "Promotion", "{s}");
    // Its message carries the lineage: what trained it, on which data and code.
    let mv2 = registered(&versions, "points-2").await;
    let lineage = &mv2["spec"]["lineage"];
    assert!(
        message.starts_with(&format!("Promote points to version 2 ({ns}/points)")),
        "{message}"
    );
    for part in [
        format!(
            "on dataset points version {}",
            lineage["dataset"]["version"].as_str().unwrap()
        ),
        format!("(run {})", lineage["runId"].as_str().unwrap()),
        // Trained from the commit Flux was applying when the data came: the second one.
        format!("Code: {} main@sha1:{serving}", repo.url()),
    ] {
        assert!(message.contains(&part), "{part:?} not in:\n{message}");
    }

    // Flux applies ciclo's commit; the canary runs from that change and version 2 serves.
    reconcile_now(&ns);
    applied(&k, commit).await;
    let s = wait_status(&mds, "points", "version 2 serving after its canary", |s| {
        s["servingVersion"] == 2 && s["phase"] == "Promoted"
    })
    .await;
    let last = &s["history"][0];
    assert_eq!(
        (&last["version"], &last["from"], &last["result"]),
        (&2.into(), &1.into(), &"Promoted".into()),
        "{s}"
    );
    // In the team's clone, only the number moved: the comment beside it stays.
    repo.pull();
    let file = repo.read("team/modeldeployment.yaml");
    assert_eq!(
        file,
        written_back_deployment(&repo.url()).replace("version: 1   #", "version: 2   #")
    );

    // The team reverts the promotion: git is the truth, version 1 serves again, and ciclo
    // does not promote version 2 a second time.
    repo.git(&["revert", "--no-edit", commit]);
    let reverted = repo.push();
    reconcile_now(&ns);
    applied(&k, &reverted).await;
    let s = wait_status(&mds, "points", "version 1 serving after the revert", |s| {
        s["servingVersion"] == 1 && s["phase"] == "Promoted"
    })
    .await;
    let wb = condition(&s, "GitWriteBack").unwrap();
    assert!(
        wb["message"]
            .as_str()
            .unwrap()
            .contains("version 2 was rolled out here before (a reverted promotion or a failed canary is not made again)"),
        "{wb}"
    );
    assert_eq!(promotions(&repo, &ns, 2).len(), 1);
    assert_eq!(
        repo.messages("main")[0].0,
        reverted,
        "no commit after the revert"
    );

    // A version that fails its canary: promoted by commit, rolled back in the cluster, and
    // the rollback committed too, so that git pins what serves again.
    repo.write("team/trainingrun.yaml", BROKEN_TRAINING_RUN);
    repo.commit("points: a trainer whose model file goes missing");
    reconcile_now(&ns);
    wait_for(TIMEOUT, "the promotion of version 3", || async {
        Ok(promotions(&repo, &ns, 3).len() == 1)
    })
    .await
    .unwrap();
    reconcile_now(&ns);
    let rolled_back = format!("Ciclo-Deployment: {ns}/points\nCiclo-Rolled-Back-Version: 3");
    let rollback = || {
        repo.messages("main")
            .into_iter()
            .filter(|(_, m)| m.ends_with(&rolled_back))
            .collect::<Vec<_>>()
    };
    wait_for(TIMEOUT, "the rollback of version 3 committed", || async {
        Ok(!rollback().is_empty())
    })
    .await
    .unwrap();
    let (rollback_commit, message) = rollback().remove(0);
    assert!(
        message.starts_with(&format!("Roll back points to version 1 ({ns}/points)")),
        "{message}"
    );
    reconcile_now(&ns);
    applied(&k, &rollback_commit).await;
    let md = mds.get("points").await.unwrap();
    assert_eq!(
        md.data["spec"]["model"]["version"], 1,
        "git pins version 1 again"
    );
    let s = &md.data["status"];
    assert_eq!(s["servingVersion"], 1, "{s}");
    assert_eq!(s["writeBack"]["change"], "Rollback", "{s}");
    assert_eq!(
        (rollback().len(), promotions(&repo, &ns, 3).len()),
        (1, 1),
        "one commit each"
    );
    assert_eq!(repo.messages("main")[0].0, rollback_commit);
}
