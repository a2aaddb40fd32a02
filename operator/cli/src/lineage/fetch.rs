//! Reading the chain from the cluster: the ModelVersion a [`Target`] names, then the
//! TrainingRun and Dataset its lineage names.

use super::Target;
use super::chain::{Lineage, chain};
use anyhow::{Context as _, anyhow, bail};
use ciclo_api::{Dataset, ModelVersion, TrainingRun, labels};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt as _};

/// Reads the ModelVersion (it must exist), then the TrainingRun and Dataset its lineage
/// names (either may be gone), and links them.
pub async fn fetch(client: Client, namespace: &str, target: &Target) -> anyhow::Result<Lineage> {
    let mvs = Api::namespaced(client.clone(), namespace);
    let mv = find_model_version(&mvs, namespace, target).await?;
    let lineage = &mv.spec.lineage;
    let tr = Api::<TrainingRun>::namespaced(client.clone(), namespace)
        .get_opt(&lineage.training_run)
        .await
        .with_context(|| {
            format!(
                "reading TrainingRun {} in namespace {namespace}",
                lineage.training_run
            )
        })?;
    let ds = Api::<Dataset>::namespaced(client, namespace)
        .get_opt(&lineage.dataset.name)
        .await
        .with_context(|| {
            format!(
                "reading Dataset {} in namespace {namespace}",
                lineage.dataset.name
            )
        })?;
    Ok(chain(&mv, tr.as_ref(), ds.as_ref()))
}

