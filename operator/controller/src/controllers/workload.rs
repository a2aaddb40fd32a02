//! What ciclo's Jobs share: how a store's settings and credentials reach the container.

use super::slim::Slim;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerStateTerminated, EnvFromSource, EnvVar, Pod, SecretEnvSource,
};
use kube::ResourceExt as _;
use serde::Deserialize;
use std::collections::BTreeMap;

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

/// An S3-compatible store's (non-secret) settings under `prefix`, named as
/// `ciclo_store::open` reads them (the workload contract).
pub fn store_settings_env(
    prefix: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
    force_path_style: bool,
) -> Vec<EnvVar> {
    ciclo_store::settings_env(prefix, endpoint, region, force_path_style)
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            ..Default::default()
        })
        .collect()
}

/// A Job as the controllers cache it: its metadata and status, and of its spec only the
/// completion mode (the pod template, the largest part, is never parsed).
pub type CachedJob = Slim<Job, CachedJobSpec, JobStatus>;

/// What the controllers read of a cached Job's spec, and its annotations packed
/// ([`strip_job`]).
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CachedJobSpec {
    pub completion_mode: Option<String>,
    /// The metadata's annotations (the run's id, its dataset version, its code, whether it
    /// is recorded), moved here by [`strip_job`].
    #[serde(skip)]
    pub annotations: Packed,
}

/// Annotations as one boxed slice of pairs. A `BTreeMap` allocates a node of about 0.5 KiB
/// however few entries it holds: at 10,000 Jobs, 5 MiB for five annotations each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packed(Box<[(Box<str>, Box<str>)]>);

impl Packed {
    fn pack(map: Option<BTreeMap<String, String>>) -> Packed {
        Packed(
            map.into_iter()
                .flatten()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }

    fn unpack(&self) -> Option<BTreeMap<String, String>> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
    }
}

impl From<&CachedJob> for Job {
    /// The Job as a reconcile reads it: all a cached Job holds (its annotations back in its
    /// metadata), the rest empty.
    fn from(cached: &CachedJob) -> Job {
        let mut metadata = cached.metadata.clone();
        metadata.annotations = cached.spec.annotations.unpack();
        Job {
            metadata,
            spec: Some(JobSpec {
                completion_mode: cached.spec.completion_mode.clone(),
                ..Default::default()
            }),
            status: cached.status.clone(),
        }
    }
}

/// What no controller reads of a cached Job's metadata: its labels (the Job controller's
/// four and ciclo's, which the watch selected on). Its owner says whose it is
/// ([`controlled_by`]); the labels, as a map of strings, would weigh as much as the rest of
/// the metadata.
pub fn strip_job(job: &mut CachedJob) {
    job.metadata.labels = None;
    job.spec.annotations = Packed::pack(job.metadata.annotations.take());
}

/// The cached Jobs in `ns` that `owner` controls (a same-named owner deleted and created
/// again owns none of its predecessor's).
pub fn controlled_by<O: kube::Resource>(
    jobs: &kube::runtime::reflector::Store<CachedJob>,
    ns: &str,
    owner: &O,
) -> Vec<std::sync::Arc<CachedJob>> {
    let uid = owner.meta().uid.as_ref();
    // Selected in the cache, not after copying it: a reconcile among 10,000 Jobs copies the
    // few that are its own, not a list of every one.
    jobs.state_filter(|j| {
        j.metadata.namespace.as_deref() == Some(ns)
            && j.owner_references().iter().any(|r| Some(&r.uid) == uid)
    })
}

/// The watch of a component's Pods that have succeeded ([`anticipate`] reads no other): a
/// pending or running Pod is neither cached nor wakes anything, so thousands of queued runs
/// cost nothing here. (A Pod entering the phase arrives as added, one deleted as deleted.)
pub fn succeeded_pods(component: &str) -> kube::runtime::watcher::Config {
    super::watch_config()
        .labels(component)
        .fields("status.phase=Succeeded")
}

/// What no controller reads of a Job's Pod it caches: its spec, and of its status all but the
/// phase and the container states (where a result is read from).
pub fn strip_pod(pod: &mut Pod) {
    pod.spec = None;
    if let Some(s) = pod.status.as_mut() {
        s.conditions = None;
        s.init_container_statuses = None;
        s.ephemeral_container_statuses = None;
        // The result (a termination message of up to 4 KiB) is read from the API when the
        // run is recorded, not from here.
        for c in s.container_statuses.iter_mut().flatten() {
            c.last_state = None;
            if let Some(t) = c.state.as_mut().and_then(|st| st.terminated.as_mut()) {
                t.message = None;
            }
        }
    }
}

