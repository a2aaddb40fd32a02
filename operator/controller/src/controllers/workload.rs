//! What ciclo's Jobs share: how a store's settings and credentials reach the container.

use k8s_openapi::api::core::v1::{
    ContainerStateTerminated, EnvFromSource, EnvVar, Pod, SecretEnvSource,
};

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

/// What no controller reads of a Job it caches: its pod template (the largest part, with the
/// environment and the user's command) and selector. Annotations, labels, owner, completion
/// mode and status stay.
pub fn strip_pod_template(job: &mut k8s_openapi::api::batch::v1::Job) {
    if let Some(spec) = job.spec.as_mut() {
        spec.template = Default::default();
        spec.selector = None;
    }
}

/// The last termination of `container` among the Pods of Job `job` (with `rank0`, among
/// those of completion index 0 of an Indexed Job, the worker that reports a distributed
/// run's result), with the image id the node ran: where a Job's result (its termination
/// message) and exit code are read from.
pub async fn last_terminated(
    client: &kube::Client,
    ns: &str,
    job: &str,
    container: &str,
    rank0: bool,
) -> kube::Result<Option<(ContainerStateTerminated, Option<String>)>> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), ns);
    let mut selector = format!("batch.kubernetes.io/job-name={job}");
    if rank0 {
        selector.push_str(",batch.kubernetes.io/job-completion-index=0");
    }
    let mut terminated: Vec<(ContainerStateTerminated, Option<String>)> = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter_map(|p| {
            let c = p
                .status?
                .container_statuses?
                .into_iter()
                .find(|c| c.name == container)?;
            let image_id = Some(c.image_id).filter(|i| !i.is_empty());
            Some((c.state?.terminated?, image_id))
        })
        .collect();
    terminated.sort_by(|a, b| a.0.finished_at.cmp(&b.0.finished_at));
    Ok(terminated.pop())
}
