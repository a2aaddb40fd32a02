//! What ciclo's Jobs share: how a store's settings and credentials reach the container.

use k8s_openapi::api::core::v1::{EnvFromSource, EnvVar, SecretEnvSource};

/// A Secret's keys as environment under `prefix` (`CICLO_SOURCE_AWS_ACCESS_KEY_ID`, …):
/// straight from the Secret, never written into a spec, the status or an Event.
pub fn secret_env(secret: &str, prefix: &str) -> EnvFromSource {
    EnvFromSource {
        prefix: Some(prefix.into()),
        secret_ref: Some(SecretEnvSource {
            name: secret.into(),
            optional: Some(false),
        }),
        ..Default::default()
    }
}

/// An S3-compatible store's (non-secret) settings as object_store's names under `prefix`, as
/// `ciclo_snapshot::source::open` and the workload contract read them.
pub fn store_settings_env(
    prefix: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
    force_path_style: bool,
) -> Vec<EnvVar> {
    let var = |name: &str, value: &str| EnvVar {
        name: format!("{prefix}{name}"),
        value: Some(value.into()),
        ..Default::default()
    };
    let mut env = Vec::new();
    if let Some(e) = endpoint {
        env.push(var("AWS_ENDPOINT", e));
        if e.starts_with("http://") {
            env.push(var("AWS_ALLOW_HTTP", "true"));
        }
    }
    if let Some(r) = region {
        env.push(var("AWS_REGION", r));
    }
    if force_path_style {
        env.push(var("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"));
    }
    env
}
