//! Datasets on the local control plane over the real S3 server (SeaweedFS, e2e/objectstore):
//! the operator checks the source with Jobs running `ciclo dataset snapshot` on the process
//! node, and records content-addressed versions, accepted or rejected, in the status.

use ciclo_e2e::resources::{
    STORE_KEYS, TIMEOUT, apply, ciclo, condition, request_reconcile, restricted_namespace,
    s3_dataset, wait_status,
};
use ciclo_e2e::s3::{artifact, endpoint, new_bucket, put};
use ciclo_e2e::{TestNamespace, kubectl, wait_event, wait_for};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use std::time::Duration;

fn datasets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    ciclo(client, ns, "Dataset")
}

/// Asks for a check now, as a CI job or a bucket notification would.
fn request_check(ns: &str, name: &str, at: &str) {
    request_reconcile(ns, "dataset", name, at);
}

fn dataset_yaml(bucket: &str, endpoint: &str) -> String {
    s3_dataset(
        "flowers",
        bucket,
        endpoint,
        "**/*.csv",
        r#"    minRows: 3
    columns:
    - {name: id, type: integer, nullable: false}
    - {name: petal_length, type: float, min: 0, max: 100}
    - {name: species, type: string, allowedValues: [setosa, virginica]}
"#,
    )
}

const BATCH_1: &str = "id,petal_length,species\n1,1.4,setosa\n2,1.3,setosa\n3,5.1,virginica\n";
const BATCH_2: &str = "id,petal_length,species\n4,1.5,setosa\n5,5.9,virginica\n";
const BAD_TYPE: &str = "id,petal_length,species\nx7,1.5,setosa\nx8,5.9,virginica\n";

/// A restricted namespace, a bucket holding `objects`, the credentials Secret, and the
/// Dataset `flowers` over that bucket.
async fn start(
    test: &str,
    objects: &[(&str, &str)],
) -> (kube::Client, TestNamespace, String, Api<DynamicObject>) {
    let (client, ns) = restricted_namespace(test).await;
    let bucket = new_bucket(&ns.name).await;
    for (key, body) in objects {
        put(&bucket, key, body.to_string()).await;
    }
    apply(&ns.name, STORE_KEYS);
    apply(&ns.name, &dataset_yaml(&bucket, &endpoint()));
    let api = datasets(&client, &ns.name);
    (client, ns, bucket, api)
}