/// The ModelVersion `target` names; an error when there is none, or when `model:version`
/// matches more than one (the labels are the operator's, but anyone can copy them).
async fn find_model_version(
    mvs: &Api<ModelVersion>,
    namespace: &str,
    target: &Target,
) -> anyhow::Result<ModelVersion> {
    let mv = match target {
        Target::Name(name) => mvs
            .get_opt(name)
            .await
            .with_context(|| format!("reading ModelVersion {name} in namespace {namespace}"))?
            .ok_or_else(|| anyhow!("ModelVersion {name} not found in namespace {namespace}"))?,
        Target::Number { model, version } => {
            let selector = format!("{}={model},{}={version}", labels::MODEL, labels::VERSION);
            let mut found = mvs
                .list(&ListParams::default().labels(&selector))
                .await
                .with_context(|| format!("listing ModelVersions in namespace {namespace}"))?
                .items;
            match found.len() {
                0 => bail!(
                    "no ModelVersion of model {model} version {version} in namespace {namespace} (none labelled {selector})"
                ),
                1 => found.remove(0),
                _ => bail!(
                    "model {model} version {version} is ambiguous in namespace {namespace}: {} are labelled {selector}; name one",
                    found
                        .iter()
                        .map(|mv| mv.name_any())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    Ok(mv)
}

/// The reads against a fake API server: kube's real client, paths and query strings,
/// answered from the given objects (404 for any other name).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::chain::Found;
    use crate::lineage::fixtures::{model_version, recorded_dataset, recorded_run};
    use serde::Serialize;
    use std::sync::{Arc, Mutex};

    struct Fake {
        client: Client,
        requests: Arc<Mutex<Vec<String>>>,
    }

    fn fake(objects: Vec<serde_json::Value>) -> Fake {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let client = crate::fake_api::client("default", move |uri| {
            seen.lock().unwrap().push(uri.to_string());
            answer(&objects, uri)
        });
        Fake { client, requests }
    }

    fn answer(objects: &[serde_json::Value], uri: &http::Uri) -> (u16, serde_json::Value) {
        let parts: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
        let [
            "apis",
            "ciclo.dev",
            "v1alpha1",
            "namespaces",
            ns,
            plural,
            rest @ ..,
        ] = &parts[..]
        else {
            return (404, not_found("path"));
        };
        let of_kind = objects.iter().filter(|o| {
            o["metadata"]["namespace"] == *ns
                && format!("{}s", o["kind"].as_str().unwrap().to_lowercase()) == *plural
        });
        match rest {
            [name] => match of_kind.clone().find(|o| o["metadata"]["name"] == *name) {
                Some(o) => (200, o.clone()),
                None => (404, not_found(name)),
            },
            [] => {
                let selector = uri
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("labelSelector="))
                    .map(percent_decode)
                    .unwrap_or_default();
                let items: Vec<_> = of_kind
                    .filter(|o| {
                        selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            o["metadata"]["labels"][k] == v
                        })
                    })
                    .cloned()
                    .collect();
                let list = serde_json::json!({
                    "apiVersion": "ciclo.dev/v1alpha1", "kind": "List",
                    "metadata": {"resourceVersion": "1"}, "items": items,
                });
                (200, list)
            }
            _ => (404, not_found("path")),
        }
    }

    fn not_found(name: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure",
            "message": format!("{name} not found"), "reason": "NotFound", "code": 404,
        })
    }

    fn percent_decode(s: &str) -> String {
        let mut out = Vec::new();
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'%' => {
                    let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                    out.push(u8::from_str_radix(&hex, 16).unwrap());
                }
                b'+' => out.push(b' '),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn json<T: Serialize>(o: &T) -> serde_json::Value {
        serde_json::to_value(o).unwrap()
    }

    fn other_version() -> ModelVersion {
        let mut mv = model_version();
        mv.metadata.name = Some("iris-1".into());
        mv.labels_mut().insert(labels::VERSION.into(), "1".into());
        mv.spec.version = 1;
        mv
    }

    #[tokio::test]
    async fn lineage_reads_the_model_version_run_and_dataset_it_names() {
        let f = fake(vec![
            json(&model_version()),
            json(&recorded_run()),
            json(&recorded_dataset()),
        ]);
        let l = fetch(f.client, "ml", &Target::Name("iris-2".into()))
            .await
            .unwrap();
        assert_eq!(l.run.found, Found::Recorded);
        assert_eq!(l.dataset.found, Found::Recorded);
        assert_eq!(
            *f.requests.lock().unwrap(),
            [
                "/apis/ciclo.dev/v1alpha1/namespaces/ml/modelversions/iris-2",
                "/apis/ciclo.dev/v1alpha1/namespaces/ml/trainingruns/iris-train",
                "/apis/ciclo.dev/v1alpha1/namespaces/ml/datasets/iris",
            ]
        );
    }

    #[tokio::test]
    async fn lineage_resolves_model_colon_version_by_its_labels() {
        let f = fake(vec![json(&other_version()), json(&model_version())]);
        let target = "iris:2".parse().unwrap();
        let l = fetch(f.client, "ml", &target).await.unwrap();
        assert_eq!(l.model.name, "iris-2");
        let target = "iris:1".parse().unwrap();
        let f = fake(vec![json(&other_version()), json(&model_version())]);
        assert_eq!(
            fetch(f.client, "ml", &target).await.unwrap().model.name,
            "iris-1"
        );
    }

    #[tokio::test]
    async fn lineage_without_training_run_and_dataset_is_not_an_error() {
        let f = fake(vec![json(&model_version())]);
        let l = fetch(f.client, "ml", &Target::Name("iris-2".into()))
            .await
            .unwrap();
        assert_eq!(l.run.found, Found::Gone);
        assert_eq!(l.dataset.found, Found::Gone);
    }

    #[tokio::test]
    async fn lineage_of_a_missing_model_version_names_it_and_the_namespace() {
        let f = fake(vec![json(&model_version())]);
        let err = fetch(f.client, "other", &Target::Name("iris-2".into()))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ModelVersion iris-2 not found in namespace other"
        );
        let f = fake(vec![json(&model_version())]);
        let err = fetch(f.client, "ml", &"iris:7".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no ModelVersion of model iris version 7 in namespace ml (none labelled ciclo.dev/model=iris,ciclo.dev/version=7)"
        );
    }

    #[tokio::test]
    async fn lineage_refuses_a_model_version_number_two_objects_claim() {
        let mut copy = other_version();
        copy.labels_mut().insert(labels::VERSION.into(), "2".into());
        let f = fake(vec![json(&copy), json(&model_version())]);
        let err = fetch(f.client, "ml", &"iris:2".parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("model iris version 2 is ambiguous in namespace ml: iris-1, iris-2"),
            "{err}"
        );
    }
}
