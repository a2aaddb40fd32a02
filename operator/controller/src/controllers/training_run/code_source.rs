//! Where the code and configuration of a run came from, for its ModelVersion's lineage:
//! `spec.git`; else the annotations `ciclo.dev/git-repository` and `ciclo.dev/git-revision`
//! a GitOps tool rendered onto the TrainingRun; else, for a TrainingRun Flux applied (its
//! kustomize-controller labels what it applies with the Kustomization's name and namespace),
//! the revision that Kustomization was applying and the URL of its GitRepository.
//!
//! Resolved once, when the run starts, and kept on the run's Job (the same annotations), so a
//! commit that lands while the run trains does not rename its code, and a restarted operator
//! registers what the started one saw.
//!
//! Flux writes no revision onto what it applies, and has no substitution variable for it
//! (fluxcd/kustomize-controller#1258). It does patch `status.lastAttemptedRevision` of the
//! Kustomization *before* it applies that revision's objects (and `lastAppliedRevision` only
//! after they are all healthy: with `wait: true`, after the whole training run). So when ciclo
//! sees a spec, the Kustomization's `lastAttemptedRevision` is the revision it came from, or a
//! later one when another commit arrived in between (then the two are a few seconds apart,
//! and the later one is what the cluster converges to).

use ciclo_api::labels;
use ciclo_api::training_run::TrainingRun;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt as _};
use serde_json::Value;

/// The labels Flux's kustomize-controller puts on every object it applies.
pub const FLUX_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const FLUX_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";

/// A run's code: its repository and revision, each when known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodeSource {
    pub repository: Option<String>,
    pub revision: Option<String>,
}

impl CodeSource {
    /// What the TrainingRun itself says: `spec.git`, else its annotations.
    pub fn declared(tr: &TrainingRun) -> CodeSource {
        match &tr.spec.git {
            Some(g) => CodeSource {
                repository: Some(g.repository.clone()),
                revision: Some(g.revision.clone()),
            },
            None => CodeSource::from_annotations(tr.annotations()),
        }
    }

    /// As a run's Job (or a TrainingRun) carries it.
    pub fn from_annotations(annotations: &std::collections::BTreeMap<String, String>) -> Self {
        let get = |k: &str| annotations.get(k).filter(|v| !v.is_empty()).cloned();
        CodeSource {
            repository: get(labels::GIT_REPOSITORY),
            revision: get(labels::GIT_REVISION),
        }
    }

    /// What a run's Job recorded when it started; `None` for a Job started by an operator
    /// that did not record it (its TrainingRun is read instead).
    pub fn of_job(job: &Job) -> Option<CodeSource> {
        let recorded = CodeSource::from_annotations(job.annotations());
        (recorded != CodeSource::default()).then_some(recorded)
    }

    /// The annotations a run's Job carries.
    pub fn annotations(&self) -> impl Iterator<Item = (String, String)> + '_ {
        [
            (labels::GIT_REPOSITORY, &self.repository),
            (labels::GIT_REVISION, &self.revision),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
    }
}

/// The code source of a run of `tr` starting now: what it declares, else what the Flux
/// Kustomization that applied it says. Reading Flux's objects can fail (no Flux, or no RBAC to
/// read them): the run then starts without a revision, never not at all.
pub async fn resolve(client: &Client, tr: &TrainingRun) -> CodeSource {
    let declared = CodeSource::declared(tr);
    if declared.revision.is_some() {
        return declared;
    }
    let (Some(name), Some(namespace)) =
        (tr.labels().get(FLUX_NAME), tr.labels().get(FLUX_NAMESPACE))
    else {
        return declared;
    };
    match from_flux(client, namespace, name).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(
                trainingrun = %tr.name_any(), kustomization = %format!("{namespace}/{name}"),
                error = %e, "the Flux Kustomization that applied it could not be read; no revision in lineage"
            );
            declared
        }
    }
}

