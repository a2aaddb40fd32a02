//! ciclo's resources as the tests see them: dynamic objects (so a test reads exactly what a
//! user's `kubectl get -o json` shows), applied with `kubectl`, waited on by their status.

use crate::{TestNamespace, client, kubectl, wait_for};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;
use std::time::Duration;

/// How long a status wait lasts: a check or a run is a Job on the process node (start,
/// read, compute, write, record).
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The API of ciclo kind `kind` (`Dataset`, `TrainingRun`, …) in `ns`.
pub fn ciclo(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("ciclo.dev", "v1alpha1", kind);
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// `kubectl apply` of `yaml` in `ns`.
pub fn apply(ns: &str, yaml: &str) {
    let (ok, _, err) = kubectl(&["apply", "-n", ns, "-f", "-"], Some(yaml));
    assert!(ok, "kubectl apply failed: {err}");
}

/// The status of `name` (null when it has none).
pub async fn status(api: &Api<DynamicObject>, name: &str) -> Value {
    api.get(name)
        .await
        .unwrap()
        .data
        .get("status")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until the status satisfies `pred`, and returns it.
pub async fn wait_status(
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

/// The condition `type_` of a status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Sets `ciclo.dev/reconcile-requested-at` on `kind/name`, as a CI job or a bucket
/// notification would to ask for a check or a run now.
pub fn request_reconcile(ns: &str, kind: &str, name: &str, at: &str) {
    let annotation = format!("ciclo.dev/reconcile-requested-at={at}");
    let (ok, _, err) = kubectl(
        &["annotate", "-n", ns, "--overwrite", kind, name, &annotation],
        None,
    );
    assert!(ok, "annotate: {err}");
}

/// A fresh namespace where the API server admits only restricted Pods, so any Pod ciclo
/// makes that is not restricted could not run.
pub async fn restricted_namespace(test: &str) -> (kube::Client, TestNamespace) {
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
    (client, ns)
}

/// The Secret holding the S3 server's keys (any keys: it accepts unsigned requests, but the
/// Dataset's credentials must still reach the check Job by its Secret).
pub const STORE_KEYS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: store-keys}
stringData: {AWS_ACCESS_KEY_ID: ciclo, AWS_SECRET_ACCESS_KEY: ciclo-secret}
"#;

/// A Dataset `name` over the `data/` prefix of `bucket` on the S3 server at `endpoint`, with
/// the keys of [`STORE_KEYS`], checked hourly (tests ask for checks), selecting `include`,
/// and with `schema` (YAML of `spec.schema`, indented to sit under it).
pub fn s3_dataset(name: &str, bucket: &str, endpoint: &str, include: &str, schema: &str) -> String {
    format!(
        r#"
apiVersion: ciclo.dev/v1alpha1
kind: Dataset
metadata: {{name: {name}}}
spec:
  source:
    uri: s3://{bucket}/data/
    endpoint: {endpoint}
    region: us-east-1
    forcePathStyle: true
    include: ["{include}"]
    credentialsSecretRef: {{name: store-keys}}
  interval: 1h
  schema:
{schema}"#
    )
}

/// A trainer that reports a model file it never wrote: its version is blessed, and its
/// serving pods never become ready.
pub const BROKEN_TRAINING_RUN: &str = r#"apiVersion: ciclo.dev/v1alpha1
kind: TrainingRun
metadata: {name: points}
spec:
  dataset: {name: points, track: Latest}
  model: {name: points}
  image: localhost/ciclo-e2e/python:3.11
  command:
  - /usr/bin/python3
  - -c
  - |
    import json, os
    summary = {"outcome": "Succeeded", "metrics": {"accuracy": 0.99},
               "model": os.environ["CICLO_OUTPUT_URI"] + "/missing-model.json",
               "digest": "blake3:" + "0" * 64}
    json.dump(summary, open("/dev/termination-log", "w"))
  metrics: [{name: accuracy, direction: Maximize}]
  gates: [{metric: accuracy, threshold: 0.6}]
"#;
