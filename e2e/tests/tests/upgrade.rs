//! Upgrading the operator while it works: the previous release of ciclo (the chart, CRDs and
//! image of e2e/upgrade/previous-commit, built by e2e/upgrade/previous.sh) runs a cycle in
//! which a canary step and a training run are both under way when `helm upgrade` installs the
//! current chart and image (e2e/deploy/install.sh, as `make deploy` does). Nothing is lost
//! (every version, run and verdict is there, and the new operator adds the registry's records
//! to the versions the old one judged), nothing is duplicated (one run per dataset version, one
//! rollout record), and the canary finishes — its pods are not replaced by the new image
//! until it has.
//!
//! It replaces the cluster's operator, so it runs alone, after the other end-to-end tests
//! (`make e2e` runs it last, and leaves the current release installed).

use ciclo_e2e::resources::{TIMEOUT, apply, ciclo, status, wait_status};
use ciclo_e2e::world::{POINTS_TRAINING_RUN, points, points_request, start, user_run};
use ciclo_e2e::{helm, host_script, kubectl, repo_root, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::time::Duration;

const DEPLOYMENT: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: points}
spec:
  model: {name: points, track: LatestBlessed}
  replicas: 2
  strategy:
    type: Canary
    steps: [{weight: 50, pause: 40s}]
  analysis: {minRequests: 10, maxErrorRatio: 0.0}
"#;

/// A team's trainer that takes a minute: its run is under way during the upgrade (which took
/// from 5 to 30 s in runs here).
const SLOW_TRAINER: &str = r#"
import json, os, time
time.sleep(60)
summary = {"outcome": "Succeeded", "metrics": {"accuracy": 0.95},
           "model": os.environ["CICLO_OUTPUT_URI"] + "/model.json", "digest": "blake3:00ab"}
with open("/dev/termination-log", "w") as f:
    json.dump(summary, f)
"#;

/// The image digests the operator's pods run.
async fn operator_images(client: &kube::Client) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ciclo-system");
    pods.list(&ListParams::default().labels("app.kubernetes.io/name=ciclo-operator"))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .flat_map(|p| p.spec.iter().flat_map(|s| &s.containers))
        .filter_map(|c| c.image.clone())
        .collect()
}

