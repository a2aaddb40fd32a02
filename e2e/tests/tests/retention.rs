//! Retention on the local cluster with the real S3 store: a TrainingRun keeping one unblessed
//! version removes the older ones — the ModelVersion, its registry record and its run's folder
//! — as new versions are registered, but never one a ModelDeployment pins; a Dataset keeping
//! one rejected version removes older rejected ones from its status and their folders from
//! the store. Each removal is an Event saying what and why.

use ciclo_e2e::resources::{TIMEOUT, apply, wait_status};
use ciclo_e2e::s3::{ARTIFACTS, list};
use ciclo_e2e::world::{BAD_LABELS, points, start};
use ciclo_e2e::{kubectl, wait_event, wait_for};
use serde_json::Value;

/// The built-in trainer held to a bar it does not reach: every version is judged unblessed.
const TRAINING_RUN: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: points}
spec:
  dataset: {name: points, track: Latest}
  model: {name: points}
  trainer: {algorithm: LogisticRegression, target: label, features: [x1, x2]}
  metrics: [{name: accuracy, direction: Maximize}]
  gates: [{metric: accuracy, threshold: 0.999}]
  retention: {unblessedVersions: 1}
"#;

/// Pins the oldest version: it must outlive retention.
const DEPLOYMENT: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: points}
spec:
  model: {name: points, version: 1}
  replicas: 1
"#;

/// The run folder of a ModelVersion (`…/runs/<id>/`), as a key prefix of the artifacts bucket.
fn run_folder(mv: &Value) -> String {
    let uri = mv["spec"]["artifact"]["uri"].as_str().unwrap();
    let key = uri.strip_prefix(&format!("s3://{ARTIFACTS}/")).unwrap();
    key.rsplit_once('/').unwrap().0.to_string() + "/"
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn retention_removes_old_unblessed_versions_and_rejected_data_but_never_what_is_pinned() {
    let w = start("retention", &points(41, 60, 0)).await;
    let ns = &w.ns.name;
    apply(ns, TRAINING_RUN);
    let first = w.judged("points-1").await;
    assert_eq!(first["status"]["blessed"], false);
    apply(ns, DEPLOYMENT);
    let mut second = Value::Null;
    for (n, at) in [
        (2, "2026-12-07T11:00:00Z"),
        (3, "2026-12-07T11:01:00Z"),
        (4, "2026-12-07T11:02:00Z"),
    ] {
        w.land(
            &format!("batch-{n}.csv"),
            &points(40 + n, 60, 60 * n as usize),
            at,
        )
        .await;
        let mv = w.judged(&format!("points-{n}")).await;
        if n == 2 {
            second = mv;
            // Recorded before retention may look at it.
            wait_for(TIMEOUT, "points-2 recorded", || async {
                Ok(w.versions.get("points-2").await?.data["status"]["record"].is_string())
            })
            .await
            .unwrap();
        }
    }
    // points-4's registration looked at the judged unblessed versions 3, 2, 1: it keeps the
    // newest (3); 1 is pinned by the deployment; 2 goes, with its record and its run folder.
    wait_for(TIMEOUT, "points-2 removed", || async {
        Ok(w.versions.get_opt("points-2").await?.is_none())
    })
    .await
    .unwrap();
    let event = wait_event(&w.client, ns, "ModelVersionRemoved", "removed points-2 ")
        .await
        .unwrap();
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains("unblessedVersions keeps the 1 newest"),
        "{note}"
    );
    assert_eq!(event.regarding.unwrap().name.as_deref(), Some("points"));
    for kept in ["points-1", "points-3", "points-4"] {
        assert!(w.versions.get_opt(kept).await.unwrap().is_some(), "{kept}");
    }
    assert!(
        list(ARTIFACTS, &run_folder(&second)).await.is_empty(),
        "points-2's run folder is gone"
    );
    assert!(
        !list(ARTIFACTS, &run_folder(&first)).await.is_empty(),
        "points-1's stays"
    );
    let records = list(ARTIFACTS, &format!("{ns}/registry/models/points/")).await;
    assert!(
        !records.iter().any(|k| k.ends_with("/2.json"))
            && records.iter().any(|k| k.ends_with("/1.json")),
        "{records:?}"
    );

    // The Dataset keeps one rejected version: the second bad batch removes the first's
    // version from the status and its folder from the store.
    let (ok, _, err) = kubectl(
        &[
            "patch",
            "-n",
            ns,
            "dataset",
            "points",
            "--type=merge",
            "-p",
            r#"{"spec":{"retention":{"rejectedVersions":1}}}"#,
        ],
        None,
    );
    assert!(ok, "{err}");
    let bad1 = w
        .land("bad-1.csv", BAD_LABELS, "2026-12-07T11:10:00Z")
        .await;
    assert_eq!(bad1["verdict"], "Rejected");
    let bad1_folder = format!("{ns}/datasets/points/{}/", bad1["id"].as_str().unwrap());
    assert!(!list(ARTIFACTS, &bad1_folder).await.is_empty());
    let bad2 = w
        .land("bad-2.csv", BAD_LABELS, "2026-12-07T11:11:00Z")
        .await;
    assert_eq!(bad2["verdict"], "Rejected");
    let s = wait_status(&w.datasets, "points", "one rejected version", |s| {
        s["versions"]
            .as_array()
            .is_some_and(|v| v.iter().filter(|v| v["verdict"] == "Rejected").count() == 1)
    })
    .await;
    assert_eq!(s["versions"][0]["id"], bad2["id"]);
    assert!(
        list(ARTIFACTS, &bad1_folder).await.is_empty(),
        "the removed version's folder is gone"
    );
    let event = wait_event(&w.client, ns, "VersionsRemoved", "removed rejected version")
        .await
        .unwrap();
    let note = event.note.unwrap_or_default();
    assert!(note.contains(bad1["id"].as_str().unwrap()), "{note}");
    // Accepted versions stay, with their folders: models' lineage names them.
    assert!(
        s["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["id"] == w.v1.as_str())
    );
}
