//! Applying a ModelDeployment's children (its Services, version Deployments and autoscaler)
//! only when what would be sent is not what the cluster has.
//!
//! Within one process a memo ([`Applied`]) holds the digest of what was last applied of each
//! child and the generation that apply made. A restart empties the memo, so every applied
//! child also carries the digest of itself as sent, in the annotation [`DIGEST`]. The first
//! time a process would apply a child, an object that carries the digest of the object it
//! would send, and whose spec no other field manager has changed since (its managed fields),
//! is taken as applied: a restart with everything in place writes nothing. A child another
//! manager edited is applied again, as one whose generation moved under a running process is.

use crate::error::Result;
use ciclo_api::labels::FIELD_MANAGER;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Resource, ResourceExt as _};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// The annotation that holds the digest of a child as this controller last sent it (the
/// object without this annotation), the first 32 hex digits of its BLAKE3 hash.
pub const DIGEST: &str = "ciclo.dev/applied-digest";

/// What is known of a child in the cluster before it is applied.
#[derive(Clone, Copy)]
pub enum Live<'a> {
    /// A kind no cache holds (Services, autoscalers): read once, the first time this process
    /// would apply the object, if an earlier process may have applied it: if its
    /// ModelDeployment has a status (written after its children are applied). A new
    /// ModelDeployment's children are applied without a read.
    Unwatched { owner_has_status: bool },
    /// A watched kind's cached object, `None` when the cache has none (deleted, or not seen
    /// yet). The cache keeps [`DIGEST`] only on a child whose spec no one else changed
    /// ([`forget_if_edited`]).
    Cached(Option<&'a ObjectMeta>),
}

/// What this controller last applied of each child, by kind, namespace and name: a digest of
/// the object sent, and the generation the API server gave it. A child whose desired object
/// has the same digest, and whose cached generation (for the watched Deployments) is still
/// the one that apply made, is not sent again: a reconcile that changes nothing makes no
/// request. An edit by someone else moves the generation (and wakes the reconcile), so the
/// declared fields are applied again.
#[derive(Default)]
pub struct Applied(Mutex<HashMap<String, Memo>>);

/// A child's last apply: the digest sent, and the generation it made.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Memo {
    digest: blake3::Hash,
    generation: Option<i64>,
}

/// What to do with a child.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// It is what this process last applied.
    Current,
    /// This process has not applied it: the live object says whether an earlier one did.
    Unknown,
    /// It changed since this process last applied it, or someone else changed it.
    Apply,
}

impl Applied {
    fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
        format!(
            "{}/{}/{}",
            K::kind(&()),
            obj.namespace().unwrap_or_default(),
            obj.name_any()
        )
    }

    /// `digest` against the memo; `live_generation`: the watched object's generation
    /// (`Some(None)`: not in the cache), `None` for a kind that is not watched.
    fn verdict(
        &self,
        key: &str,
        digest: blake3::Hash,
        live_generation: Option<Option<i64>>,
    ) -> Verdict {
        let memo = self.0.lock().expect("applied lock");
        match memo.get(key) {
            None => Verdict::Unknown,
            Some(m)
                if m.digest == digest
                    && live_generation.is_none_or(|g| g.is_some() && g == m.generation) =>
            {
                Verdict::Current
            }
            Some(_) => Verdict::Apply,
        }
    }

    fn remember(&self, key: String, digest: blake3::Hash, generation: Option<i64>) {
        self.0
            .lock()
            .expect("applied lock")
            .insert(key, Memo { digest, generation });
    }

    /// Forgets a deleted child: the memo holds only children that exist.
    pub fn forget<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        self.0.lock().expect("applied lock").remove(&Self::key(obj));
    }
}

/// The hex form of a digest, as [`DIGEST`] holds it.
fn hex(digest: &blake3::Hash) -> String {
    digest.to_hex()[..32].to_string()
}

/// Whether a field manager other than ciclo's changed `meta`'s object's spec (its managed
/// fields say so; an object without them, as caches keep objects, says nothing). The scale
/// subresource is the autoscaler's (its replicas) and the status is not the spec.
fn spec_edited_by_others(meta: &ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() != Some(FIELD_MANAGER)
            && entry.subresource.as_deref().unwrap_or_default().is_empty()
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
    })
}

/// For a cache of children: drops [`DIGEST`] from an object whose spec another field manager
/// changed, so that the cached object carries the digest only while it is what ciclo applied.
/// Runs before the cache drops the managed fields.
pub fn forget_if_edited(meta: &mut ObjectMeta) {
    if spec_edited_by_others(meta)
        && let Some(annotations) = meta.annotations.as_mut()
    {
        annotations.remove(DIGEST);
    }
}

