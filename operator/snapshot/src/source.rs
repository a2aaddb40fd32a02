//! A dataset source as an object store and a prefix, through the object_store crate:
//! `s3://` (custom endpoint, path-style), `gs://`, `az://`, `file://` and `https://`.
//! Credentials come from the environment (the operator passes the Dataset's Secret as env).

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
}

/// Opens `uri` (`scheme://…/prefix`) with `options`; returns the store and the prefix in it.
pub fn open(uri: &str, options: &Options) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let url = url::Url::parse(uri).map_err(|e| format!("source uri {uri:?}: {e}"))?;
    let mut opts: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    if url.scheme() == "s3" {
        if let Some(endpoint) = &options.endpoint {
            opts.push(("aws_endpoint".into(), endpoint.clone()));
            if endpoint.starts_with("http://") {
                opts.push(("aws_allow_http".into(), "true".into()));
            }
        }
        if let Some(region) = &options.region {
            opts.push(("aws_region".into(), region.clone()));
        }
        if options.force_path_style {
            opts.push(("aws_virtual_hosted_style_request".into(), "false".into()));
        }
    }
    opts.extend(options.settings.iter().cloned());
    let has_keys = opts.iter().any(|(k, _)| k == "aws_access_key_id");
    if url.scheme() == "s3" && options.endpoint.is_some() && !has_keys {
        // A custom endpoint without keys is an anonymous store: never fall back to a cloud's
        // instance-metadata credentials (169.254.169.254), which no such store uses.
        opts.push(("aws_skip_signature".into(), "true".into()));
    }
    let (store, prefix) =
        object_store::parse_url_opts(&url, opts).map_err(|e| format!("source uri {uri:?}: {e}"))?;
    Ok((Arc::from(store), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            settings: Vec::new(),
        };
        let (_, prefix) = open("s3://datasets/breast-cancer/", &s3).unwrap();
        assert_eq!(prefix.as_ref(), "breast-cancer");
    }

    #[test]
    fn an_unsupported_uri_is_an_error_naming_it() {
        let err = open("ftp://host/data", &Options::default())
            .map(|_| ())
            .unwrap_err();
        assert!(err.starts_with("source uri \"ftp://host/data\""), "{err}");
    }
}
