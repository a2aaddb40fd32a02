//! Opening an object store with its settings, through the object_store crate: `s3://`
//! (custom endpoint, path-style), `gs://`, `az://`, `file://` and `https://`. Settings and
//! credentials come from the environment under a prefix (the operator passes a Dataset's
//! source with `CICLO_SOURCE_`, the artifact store with `CICLO_ARTIFACTS_`), so the two
//! stores' keys never mix; [`settings_env`] names the variables the operator sets, so what it
//! writes and what `open` reads are the same names. Used by `ciclo dataset snapshot`,
//! `ciclo train`, `ciclo serve` and the operator's workload environment.
#![forbid(unsafe_code)]

use object_store::ObjectStore;
use object_store::path::Path;
use std::sync::Arc;

/// How to reach an S3-compatible store other than AWS.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Endpoint URL (`http://127.0.0.1:8333`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Address buckets by path rather than by host name.
    pub force_path_style: bool,
    /// Further object_store settings (`aws_access_key_id`, …), applied after the environment.
    pub settings: Vec<(String, String)>,
    /// Environment variables `<prefix>AWS_…`, `<prefix>GOOGLE_…`, `<prefix>AZURE_…` are the
    /// store's settings (object_store's names, without the prefix). Empty: none are read.
    pub env_prefix: String,
}

pub use ciclo_core::contract::{ARTIFACTS_ENV_PREFIX, SOURCE_ENV_PREFIX};

/// Opens `uri` (`scheme://…/prefix`) with `options`; returns the store and the prefix in it.
pub fn open(uri: &str, options: &Options) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("source uri {uri:?}: {e}"))?;
    // No prefix: the settings given, nothing from this process's environment (the operator
    // opens each namespace's store with that namespace's keys, never its own).
    let mut opts = if options.env_prefix.is_empty() {
        Vec::new()
    } else {
        let mut opts = store_settings(std::env::vars(), &options.env_prefix);
        opts.extend(workload_identity(std::env::vars(), &opts));
        opts
    };
    if url.scheme() == "s3" {
        opts.extend(
            s3_settings(
                options.endpoint.as_deref(),
                options.region.as_deref(),
                options.force_path_style,
            )
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v)),
        );
    }
    opts.extend(options.settings.iter().cloned());
    // An endpoint given as http:// (a store on the local network, or a test's) is meant to be
    // reached over plain HTTP, whether or not AWS_ALLOW_HTTP was also set.
    let plain_http = opts
        .iter()
        .any(|(k, v)| (k == "aws_endpoint" || k == "aws_endpoint_url") && v.starts_with("http://"));
    if plain_http && !opts.iter().any(|(k, _)| k == "aws_allow_http") {
        opts.push(("aws_allow_http".into(), "true".into()));
    }
    let has_keys = opts
        .iter()
        .any(|(k, _)| k == "aws_access_key_id" || k == "aws_web_identity_token_file");
    // The endpoint may also come from the environment (`<prefix>AWS_ENDPOINT`).
    let custom_endpoint = opts
        .iter()
        .any(|(k, _)| k == "aws_endpoint" || k == "aws_endpoint_url");
    if url.scheme() == "s3" && custom_endpoint && !has_keys {
        // A custom endpoint without keys is an anonymous store: never fall back to a cloud's
        // instance-metadata credentials (169.254.169.254), which no such store uses.
        opts.push(("aws_skip_signature".into(), "true".into()));
    }
    build(&url, opts).map_err(|e| format!("source uri {uri:?}: {e}"))
}

/// An S3-compatible store's settings, by object_store's names in upper case (as environment
/// variables spell them after their prefix).
fn s3_settings(
    endpoint: Option<&str>,
    region: Option<&str>,
    force_path_style: bool,
) -> Vec<(&'static str, String)> {
    let mut settings = Vec::new();
    if let Some(e) = endpoint {
        settings.push(("AWS_ENDPOINT", e.to_string()));
        if e.starts_with("http://") {
            settings.push(("AWS_ALLOW_HTTP", "true".to_string()));
        }
    }
    if let Some(r) = region {
        settings.push(("AWS_REGION", r.to_string()));
    }
    if force_path_style {
        settings.push(("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".to_string()));
    }
    settings
}

/// The environment variables (name, value) that give a workload an S3-compatible store's
/// (non-secret) settings under `prefix`, as [`open`] reads them with that `env_prefix`.
pub fn settings_env(
    prefix: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
    force_path_style: bool,
) -> Vec<(String, String)> {
    s3_settings(endpoint, region, force_path_style)
        .into_iter()
        .map(|(name, value)| (format!("{prefix}{name}"), value))
        .collect()
}

/// A store that gives up on an unreachable endpoint within seconds (object_store's default
/// retries for minutes), so a check reports `SourceUnavailable` promptly and the operator,
/// which retries checks itself, decides when to try again.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
        ..Default::default()
    }
}

