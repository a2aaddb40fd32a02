//! A container's environment, resolved as a kubelet resolves it: the node's defaults, the
//! API server address, `envFrom`, then `env` with `valueFrom` and `$(VAR)` references.

use crate::volumes::ObjectCache;
use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// What the environment of every container starts from.
pub struct Base<'a> {
    pub api_host: &'a str,
    pub api_port: u16,
    pub pod_ip: Ipv4Addr,
    /// Extra variables the node adds (GPU assignment).
    pub extra: &'a [(String, String)],
}

/// Resolves `container`'s environment; errors name the variable and what is missing.
pub async fn resolve(
    pod: &Pod,
    container: &Container,
    base: &Base<'_>,
    objects: &ObjectCache,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(name, _)| *name != k);
        vars.push((k, v));
    };
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    set(&mut vars, "PATH".into(), path);
    set(&mut vars, "HOSTNAME".into(), pod_name(pod).into());
    let (host, port) = (base.api_host.to_string(), base.api_port.to_string());
    for (k, v) in [
        ("KUBERNETES_SERVICE_HOST", host.clone()),
        ("KUBERNETES_SERVICE_PORT", port.clone()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", port.clone()),
        ("KUBERNETES_PORT", format!("tcp://{host}:{port}")),
        ("KUBERNETES_PORT_443_TCP", format!("tcp://{host}:{port}")),
        ("KUBERNETES_PORT_443_TCP_ADDR", host.clone()),
        ("KUBERNETES_PORT_443_TCP_PORT", port.clone()),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp".into()),
    ] {
        set(&mut vars, k.into(), v);
    }
    for (k, v) in base.extra {
        set(&mut vars, k.clone(), v.clone());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(r) = &from.config_map_ref {
            objects
                .config_map(ns, &r.name, r.optional.unwrap_or(false))
                .await?
        } else if let Some(r) = &from.secret_ref {
            objects
                .secret(ns, &r.name, r.optional.unwrap_or(false))
                .await?
        } else {
            continue;
        };
        for (k, v) in data.unwrap_or_default() {
            set(
                &mut vars,
                format!("{prefix}{k}"),
                String::from_utf8_lossy(&v).into_owned(),
            );
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or(""), &vars)),
            Some(from) => {
                if let Some(f) = &from.field_ref {
                    Some(
                        field_ref(pod, f, base.pod_ip)
                            .map_err(|why| format!("env {}: {why}", e.name))?,
                    )
                } else if let Some(r) = &from.secret_key_ref {
                    let data = objects
                        .secret(ns, &r.name, r.optional.unwrap_or(false))
                        .await?;
                    key_of(
                        data,
                        &r.key,
                        r.optional.unwrap_or(false),
                        "secret",
                        &r.name,
                        &e.name,
                    )?
                } else if let Some(r) = &from.config_map_key_ref {
                    let data = objects
                        .config_map(ns, &r.name, r.optional.unwrap_or(false))
                        .await?;
                    key_of(
                        data,
                        &r.key,
                        r.optional.unwrap_or(false),
                        "configmap",
                        &r.name,
                        &e.name,
                    )?
                } else {
                    return Err(format!("env {}: unsupported valueFrom", e.name));
                }
            }
        };
        if let Some(v) = value {
            set(&mut vars, e.name.clone(), v);
        }
    }
    Ok(vars)
}

fn key_of(
    data: Option<BTreeMap<String, Vec<u8>>>,
    key: &str,
    optional: bool,
    kind: &str,
    name: &str,
    var: &str,
) -> Result<Option<String>, String> {
    match data.and_then(|d| d.get(key).cloned()) {
        Some(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
        None if optional => Ok(None),
        None => Err(format!(
            "env {var}: couldn't find key {key} in {kind} {name}"
        )),
    }
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The downward API's field paths, for env and for downwardAPI volume files.
pub fn field_ref(pod: &Pod, f: &ObjectFieldSelector, pod_ip: Ipv4Addr) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let path = f.field_path.as_str();
    let map_key = |prefix: &str| -> Option<String> {
        path.strip_prefix(prefix)?
            .strip_suffix("']")
            .map(|k| k.to_string())
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(meta.labels.as_ref()),
        "metadata.annotations" => render_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".into(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        _ => {
            if let Some(k) = map_key("metadata.labels['") {
                meta.labels
                    .as_ref()
                    .and_then(|m| m.get(&k).cloned())
                    .unwrap_or_default()
            } else if let Some(k) = map_key("metadata.annotations['") {
                meta.annotations
                    .as_ref()
                    .and_then(|m| m.get(&k).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!("unsupported fieldPath {path:?}"));
            }
        }
    })
}

/// `key="value"` lines, the downward API's file format for label and annotation maps.
fn render_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Kubernetes' `$(VAR)` expansion: a defined VAR is replaced, `$$` is an escaped `$`,
/// and anything else stays as written.
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![("A".into(), "1".into()), ("B".into(), "two".into())]
    }

    #[test]
    fn expansion_replaces_defined_variables_and_keeps_the_rest() {
        assert_eq!(expand("x$(A)y$(B)", &vars()), "x1ytwo");
        assert_eq!(expand("$(MISSING) stays", &vars()), "$(MISSING) stays");
        assert_eq!(expand("$$(A) is escaped", &vars()), "$(A) is escaped");
        assert_eq!(expand("cost $5 and $(", &vars()), "cost $5 and $(");
    }

    #[test]
    fn downward_api_paths_resolve_from_the_pod() {
        let pod: Pod = serde_yaml::from_str(
            r#"
metadata:
  name: p
  namespace: ns
  uid: u-1
  labels: {app: web, tier: "1"}
spec:
  nodeName: ciclo-node
  serviceAccountName: sa
  containers: [{name: c}]
"#,
        )
        .unwrap();
        let ip = Ipv4Addr::new(127, 1, 0, 9);
        let get = |p: &str| {
            field_ref(
                &pod,
                &ObjectFieldSelector {
                    field_path: p.into(),
                    api_version: None,
                },
                ip,
            )
        };
        assert_eq!(get("status.podIP").unwrap(), "127.1.0.9");
        assert_eq!(get("metadata.namespace").unwrap(), "ns");
        assert_eq!(get("metadata.labels['app']").unwrap(), "web");
        assert_eq!(get("metadata.labels").unwrap(), "app=\"web\"\ntier=\"1\"");
        assert_eq!(get("spec.serviceAccountName").unwrap(), "sa");
        assert!(get("spec.nope").unwrap_err().contains("spec.nope"));
    }
}