/// Whether `meta` is of a child an earlier apply of the object of digest `digest` left as it
/// is: it carries that digest and no one else changed its spec since.
fn carries(meta: &ObjectMeta, digest: &blake3::Hash) -> bool {
    meta.annotations.as_ref().and_then(|a| a.get(DIGEST)) == Some(&hex(digest))
        && !spec_edited_by_others(meta)
}

/// Server-side applies `obj` (field manager `ciclo-operator`, forced) unless it is what the
/// cluster already has (see the module).
pub async fn apply<K>(api: &Api<K>, obj: &K, applied: &Applied, live: Live<'_>) -> Result<()>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut value = serde_json::to_value(obj)?;
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    let digest = blake3::hash(value.to_string().as_bytes());
    let key = Applied::key(obj);
    let live_generation = match &live {
        Live::Unwatched { .. } => None,
        Live::Cached(meta) => Some(meta.and_then(|m| m.generation)),
    };
    match applied.verdict(&key, digest, live_generation) {
        Verdict::Current => return Ok(()),
        Verdict::Apply => {}
        Verdict::Unknown => {
            // An earlier process (before a restart, or another leader) may have applied it.
            // Its generation, if it did.
            let earlier = |meta: &ObjectMeta| carries(meta, &digest).then_some(meta.generation);
            let generation = match live {
                Live::Cached(meta) => meta.and_then(earlier),
                Live::Unwatched {
                    owner_has_status: false,
                } => None,
                Live::Unwatched {
                    owner_has_status: true,
                } => api
                    .get_opt(&obj.name_any())
                    .await?
                    .and_then(|o| earlier(o.meta())),
            };
            if let Some(generation) = generation {
                applied.remember(key, digest, generation);
                return Ok(());
            }
        }
    }
    value["metadata"]["annotations"][DIGEST] = hex(&digest).into();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let result = api
        .patch(&obj.name_any(), &params, &Patch::Apply(&value))
        .await?;
    applied.remember(key, digest, result.meta().generation);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use std::collections::BTreeMap;

    fn entry(manager: &str, subresource: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            subresource: (!subresource.is_empty()).then(|| subresource.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    fn applied_meta(digest: &blake3::Hash, managers: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(BTreeMap::from([(DIGEST.to_string(), hex(digest))])),
            managed_fields: Some(managers),
            generation: Some(3),
            ..Default::default()
        }
    }

    #[test]
    fn a_child_only_ciclo_and_the_controllers_status_wrote_carries_its_digest() {
        let digest = blake3::hash(b"the deployment as sent");
        let ours = entry(
            FIELD_MANAGER,
            "",
            serde_json::json!({"f:spec": {"f:replicas": {}}}),
        );
        // The Deployment controller annotates the revision and writes the status; an
        // autoscaler sets the replicas through the scale subresource.
        let revision = entry(
            "kube-controller-manager",
            "",
            serde_json::json!({"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}}),
        );
        let status = entry(
            "kube-controller-manager",
            "status",
            serde_json::json!({"f:status": {}}),
        );
        let scale = entry(
            "kube-controller-manager",
            "scale",
            serde_json::json!({"f:spec": {"f:replicas": {}}}),
        );
        let meta = applied_meta(&digest, vec![ours, revision, status, scale]);
        assert!(carries(&meta, &digest));
        assert!(!carries(&meta, &blake3::hash(b"another deployment")));
    }

    #[test]
    fn a_spec_someone_else_edited_is_applied_again_and_its_cached_copy_forgets_the_digest() {
        let digest = blake3::hash(b"the deployment as sent");
        let edit = entry(
            "kubectl-edit",
            "",
            serde_json::json!({"f:spec": {"f:template": {"f:spec": {}}}}),
        );
        let mut meta = applied_meta(&digest, vec![edit]);
        assert!(!carries(&meta, &digest));
        forget_if_edited(&mut meta);
        assert!(meta.annotations.unwrap().is_empty());
        // As the cache keeps it: no managed fields, the digest already judged.
        let mut cached = applied_meta(&digest, vec![]);
        forget_if_edited(&mut cached);
        cached.managed_fields = None;
        assert!(carries(&cached, &digest));
    }

    /// A request the fake API server saw: method, path, body.
    type Seen = std::sync::Arc<Mutex<Vec<(String, String, String)>>>;

    /// A fake API server for the request shapes: GET answers `live` (or 404), PATCH answers
    /// the object sent; every request is noted.
    fn fake_api_server(live: Option<serde_json::Value>) -> (kube::Client, Seen) {
        let seen = Seen::default();
        let noted = seen.clone();
        let server = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (live, noted) = (live.clone(), noted.clone());
            async move {
                let (parts, body) = req.into_parts();
                let sent = String::from_utf8(body.collect_bytes().await.unwrap().to_vec()).unwrap();
                noted.lock().unwrap().push((
                    parts.method.to_string(),
                    parts.uri.path().to_string(),
                    sent.clone(),
                ));
                let not_found = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#;
                let (status, answer) = match (parts.method.as_str(), live) {
                    ("GET", Some(live)) => (200, live.to_string()),
                    ("GET", None) => (404, not_found.to_string()),
                    _ => (200, sent),
                };
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(kube::client::Body::from(answer.into_bytes()))
                        .unwrap(),
                )
            }
        });
        (kube::Client::new(server, "ml"), seen)
    }

    fn service() -> k8s_openapi::api::core::v1::Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ml"},
            "spec": {"selector": {"ciclo.dev/deployment": "web"}, "ports": [{"name": "http", "port": 8080}]}
        }))
        .unwrap()
    }

    fn methods(seen: &Seen) -> Vec<String> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|(m, _, _)| m.clone())
            .collect()
    }

    /// The Service of a ModelDeployment that has a status: an earlier process may have
    /// applied it.
    const RECORDED: Live = Live::Unwatched {
        owner_has_status: true,
    };

    /// What a process with an empty memo asks a server holding `live` to apply the Service.
    async fn fresh_process_applies(live: Option<serde_json::Value>, owner: Live<'_>) -> Seen {
        let (client, seen) = fake_api_server(live);
        let api = Api::namespaced(client, "ml");
        apply(&api, &service(), &Applied::default(), owner)
            .await
            .unwrap();
        seen
    }

    #[tokio::test]
    async fn after_a_restart_a_service_that_carries_the_digest_is_read_once_and_not_applied() {
        // The first apply, by the process before the restart, of a new ModelDeployment's
        // Service: applied with the digest, not read first.
        let new = Live::Unwatched {
            owner_has_status: false,
        };
        let seen = fresh_process_applies(None, new).await;
        assert_eq!(methods(&seen), ["PATCH"]);
        // With a status, not in the cluster: read, then applied.
        assert_eq!(
            methods(&fresh_process_applies(None, RECORDED).await),
            ["GET", "PATCH"]
        );
        let (_, path, sent) = seen.lock().unwrap()[0].clone();
        assert_eq!(path, "/api/v1/namespaces/ml/services/web");
        // The object as that apply left it in the cluster, with ciclo's managed fields.
        let mut live: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(
            live["metadata"]["annotations"][DIGEST]
                .as_str()
                .map(str::len),
            Some(32)
        );
        live["metadata"]["managedFields"] = serde_json::json!([{
            "manager": FIELD_MANAGER, "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:selector": {}}}
        }]);

        // A new process (an empty memo) reads it once, applies nothing, then asks nothing.
        let (client, seen) = fake_api_server(Some(live.clone()));
        let api = Api::namespaced(client, "ml");
        let applied = Applied::default();
        for _ in 0..3 {
            apply(&api, &service(), &applied, RECORDED).await.unwrap();
        }
        assert_eq!(methods(&seen), ["GET"]);
        // A changed spec is applied, with no read.
        let mut changed = service();
        changed.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 9090;
        apply(&api, &changed, &applied, RECORDED).await.unwrap();
        assert_eq!(methods(&seen), ["GET", "PATCH"]);

        // Edited by someone else while no process ran: applied again.
        live["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "manager": "kubectl-edit", "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:ports": {}}}
            }));
        let seen = fresh_process_applies(Some(live), RECORDED).await;
        assert_eq!(methods(&seen), ["GET", "PATCH"]);
    }

    #[test]
    fn the_memo_knows_its_own_applies_and_sees_another_generation() {
        let applied = Applied::default();
        let digest = blake3::hash(b"v1");
        assert_eq!(applied.verdict("k", digest, None), Verdict::Unknown);
        applied.remember("k".into(), digest, Some(2));
        assert_eq!(
            applied.verdict("k", digest, Some(Some(2))),
            Verdict::Current
        );
        assert_eq!(applied.verdict("k", digest, None), Verdict::Current);
        // Someone changed the spec (the generation moved), the cache lost it, or the desired
        // object changed: applied again, without looking at the live object.
        assert_eq!(applied.verdict("k", digest, Some(Some(3))), Verdict::Apply);
        assert_eq!(applied.verdict("k", digest, Some(None)), Verdict::Apply);
        assert_eq!(
            applied.verdict("k", blake3::hash(b"v2"), None),
            Verdict::Apply
        );
    }
}