fn build(
    url: &url::Url,
    opts: Vec<(String, String)>,
) -> object_store::Result<(Arc<dyn ObjectStore>, Path)> {
    use object_store::ObjectStoreScheme as Scheme;
    // Each builder takes the settings it knows and ignores the others, as parse_url_opts.
    macro_rules! configured {
        ($builder:expr) => {
            opts.iter()
                .fold($builder, |b, (k, v)| match k.parse() {
                    Ok(key) => b.with_config(key, v),
                    Err(_) => b,
                })
                .with_retry(retry())
                .build()?
        };
    }
    let (scheme, prefix) = Scheme::parse(url)?;
    let store: Arc<dyn ObjectStore> = match scheme {
        Scheme::Local => Arc::new(object_store::local::LocalFileSystem::new()),
        Scheme::AmazonS3 => Arc::new(configured!(
            object_store::aws::AmazonS3Builder::new().with_url(url.as_str())
        )),
        Scheme::GoogleCloudStorage => Arc::new(configured!(
            object_store::gcp::GoogleCloudStorageBuilder::new().with_url(url.as_str())
        )),
        Scheme::MicrosoftAzure => Arc::new(configured!(
            object_store::azure::MicrosoftAzureBuilder::new().with_url(url.as_str())
        )),
        Scheme::Http => Arc::new(configured!(
            object_store::http::HttpBuilder::new().with_url(&url[..url::Position::BeforePath])
        )),
        other => {
            return Err(object_store::Error::Generic {
                store: "source",
                source: format!("{other:?} is not a supported store").into(),
            });
        }
    };
    Ok((store, prefix))
}

/// The variables a cloud's workload identity webhook injects into a pod whose ServiceAccount
/// is bound to a cloud role (EKS IRSA and Pod Identity, Azure Workload Identity), unprefixed
/// as the webhooks write them, and the object_store settings they become. GKE's workload
/// identity needs none: object_store asks the metadata server when it has no keys.
const WORKLOAD_IDENTITY: [(&str, &str); 9] = [
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "aws_web_identity_token_file"),
    ("AWS_ROLE_ARN", "aws_role_arn"),
    ("AWS_ROLE_SESSION_NAME", "aws_role_session_name"),
    (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "aws_container_credentials_full_uri",
    ),
    (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "aws_container_authorization_token_file",
    ),
    ("AZURE_FEDERATED_TOKEN_FILE", "azure_federated_token_file"),
    ("AZURE_CLIENT_ID", "azure_client_id"),
    ("AZURE_TENANT_ID", "azure_tenant_id"),
    ("AZURE_AUTHORITY_HOST", "azure_authority_host"),
];

/// The pod's workload identity (see [`WORKLOAD_IDENTITY`]) for a store whose own prefixed
/// settings carry no keys: a store given keys uses them and nothing else, so a team's Secret
/// always wins over whatever role the pod runs as.
fn workload_identity(
    env: impl Iterator<Item = (String, String)>,
    settings: &[(String, String)],
) -> Vec<(String, String)> {
    let has_keys = settings.iter().any(|(k, _)| {
        [
            "aws_access_key_id",
            "google_service_account",
            "google_service_account_path",
            "google_service_account_key",
            "azure_storage_account_key",
            "azure_storage_sas_key",
            "azure_storage_client_secret",
        ]
        .contains(&k.as_str())
    });
    if has_keys {
        return Vec::new();
    }
    env.filter_map(|(k, v)| {
        WORKLOAD_IDENTITY
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, setting)| (setting.to_string(), v))
    })
    .collect()
}

/// A Secret's keys (object_store's names in any case: `AWS_ACCESS_KEY_ID`, …) as the
/// settings [`Options::settings`] takes: those of the stores object_store knows, lower-cased.
pub fn secret_settings<'a>(
    keys: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    store_settings(keys.map(|(k, v)| (k.to_string(), v.to_string())), "")
}

/// The object_store settings among `env`: `<prefix>AWS_…`, `<prefix>GOOGLE_…` and
/// `<prefix>AZURE_…`, named without the prefix, in lower case as object_store expects.
fn store_settings(
    env: impl Iterator<Item = (String, String)>,
    prefix: &str,
) -> Vec<(String, String)> {
    env.filter_map(|(k, v)| {
        let name = k.strip_prefix(prefix)?;
        let known = ["AWS_", "GOOGLE_", "AZURE_"]
            .iter()
            .any(|p| name.starts_with(p));
        known.then(|| (name.to_ascii_lowercase(), v))
    })
    .collect()
}

