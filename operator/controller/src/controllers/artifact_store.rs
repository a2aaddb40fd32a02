//! Which artifact store a namespace's workloads use, and with which credentials: the
//! namespace's own, named by a ConfigMap `ciclo-artifact-store` in it (so a team keeps its data
//! and models in a bucket, and under keys, of its own), or else the operator's shared store —
//! if the operator lets that namespace use it (`--artifact-store-namespaces`).
//!
//! A ConfigMap rather than a new kind: it is what a platform team already writes per namespace
//! (Argo Workflows' `artifact-repositories` and Kubeflow Pipelines' `kfp-launcher` work the
//! same way), its keys are few and flat, and RBAC can let the platform team, not the team,
//! edit it. The operator reads only ConfigMaps of that one name (`resourceNames` in its RBAC).

use super::{Watched, cache, watch_config};
use crate::args::ArtifactStoreArgs;
use crate::context::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};

/// The ConfigMap that names a namespace's own store.
pub const CONFIG_MAP: &str = "ciclo-artifact-store";

/// The store a workload of one namespace writes to and reads from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArtifactStore {
    /// The store's root; each namespace's artifacts are under `<uri>/<namespace>/`.
    pub uri: String,
    /// S3-compatible endpoint.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    /// The Secret, in the workload's namespace, with the store's keys (object_store's
    /// names). `None`: no keys (a public store, or the pods' workload identity).
    pub secret: Option<String>,
    /// The ServiceAccount ciclo's pods run as in that namespace (check Jobs, serving pods, and
    /// training Jobs whose TrainingRun names none), for workload identity: cloud IAM bound to
    /// the ServiceAccount through its annotations.
    pub service_account: Option<String>,
}

/// Why a namespace has no store to use: the condition's reason and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Unusable {
    /// `NoArtifactStore` or `InvalidArtifactStore`.
    pub reason: &'static str,
    pub message: String,
}

/// The store of `namespace`, given its ConfigMap (if it has one) and the operator's settings.
pub fn resolve(
    namespace: &str,
    config: Option<&ConfigMap>,
    shared: &ArtifactStoreArgs,
) -> Result<ArtifactStore, Unusable> {
    if let Some(cm) = config {
        return from_config_map(namespace, cm);
    }
    let Some(uri) = shared.uri.clone() else {
        return Err(Unusable {
            reason: "NoArtifactStore",
            message: format!(
                "no artifact store for namespace {namespace}: create a ConfigMap {CONFIG_MAP} in it naming its store, or set the operator's shared store (--artifact-store, CICLO_ARTIFACT_STORE)"
            ),
        });
    };
    if !shared.namespaces.is_empty() && !shared.namespaces.iter().any(|n| n == namespace) {
        return Err(Unusable {
            reason: "NoArtifactStore",
            message: format!(
                "namespace {namespace} may not use the operator's shared artifact store (--artifact-store-namespaces: {}): create a ConfigMap {CONFIG_MAP} in it naming its own store",
                shared.namespaces.join(", ")
            ),
        });
    }
    Ok(ArtifactStore {
        uri,
        endpoint: shared.endpoint.clone(),
        region: shared.region.clone(),
        force_path_style: shared.force_path_style,
        secret: shared.secret.clone(),
        service_account: None,
    })
}

/// The store of `namespace`, from the cache of the ConfigMaps named [`CONFIG_MAP`].
pub fn of_namespace(
    configs: &Store<ConfigMap>,
    namespace: &str,
    shared: &ArtifactStoreArgs,
) -> Result<ArtifactStore, Unusable> {
    let cm = configs
        .find(|cm| cm.namespace().as_deref() == Some(namespace) && cm.name_any() == CONFIG_MAP);
    resolve(namespace, cm.as_deref(), shared)
}

/// The cache of the store ConfigMaps of the watched namespace(s) — only those named
/// [`CONFIG_MAP`], by a field selector the operator's RBAC names too — and its changes.
pub fn configs(
    ctx: &Context,
) -> (
    Store<ConfigMap>,
    impl futures::Stream<Item = Result<ConfigMap, kube::runtime::watcher::Error>> + Send + 'static,
) {
    cache::<ConfigMap>(
        ctx,
        watch_config().fields(&format!("metadata.name={CONFIG_MAP}")),
        |cm| {
            // Its data is all that is read (a few short strings).
            cm.binary_data = None;
            cm.metadata.annotations = None;
        },
    )
}

/// What a store ConfigMap's change wakes: every object of `store` in its namespace (a store
/// appearing ends their `NoArtifactStore`; a changed one reaches Jobs started from then on).
pub fn wakes<K: Watched>(
    store: Store<DeserializeGuard<K>>,
) -> impl Fn(ConfigMap) -> Vec<ObjectRef<DeserializeGuard<K>>> + Send + Sync + 'static {
    move |cm| {
        let ns = cm.namespace();
        store
            .state_filter(|o| o.namespace() == ns)
            .iter()
            .map(|o| ObjectRef::from_obj(&**o))
            .collect()
    }
}

const KEYS: [&str; 6] = [
    "uri",
    "endpoint",
    "region",
    "forcePathStyle",
    "secretName",
    "serviceAccountName",
];

