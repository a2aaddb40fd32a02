//! `ciclo operator` on the local control plane, installed from manifests/base and running
//! with its own ServiceAccount (not as admin): conditions with observedGeneration, the
//! resolve steps of each controller, Events, and leader election across two replicas.

use ciclo_e2e::operator::{holder, kill_process_of, replicas};
use ciclo_e2e::{TestNamespace, client, kubectl, repo_root, wait_event, wait_for};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(90);

fn ciclo_api(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("ciclo.dev", "v1alpha1", kind));
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn apply(ns: &str, yaml: &str) {
    let (ok, _, err) = kubectl(&["apply", "-n", ns, "-f", "-"], Some(yaml));
    assert!(ok, "kubectl apply failed: {err}");
}

/// The condition `type_` of the object, as (status, reason, message), once the operator has
/// observed the object's current generation.
async fn condition(
    api: &Api<DynamicObject>,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let obj = api.get_opt(name).await.ok()??;
    let generation = obj.metadata.generation?;
    let conditions = obj
        .data
        .get("status")?
        .get("conditions")?
        .as_array()?
        .clone();
    let c = conditions.iter().find(|c| c["type"] == type_)?;
    if c["observedGeneration"].as_i64() != Some(generation) {
        return None;
    }
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

/// Waits for the condition and returns its message.
async fn wait_condition(
    api: &Api<DynamicObject>,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> String {
    wait_for(
        TIMEOUT,
        &format!("{name}: {type_}={status} ({reason})"),
        || async {
            match condition(api, name, type_).await {
                Some((s, r, _)) if s == status && r == reason => Ok(true),
                other => anyhow::bail!("now {other:?}"),
            }
        },
    )
    .await
    .unwrap();
    condition(api, name, type_)
        .await
        .map(|(_, _, m)| m)
        .unwrap_or_default()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(name)).unwrap()
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn valid_examples_get_conditions_from_the_operator() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "conditions").await.unwrap();
    apply(
        &ns.name,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: store-credentials}\nstringData: {AWS_ACCESS_KEY_ID: x, AWS_SECRET_ACCESS_KEY: \"y\"}",
    );
    for name in ["dataset.yaml", "trainingrun.yaml", "modeldeployment.yaml"] {
        apply(&ns.name, &example(name));
    }
    let (ds, tr, md) = (
        ciclo_api(&client, &ns.name, "Dataset"),
        ciclo_api(&client, &ns.name, "TrainingRun"),
        ciclo_api(&client, &ns.name, "ModelDeployment"),
    );
    // The example's store (127.0.0.1:9000) is not running here: the first check cannot
    // read it, and the operator says so while it keeps retrying.
    let m = wait_condition(
        &ds,
        "breast-cancer",
        "SourceUnavailable",
        "True",
        "SourceUnavailable",
    )
    .await;
    assert!(m.contains("127.0.0.1:9000"), "{m}");
    wait_condition(
        &ds,
        "breast-cancer",
        "Reconciling",
        "True",
        "SourceUnavailable",
    )
    .await;
    wait_condition(&ds, "breast-cancer", "Ready", "False", "SourceUnavailable").await;
    // Waiting for data from outside: Ready=False alone (kstatus: Current).
    let m = wait_condition(&tr, "breast-cancer", "Ready", "False", "WaitingForData").await;
    assert!(m.contains("breast-cancer"), "{m}");
    wait_condition(
        &md,
        "breast-cancer",
        "Reconciling",
        "True",
        "WaitingForModelVersion",
    )
    .await;

    // A registered but unblessed version is not served by a LatestBlessed deployment.
    apply(
        &ns.name,
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata: {name: breast-cancer-1}
spec:
  model: breast-cancer
  version: 1
  artifact: {uri: "s3://models/breast-cancer/1/model.json", digest: "blake3:00ff"}
  lineage: {trainingRun: breast-cancer, runId: r1, dataset: {name: breast-cancer, version: abc}, image: ciclo}
"#,
    );
    let mv = ciclo_api(&client, &ns.name, "ModelVersion");
    wait_condition(&mv, "breast-cancer-1", "Ready", "True", "Recorded").await;
    wait_condition(
        &md,
        "breast-cancer",
        "Reconciling",
        "True",
        "WaitingForBlessedVersion",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_training_run_without_its_dataset_is_stalled_until_the_dataset_appears() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "dataset-not-found")
        .await
        .unwrap();
    apply(
        &ns.name,
        "apiVersion: ciclo.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: train}\nspec: {dataset: {name: later}, model: {name: m}, image: trainer}",
    );
    let tr = ciclo_api(&client, &ns.name, "TrainingRun");
    let message = wait_condition(&tr, "train", "Stalled", "True", "DatasetNotFound").await;
    assert!(
        message.starts_with("spec.dataset.name:") && message.contains("\"later\""),
        "{message}"
    );
    wait_event(&client, &ns.name, "DatasetNotFound", "")
        .await
        .unwrap();

    apply(
        &ns.name,
        "apiVersion: ciclo.dev/v1alpha1\nkind: Dataset\nmetadata: {name: later}\nspec: {source: {uri: 's3://b/later'}}",
    );
    // Waiting for data from outside: not in progress (kstatus Current), not failed.
    wait_condition(&tr, "train", "Ready", "False", "WaitingForData").await;
    let obj = tr.get("train").await.unwrap();
    let conditions = obj.data["status"]["conditions"].as_array().unwrap();
    assert!(
        !conditions.iter().any(
            |c| (c["type"] == "Stalled" || c["type"] == "Reconciling") && c["status"] == "True"
        ),
        "{conditions:?}"
    );
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_model_deployment_naming_an_unknown_model_says_so() {
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "unknown-model").await.unwrap();
    apply(
        &ns.name,
        "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: web}\nspec: {model: {name: nosuchmodel}}",
    );
    let md = ciclo_api(&client, &ns.name, "ModelDeployment");
    let message = wait_condition(&md, "web", "Stalled", "True", "ModelNotFound").await;
    assert!(message.contains("\"nosuchmodel\""), "{message}");
    let obj = md.get("web").await.unwrap();
    assert!(
        obj.data["status"]["phase"].is_null(),
        "no rollout without a version: {}",
        obj.data["status"]
    );
}