/// The bytes at `uri`: an object-store URI (`s3://`, `gs://`, `az://`, `file://`, `https://`)
/// opened with the settings under `env_prefix` (e.g. [`ARTIFACTS_ENV_PREFIX`]), or a local
/// path. The error says what failed, and where the settings come from.
pub async fn fetch(uri: &str, env_prefix: &str) -> Result<Vec<u8>, String> {
    use object_store::ObjectStoreExt as _;
    if !uri.contains("://") {
        return tokio::fs::read(uri).await.map_err(|e| e.to_string());
    }
    let options = Options {
        env_prefix: env_prefix.into(),
        ..Options::default()
    };
    let (store, path) = open(uri, &options).map_err(|e| {
        format!("{e} (its settings and credentials come from {env_prefix}* variables)")
    })?;
    let got = store.get(&path).await.map_err(|e| e.to_string())?;
    let bytes = got.bytes().await.map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_http_endpoint_is_reached_over_plain_http_without_being_told_twice() {
        // Nothing listens on port 9: the request must get as far as connecting (refused),
        // not be refused by the client for being plain HTTP.
        let options = Options {
            settings: vec![("aws_endpoint".into(), "http://127.0.0.1:9".into())],
            ..Options::default()
        };
        let (store, path) = open("s3://bucket/key", &options).unwrap();
        use object_store::ObjectStoreExt as _;
        let err = store.get(&path).await.unwrap_err().to_string();
        assert!(!err.contains("builder error"), "{err}");
        assert!(err.contains("127.0.0.1:9"), "{err}");
    }

    #[test]
    fn uris_open_with_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}/data", dir.path().display());
        let (_, prefix) = open(&uri, &Options::default()).unwrap();
        assert!(prefix.as_ref().ends_with("data"), "{prefix}");
        let s3 = Options {
            endpoint: Some("http://127.0.0.1:8333".into()),
            region: Some("us-east-1".into()),
            force_path_style: true,
            ..Options::default()
        };
        let (_, prefix) = open("s3://datasets/breast-cancer/", &s3).unwrap();
        assert_eq!(prefix.as_ref(), "breast-cancer");
    }

    #[test]
    fn a_pods_workload_identity_serves_a_store_without_keys_and_never_overrides_keys() {
        let env = || {
            [
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/team-a"),
                ("AZURE_CLIENT_ID", "c1"),
                ("AWS_ACCESS_KEY_ID", "ambient-key"),
                ("HOME", "/"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
        };
        let picked = workload_identity(env(), &[]);
        assert_eq!(
            picked,
            [
                ("aws_web_identity_token_file", "/var/run/secrets/eks/token"),
                ("aws_role_arn", "arn:aws:iam::1:role/team-a"),
                ("azure_client_id", "c1"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
            "the webhook's variables, not the ambient keys"
        );
        let keys = [("aws_access_key_id".to_string(), "team-key".to_string())];
        assert!(workload_identity(env(), &keys).is_empty());
    }

    #[test]
    fn credentials_come_only_from_the_stores_own_prefix() {
        let env = [
            ("CICLO_SOURCE_AWS_ACCESS_KEY_ID", "source-key"),
            ("CICLO_ARTIFACTS_AWS_ACCESS_KEY_ID", "artifacts-key"),
            ("AWS_ACCESS_KEY_ID", "ambient-key"),
            ("CICLO_SOURCE_PATH", "not a store setting"),
        ];
        let picked = store_settings(
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            SOURCE_ENV_PREFIX,
        );
        assert_eq!(
            picked,
            vec![("aws_access_key_id".to_string(), "source-key".to_string())]
        );
    }

    #[test]
    fn the_settings_a_workload_gets_are_the_ones_open_reads() {
        let env = settings_env(
            ARTIFACTS_ENV_PREFIX,
            Some("http://127.0.0.1:8333"),
            Some("us-east-1"),
            true,
        );
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "CICLO_ARTIFACTS_AWS_ENDPOINT",
                "CICLO_ARTIFACTS_AWS_ALLOW_HTTP",
                "CICLO_ARTIFACTS_AWS_REGION",
                "CICLO_ARTIFACTS_AWS_VIRTUAL_HOSTED_STYLE_REQUEST"
            ]
        );
        let read = store_settings(env.into_iter(), ARTIFACTS_ENV_PREFIX);
        let by_open = s3_settings(Some("http://127.0.0.1:8333"), Some("us-east-1"), true)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect::<Vec<_>>();
        assert_eq!(read, by_open, "the same settings either way");
        assert!(
            read.iter()
                .all(|(k, _)| k.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok()),
            "every name is object_store's: {read:?}"
        );
    }

    #[test]
    fn an_unsupported_uri_is_an_error_naming_it() {
        let err = open("ftp://host/data", &Options::default())
            .map(|_| ())
            .unwrap_err();
        assert!(err.starts_with("source uri \"ftp://host/data\""), "{err}");
    }
}