fn from_config_map(namespace: &str, cm: &ConfigMap) -> Result<ArtifactStore, Unusable> {
    let invalid = |message: String| Unusable {
        reason: "InvalidArtifactStore",
        message: format!("ConfigMap {namespace}/{CONFIG_MAP}: {message}"),
    };
    let data = cm.data.clone().unwrap_or_default();
    // A misspelt key would otherwise be ignored, and its setting silently not applied.
    if let Some(unknown) = data.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown key {unknown:?} (keys: {})",
            KEYS.join(", ")
        )));
    }
    let text = |key: &str| {
        data.get(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let uri = text("uri").ok_or_else(|| {
        invalid("key uri is missing: the store's root, e.g. s3://bucket/prefix".into())
    })?;
    // The URI is echoed in messages only once it is known to carry no credentials.
    let parsed =
        url::Url::parse(&uri).map_err(|e| invalid(format!("key uri is not a URI: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "key uri: credentials do not belong in the URI; put them in the Secret named by secretName"
                .into(),
        ));
    }
    if !["s3", "s3a", "gs", "az", "abfs", "file"].contains(&parsed.scheme()) {
        return Err(invalid(format!(
            "key uri: {uri:?}: the store must be s3://, s3a://, gs://, az://, abfs:// or file://"
        )));
    }
    let force_path_style = match text("forcePathStyle").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(format!(
                "key forcePathStyle: {other:?} is neither true nor false"
            )));
        }
    };
    let name = |key: &str| -> Result<Option<String>, Unusable> {
        match text(key) {
            Some(v) if !is_dns_subdomain(&v) => Err(invalid(format!(
                "key {key}: {v:?} is not a valid name (lowercase letters, digits, '-' and '.')"
            ))),
            v => Ok(v),
        }
    };
    Ok(ArtifactStore {
        uri,
        endpoint: text("endpoint"),
        region: text("region"),
        force_path_style,
        secret: name("secretName")?,
        service_account: name("serviceAccountName")?,
    })
}

/// A Kubernetes object name (RFC 1123 subdomain).
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(CONFIG_MAP.into()),
                namespace: Some("team-a".into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    fn shared() -> ArtifactStoreArgs {
        ArtifactStoreArgs {
            uri: Some("s3://shared/ciclo".into()),
            endpoint: Some("http://s3.shared:9000".into()),
            region: Some("eu-west-1".into()),
            force_path_style: true,
            secret: Some("ciclo-artifacts".into()),
            namespaces: Vec::new(),
        }
    }

    #[test]
    fn a_namespace_with_its_config_map_uses_its_own_store_and_keys() {
        let cm = config(&[
            ("uri", "s3://team-a-models/ciclo"),
            ("endpoint", "https://s3.team-a.example"),
            ("forcePathStyle", "true"),
            ("secretName", "team-a-store"),
            ("serviceAccountName", "ml-workloads"),
        ]);
        let store = resolve("team-a", Some(&cm), &shared()).unwrap();
        assert_eq!(
            store,
            ArtifactStore {
                uri: "s3://team-a-models/ciclo".into(),
                endpoint: Some("https://s3.team-a.example".into()),
                region: None,
                force_path_style: true,
                secret: Some("team-a-store".into()),
                service_account: Some("ml-workloads".into()),
            }
        );
    }

    #[test]
    fn without_one_the_shared_store_serves_only_the_namespaces_allowed() {
        let store = resolve("team-b", None, &shared()).unwrap();
        assert_eq!(store.uri, "s3://shared/ciclo");
        assert_eq!(store.secret.as_deref(), Some("ciclo-artifacts"));
        assert_eq!(store.service_account, None);

        let limited = ArtifactStoreArgs {
            namespaces: vec!["team-b".into(), "demo".into()],
            ..shared()
        };
        assert!(resolve("team-b", None, &limited).is_ok());
        let refused = resolve("team-c", None, &limited).unwrap_err();
        assert_eq!(refused.reason, "NoArtifactStore");
        assert!(
            refused.message.contains("namespace team-c may not use")
                && refused.message.contains("team-b, demo")
                && refused.message.contains(CONFIG_MAP),
            "{}",
            refused.message
        );
        // Its own ConfigMap lets any namespace in.
        let own = config(&[("uri", "gs://team-c/ciclo")]);
        assert_eq!(
            resolve("team-c", Some(&own), &limited).unwrap().uri,
            "gs://team-c/ciclo"
        );

        let none = resolve("team-c", None, &ArtifactStoreArgs::default()).unwrap_err();
        assert_eq!(none.reason, "NoArtifactStore");
        assert!(
            none.message.contains("--artifact-store"),
            "{}",
            none.message
        );
    }

    #[test]
    fn a_bad_config_map_is_refused_naming_its_key() {
        for (data, says) in [
            (vec![("endpoint", "http://s3:9000")], "key uri is missing"),
            (vec![("uri", "not a uri")], "key uri is not a URI"),
            (vec![("uri", "https://example.com/x")], "must be s3://"),
            (
                vec![("uri", "s3://key:secret@bucket/x")],
                "credentials do not belong in the URI",
            ),
            (
                vec![("uri", "s3://b/x"), ("forcePathStyle", "yes")],
                "key forcePathStyle: \"yes\"",
            ),
            (
                vec![("uri", "s3://b/x"), ("secretName", "Team_A")],
                "key secretName: \"Team_A\"",
            ),
            (
                vec![("uri", "s3://b/x"), ("secretname", "team-a")],
                "unknown key \"secretname\"",
            ),
        ] {
            let err = resolve("team-a", Some(&config(&data)), &shared()).unwrap_err();
            assert_eq!(err.reason, "InvalidArtifactStore");
            assert!(
                err.message
                    .starts_with("ConfigMap team-a/ciclo-artifact-store: ")
                    && err.message.contains(says),
                "{data:?}: {}",
                err.message
            );
            // A URI with keys in it is not echoed.
            assert!(!err.message.contains("secret@"), "{}", err.message);
        }
    }
}