/// `(version, result)` of a ModelDeployment's rollout history.
fn history(s: &Value) -> Vec<(i64, String)> {
    s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["version"].as_i64().unwrap(),
                h["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "replaces the cluster's operator: run alone, after the other e2e (make e2e does)"]
async fn an_upgrade_mid_run_and_mid_canary_loses_nothing_duplicates_nothing_and_the_canary_finishes()
 {
    let client = ciclo_e2e::client().await.unwrap();
    if ciclo_e2e::on_process_node(&client).await {
        return; // the previous release's image runs on the kubelet node only
    }
    // The previous release, over the current one: its CRDs, chart and image.
    let previous = repo_root().join(host_script("e2e/upgrade/previous.sh", &["--dir"]).trim());
    let archive = std::fs::read_to_string(previous.join("image.archive"))
        .expect("the previous release is built (e2e/upgrade/previous.sh, which make e2e runs)");
    let loaded = host_script("e2e/cluster/load-image.sh", &[archive.trim()]);
    let digest = loaded
        .split_whitespace()
        .nth(1)
        .and_then(|r| r.split_once('@'))
        .map(|(_, d)| d.to_string())
        .expect("load-image.sh prints the image's name and digest reference");
    let values = |f: &str| previous.join("e2e/deploy").join(f).display().to_string();
    let (ok, _, err) = helm(&[
        "upgrade",
        "--install",
        "ciclo",
        &previous.join("charts/ciclo").display().to_string(),
        "--namespace",
        "ciclo-system",
        "-f",
        &values("values.yaml"),
        "-f",
        &values("values-kubelet.yaml"),
        "--set",
        &format!("image.digest={digest}"),
        "--force-conflicts",
    ]);
    assert!(ok, "installing the previous release: {err}");
    let (ok, _, err) = kubectl(
        &[
            "-n",
            "ciclo-system",
            "rollout",
            "status",
            "deployment/ciclo-operator",
            "--timeout=180s",
        ],
        None,
    );
    assert!(ok, "{err}");
    let images = operator_images(&client).await;
    assert!(
        images.iter().all(|i| i.ends_with(&digest)),
        "{images:?} run {digest}"
    );

    // A cycle under the previous release: version 1 serves; batch 2 makes version 2, whose
    // canary step runs under load; a team's slow run trains on batch 2 meanwhile.
    let w = start("upgrade", &points(51, 200, 0)).await;
    let ns = w.ns.name.clone();
    apply(&ns, POINTS_TRAINING_RUN);
    apply(&ns, DEPLOYMENT);
    let deployments = ciclo(&client, &ns, "ModelDeployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_status(&deployments, "points", "version 1 serving", |s| {
        s["servingVersion"] == 1
    })
    .await;
    let load = ciclo_e2e::load::start(pods.clone(), "points", "points", |_| {
        points_request(&[(0.9, 0.8)])
    });
    w.land(
        "batch-2.csv",
        &points(52, 300, 1000),
        "2026-12-07T12:00:00Z",
    )
    .await;
    let step = wait_status(&deployments, "points", "the canary step under way", |s| {
        s["stepStarted"].is_string()
    })
    .await["stepStarted"]
        .clone();
    // Started now, it trains through the upgrade (which takes seconds, the run 60).
    apply(&ns, &user_run("slow", SLOW_TRAINER, 0.95, 0.9));
    wait_status(&w.runs, "slow", "the slow run under way", |s| {
        s["currentRun"].is_object()
    })
    .await;

    // The pod templates serving (each ReplicaSet's pod-template-hash): a replaced pod has a
    // new one; a pod added by scaling (the promotion's) has an old one.
    let serving_templates = || async {
        pods.list(&ListParams::default().labels("ciclo.dev/deployment=points"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.labels?.get("pod-template-hash").cloned())
            .collect::<std::collections::BTreeSet<String>>()
    };
    let before = serving_templates().await;

    // The upgrade, as `make deploy` does it: the current CRDs, chart and image.
    let started = std::time::Instant::now();
    host_script("e2e/deploy/install.sh", &[]);
    println!("upgraded in {:?}", started.elapsed());
    let current = operator_images(&client).await;
    assert!(
        current.iter().all(|i| !i.ends_with(&digest)),
        "the current image runs: {current:?}"
    );
    // The upgrade happened mid-step: the new operator took over a canary under way.
    let s = status(&deployments, "points").await;
    assert!(
        s["canaryVersion"] == 2 && s["stepStarted"] == step,
        "still the step the previous operator started: {s}"
    );
    let slow = status(&w.runs, "slow").await;
    assert!(
        slow["currentRun"].is_object(),
        "the slow run is still under way: {slow}"
    );

    // The canary the previous operator started finishes: the same step, promoted once, judged
    // on the pods it started with (the new image reaches them only after it).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![step.clone()]));
    let judged_from = step.as_str().unwrap().parse::<jiff::Timestamp>().unwrap()
        + jiff::SignedDuration::from_secs(35);
    let last = std::sync::Mutex::new(Value::Null);
    wait_for(TIMEOUT, "version 2 promoted", || async {
        let s = status(&deployments, "points").await;
        // Until the step's pause is nearly over: its end promotes, and applies the new template
        // a moment before the status says so.
        if s["canaryVersion"] == 2 && jiff::Timestamp::now() < judged_from {
            let now = serving_templates().await;
            assert!(
                now.is_subset(&before),
                "no serving pod replaced mid-step: templates {now:?}, before {before:?}"
            );
        }
        let mut seen = seen.lock().unwrap();
        if s["stepStarted"].is_string() && !seen.contains(&s["stepStarted"]) {
            seen.push(s["stepStarted"].clone());
        }
        let done = s["servingVersion"] == 2 && s["canaryVersion"].is_null();
        *last.lock().unwrap() = s;
        Ok(done)
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}; the ModelDeployment's status: {}",
            last.lock().unwrap()
        )
    });
    assert_eq!(
        *seen.lock().unwrap(),
        [step],
        "the step was not started again"
    );
    let s = status(&deployments, "points").await;
    assert_eq!(
        history(&s),
        [(2, "Promoted".to_string()), (1, "Promoted".to_string())],
        "one rollout, recorded once: {s}"
    );
    // Then the serving pods move to the new image, one by one, under the same load.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let load = load.stop().await;
    println!("requests across the upgrade: {load:?}");
    assert!(load.failed.is_empty(), "{load:?}");

    // The run under way is recorded once, by the new operator, and registers one version.
    let tr = wait_status(&w.runs, "slow", "the slow run recorded", |s| {
        s["lastModelVersion"] == 1
    })
    .await;
    let runs = tr["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one run: {tr}");
    assert_eq!(runs[0]["phase"], "Succeeded");
    let names: Vec<String> = w
        .versions
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|mv| mv.metadata.name.clone())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["points-1", "points-2", "slow-1"], "{names:?}");
    // The verdicts the previous operator gave stay; the new one records every version.
    for name in &sorted {
        let mv = w.judged(name).await;
        assert_eq!(mv["status"]["blessed"], true, "{mv}");
        wait_for(TIMEOUT, &format!("{name} recorded"), || async {
            Ok(w.versions.get(name).await?.data["status"]["record"].is_string())
        })
        .await
        .unwrap();
    }
}