/// A metric's value summed over its label sets, scraped from the pod directly.
async fn metric(ip: &str, name: &str) -> f64 {
    ciclo_e2e::init_tls();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let body = http
        .get(format!("http://{ip}:8080/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until both operator replicas are ready and one holds the Lease.
async fn two_replicas_and_a_leader(client: &kube::Client) {
    wait_for(
        TIMEOUT,
        "two ready operator replicas and a leader",
        || async { Ok(replicas(client).await.len() == 2 && !holder(client).await.is_empty()) },
    )
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let client = client().await.unwrap();
    two_replicas_and_a_leader(&client).await;
    let pods = replicas(&client).await;
    let lease_holder = holder(&client).await;
    let (leader, standby): (Vec<_>, Vec<_>) = pods
        .iter()
        .partition(|(name, _)| lease_holder.starts_with(&format!("{name}_")));
    assert_eq!(
        (leader.len(), standby.len()),
        (1, 1),
        "holder {lease_holder} among {pods:?}"
    );
    let (leader, standby) = (leader[0].clone(), standby[0].clone());
    assert_eq!(metric(&leader.1, "ciclo_leader").await, 1.0);
    assert_eq!(metric(&standby.1, "ciclo_leader").await, 0.0);
    assert_eq!(
        metric(&standby.1, "ciclo_reconcile_runs_total").await,
        0.0,
        "the standby must not reconcile"
    );

    kill_process_of(&leader.0);
    let killed_at = std::time::Instant::now();
    wait_for(
        Duration::from_secs(40),
        "another replica to take the Lease",
        || async {
            let h = holder(&client).await;
            Ok(!h.is_empty() && h != lease_holder)
        },
    )
    .await
    .unwrap();
    let handover = killed_at.elapsed();
    // The Lease lasts 15 s; a standby polls it, so allow one renewal period on top.
    assert!(
        handover < Duration::from_secs(15 + 5),
        "handover took {handover:?}"
    );

    // The new leader reconciles: a fresh object gets its conditions.
    let ns = TestNamespace::new(&client, "after-handover").await.unwrap();
    apply(
        &ns.name,
        "apiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: web}\nspec: {model: {name: ghost}}",
    );
    wait_condition(
        &ciclo_api(&client, &ns.name, "ModelDeployment"),
        "web",
        "Stalled",
        "True",
        "ModelNotFound",
    )
    .await;
}

#[test]
#[ignore = "needs the local cluster: make e2e"]
fn the_operator_runs_as_its_service_account_not_as_admin() {
    let (ok, out, err) = kubectl(
        &[
            "auth",
            "can-i",
            "list",
            "secrets",
            "--as=system:serviceaccount:ciclo-system:ciclo-operator",
            "-A",
        ],
        None,
    );
    assert!(
        !ok && out.trim() == "no",
        "the operator must not list secrets: {out} {err}"
    );
    let (ok, out, _) = kubectl(
        &[
            "auth",
            "can-i",
            "patch",
            "trainingruns.ciclo.dev",
            "--subresource=status",
            "--as=system:serviceaccount:ciclo-system:ciclo-operator",
            "-A",
        ],
        None,
    );
    assert!(ok && out.trim() == "yes", "{out}");
    let (ok, out, _) = kubectl(
        &[
            "auth",
            "can-i",
            "update",
            "trainingruns.ciclo.dev",
            "--as=system:serviceaccount:ciclo-system:ciclo-operator",
            "-A",
        ],
        None,
    );
    assert!(
        !ok && out.trim() == "no",
        "the operator must never write a user's spec: {out}"
    );
    let (_, out, _) = kubectl(
        &[
            "-n",
            "ciclo-system",
            "get",
            "deployment",
            "ciclo-operator",
            "-o",
            "jsonpath={.spec.template.spec.serviceAccountName}",
        ],
        None,
    );
    assert_eq!(out, "ciclo-operator");
}

/// A model of one version (no gates: blessed once judged) and its ModelDeployment, whose pod
/// asks for a resource no node has: it stays Pending, so nothing serves and only the
/// operator's applies change the Deployment.
const UNSERVED: &str = r#"
apiVersion: ciclo.dev/v1alpha1
kind: ModelVersion
metadata:
  name: web-1
  labels: {ciclo.dev/model: web, ciclo.dev/version: "1"}
  annotations: {ciclo.dev/gates: '{"gates":[],"metrics":[]}'}
spec:
  model: web
  version: 1
  artifact: {uri: "s3://ciclo-artifacts/e2e/web/model.json", digest: "blake3:0000000000000000000000000000000000000000000000000000000000000000", format: ciclo.dev/model/v1}
  lineage: {trainingRun: web, runId: "0123456789", dataset: {name: web, version: web00000000000000000000000000000}, image: ciclo-e2e:none}
---
apiVersion: ciclo.dev/v1alpha1
kind: ModelDeployment
metadata: {name: web}
spec:
  model: {name: web}
  resources: {limits: {ciclo.dev/e2e-no-such-resource: "1"}}
"#;

/// A restarted operator knows nothing of what the last one applied: it takes a child that
/// carries the digest of what it would send as applied (no write), unless another field
/// manager changed the child's spec since. Here the image is changed while no leader runs,
/// and the next leader applies the Deployment again.
#[tokio::test]
#[ignore = "needs the local cluster: make e2e"]
async fn a_deployment_edited_while_no_leader_ran_is_applied_again_by_the_next_one() {
    use k8s_openapi::api::apps::v1::Deployment;
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "md-drift").await.unwrap();
    apply(&ns.name, UNSERVED);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let image = |d: &Deployment| {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap_or_default()
    };
    let digest = |d: &Deployment| {
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("ciclo.dev/applied-digest").cloned())
    };
    wait_for(TIMEOUT, "web-v1, applied with its digest", || async {
        Ok(deployments
            .get_opt("web-v1")
            .await?
            .is_some_and(|d| digest(&d).is_some()))
    })
    .await
    .unwrap();
    let applied = deployments.get("web-v1").await.unwrap();
    two_replicas_and_a_leader(&client).await;

    ciclo_e2e::operator::kill_leader(&client).await;
    // The Lease outlives the leader by up to 15 s: no operator sees this edit happen.
    let (ok, _, err) = kubectl(
        &[
            "patch",
            "deployment",
            "web-v1",
            "-n",
            &ns.name,
            "--type",
            "json",
            "-p",
            r#"[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "localhost/ciclo-e2e/tampered:1"}]"#,
        ],
        None,
    );
    assert!(ok, "kubectl patch: {err}");
    let tampered = deployments.get("web-v1").await.unwrap();
    assert_eq!(image(&tampered), "localhost/ciclo-e2e/tampered:1");
    assert_eq!(
        digest(&tampered),
        digest(&applied),
        "the edit keeps the annotation"
    );

    // The next leader (the standby, or the killed one restarted) applies it again.
    wait_for(TIMEOUT, "the image applied again", || async {
        Ok(image(&deployments.get("web-v1").await?) == image(&applied))
    })
    .await
    .unwrap();
    let restored = deployments.get("web-v1").await.unwrap();
    assert_eq!(digest(&restored), digest(&applied));
    // ciclo's forced apply took the field back from the edit's manager.
    let editors: Vec<_> = restored
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some("kubectl-patch"))
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains("f:image"))
        })
        .collect();
    assert!(editors.is_empty(), "{editors:?}");
}
