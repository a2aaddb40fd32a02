//! The registry survives losing the cluster: every judged ModelVersion is also a record in the
//! namespace's artifact store (`<ns>/registry/models/<model>/<n>.json`), and every dataset
//! version has its check's report there. With the namespace's ModelVersions, its Dataset and
//! its TrainingRun deleted, as a cluster rebuilt from git would have them, the Dataset applied
//! again gets its versions back, a ModelDeployment of the model brings the model versions back
//! from the records — same names, numbers, digests, lineage and verdicts — and the
//! TrainingRun applied again registers version 3, not 1, on the restored latest data.

use ciclo_e2e::resources::{TIMEOUT, apply, s3_dataset, wait_status};
use ciclo_e2e::s3::{ARTIFACTS, artifact, endpoint};
use ciclo_e2e::world::{POINTS_SCHEMA, POINTS_TRAINING_RUN, points, start};
use ciclo_e2e::{wait_event, wait_for};
use kube::api::{DeleteParams, ListParams};
use serde_json::Value;

const DEPLOYMENT: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: points}
spec:
  model: {name: points, version: 2}
  replicas: 1
"#;

/// `v` with every number as a float: the API server writes a float that has no fraction as an
/// integer (`1` for `1.0`), the record keeps what the operator wrote.
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(floats).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        other => other.clone(),
    }
}

/// What the registry keeps of a version: its spec and its verdict.
fn kept(mv: &Value) -> (Value, Value, Value, Value) {
    (
        mv["metadata"]["labels"].clone(),
        mv["spec"].clone(),
        mv["status"]["blessed"].clone(),
        mv["status"]["gates"].clone(),
    )
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_rebuilt_cluster_gets_its_model_versions_back_and_numbers_on_after_them() {
    let w = start("registry", &points(31, 60, 0)).await;
    let ns = &w.ns.name;
    apply(ns, POINTS_TRAINING_RUN);
    w.judged("points-1").await;
    let v2 = w
        .land("batch-2.csv", &points(32, 60, 60), "2026-12-07T10:00:00Z")
        .await;
    let v2 = v2["id"].as_str().unwrap().to_string();
    w.judged("points-2").await;

    // Each judged version is recorded, and says where.
    let mut before = Vec::new();
    for n in [1, 2] {
        let name = format!("points-{n}");
        let record_uri = format!("s3://{ARTIFACTS}/{ns}/registry/models/points/{n}.json");
        wait_for(TIMEOUT, &format!("{name} recorded"), || async {
            let mv = w.versions.get(&name).await?.data;
            Ok(mv["status"]["record"] == record_uri.as_str())
        })
        .await
        .unwrap();
        let record: Value = serde_json::from_str(
            &artifact(&format!("{ns}/registry/models/points/{n}.json"))
                .await
                .expect("the record in the store"),
        )
        .unwrap();
        let mv = w.versions.get(&name).await.unwrap().data;
        assert_eq!(floats(&record["spec"]), floats(&mv["spec"]));
        assert_eq!(record["status"]["blessed"], mv["status"]["blessed"]);
        before.push(kept(&mv));
    }

    // The cluster loses what git does not hold: the ModelVersions, and the statuses of the
    // Dataset (its versions) and the TrainingRun (its runs); both objects come back from git
    // below.
    w.runs
        .delete("points", &DeleteParams::default())
        .await
        .unwrap();
    w.datasets
        .delete("points", &DeleteParams::default())
        .await
        .unwrap();
    w.versions
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    wait_for(TIMEOUT, "no ModelVersion left", || async {
        Ok(w.versions
            .list(&ListParams::default())
            .await?
            .items
            .is_empty())
    })
    .await
    .unwrap();

    // The Dataset applied again gets its versions back from its checks' reports in the store,
    // before its first check (which finds the same data: nothing new).
    wait_for(TIMEOUT, "the Dataset gone", || async {
        Ok(w.datasets.get_opt("points").await?.is_none())
    })
    .await
    .unwrap();
    apply(
        ns,
        &s3_dataset("points", &w.bucket, &endpoint(), "*.csv", POINTS_SCHEMA),
    );
    let s = wait_status(&w.datasets, "points", "the versions restored", |s| {
        s["versions"].as_array().is_some_and(|v| v.len() == 2)
    })
    .await;
    let ids: Vec<&str> = s["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert_eq!(ids, [v2.as_str(), w.v1.as_str()], "{s}");
    assert_eq!(s["latest"]["id"], v2.as_str());
    let event = wait_event(&w.client, ns, "VersionsRestored", "2 earlier version(s)")
        .await
        .unwrap();
    assert!(event.note.unwrap_or_default().contains(&v2));

    // A deployment of the model restores its versions from the records, without training.
    apply(ns, DEPLOYMENT);
    wait_for(TIMEOUT, "points-1 and points-2 restored", || async {
        Ok(w.versions.get_opt("points-1").await?.is_some()
            && w.versions.get_opt("points-2").await?.is_some())
    })
    .await
    .unwrap();
    for (n, was) in [1, 2].into_iter().zip(&before) {
        let mv = w.versions.get(&format!("points-{n}")).await.unwrap().data;
        assert_eq!(&kept(&mv), was, "points-{n} restored as it was");
    }
    // Restored verdicts are not judged again: the Blessed condition is the recorded one.
    let mv = w.versions.get("points-2").await.unwrap().data;
    assert!(
        mv["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Blessed" && c["reason"] != "WaitingForBaseline"),
        "{mv}"
    );

    // The TrainingRun applied again trains (a new object, so a new run) and registers the
    // model's next number.
    apply(ns, POINTS_TRAINING_RUN);
    wait_for(TIMEOUT, "points-3 registered", || async {
        Ok(w.versions.get_opt("points-3").await?.is_some())
    })
    .await
    .unwrap();
    let names: Vec<String> = w
        .versions
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|mv| mv.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let third = w.versions.get("points-3").await.unwrap().data;
    assert_ne!(
        third["spec"]["lineage"]["runId"], before[1].1["lineage"]["runId"],
        "a new run"
    );
    assert_eq!(
        third["spec"]["lineage"]["dataset"]["version"],
        v2.as_str(),
        "on the restored latest version"
    );
}