/// The newest version's (id, verdict) and the latest accepted id.
fn versions(s: &Value) -> (Vec<(String, String)>, Option<String>) {
    let list = s["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    (
                        v["id"].as_str().unwrap_or_default().to_string(),
                        v["verdict"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (list, s["latest"]["id"].as_str().map(str::to_string))
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_dataset_over_s3_gets_versions_and_rejects_a_batch_with_a_wrong_type() {
    let (client, ns, bucket, api) = start(
        "dataset-versions",
        &[
            ("data/2026/11/batch-1.csv", BATCH_1),
            ("data/README.txt", "not selected by the include glob"),
        ],
    )
    .await;

    // Version 1.
    let s = wait_status(&api, "flowers", "version 1", |s| {
        s["latest"]["id"].is_string()
    })
    .await;
    let v1 = s["latest"]["id"].as_str().unwrap().to_string();
    assert_eq!(v1.len(), 32, "a content id: {v1}");
    assert_eq!(s["latest"]["rows"], 3);
    assert_eq!(s["latest"]["files"], 1);
    assert_eq!(versions(&s).0, vec![(v1.clone(), "Accepted".to_string())]);
    assert_eq!(condition(&s, "Ready").unwrap()["status"], "True");
    assert_eq!(condition(&s, "Validated").unwrap()["status"], "True");
    wait_event(
        &client,
        &ns.name,
        "NewVersion",
        &format!("version {v1} accepted"),
    )
    .await
    .unwrap();
    // Its manifest, profile and report are in the artifact store.
    let dir = format!("{}/datasets/flowers/{v1}", ns.name);
    let manifest = artifact(&format!("{dir}/manifest.json"))
        .await
        .expect("manifest.json");
    assert!(
        manifest.contains("2026/11/batch-1.csv") && !manifest.contains("README"),
        "{manifest}"
    );
    let profile: Value = serde_json::from_str(
        &artifact(&format!("{dir}/profile.json"))
            .await
            .expect("profile.json"),
    )
    .unwrap();
    let petal = profile["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "petal_length")
        .expect("petal_length profiled")
        .clone();
    assert_eq!(
        (petal["min"].as_f64(), petal["max"].as_f64()),
        (Some(1.3), Some(5.1)),
        "{petal}"
    );
    let report = artifact(&format!("{dir}/report.json"))
        .await
        .expect("report.json");
    assert!(report.contains("\"Accepted\""), "{report}");

    // A new file: version 2, a new id.
    put(&bucket, "data/2026/11/batch-2.csv", BATCH_2).await;
    request_check(&ns.name, "flowers", "2026-11-26T10:00:00Z");
    let s = wait_status(&api, "flowers", "version 2", |s| {
        s["latest"]["id"].as_str().is_some_and(|id| id != v1)
    })
    .await;
    let v2 = s["latest"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        (s["latest"]["rows"].as_i64(), s["latest"]["files"].as_i64()),
        (Some(5), Some(2))
    );
    assert_eq!(versions(&s).0.len(), 2);

    // Checking unchanged data again: Unchanged, and no new version.
    request_check(&ns.name, "flowers", "2026-11-26T11:00:00Z");
    let s = wait_status(&api, "flowers", "the unchanged check", |s| {
        s["lastCheck"]["requestedAt"] == "2026-11-26T11:00:00Z"
    })
    .await;
    assert_eq!(s["lastCheck"]["outcome"], "Unchanged");
    assert_eq!(
        versions(&s),
        (
            vec![
                (v2.clone(), "Accepted".into()),
                (v1.clone(), "Accepted".into())
            ],
            Some(v2.clone())
        )
    );
    wait_event(
        &client,
        &ns.name,
        "Unchanged",
        &format!("no new data: the source still holds version {v2}"),
    )
    .await
    .unwrap();

    // A batch whose id column is text: rejected, naming the column; latest stays on v2.
    put(&bucket, "data/2026/11/batch-3.csv", BAD_TYPE).await;
    request_check(&ns.name, "flowers", "2026-11-26T12:00:00Z");
    let s = wait_status(&api, "flowers", "the rejected version", |s| {
        s["versions"][0]["verdict"] == "Rejected"
    })
    .await;
    let reasons = s["versions"][0]["reasons"].to_string();
    assert!(
        reasons.contains("\\\"id\\\""),
        "the column is named: {reasons}"
    );
    assert_eq!(
        s["latest"]["id"],
        v2.as_str(),
        "latest still points at version 2"
    );
    assert_eq!(condition(&s, "Validated").unwrap()["status"], "False");
    assert_eq!(
        condition(&s, "Ready").unwrap()["status"],
        "True",
        "version 2 is still usable"
    );
    let rejected = wait_event(&client, &ns.name, "VersionRejected", "version ")
        .await
        .unwrap();
    assert!(rejected.note.unwrap_or_default().contains("\"id\""));

    // `kubectl get ds.ciclo.dev` (plain `ds` is DaemonSets to kubectl) shows the latest
    // version, its rows and the newest verdict.
    let (ok, out, err) = kubectl(&["get", "ds.ciclo.dev", "-n", &ns.name], None);
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or_default();
    for column in ["LATEST", "ROWS", "VERDICT", "READY"] {
        assert!(header.contains(column), "{out}");
    }
    let row = out.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains(&v2) && row.contains(" 5 ") && row.contains("Rejected"),
        "{out}"
    );

    // Every check Job was deleted once recorded: at most one ever ran at a time, and none
    // is left behind.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    wait_for(Duration::from_secs(30), "check Jobs cleaned up", || async {
        Ok(jobs.list(&ListParams::default()).await?.items.is_empty())
    })
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn an_unreachable_endpoint_sets_source_unavailable_and_keeps_the_versions() {
    let (_client, ns, bucket, api) =
        start("dataset-unreachable", &[("data/batch-1.csv", BATCH_1)]).await;
    let s = wait_status(&api, "flowers", "version 1", |s| {
        s["latest"]["id"].is_string()
    })
    .await;
    let v1 = s["latest"]["id"].clone();

    // Nothing listens on port 9 of loopback: the endpoint is unreachable.
    apply(&ns.name, &dataset_yaml(&bucket, "http://127.0.0.1:9"));
    let s = wait_status(&api, "flowers", "SourceUnavailable", |s| {
        condition(s, "SourceUnavailable").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let c = condition(&s, "SourceUnavailable").unwrap();
    assert!(
        c["message"].as_str().unwrap().contains("127.0.0.1:9"),
        "{c}"
    );
    assert_eq!(s["latest"]["id"], v1, "the accepted version is kept");
    assert_eq!(s["versions"].as_array().unwrap().len(), 1);
    let ready = condition(&s, "Ready").unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("SourceUnavailable"))
    );

    // Reachable again: the check succeeds, the condition clears, still one version.
    apply(&ns.name, &dataset_yaml(&bucket, &endpoint()));
    let s = wait_status(&api, "flowers", "the source readable again", |s| {
        condition(s, "SourceUnavailable").is_some_and(|c| c["status"] == "False")
            && condition(s, "Ready").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(s["latest"]["id"], v1);
    assert_eq!(s["lastCheck"]["outcome"], "Unchanged", "{s}");
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_leader_killed_mid_check_loses_nothing_and_duplicates_nothing() {
    let (client, ns, _bucket, api) = start("dataset-crash", &[("data/batch-1.csv", BATCH_1)]).await;
    // The moment the check Job exists, crash the leader that made it.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let started = loop {
        let first = jobs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .next();
        if let Some(name) = first.and_then(|j| j.metadata.name) {
            break name;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no check Job started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ciclo_e2e::operator::kill_leader(&client).await;

    // The next leader finds that Job (same deterministic name), records its result once.
    let s = wait_status(&api, "flowers", "version 1 after the crash", |s| {
        s["latest"]["id"].is_string()
    })
    .await;
    assert_eq!(
        s["lastCheck"]["job"],
        started.as_str(),
        "no second check was started"
    );
    assert_eq!(s["versions"].as_array().unwrap().len(), 1);
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &ns.name);
    let new_versions: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("NewVersion"))
        .collect();
    assert_eq!(new_versions.len(), 1, "{new_versions:?}");
    assert!(
        new_versions[0].series.is_none(),
        "announced once: {new_versions:?}"
    );
}
