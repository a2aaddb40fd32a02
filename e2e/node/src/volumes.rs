//! Pod volumes on the host: each volume is a directory under the pod's own folder, bound
//! into the containers' private mount namespaces at their `mountPath`.

use crate::env;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::{Api, PostParams};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::os::unix::fs::{PermissionsExt as _, chown};
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// The data of a Secret or ConfigMap (`None`: it does not exist).
type ObjectData = Option<BTreeMap<String, Vec<u8>>>;

/// Secrets and ConfigMaps a pod refers to, fetched once per pod start. A node may only
/// `get` the objects its own pods reference (the Node authorizer), never list them.
pub struct ObjectCache {
    client: kube::Client,
    cache: Mutex<HashMap<(&'static str, String, String), ObjectData>>,
}

impl ObjectCache {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn secret(&self, ns: &str, name: &str, optional: bool) -> Result<ObjectData, String> {
        self.get("secret", ns, name, optional).await
    }

    pub async fn config_map(
        &self,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<ObjectData, String> {
        self.get("configmap", ns, name, optional).await
    }

    async fn get(
        &self,
        kind: &'static str,
        ns: &str,
        name: &str,
        optional: bool,
    ) -> Result<ObjectData, String> {
        let key = (kind, ns.to_string(), name.to_string());
        if let Some(hit) = self.cache.lock().await.get(&key) {
            return missing_unless_optional(hit.clone(), optional, kind, name);
        }
        let fetched = match kind {
            "secret" => Api::<Secret>::namespaced(self.client.clone(), ns)
                .get_opt(name)
                .await
                .map(|o| {
                    o.map(|s| {
                        let mut data: BTreeMap<String, Vec<u8>> = s
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.0))
                            .collect();
                        for (k, v) in s.string_data.unwrap_or_default() {
                            data.insert(k, v.into_bytes());
                        }
                        data
                    })
                }),
            _ => Api::<ConfigMap>::namespaced(self.client.clone(), ns)
                .get_opt(name)
                .await
                .map(|o| {
                    o.map(|c| {
                        let mut data: BTreeMap<String, Vec<u8>> = c
                            .data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, v.into_bytes()))
                            .collect();
                        for (k, v) in c.binary_data.unwrap_or_default() {
                            data.insert(k, v.0);
                        }
                        data
                    })
                }),
        }
        .map_err(|e| format!("reading {kind} {ns}/{name}: {e}"))?;
        self.cache.lock().await.insert(key, fetched.clone());
        missing_unless_optional(fetched, optional, kind, name)
    }
}

fn missing_unless_optional(
    data: ObjectData,
    optional: bool,
    kind: &str,
    name: &str,
) -> Result<ObjectData, String> {
    match data {
        None if !optional => Err(format!("{kind} {name:?} not found")),
        other => Ok(other),
    }
}

/// A bind mount into a container's namespace.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// The volumes of one pod on disk, by volume name.
pub struct PodVolumes {
    dirs: HashMap<String, (PathBuf, bool)>,
}

/// Who the pod's files must be readable by: volumes are written by the node (root) and
/// read by containers that may run as another user.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Everything volume materialisation needs besides the pod itself.
pub struct Inputs<'a> {
    pub client: &'a kube::Client,
    pub objects: &'a ObjectCache,
    pub pod_ip: Ipv4Addr,
    pub owner: Owner,
}

impl PodVolumes {
    /// Writes every volume of `pod` under `root`.
    pub async fn materialize(pod: &Pod, root: &Path, inputs: &Inputs<'_>) -> Result<Self, String> {
        let mut dirs = HashMap::new();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        for v in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
        {
            let dir = root.join("volumes").join(&v.name);
            let read_only = materialize_one(pod, ns, v, &dir, inputs)
                .await
                .map_err(|e| format!("volume {:?}: {e}", v.name))?;
            dirs.insert(v.name.clone(), (dir, read_only));
        }
        Ok(Self { dirs })
    }

    /// The bind mounts of `container`'s `volumeMounts`.
    pub fn mounts_for(&self, container: &Container) -> Result<Vec<Mount>, String> {
        container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                let (dir, always_ro) = self
                    .dirs
                    .get(&m.name)
                    .ok_or_else(|| format!("volumeMount {:?}: no volume of that name", m.name))?;
                let mut source = dir.clone();
                if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    if Path::new(sub).components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                        return Err(format!("volumeMount {:?}: subPath {sub:?} must be relative and stay inside the volume", m.name));
                    }
                    source = source.join(sub);
                    if !source.exists() {
                        std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
                    }
                }
                Ok(Mount {
                    source,
                    target: PathBuf::from(&m.mount_path),
                    read_only: *always_ro || m.read_only == Some(true),
                })
            })
            .collect()
    }
}

