//! Datasets on the local control plane over the real S3 server (SeaweedFS, e2e/objectstore):
//! the operator checks the source with Jobs running `ciclo dataset snapshot` on the process
//! node, and records content-addressed versions, accepted or rejected, in the status.

use ciclo_e2e::{TestNamespace, client, kubectl, wait_event, wait_for};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use std::time::Duration;

/// A check is a Job on the process node: start, list, hash, profile, write, record.
const TIMEOUT: Duration = Duration::from_secs(120);

fn s3() -> String {
    let port = std::env::var("CICLO_S3_PORT").unwrap_or_else(|_| "18333".into());
    format!("http://127.0.0.1:{port}")
}

fn datasets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("ciclo.dev", "v1alpha1", "Dataset");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn apply(ns: &str, yaml: &str) {
    let (ok, _, err) = kubectl(&["apply", "-n", ns, "-f", "-"], Some(yaml));
    assert!(ok, "kubectl apply failed: {err}");
}

/// A bucket of its own for one test (the server accepts unsigned requests).
async fn new_bucket(ns: &str) -> String {
    let bucket = ns.to_string();
    let resp = reqwest::Client::new()
        .put(format!("{}/{bucket}", s3()))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "creating bucket {bucket}: {resp:?}"
    );
    bucket
}

async fn put(bucket: &str, key: &str, body: &str) {
    let resp = reqwest::Client::new()
        .put(format!("{}/{bucket}/{key}", s3()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "PUT {key}: {status} {text}");
}

/// An object of the artifact store, if it is there.
async fn artifact(path: &str) -> Option<String> {
    let resp = reqwest::get(format!("{}/ciclo-artifacts/{path}", s3()))
        .await
        .unwrap();
    resp.status()
        .is_success()
        .then_some(resp.text().await.unwrap())
}

async fn status(api: &Api<DynamicObject>, name: &str) -> Value {
    api.get(name)
        .await
        .unwrap()
        .data
        .get("status")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the status satisfies `pred`, and returns it.
async fn wait_status(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(TIMEOUT, what, || async {
        let s = status(api, name).await;
        if pred(&s) {
            Ok(true)
        } else {
            anyhow::bail!("status now: {s}")
        }
    })
    .await
    .unwrap();
    status(api, name).await
}

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Asks for a check now, as a CI job or a bucket notification would.
fn request_check(ns: &str, name: &str, at: &str) {
    let annotation = format!("ciclo.dev/reconcile-requested-at={at}");
    let (ok, _, err) = kubectl(
        &[
            "annotate",
            "-n",
            ns,
            "--overwrite",
            "dataset",
            name,
            &annotation,
        ],
        None,
    );
    assert!(ok, "annotate: {err}");
}

fn dataset_yaml(bucket: &str, endpoint: &str) -> String {
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {{name: flowers}}
spec:
  source:
    uri: s3://{bucket}/data/
    endpoint: {endpoint}
    region: us-east-1
    forcePathStyle: true
    include: ["**/*.csv"]
    credentialsSecretRef: {{name: store-keys}}
  interval: 1h
  schema:
    minRows: 3
    columns:
    - {{name: id, type: integer, nullable: false}}
    - {{name: petal_length, type: float, min: 0, max: 100}}
    - {{name: species, type: string, allowedValues: [setosa, virginica]}}
"#
    )
}

const KEYS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: store-keys}
stringData: {AWS_ACCESS_KEY_ID: ciclo, AWS_SECRET_ACCESS_KEY: ciclo-secret}
"#;

const BATCH_1: &str = "id,petal_length,species\n1,1.4,setosa\n2,1.3,setosa\n3,5.1,virginica\n";
const BATCH_2: &str = "id,petal_length,species\n4,1.5,setosa\n5,5.9,virginica\n";
const BAD_TYPE: &str = "id,petal_length,species\nx7,1.5,setosa\nx8,5.9,virginica\n";

