//! Listing the selected kinds once, for a plain `ciclo get` and for the first table of a
//! watch (so a cluster that cannot be reached fails at once, with a clear message).

use super::summary::{Summarize, Summary, sort};
use super::{Kind, Scope, View};
use anyhow::Context as _;
use ciclo_api::{Dataset, ModelDeployment, ModelVersion, TrainingRun};
use kube::api::{Api, ListParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// The summaries of every object of the view's kinds in its scope, sorted.
pub async fn list(client: &Client, view: &View) -> anyhow::Result<Vec<Summary>> {
    let mut out = Vec::new();
    for &kind in &view.kinds {
        let scope = &view.scope;
        out.extend(match kind {
            Kind::Dataset => list_kind::<Dataset>(client, scope, kind).await?,
            Kind::TrainingRun => list_kind::<TrainingRun>(client, scope, kind).await?,
            Kind::ModelVersion => list_kind::<ModelVersion>(client, scope, kind).await?,
            Kind::ModelDeployment => list_kind::<ModelDeployment>(client, scope, kind).await?,
        });
    }
    sort(&mut out);
    Ok(out)
}

async fn list_kind<K>(client: &Client, scope: &Scope, kind: Kind) -> anyhow::Result<Vec<Summary>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Summarize
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let objects = api::<K>(client, scope)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing {} {}", kind.words(), scope.words()))?;
    Ok(objects.items.iter().map(Summarize::summarize).collect())
}

/// A ciclo kind as the watches of `ciclo get --watch` and `ciclo ui` keep it in a store.
pub trait Watchable:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watchable for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The API of kind `K` in the scope: one namespace, or all of them.
pub fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    }
}

/// The reads against a fake API server (kube's real client, paths and query strings), and
/// against a port nothing listens on.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::get::Output;
    use crate::get::fixtures;
    use std::sync::{Arc, Mutex};

    /// A client whose API server answers lists of datasets and model deployments from the
    /// fixtures, and 404 (as for a CRD that is not installed) for anything else.
    fn fake(requests: Arc<Mutex<Vec<String>>>) -> Client {
        crate::fake_api::client("ml", move |uri| {
            requests.lock().unwrap().push(uri.path().to_string());
            let path = uri.path();
            let items = if path.ends_with("/datasets") {
                Some(serde_json::to_value(fixtures::datasets()).unwrap())
            } else if path.ends_with("/modeldeployments") {
                Some(serde_json::to_value(fixtures::model_deployments()).unwrap())
            } else {
                None
            };
            match items {
                Some(items) => (
                    200,
                    serde_json::json!({"apiVersion": "ciclo.dev/v1alpha1", "kind": "List", "metadata": {"resourceVersion": "7"}, "items": items}),
                ),
                None => (
                    404,
                    serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}),
                ),
            }
        })
    }

    fn view(kinds: &[Kind], scope: Scope) -> View {
        View {
            kinds: kinds.to_vec(),
            scope,
            output: Output::Table,
        }
    }

    #[tokio::test]
    async fn get_lists_each_kind_in_the_namespace_or_in_all() {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let client = fake(requests.clone());
        let kinds = [Kind::Dataset, Kind::ModelDeployment];
        let got = list(&client, &view(&kinds, Scope::Namespace("ml".into())))
            .await
            .unwrap();
        let names: Vec<(Kind, &str)> = got
            .iter()
            .map(|s| (s.details.kind(), s.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (Kind::Dataset, "churn"),
                (Kind::Dataset, "edited"),
                (Kind::Dataset, "iris"),
                (Kind::ModelDeployment, "churn"),
                (Kind::ModelDeployment, "iris"),
            ]
        );
        list(&client, &view(&[Kind::Dataset], Scope::All))
            .await
            .unwrap();
        assert_eq!(
            *requests.lock().unwrap(),
            [
                "/apis/ciclo.dev/v1alpha1/namespaces/ml/datasets",
                "/apis/ciclo.dev/v1alpha1/namespaces/ml/modeldeployments",
                "/apis/ciclo.dev/v1alpha1/datasets",
            ]
        );
    }

    #[tokio::test]
    async fn a_kind_the_cluster_does_not_know_points_at_installing_the_crds() {
        let client = fake(Arc::default());
        let err = list(
            &client,
            &view(&[Kind::TrainingRun], Scope::Namespace("ml".into())),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("listing training runs in namespace ml"),
            "{err}"
        );
        assert!(crate::get::hint(&err).unwrap().contains("ciclo crds"));
    }

    #[tokio::test]
    async fn a_cluster_that_does_not_answer_points_at_kubeconfig() {
        // Two rustls providers are compiled in: choose one, as main does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let err = list(
            &client,
            &view(&[Kind::Dataset], Scope::Namespace("ml".into())),
        )
        .await
        .unwrap_err();
        let line = crate::get::one_line(&err);
        assert!(
            line.starts_with("listing datasets in namespace ml: "),
            "{line}"
        );
        assert!(crate::get::hint(&err).unwrap().contains("KUBECONFIG"));
    }
}