async fn from_flux(client: &Client, namespace: &str, name: &str) -> kube::Result<CodeSource> {
    let kustomization = get(
        client,
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        namespace,
        name,
    )
    .await?;
    let mut source = CodeSource {
        repository: None,
        revision: attempted_revision(&kustomization.data),
    };
    if let Some((kind, source_ns, source_name)) = source_ref(&kustomization.data, namespace)
        && kind == "GitRepository"
    {
        let repository = get(
            client,
            ("source.toolkit.fluxcd.io", "v1", "GitRepository"),
            &source_ns,
            &source_name,
        )
        .await?;
        source.repository = repository_url(&repository.data);
    }
    Ok(source)
}

async fn get(
    client: &Client,
    (group, version, kind): (&str, &str, &str),
    namespace: &str,
    name: &str,
) -> kube::Result<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .get(name)
        .await
}

/// `status.lastAttemptedRevision` of a Kustomization (e.g. `main@sha1:4f1c…`).
fn attempted_revision(kustomization: &Value) -> Option<String> {
    kustomization
        .pointer("/status/lastAttemptedRevision")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(String::from)
}

/// A Kustomization's `spec.sourceRef`: kind, namespace (its own by default) and name.
fn source_ref(kustomization: &Value, own_namespace: &str) -> Option<(String, String, String)> {
    let r = kustomization.pointer("/spec/sourceRef")?;
    let field = |k: &str| r.get(k).and_then(Value::as_str);
    Some((
        field("kind")?.to_string(),
        field("namespace").unwrap_or(own_namespace).to_string(),
        field("name")?.to_string(),
    ))
}

/// A GitRepository's `spec.url`, without any credentials written into it.
fn repository_url(repository: &Value) -> Option<String> {
    let url = repository.pointer("/spec/url").and_then(Value::as_str)?;
    Some(match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_kustomization_gives_the_revision_it_attempts_not_the_one_it_last_finished() {
        // As kustomize-controller leaves it between applying a new commit's objects and their
        // health checks passing.
        let k = json!({
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "ml-team"}},
            "status": {
                "lastAppliedRevision": "main@sha1:1111111111111111111111111111111111111111",
                "lastAttemptedRevision": "main@sha1:2222222222222222222222222222222222222222"
            }
        });
        assert_eq!(
            attempted_revision(&k).as_deref(),
            Some("main@sha1:2222222222222222222222222222222222222222")
        );
        assert_eq!(
            source_ref(&k, "flux-system"),
            Some((
                "GitRepository".into(),
                "flux-system".into(),
                "ml-team".into()
            ))
        );
        let elsewhere = json!({"spec": {"sourceRef": {"kind": "OCIRepository", "name": "x", "namespace": "team"}}});
        assert_eq!(
            source_ref(&elsewhere, "flux-system"),
            Some(("OCIRepository".into(), "team".into(), "x".into()))
        );
        // Not attempted yet: no revision rather than an empty one.
        assert_eq!(attempted_revision(&json!({"status": {}})), None);
        assert_eq!(
            attempted_revision(&json!({"status": {"lastAttemptedRevision": ""}})),
            None
        );
    }

    #[test]
    fn a_repository_url_never_carries_credentials_into_lineage() {
        let url = |u: &str| repository_url(&json!({"spec": {"url": u}}));
        assert_eq!(
            url("https://team:s3cret@git.example.com/org/ml-team.git").as_deref(),
            Some("https://git.example.com/org/ml-team.git")
        );
        assert_eq!(
            url("ssh://git@github.com/org/ml-team").as_deref(),
            Some("ssh://github.com/org/ml-team")
        );
        assert_eq!(
            url("https://git.example.com/org/ml-team.git").as_deref(),
            Some("https://git.example.com/org/ml-team.git")
        );
    }

    #[test]
    fn what_a_job_recorded_wins_and_old_jobs_fall_back() {
        let mut job = Job::default();
        assert_eq!(CodeSource::of_job(&job), None);
        let source = CodeSource {
            repository: Some("http://git/team.git".into()),
            revision: Some("main@sha1:abc".into()),
        };
        job.metadata.annotations = Some(source.annotations().collect());
        assert_eq!(CodeSource::of_job(&job), Some(source));
    }
}
