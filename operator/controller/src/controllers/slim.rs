//! Cached objects cut down to what reconciles read of them, as their own small types.
//!
//! A cache of a Kubernetes kind holds one parsed object per object in the cluster, for as
//! long as it exists: at 10,000 TrainingRuns, tens of thousands of objects. Stripping fields
//! after parsing frees their heap, but a k8s-openapi struct keeps its full size: a `Job` is
//! 2.6 KiB before a single string (its pod template is inline, `Option` or not). A [`Slim`]
//! object parses only the fields its type names (serde skips the rest of the JSON), so a
//! cached Job costs its metadata and status, not its spec.

use kube::Resource;
use kube::api::ObjectMeta;
use serde::Deserialize;
use std::borrow::Cow;
use std::marker::PhantomData;

/// An object of kind `K` with only its metadata, the part `S` of its spec and the part `T`
/// of its status: a type a cache and a watch take like `K` itself (same kind, same URL).
#[derive(Deserialize, Clone, Debug)]
#[serde(bound(deserialize = "S: Deserialize<'de> + Default, T: Deserialize<'de>"))]
pub struct Slim<K, S, T> {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: S,
    #[serde(default)]
    pub status: Option<T>,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

impl<K, S, T> Resource for Slim<K, S, T>
where
    K: Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{Job, JobStatus};

    #[derive(Deserialize, Clone, Debug, Default)]
    #[serde(rename_all = "camelCase")]
    struct Mode {
        completion_mode: Option<String>,
    }

    #[test]
    fn a_slim_object_is_requested_like_its_kind_and_parses_only_what_it_names() {
        type SlimJob = Slim<Job, Mode, JobStatus>;
        assert_eq!(
            SlimJob::url_path(&(), Some("ml")),
            Job::url_path(&(), Some("ml"))
        );
        assert_eq!(SlimJob::api_version(&()), "batch/v1");
        assert_eq!(SlimJob::kind(&()), "Job");
        let job: SlimJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "r1", "namespace": "ml", "uid": "u1"},
            "spec": {"completionMode": "Indexed", "template": {"spec": {"containers": [{"name": "x"}]}}},
            "status": {"succeeded": 2}
        }))
        .unwrap();
        assert_eq!(job.meta().name.as_deref(), Some("r1"));
        assert_eq!(job.spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!(job.status.unwrap().succeeded, Some(2));
        // A Slim object is far smaller than the kind's own struct.
        assert!(std::mem::size_of::<SlimJob>() * 2 < std::mem::size_of::<Job>());
        // Without a spec or a status (a watch's bookmark, or a kind without them).
        let bare: SlimJob =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "r2"}})).unwrap();
        assert!(bare.status.is_none() && bare.spec.completion_mode.is_none());
    }
}