/// `job` as it will be once the Job controller sees that its one Pod succeeded: complete at
/// the moment the Pod's containers finished. The Job controller batches Pod updates and marks
/// the Job complete about a second later; ciclo reads the result from the Pod either way, so
/// taking the Pod's word saves that second on every check and every run. Only for a Job of
/// one Pod (not Indexed: a distributed run ends when all its workers have), and only for
/// success (a failed Pod may be retried within `backoffLimit`).
pub fn anticipate(job: &CachedJob, pods: &[Pod]) -> Job {
    let status = job.status.clone().unwrap_or_default();
    let decided = status
        .conditions
        .iter()
        .flatten()
        .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
    let indexed = job.spec.completion_mode.as_deref() == Some("Indexed");
    if decided || indexed {
        return job.into();
    }
    let uid = job.metadata.uid.as_ref();
    let finished = pods
        .iter()
        .filter(|p| p.owner_references().iter().any(|o| Some(&o.uid) == uid))
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .filter_map(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
                .max_by_key(|t| t.0)
        })
        .max_by_key(|t| t.0);
    let Some(at) = finished else {
        return job.into();
    };
    let mut job = Job::from(job);
    job.status = Some(JobStatus {
        active: Some(0),
        succeeded: Some(1),
        completion_time: Some(at.clone()),
        conditions: Some(vec![JobCondition {
            type_: "Complete".into(),
            status: "True".into(),
            last_transition_time: Some(at),
            reason: Some("PodSucceeded".into()),
            ..Default::default()
        }]),
        ..status
    });
    job
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
    Ok(terminated(client, ns, job, container, rank0).await?.pop())
}

/// Every termination of `container` among the Pods of Job `job` (see [`last_terminated`]),
/// oldest first.
pub async fn terminated(
    client: &kube::Client,
    ns: &str,
    job: &str,
    container: &str,
    rank0: bool,
) -> kube::Result<Vec<(ContainerStateTerminated, Option<String>)>> {
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
    Ok(terminated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str, indexed: bool) -> CachedJob {
        let mode = if indexed {
            "completionMode: Indexed, "
        } else {
            ""
        };
        serde_yaml::from_str(&format!(
            "metadata: {{name: j, uid: u1}}\nspec: {{{mode}template: {{}}}}\nstatus: {status}"
        ))
        .unwrap()
    }

    fn pod(owner: &str, phase: &str, finished: &str) -> Pod {
        serde_yaml::from_str(&format!(
            r#"
metadata: {{name: j-abc, ownerReferences: [{{apiVersion: batch/v1, kind: Job, name: j, uid: {owner}}}]}}
status:
  phase: {phase}
  containerStatuses:
  - {{name: train, image: i, imageID: '', ready: false, restartCount: 0,
     state: {{terminated: {{exitCode: 0, finishedAt: '{finished}'}}}}}}
"#
        ))
        .unwrap()
    }

    fn complete(j: &Job) -> Option<String> {
        let s = j.status.as_ref()?;
        s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Complete" && c.status == "True")
            .then(|| s.completion_time.as_ref().unwrap().0.to_string())
    }

    #[test]
    fn a_job_whose_pod_succeeded_counts_as_complete_when_its_pod_finished() {
        let running = job("{active: 1}", false);
        let done = pod("u1", "Succeeded", "2026-12-01T00:00:07Z");
        let j = anticipate(&running, std::slice::from_ref(&done));
        assert_eq!(complete(&j).as_deref(), Some("2026-12-01T00:00:07Z"));
        // Not for another Job's pod, a failed pod, or a distributed run.
        let other = pod("u2", "Succeeded", "2026-12-01T00:00:07Z");
        assert_eq!(complete(&anticipate(&running, &[other])), None);
        let failed = pod("u1", "Failed", "2026-12-01T00:00:07Z");
        assert_eq!(complete(&anticipate(&running, &[failed])), None);
        let indexed = job("{active: 2}", true);
        assert_eq!(complete(&anticipate(&indexed, &[done])), None);
    }

    #[test]
    fn a_cached_job_keeps_its_annotations_packed_and_gives_them_back() {
        let mut cached: CachedJob = serde_yaml::from_str(
            "metadata: {name: j, uid: u1, labels: {app: x}, annotations: {ciclo.dev/run-id: r1, ciclo.dev/recorded: 'true'}}\nspec: {template: {}}\nstatus: {active: 1}",
        )
        .unwrap();
        strip_job(&mut cached);
        assert!(cached.metadata.annotations.is_none() && cached.metadata.labels.is_none());
        let job = Job::from(&cached);
        assert_eq!(job.annotations()["ciclo.dev/run-id"], "r1");
        assert_eq!(job.annotations()["ciclo.dev/recorded"], "true");
        assert_eq!(job.annotations().len(), 2);
        let mut bare: CachedJob = serde_yaml::from_str("metadata: {name: k}").unwrap();
        strip_job(&mut bare);
        assert!(
            Job::from(&bare).metadata.annotations.is_none(),
            "none stays none"
        );
    }

    #[test]
    fn a_job_the_job_controller_already_decided_is_left_as_it_is() {
        let failed = job(
            "{conditions: [{type: Failed, status: 'True', reason: DeadlineExceeded}]}",
            false,
        );
        let done = pod("u1", "Succeeded", "2026-12-01T00:00:07Z");
        assert_eq!(anticipate(&failed, &[done]), Job::from(&failed));
    }
}