/// A namespace where the API server admits only restricted Pods (so a check Pod that is not
/// restricted could not run), a bucket holding `objects`, the credentials Secret, and the
/// Dataset `flowers` over that bucket.
async fn start(
    test: &str,
    objects: &[(&str, &str)],
) -> (kube::Client, TestNamespace, String, Api<DynamicObject>) {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, test).await.unwrap();
    let (ok, _, err) = kubectl(
        &[
            "label",
            "namespace",
            &ns.name,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
        None,
    );
    assert!(ok, "{err}");
    let bucket = new_bucket(&ns.name).await;
    for (key, body) in objects {
        put(&bucket, key, body).await;
    }
    apply(&ns.name, KEYS);
    apply(&ns.name, &dataset_yaml(&bucket, &s3()));
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
    apply(&ns.name, &dataset_yaml(&bucket, &s3()));
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

/// A training image of the user's (here a shell script on the process node) that follows the
/// workload contract: it reports its result as JSON in its termination message.
const TRAIN_OK: &str = r#"printf '{"outcome":"Succeeded","metrics":{"accuracy":0.93},"model":"%s/model.json","digest":"blake3:00ab"}' "$CICLO_OUTPUT_URI" > /dev/termination-log; echo "trained on $CICLO_DATASET_VERSION""#;

fn training_run(name: &str, script: &str, accuracy_gate: f64) -> String {
    let script = serde_json::to_string(script).unwrap();
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {{name: {name}}}
spec:
  dataset: {{name: flowers}}
  model: {{name: {name}}}
  image: python:3.12
  command: [sh, -c, {script}]
  params: {{lr: "0.1"}}
  metrics: [{{name: accuracy, direction: Maximize}}]
  gates: [{{metric: accuracy, threshold: {accuracy_gate}}}]
"#
    )
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn a_training_run_registers_its_model_version_and_a_failing_image_is_reported() {
    let (client, ns, bucket, api) = start("training-runs", &[("data/batch-1.csv", BATCH_1)]).await;
    let s = wait_status(&api, "flowers", "version 1", |s| {
        s["latest"]["id"].is_string()
    })
    .await;
    let v1 = s["latest"]["id"].as_str().unwrap().to_string();
    apply(&ns.name, &training_run("species", TRAIN_OK, 0.9));
    apply(
        &ns.name,
        &training_run("broken", "echo boom >&2; exit 3", 0.9),
    );
    // The same result held to a bar it does not reach.
    apply(&ns.name, &training_run("strict", TRAIN_OK, 0.99));

    let gvk = |kind| GroupVersionKind::gvk("ciclo.dev", "v1alpha1", kind);
    let runs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::from_gvk(&gvk("TrainingRun")),
    );
    let tr = wait_status(&runs, "species", "a registered model version", |s| {
        s["lastModelVersion"] == 1
    })
    .await;
    let run = &tr["runs"][0];
    assert_eq!(
        (run["phase"].as_str(), run["datasetVersion"].as_str()),
        (Some("Succeeded"), Some(v1.as_str()))
    );
    assert_eq!(run["metrics"]["accuracy"], 0.93);
    assert_eq!(condition(&tr, "Ready").unwrap()["reason"], "RunSucceeded");
    let versions: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &ApiResource::from_gvk(&gvk("ModelVersion")),
    );
    let mv = versions.get("species-1").await.unwrap().data;
    let lineage = &mv["spec"]["lineage"];
    assert_eq!(lineage["dataset"]["version"], v1.as_str());
    assert_eq!(lineage["runId"], run["id"]);
    assert_eq!(lineage["params"]["lr"], "0.1");
    assert_eq!(lineage["metrics"]["accuracy"], 0.93);
    assert!(
        mv["spec"]["artifact"]["uri"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "/{}/models/species/runs/{}/model.json",
                ns.name,
                run["id"].as_str().unwrap()
            )),
        "{mv}"
    );
    let blessed = |name: &'static str, want: bool| {
        let versions = versions.clone();
        async move {
            wait_for(TIMEOUT, &format!("{name} judged"), || async {
                // Registered once its run has finished.
                let Some(mv) = versions.get_opt(name).await? else {
                    return Ok(false);
                };
                let s = &mv.data["status"];
                Ok(s["gates"].as_array().is_some_and(|g| !g.is_empty()) && s["blessed"] == want)
            })
            .await
        }
    };
    blessed("species-1", true).await.unwrap();
    blessed("strict-1", false).await.unwrap();
    let strict = status(&versions, "strict-1").await;
    assert_eq!(strict["gates"][0]["passed"], false, "{strict}");
    assert_eq!(
        condition(&strict, "Blessed").unwrap()["reason"],
        "GateFailed"
    );
    wait_event(&client, &ns.name, "RunSucceeded", "run ")
        .await
        .unwrap();

    // New accepted data: a second run by itself, registered as version 2 on the new version.
    put(&bucket, "data/batch-2.csv", BATCH_2).await;
    request_check(&ns.name, "flowers", "2026-11-26T10:00:00Z");
    let tr = wait_status(&runs, "species", "model version 2", |s| {
        s["lastModelVersion"] == 2
    })
    .await;
    let v2 = tr["runs"][0]["datasetVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(v2, v1);
    let mv2 = versions.get("species-2").await.unwrap().data;
    assert_eq!(mv2["spec"]["lineage"]["dataset"]["version"], v2.as_str());

    // A rejected dataset version triggers nothing.
    put(&bucket, "data/batch-3.csv", BAD_TYPE).await;
    request_check(&ns.name, "flowers", "2026-11-26T11:00:00Z");
    wait_status(&api, "flowers", "the rejected version", |s| {
        s["versions"][0]["verdict"] == "Rejected"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tr = status(&runs, "species").await;
    assert_eq!(tr["lastModelVersion"], 2, "{tr}");
    assert!(
        tr["currentRun"].is_null(),
        "no run on a rejected version: {tr}"
    );
    assert_eq!(tr["runs"].as_array().unwrap().len(), 2);

    // The failing image: the run is Failed with its exit code and message, and stays so.
    let tr = wait_status(&runs, "broken", "the failed run", |s| {
        s["runs"][0]["phase"] == "Failed"
    })
    .await;
    let failure = tr["runs"][0]["failure"].as_str().unwrap();
    assert!(failure.contains("exit code 3"), "{failure}");
    assert_eq!(condition(&tr, "Stalled").unwrap()["reason"], "RunFailed");
    assert!(versions.get_opt("broken-1").await.unwrap().is_none());
}
