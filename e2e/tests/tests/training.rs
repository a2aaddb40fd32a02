//! TrainingRuns and ModelVersions on the local control plane over the real S3 server: runs
//! are Jobs on the process node (the built-in trainer, or a user's script following the
//! workload contract), each success is registered as a ModelVersion with its lineage and
//! judged against its gates, and new accepted data trains again by itself.

use ciclo_e2e::resources::{TIMEOUT, apply, condition, status, wait_status};
use ciclo_e2e::s3::{ARTIFACTS, get};
use ciclo_e2e::world::{BAD_LABELS, USER_TRAINER, points, start, user_run};
use ciclo_e2e::{ciclo_cli, wait_event, wait_for};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_user_image_registers_versions_retrains_on_new_data_only_and_failures_are_reported() {
    let w = start("training-user", &points(1, 40, 0)).await;
    let ns = &w.ns.name;
    apply(ns, &user_run("species", USER_TRAINER, 0.93, 0.9));
    apply(
        ns,
        &user_run(
            "broken",
            "import sys; print('boom', file=sys.stderr); sys.exit(3)",
            0.0,
            0.9,
        ),
    );
    // The same kind of result held to a bar it does not reach.
    apply(ns, &user_run("strict", USER_TRAINER, 0.93, 0.99));

    let tr = wait_status(&w.runs, "species", "a registered model version", |s| {
        s["lastModelVersion"] == 1
    })
    .await;
    let run = &tr["runs"][0];
    assert_eq!(
        (run["phase"].as_str(), run["datasetVersion"].as_str()),
        (Some("Succeeded"), Some(w.v1.as_str()))
    );
    assert_eq!(run["metrics"]["accuracy"], 0.93);
    assert_eq!(condition(&tr, "Ready").unwrap()["reason"], "RunSucceeded");
    let mv = w.versions.get("species-1").await.unwrap().data;
    let lineage = &mv["spec"]["lineage"];
    assert_eq!(lineage["dataset"]["version"], w.v1.as_str());
    assert_eq!(lineage["runId"], run["id"]);
    assert_eq!(lineage["params"]["accuracy"], "0.93");
    assert_eq!(lineage["metrics"]["accuracy"], 0.93);
    let uri = mv["spec"]["artifact"]["uri"].as_str().unwrap();
    let run_id = run["id"].as_str().unwrap();
    assert!(
        uri.ends_with(&format!("/{ns}/models/species/runs/{run_id}/model.json")),
        "{mv}"
    );
    assert_eq!(w.judged("species-1").await["status"]["blessed"], true);
    let strict = w.judged("strict-1").await;
    assert_eq!(strict["status"]["blessed"], false);
    assert_eq!(strict["status"]["gates"][0]["passed"], false, "{strict}");
    assert_eq!(
        condition(&strict["status"], "Blessed").unwrap()["reason"],
        "GateFailed"
    );
    wait_event(&w.client, ns, "RunSucceeded", "run ")
        .await
        .unwrap();

    // New accepted data: a second run by itself, registered as version 2 on the new version.
    let v2 = w
        .land("batch-2.csv", &points(2, 40, 1000), "2026-11-26T10:00:00Z")
        .await;
    assert_eq!(v2["verdict"], "Accepted", "{v2}");
    let tr = wait_status(&w.runs, "species", "model version 2", |s| {
        s["lastModelVersion"] == 2
    })
    .await;
    assert_eq!(tr["runs"][0]["datasetVersion"], v2["id"]);
    let mv2 = w.versions.get("species-2").await.unwrap().data;
    assert_eq!(mv2["spec"]["lineage"]["dataset"]["version"], v2["id"]);

    // A rejected dataset version triggers nothing.
    let bad = w
        .land("batch-3.csv", BAD_LABELS, "2026-11-26T11:00:00Z")
        .await;
    assert_eq!(bad["verdict"], "Rejected", "{bad}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tr = status(&w.runs, "species").await;
    assert_eq!(tr["lastModelVersion"], 2, "{tr}");
    assert!(
        tr["currentRun"].is_null(),
        "no run on a rejected version: {tr}"
    );
    assert_eq!(tr["runs"].as_array().unwrap().len(), 2);

    // The failing image: the run is Failed with its exit code and message, and stays so.
    let tr = wait_status(&w.runs, "broken", "the failed run", |s| {
        s["runs"][0]["phase"] == "Failed"
    })
    .await;
    let failure = tr["runs"][0]["failure"].as_str().unwrap();
    assert!(failure.contains("exit code 3"), "{failure}");
    assert!(
        failure.contains("boom"),
        "the message comes along: {failure}"
    );
    assert_eq!(condition(&tr, "Stalled").unwrap()["reason"], "RunFailed");
    assert!(w.versions.get_opt("broken-1").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_schedule_trains_again_on_the_same_data_at_each_cron_time() {
    let w = start("training-schedule", &points(5, 30, 0)).await;
    let every_minute = user_run("nightly", USER_TRAINER, 0.95, 0.9)
        .replace("  gates:", "  schedule: \"* * * * *\"\n  gates:");
    apply(&w.ns.name, &every_minute);
    // The run on creation, then one at the next minute: same spec, same data, new tick.
    let tr = wait_status(&w.runs, "nightly", "a second, scheduled run", |s| {
        s["lastModelVersion"] == 2
    })
    .await;
    let runs = tr["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{tr}");
    assert!(
        runs.iter().all(|r| r["datasetVersion"] == w.v1.as_str()),
        "{tr}"
    );
    assert_ne!(
        runs[0]["id"], runs[1]["id"],
        "each tick is a run of its own"
    );
}

const BUILTIN: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: points}
spec:
  dataset: {name: points, track: Latest}
  model: {name: points}
  trainer: {algorithm: LogisticRegression, target: label, features: [x1, x2]}
  metrics:
  - {name: accuracy, direction: Maximize}
  - {name: log_loss, direction: Minimize}
  primaryMetric: accuracy
  gates:
  - {metric: accuracy, threshold: 0.7}
  - {metric: accuracy, mustBeatBaseline: true, minDelta: 0}
"#;

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn the_built_in_trainer_learns_from_s3_data_and_judges_v2_against_v1() {
    let w = start("training-builtin", &points(7, 200, 0)).await;
    apply(&w.ns.name, BUILTIN);
    let mv1 = w.judged("points-1").await;
    let metrics = &mv1["spec"]["lineage"]["metrics"];
    let accuracy1 = metrics["accuracy"].as_f64().expect("accuracy reported");
    assert!(accuracy1 > 0.7 && accuracy1 <= 1.0, "{metrics}");
    for m in ["precision", "recall", "f1", "roc_auc", "log_loss"] {
        assert!(metrics[m].is_number(), "{m} missing: {metrics}");
    }
    assert_eq!(mv1["status"]["blessed"], true, "{mv1}");
    assert_eq!(
        mv1["status"]["gates"][1]["message"], "no blessed earlier version to beat",
        "{mv1}"
    );
    // The model is in the artifact store, and its digest is the digest of those bytes.
    let artifact = &mv1["spec"]["artifact"];
    let uri = artifact["uri"].as_str().unwrap();
    let key = uri
        .strip_prefix(&format!("s3://{ARTIFACTS}/"))
        .unwrap_or_else(|| panic!("{uri} is not in the artifact store"));
    let model = get(ARTIFACTS, key).await.expect("the model file");
    assert_eq!(
        artifact["digest"],
        format!("blake3:{}", blake3::hash(&model).to_hex())
    );
    let model: Value = serde_json::from_slice(&model).unwrap();
    assert_eq!(model["target"], "label", "{model}");

    // More data of the same kind: version 2, judged against version 1.
    let v2 = w
        .land("batch-2.csv", &points(8, 400, 1000), "2026-11-26T12:00:00Z")
        .await;
    assert_eq!(v2["verdict"], "Accepted", "{v2}");
    let mv2 = w.judged("points-2").await;
    assert_eq!(mv2["spec"]["lineage"]["dataset"]["version"], v2["id"]);
    let accuracy2 = mv2["spec"]["lineage"]["metrics"]["accuracy"]
        .as_f64()
        .unwrap();
    let beat = &mv2["status"]["gates"][1];
    assert_eq!(beat["baselineVersion"], 1, "{mv2}");
    assert_eq!(beat["threshold"].as_f64(), Some(accuracy1));
    assert_eq!(
        mv2["status"]["blessed"],
        accuracy2 >= accuracy1,
        "blessed exactly when it does not lose accuracy against v1: {mv2}"
    );

    // `ciclo lineage` shows the chain for version 2: dataset version → run → model version.
    let ns = w.ns.name.as_str();
    let (ok, out, err) = ciclo_cli(&["lineage", "-n", ns, "points:2", "-o", "json"]);
    assert!(ok, "ciclo lineage: {err}");
    let chain: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(chain["dataset"]["version"], v2["id"], "{chain}");
    assert_eq!(chain["dataset"]["record"]["verdict"], "Accepted", "{chain}");
    assert_eq!(
        chain["run"]["runId"], mv2["spec"]["lineage"]["runId"],
        "{chain}"
    );
    assert_eq!(chain["run"]["record"]["phase"], "Succeeded", "{chain}");
    assert_eq!(chain["model"]["version"], 2, "{chain}");
    assert_eq!(
        chain["model"]["blessed"], mv2["status"]["blessed"],
        "{chain}"
    );
    let (ok, text, err) = ciclo_cli(&["lineage", "-n", ns, "points-2"]);
    assert!(ok, "ciclo lineage: {err}");
    let v2_id = v2["id"].as_str().unwrap();
    assert!(text.contains(v2_id) && text.contains("points-2"), "{text}");
}

/// Each worker checks the distributed environment torchrun expects and reports it; the
/// result registered is rank 0's.
const DISTRIBUTED: &str = r#"
import json, os, sys
world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
if not os.environ.get("MASTER_ADDR") or os.environ["PET_NNODES"] != str(world) or os.environ["PET_NODE_RANK"] != str(rank):
    sys.exit(4)
summary = {
    "outcome": "Succeeded",
    "metrics": {"world_size": world, "rank": rank, "master_port": int(os.environ["MASTER_PORT"])},
    "model": os.environ["CICLO_OUTPUT_URI"] + "/model.json",
    "digest": "blake3:00ab",
}
with open("/dev/termination-log", "w") as f:
    json.dump(summary, f)
"#;

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_two_worker_run_is_an_indexed_job_with_the_distributed_environment() {
    let w = start("training-workers", &points(3, 30, 0)).await;
    let script = serde_json::to_string(DISTRIBUTED).unwrap();
    apply(
        &w.ns.name,
        &format!(
            r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: ddp}}
spec:
  dataset: {{name: points}}
  model: {{name: ddp}}
  image: {python}
  command: [/usr/bin/python3, -c, {script}]
  workers: 2
"#,
            python = ciclo_e2e::images::PYTHON
        ),
    );
    let tr = wait_status(&w.runs, "ddp", "the distributed run's model version", |s| {
        s["lastModelVersion"] == 1
    })
    .await;
    let job_name = tr["runs"][0]["job"].as_str().unwrap();
    let job = Api::<Job>::namespaced(w.client.clone(), &w.ns.name)
        .get(job_name)
        .await
        .unwrap();
    let spec = job.spec.unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((spec.completions, spec.parallelism), (Some(2), Some(2)));
    assert_eq!(job.status.unwrap().succeeded, Some(2), "both workers ran");
    let service = Api::<Service>::namespaced(w.client.clone(), &w.ns.name)
        .get(job_name)
        .await
        .unwrap();
    assert_eq!(
        service.spec.unwrap().cluster_ip.as_deref(),
        Some("None"),
        "headless, so each worker has a DNS name"
    );
    let metrics = &w.versions.get("ddp-1").await.unwrap().data["spec"]["lineage"]["metrics"];
    let number = |k: &str| metrics[k].as_f64();
    assert_eq!(
        (number("world_size"), number("rank"), number("master_port")),
        (Some(2.0), Some(0.0), Some(29500.0)),
        "rank 0 reports the run: {metrics}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_leader_killed_mid_run_records_the_run_once_with_one_job_and_one_model_version() {
    let w = start("training-crash", &points(4, 30, 0)).await;
    // Long enough to be killed under, short enough for the test.
    let slow = format!("import time; time.sleep(4)\n{USER_TRAINER}");
    apply(&w.ns.name, &user_run("slow", &slow, 0.95, 0.9));
    let jobs: Api<Job> = Api::namespaced(w.client.clone(), &w.ns.name);
    let selector = ListParams::default().labels("ciclo.dev/training-run=slow");
    wait_for(TIMEOUT, "the run's Job", || async {
        Ok(!jobs.list(&selector).await?.items.is_empty())
    })
    .await
    .unwrap();
    ciclo_e2e::operator::kill_leader(&w.client).await;

    let tr = wait_status(&w.runs, "slow", "the run recorded after the crash", |s| {
        s["lastModelVersion"] == 1
    })
    .await;
    assert_eq!(tr["runs"].as_array().unwrap().len(), 1, "{tr}");
    assert_eq!(
        jobs.list(&selector).await.unwrap().items.len(),
        1,
        "one Job"
    );
    // Give a duplicate registration, if any, the time to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let registered = w
        .versions
        .list(&ListParams::default().labels("ciclo.dev/model=slow"))
        .await
        .unwrap()
        .items;
    assert_eq!(registered.len(), 1, "one ModelVersion");
    assert_eq!(
        registered[0].data["spec"]["lineage"]["runId"],
        tr["runs"][0]["id"]
    );
}
