//! Where a Dataset's files are read from, for its check Job and for the training Jobs of its
//! versions alike: its `source.uri` with that source's settings, or — for a ModelDeployment's
//! capture — the prefix in ciclo's artifact store where each check writes the joined labelled
//! rows, read with the namespace's own store credentials.

use crate::controllers::artifact_store::ArtifactStore;
use ciclo_api::dataset::Dataset;
use kube::ResourceExt as _;

/// A Dataset's files and how to reach them.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub uri: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    /// The Secret with the credentials, in the Dataset's namespace.
    pub secret: Option<String>,
    /// For a capture: where the ModelDeployment's serving pods write it.
    pub capture: Option<String>,
}

/// Where a ModelDeployment `name` in `namespace` keeps what its serving pods capture.
pub fn capture_uri(store: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}/{namespace}/captures/{name}",
        store.trim_end_matches('/')
    )
}

/// Where this Dataset's versions are kept in the artifact store.
pub fn artifacts_uri(store: &str, ds: &Dataset) -> String {
    dataset_uri(store, &ds.namespace().unwrap_or_default(), &ds.name_any())
}

/// Where the versions of the Dataset `name` in `namespace` are kept: each under `<id>/`.
pub fn dataset_uri(store: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}/{namespace}/datasets/{name}",
        store.trim_end_matches('/')
    )
}

/// The files `ds` is made of.
pub fn of(ds: &Dataset, store: &ArtifactStore) -> DataSource {
    let source = &ds.spec.source;
    match &source.capture {
        Some(capture) => {
            let root = store.uri.as_str();
            DataSource {
                // Beside the versions' folders (32 hex digits each), never one of them.
                uri: format!("{}/captured", artifacts_uri(root, ds)),
                endpoint: store.endpoint.clone(),
                region: store.region.clone(),
                force_path_style: store.force_path_style,
                secret: store.secret.clone(),
                capture: Some(capture_uri(
                    root,
                    &ds.namespace().unwrap_or_default(),
                    &capture.model_deployment,
                )),
            }
        }
        None => DataSource {
            uri: source.uri.clone().unwrap_or_default(),
            endpoint: source.endpoint.clone(),
            region: source.region.clone(),
            force_path_style: source.force_path_style,
            secret: source
                .credentials_secret_ref
                .as_ref()
                .map(|s| s.name.clone()),
            capture: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(source: &str) -> Dataset {
        serde_yaml::from_str(&format!(
            "apiVersion: ciclo.dev/v1alpha1\nkind: Dataset\nmetadata: {{name: seen, namespace: ml}}\nspec: {{source: {source}}}"
        ))
        .unwrap()
    }

    fn store() -> ArtifactStore {
        ArtifactStore {
            uri: "s3://ciclo/".into(),
            endpoint: Some("http://127.0.0.1:18333".into()),
            region: Some("us-east-1".into()),
            force_path_style: true,
            secret: Some("store-keys".into()),
            service_account: None,
        }
    }

    #[test]
    fn a_capture_is_read_from_the_artifact_store_with_its_credentials() {
        let source = of(&dataset("{capture: {modelDeployment: web}}"), &store());
        assert_eq!(
            source,
            DataSource {
                uri: "s3://ciclo/ml/datasets/seen/captured".into(),
                endpoint: Some("http://127.0.0.1:18333".into()),
                region: Some("us-east-1".into()),
                force_path_style: true,
                secret: Some("store-keys".into()),
                capture: Some("s3://ciclo/ml/captures/web".into()),
            }
        );
    }

    #[test]
    fn a_uri_is_read_with_its_own_settings_and_secret() {
        let source = of(
            &dataset(
                "{uri: 's3://data/iris', region: eu-west-1, credentialsSecretRef: {name: keys}}",
            ),
            &store(),
        );
        assert_eq!(
            source,
            DataSource {
                uri: "s3://data/iris".into(),
                endpoint: None,
                region: Some("eu-west-1".into()),
                force_path_style: false,
                secret: Some("keys".into()),
                capture: None,
            }
        );
    }
}