/// Writes one volume; returns whether it is read-only by nature (as a kubelet mounts
/// secret, configMap, projected and downwardAPI volumes).
async fn materialize_one(
    pod: &Pod,
    ns: &str,
    v: &Volume,
    dir: &Path,
    inputs: &Inputs<'_>,
) -> Result<bool, String> {
    let io = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(dir).map_err(io)?;
    if v.empty_dir.is_some() {
        // World-writable like a kubelet's emptyDir, so any container user can write.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(io)?;
        return Ok(false);
    }
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = inputs
            .objects
            .secret(ns, &name, s.optional.unwrap_or(false))
            .await?;
        files.extend(select_keys(
            data,
            s.items.as_deref(),
            s.default_mode.unwrap_or(0o644),
            &name,
        )?);
    } else if let Some(c) = &v.config_map {
        let name = c.name.clone();
        let data = inputs
            .objects
            .config_map(ns, &name, c.optional.unwrap_or(false))
            .await?;
        files.extend(select_keys(
            data,
            c.items.as_deref(),
            c.default_mode.unwrap_or(0o644),
            &name,
        )?);
    } else if let Some(d) = &v.downward_api {
        files.extend(downward_files(
            pod,
            d.items.as_deref(),
            d.default_mode.unwrap_or(0o644),
            inputs.pod_ip,
        )?);
    } else if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(0o644);
        for source in p.sources.iter().flatten() {
            if let Some(s) = &source.secret {
                let data = inputs
                    .objects
                    .secret(ns, &s.name, s.optional.unwrap_or(false))
                    .await?;
                files.extend(select_keys(data, s.items.as_deref(), mode, &s.name)?);
            }
            if let Some(c) = &source.config_map {
                let data = inputs
                    .objects
                    .config_map(ns, &c.name, c.optional.unwrap_or(false))
                    .await?;
                files.extend(select_keys(data, c.items.as_deref(), mode, &c.name)?);
            }
            if let Some(d) = &source.downward_api {
                files.extend(downward_files(
                    pod,
                    d.items.as_deref(),
                    mode,
                    inputs.pod_ip,
                )?);
            }
            if let Some(t) = &source.service_account_token {
                let token = request_token(
                    inputs.client,
                    pod,
                    t.audience.clone(),
                    t.expiration_seconds.unwrap_or(3600),
                )
                .await?;
                files.push((t.path.clone(), token.into_bytes(), mode as u32));
            }
        }
    } else {
        return Err("unsupported volume type".into());
    }
    for (rel, content, mode) in files {
        let rel_path = Path::new(&rel);
        if rel_path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "path {rel:?} must be relative and stay inside the volume"
            ));
        }
        let path = dir.join(rel_path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, content).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(io)?;
        // A kubelet gives projected files to the pod's user, so a 0600 token stays readable.
        if inputs.owner.uid.is_some() || inputs.owner.gid.is_some() {
            chown(&path, inputs.owner.uid, inputs.owner.gid).map_err(io)?;
        }
    }
    Ok(true)
}

fn select_keys(
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    source: &str,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let Some(data) = data else {
        return Ok(Vec::new());
    };
    match items {
        None => Ok(data
            .into_iter()
            .map(|(k, v)| (k, v, default_mode as u32))
            .collect()),
        Some(items) => items
            .iter()
            .map(|i| {
                let v = data
                    .get(&i.key)
                    .ok_or_else(|| format!("key {:?} not found in {source:?}", i.key))?;
                Ok((
                    i.path.clone(),
                    v.clone(),
                    i.mode.unwrap_or(default_mode) as u32,
                ))
            })
            .collect(),
    }
}

fn downward_files(
    pod: &Pod,
    items: Option<&[DownwardAPIVolumeFile]>,
    default_mode: i32,
    pod_ip: Ipv4Addr,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    items
        .into_iter()
        .flatten()
        .map(|i| {
            let f = i
                .field_ref
                .as_ref()
                .ok_or_else(|| format!("downwardAPI {}: only fieldRef is supported", i.path))?;
            let value = env::field_ref(pod, f, pod_ip)?;
            Ok((
                i.path.clone(),
                value.into_bytes(),
                i.mode.unwrap_or(default_mode) as u32,
            ))
        })
        .collect()
}

/// A pod-bound service-account token through the TokenRequest API, as a kubelet gets one.
async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<String>,
    expiration_seconds: i64,
) -> Result<String, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            // No audience means the API server's own, as for the default token volume.
            audiences: audience.filter(|a| !a.is_empty()).map(|a| vec![a]),
            expiration_seconds: Some(expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let response = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("requesting a token for service account {ns}/{sa}: {e}"))?;
    response
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| format!("token request for {ns}/{sa} returned no token"))
}
